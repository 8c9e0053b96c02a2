package controller_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/testenv"
)

// TestBackupExampleGoesFromReadyToStreamingAndBack follows the spec's
// backup-example as a user meets it in kubectl.
func TestBackupExampleGoesFromReadyToStreamingAndBack(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	c := startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "backup-example")

	waitForReplicas(t, ns, "backup-example", 1)
	d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	if got := strings.Join(ctr.Command, " "); got != "armory worker --backup=backup-example" || len(ctr.Args) != 0 {
		t.Errorf("worker command line = %q %q, want armory worker --backup=backup-example", ctr.Command, ctr.Args)
	}
	if ctr.Image != "armory:test" {
		t.Errorf("worker image = %q, want the --worker-image", ctr.Image)
	}
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	assertGetShows(t, ns, "backups", "backup-example", "🌈 Ready")
	assertGetShows(t, ns, "eventhubs", "my-kafka-cluster", "Kafka", "🌈 Ready", "kafka-0.kafka:9092,kafka-1.kafka:9092")
	assertGetShows(t, ns, "storages", "my-storage", "🌈 Ready", "gs://my-company-kafka-backups/prod")

	lease := holdWorkerLease(t, ns, "backup-example")
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseStreaming, "🚀 Streaming")
	assertGetShows(t, ns, "backups", "backup-example", "🚀 Streaming")

	lastRenewal := lease.release()
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	// Noticed by the controller's own requeue at the Lease's expiry, not by
	// an event: allow the lease duration plus scheduling slack.
	if late := time.Since(lastRenewal); late > workerLeaseDuration+5*time.Second {
		t.Errorf("back to Ready %v after the last renewal; want within the lease duration (%v)", late, workerLeaseDuration)
	}

	testenv.WaitFor(t, 10*time.Second, "three events", func() (bool, string) {
		events := eventsOf(t, ns, "backup-example")
		return len(events) >= 3, fmt.Sprint(events)
	})
	events := eventsOf(t, ns, "backup-example")
	if count(events, "Normal/Ready") != 2 || count(events, "Normal/Streaming") != 1 || len(events) != 3 {
		t.Errorf("events = %v, want Ready, Streaming, Ready", events)
	}

	code, metrics := testenv.HTTPGet(c.metricsAddr, "/metrics")
	for _, want := range []string{`armory_workqueue_adds_total{name="backups"}`, `armory_controller_sync_duration_seconds_count{queue="backups"}`} {
		if code != http.StatusOK || !strings.Contains(metrics, want) {
			t.Errorf("/metrics (%d) does not show %s", code, want)
		}
	}
	if code, body := testenv.HTTPGet(c.healthAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %s", code, body)
	}
}

func count(list []string, item string) int {
	n := 0
	for _, s := range list {
		if s == item {
			n++
		}
	}
	return n
}

// assertGetShows checks the row of `kubectl get <resource>` for name.
func assertGetShows(t *testing.T, ns, resource, name string, columns ...string) {
	t.Helper()
	out := kubectl(t, "", "get", resource, "-n", ns)
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			for _, c := range columns {
				if !strings.Contains(line, c) {
					t.Errorf("kubectl get %s: row %q does not show %q", resource, line, c)
				}
			}
			return
		}
	}
	t.Errorf("kubectl get %s shows no %s:\n%s", resource, name, out)
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster")
	kubectl(t, "apiVersion: kannika.io/v1alpha\nkind: Storage\nmetadata: {name: my-bucket}\nspec: {gcsBucket: {bucket: my-bucket}}\n", "apply", "-n", ns, "-f", "-")

	applyExample(t, ns, "paused-backup-example")
	waitForPhase(t, ns, "paused-backup-example", v1alpha.PhasePaused, "💤 Paused")
	waitForReplicas(t, ns, "paused-backup-example", 0)

	kubectl(t, "", "patch", "backup", "paused-backup-example", "-n", ns, "--type=merge", "-p", `{"spec":{"enabled":true}}`)
	waitForReplicas(t, ns, "paused-backup-example", 1)
	waitForPhase(t, ns, "paused-backup-example", v1alpha.PhaseReady, "🌈 Ready")

	kubectl(t, "", "patch", "backup", "paused-backup-example", "-n", ns, "--type=merge", "-p", `{"spec":{"enabled":false}}`)
	waitForReplicas(t, ns, "paused-backup-example", 0)
	kubectl(t, "", "patch", "backup", "paused-backup-example", "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/spec/enabled"}]`)
	waitForReplicas(t, ns, "paused-backup-example", 1)
	waitForPhase(t, ns, "paused-backup-example", v1alpha.PhaseReady, "🌈 Ready")

	applyExample(t, ns, "paused-backup-stream-example")
	waitForPhase(t, ns, "paused-backup-stream-example", v1alpha.PhasePaused, "💤 Paused")
	waitForReplicas(t, ns, "paused-backup-stream-example", 0)

	kubectl(t, `apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: all-streams-off}
spec:
  source: my-kafka-cluster
  sink: my-bucket
  enabled: true
  streams: [{topic: a, enabled: false}, {topic: b, enabled: false}]
---
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: no-streams}
spec: {source: my-kafka-cluster, sink: my-bucket}
`, "apply", "-n", ns, "-f", "-")
	b := waitForPhase(t, ns, "all-streams-off", v1alpha.PhasePaused, "💤 Paused")
	if c := findCondition(b, backup.ConditionStreaming); c == nil || !strings.Contains(c.Message, "every stream is disabled") {
		t.Errorf("Streaming condition = %+v, want it to say every stream is disabled", c)
	}
	waitForReplicas(t, ns, "all-streams-off", 0)
	waitForPhase(t, ns, "no-streams", v1alpha.PhaseDraft, "📝 Draft: add a topic to spec.streams to start backing up")
	if _, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "no-streams-backup", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("a Draft Backup has a Deployment (err %v)", err)
	}
}

func findCondition(b *v1alpha.Backup, typ string) *metav1.Condition {
	for i := range b.Status.Conditions {
		if b.Status.Conditions[i].Type == typ {
			return &b.Status.Conditions[i]
		}
	}
	return nil
}

// TestFailedBackupsRecoverWhenTheCauseIsFixed: a missing EventHub, Storage,
// Credentials or Secret key makes a Backup Failed with a message naming the
// field and the fix; creating what is missing recovers it, with no edit to
// the Backup.
func TestFailedBackupsRecoverWhenTheCauseIsFixed(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-storage")

	backupYAML := func(name, extra string) string {
		return fmt.Sprintf("apiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: %s}\nspec:\n%s  streams: [{topic: magic.events}]\n", name, extra)
	}
	tests := []struct {
		name    string
		backup  string
		message string
		fix     string
	}{
		{"missing-eventhub", "  source: other-kafka\n  sink: my-storage\n",
			fmt.Sprintf(`spec.source: EventHub "other-kafka" not found in namespace %q; create it or correct the name`, ns),
			"apiVersion: kannika.io/v1alpha\nkind: EventHub\nmetadata: {name: other-kafka}\nspec: {kafka: {properties: {bootstrap.servers: \"kafka:9092\"}}}\n"},
		{"missing-storage", "  source: my-kafka-cluster\n  sink: other-storage\n",
			fmt.Sprintf(`spec.sink: Storage "other-storage" not found in namespace %q; create it or correct the name`, ns),
			"apiVersion: kannika.io/v1alpha\nkind: Storage\nmetadata: {name: other-storage}\nspec: {gcsBucket: {bucket: other-bucket}}\n"},
		{"missing-credentials", "  source: my-kafka-cluster\n  sink: my-storage\n  sourceCredentialsFrom: {credentialsRef: {name: kafka-plain}}\n",
			fmt.Sprintf(`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "kafka-plain" not found in namespace %q; create them or correct the name`, ns),
			`apiVersion: v1
kind: Secret
metadata: {name: plain-user}
stringData: {username: armory, password: s3cr3t-value}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-plain}
spec:
  sasl:
    mechanism: PLAIN
    usernameFrom: {secretKeyRef: {name: plain-user, key: username}}
    passwordFrom: {secretKeyRef: {name: plain-user, key: password}}
`},
	}
	// The Secret key case: Credentials exist, their Secret lacks a key.
	kubectl(t, `apiVersion: v1
kind: Secret
metadata: {name: scram-user}
stringData: {username: armory}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-scram}
spec:
  sasl:
    mechanism: SCRAM-SHA-512
    usernameFrom: {secretKeyRef: {name: scram-user, key: username}}
    passwordFrom: {secretKeyRef: {name: scram-user, key: password}}
`, "apply", "-n", ns, "-f", "-")
	tests = append(tests, struct{ name, backup, message, fix string }{
		"missing-secret-key", "  source: my-kafka-cluster\n  sink: my-storage\n  sourceCredentialsFrom: {credentialsRef: {name: kafka-scram}}\n",
		`spec.sourceCredentialsFrom.credentialsRef.name: Credentials "kafka-scram": spec.sasl.passwordFrom.secretKeyRef: Secret "scram-user" has no key "password"; add the key or correct the reference`,
		"apiVersion: v1\nkind: Secret\nmetadata: {name: scram-user}\nstringData: {username: armory, password: an0ther-s3cret}\n"})

	for _, tc := range tests {
		kubectl(t, backupYAML(tc.name, tc.backup), "apply", "-n", ns, "-f", "-")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			failed := waitForPhase(t, ns, tc.name, v1alpha.PhaseFailed, "💥 Failed: "+tc.message)
			assertGetShows(t, ns, "backups", tc.name, "💥 Failed: spec.")
			if _, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), tc.name+"-backup", metav1.GetOptions{}); !isNotFound(err) {
				t.Errorf("a Backup whose references are broken got a Deployment (err %v)", err)
			}
			kubectl(t, tc.fix, "apply", "-n", ns, "-f", "-")
			recovered := waitForPhase(t, ns, tc.name, v1alpha.PhaseReady, "🌈 Ready")
			if recovered.Generation != failed.Generation {
				t.Errorf("the Backup was edited (generation %d → %d); it should recover by itself", failed.Generation, recovered.Generation)
			}
			waitForReplicas(t, ns, tc.name, 1)
			// Events are recorded asynchronously: wait for both, then
			// check that there are no more.
			testenv.WaitFor(t, 10*time.Second, "a Warning and a Normal/Ready event", func() (bool, string) {
				events := eventsOf(t, ns, tc.name)
				return len(events) >= 2, fmt.Sprint(events)
			})
			time.Sleep(time.Second)
			events := eventsOf(t, ns, tc.name)
			if count(events, "Normal/Ready") != 1 || len(events) != 2 || !slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "Warning/") }) {
				t.Errorf("events = %v, want one Warning for the cause and one Normal/Ready", events)
			}
		})
	}
	// No secret value reached a status or an event.
	out := kubectl(t, "", "get", "backups,events", "-n", ns, "-o", "yaml")
	for _, secret := range []string{"s3cr3t-value", "an0ther-s3cret"} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret value appears in a Backup or an event")
		}
	}
}

// TestEditRollsTheWorkerAndARestartWritesNothing: editing a stream changes
// the inputs hash (rolling the worker); a controller restart writes nothing
// to an unchanged Deployment or status, and records no event.
func TestEditRollsTheWorkerAndARestartWritesNothing(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	c := startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "backup-example")
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	hash := func() string {
		d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return d.Spec.Template.Annotations[backup.InputsHashAnnotation]
	}
	before := hash()
	if before == "" {
		t.Fatal("no inputs hash on the Deployment")
	}
	kubectl(t, "", "patch", "backup", "backup-example", "-n", ns, "--type=json",
		"-p", `[{"op":"add","path":"/spec/streams/-","value":{"topic":"new.events"}}]`)
	testenv.WaitFor(t, 30*time.Second, "the Deployment's inputs hash to change", func() (bool, string) {
		h := hash()
		return h != before && h != "", h
	})
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")

	// Pausing scales, without rolling the pod template.
	rolled := hash()
	kubectl(t, "", "patch", "backup", "backup-example", "-n", ns, "--type=merge", "-p", `{"spec":{"enabled":false}}`)
	waitForReplicas(t, ns, "backup-example", 0)
	kubectl(t, "", "patch", "backup", "backup-example", "-n", ns, "--type=merge", "-p", `{"spec":{"enabled":true}}`)
	waitForReplicas(t, ns, "backup-example", 1)
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	if h := hash(); h != rolled {
		t.Errorf("pausing and resuming changed the pod template (hash %s → %s)", rolled, h)
	}

	testenv.WaitFor(t, 10*time.Second, "the Ready, Paused, Ready events", func() (bool, string) {
		events := eventsOf(t, ns, "backup-example")
		return len(events) == 3, fmt.Sprint(events)
	})
	c.stop()
	versions := resourceVersions(t, ns)
	eventsBefore := eventsOf(t, ns, "backup-example")
	c2 := startController(t, ns, "armory:test")
	// Let the restarted controller sync everything, and resync the Backup a
	// few times (an annotation changes no spec and no status).
	testenv.WaitFor(t, 30*time.Second, "the restarted controller to sync the backups queue", func() (bool, string) {
		_, m := testenv.HTTPGet(c2.metricsAddr, "/metrics")
		return strings.Contains(m, `armory_controller_sync_duration_seconds_count{queue="backups"}`), "no backup synced yet"
	})
	for i := range 3 {
		kubectl(t, "", "annotate", "backup", "backup-example", "-n", ns, "--overwrite", fmt.Sprintf("test/resync=%d", i))
		time.Sleep(500 * time.Millisecond)
	}
	after := resourceVersions(t, ns)
	for name, rv := range versions {
		if name == "Backup/backup-example" {
			continue // annotated on purpose; its status is checked below
		}
		if after[name] != rv {
			t.Errorf("%s was written after the restart (resourceVersion %s → %s)", name, rv, after[name])
		}
	}
	b := backupOf(t, ns, "backup-example")
	if b.Status.Phase != v1alpha.PhaseReady || findCondition(b, backup.ConditionStreaming).LastTransitionTime.IsZero() {
		t.Errorf("status after restart = %s", b.Status.Phase)
	}
	if managed := statusWrites(b); managed != versions["status-time"] {
		t.Errorf("the status was rewritten after the restart: managed fields time %s → %s", versions["status-time"], managed)
	}
	if eventsAfter := eventsOf(t, ns, "backup-example"); !slices.Equal(eventsBefore, eventsAfter) {
		t.Errorf("events changed after a restart and resyncs: %v → %v", eventsBefore, eventsAfter)
	}
}

// resourceVersions of everything the controller writes for backup-example.
func resourceVersions(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out["Deployment"] = d.ResourceVersion
	sa, _ := env.Kube.CoreV1().ServiceAccounts(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
	out["ServiceAccount"] = sa.ResourceVersion
	role, _ := env.Kube.RbacV1().Roles(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
	out["Role"] = role.ResourceVersion
	rb, _ := env.Kube.RbacV1().RoleBindings(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
	out["RoleBinding"] = rb.ResourceVersion
	for _, n := range []string{"my-kafka-cluster"} {
		eh, _ := env.Armory.KannikaV1alpha().EventHubs(ns).Get(ctx(), n, metav1.GetOptions{})
		out["EventHub/"+n] = eh.ResourceVersion
	}
	s, _ := env.Armory.KannikaV1alpha().Storages(ns).Get(ctx(), "my-storage", metav1.GetOptions{})
	out["Storage/my-storage"] = s.ResourceVersion
	b := backupOf(t, ns, "backup-example")
	out["Backup/backup-example"] = b.ResourceVersion
	out["status-time"] = statusWrites(b)
	return out
}

// statusWrites is when the controller last wrote the Backup's status.
func statusWrites(b *v1alpha.Backup) string {
	for _, m := range b.ManagedFields {
		if m.Manager == backup.FieldManager && m.Subresource == "status" {
			return m.Time.String()
		}
	}
	return ""
}

// TestOnlyTheLeaderWrites runs two controllers with different worker images:
// the image on the Deployment shows which one wrote it.
func TestOnlyTheLeaderWrites(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	a := startController(t, ns, "armory:leader-a")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "backup-example")
	image := func() string {
		d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "backup-example-backup", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		return d.Spec.Template.Spec.Containers[0].Image
	}
	testenv.WaitFor(t, 30*time.Second, "controller a to create the Deployment", func() (bool, string) { return image() == "armory:leader-a", image() })

	b := startController(t, ns, "armory:standby-b") // ready: its caches are synced
	testenv.WaitFor(t, 10*time.Second, "controller b to wait for the Lease", func() (bool, string) {
		return strings.Contains(b.log.String(), "Another holds the Lease: waiting"), "b has not logged it"
	})
	// An edit while b stands by is handled by a alone.
	kubectl(t, "", "patch", "backup", "backup-example", "-n", ns, "--type=merge", "-p", `{"spec":{"segmentRolloverTriggers":{"timeoutSeconds":30}}}`)
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	time.Sleep(2 * time.Second)
	if got := image(); got != "armory:leader-a" {
		t.Fatalf("the standby wrote the Deployment: image %q", got)
	}
	if strings.Contains(b.log.String(), "Took the Lease: starting") {
		t.Fatalf("both controllers lead at once")
	}

	a.stop() // releases the Lease after draining
	testenv.WaitFor(t, 30*time.Second, "controller b to take over and write", func() (bool, string) { return image() == "armory:standby-b", image() })
	lease, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx(), "armory-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || !strings.Contains(b.log.String(), "Took the Lease: starting") {
		t.Errorf("b took over but the Lease does not show it: %v %+v", err, lease)
	}
}

// TestWorkerPermissionsAreLeastPrivilege acts as a Backup's worker
// ServiceAccount: it reads its own Backup, its references and their Secret,
// patches its status and holds its Lease, and nothing else.
func TestWorkerPermissionsAreLeastPrivilege(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	kubectl(t, `apiVersion: v1
kind: Secret
metadata: {name: kafka-user}
stringData: {username: armory, password: pw}
---
apiVersion: v1
kind: Secret
metadata: {name: someone-else}
stringData: {token: other}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-sasl}
spec:
  sasl:
    mechanism: SCRAM-SHA-512
    usernameFrom: {secretKeyRef: {name: kafka-user, key: username}}
    passwordFrom: {secretKeyRef: {name: kafka-user, key: password}}
`, "apply", "-n", ns, "-f", "-")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "backup-example", "paused-backup-example")
	kubectl(t, "", "patch", "backup", "backup-example", "-n", ns, "--type=merge", "-p",
		`{"spec":{"sourceCredentialsFrom":{"credentialsRef":{"name":"kafka-sasl"}}}}`)
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")

	as := "system:serviceaccount:" + ns + ":backup-example-backup"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"get", "backups.kannika.io/backup-example"}, "yes"},
		{[]string{"patch", "backups.kannika.io/backup-example", "--subresource=status"}, "yes"},
		{[]string{"get", "eventhubs.kannika.io/my-kafka-cluster"}, "yes"},
		{[]string{"get", "storages.kannika.io/my-storage"}, "yes"},
		{[]string{"get", "credentials.kannika.io/kafka-sasl"}, "yes"},
		{[]string{"get", "secrets/kafka-user"}, "yes"},
		{[]string{"watch", "secrets/kafka-user"}, "no"},
		{[]string{"create", "events"}, "no"},
		{[]string{"create", "leases.coordination.k8s.io"}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/backup-example-backup"}, "yes"},
		{[]string{"get", "backups.kannika.io/paused-backup-example"}, "no"},
		{[]string{"patch", "backups.kannika.io/backup-example"}, "no"},
		{[]string{"get", "secrets/someone-else"}, "no"},
		{[]string{"list", "secrets"}, "no"},
		{[]string{"update", "leases.coordination.k8s.io/armory-controller"}, "no"},
		{[]string{"create", "deployments.apps"}, "no"},
		{[]string{"delete", "backups.kannika.io/backup-example"}, "no"},
	}
	for _, tc := range tests {
		out, _, _ := env.Kubectl(t, "", append([]string{"auth", "can-i", "-n", ns, "--as", as}, tc.args...)...)
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("worker can-i %s = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}

// TestVolumeStorageGetsAClaimMountedIntoItsWorkers covers the my-volume example.
func TestVolumeStorageGetsAClaimMountedIntoItsWorkers(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-volume")
	kubectl(t, "apiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: to-volume}\nspec: {source: my-kafka-cluster, sink: my-volume, streams: [{topic: a}]}\n",
		"apply", "-n", ns, "-f", "-")
	var pvc *corev1.PersistentVolumeClaim
	testenv.WaitFor(t, 30*time.Second, "the Storage's PersistentVolumeClaim", func() (bool, string) {
		var err error
		pvc, err = env.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx(), "my-volume-storage", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "10Gi" || *pvc.Spec.StorageClassName != "standard" {
		t.Errorf("claim = %s of class %v, want 10Gi of standard", q.String(), pvc.Spec.StorageClassName)
	}
	testenv.WaitFor(t, 30*time.Second, "Storage my-volume Ready", func() (bool, string) {
		s, _ := env.Armory.KannikaV1alpha().Storages(ns).Get(ctx(), "my-volume", metav1.GetOptions{})
		return s.Status.Phase == v1alpha.PhaseReady && s.Status.Location == "pvc/my-volume-storage", s.Status.Message + " " + s.Status.Location
	})
	waitForReplicas(t, ns, "to-volume", 1)
	d, _ := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "to-volume-backup", metav1.GetOptions{})
	mounted := false
	for _, v := range d.Spec.Template.Spec.Volumes {
		mounted = mounted || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "my-volume-storage")
	}
	if !mounted {
		t.Errorf("the worker does not mount the Storage's claim: %+v", d.Spec.Template.Spec.Volumes)
	}

	// A grow the API server refuses (this claim is not bound; elsewhere, a
	// StorageClass without allowVolumeExpansion) is said on the Storage,
	// with one Warning event, and the claim keeps working at its size.
	kubectl(t, "", "patch", "storage", "my-volume", "-n", ns, "--type=merge", "-p", `{"spec":{"volume":{"capacity":"20Gi"}}}`)
	testenv.WaitFor(t, 30*time.Second, "the Storage saying its capacity is not applied", func() (bool, string) {
		s, _ := env.Armory.KannikaV1alpha().Storages(ns).Get(ctx(), "my-volume", metav1.GetOptions{})
		m := s.Status.Message
		return s.Status.Phase == v1alpha.PhaseReady && strings.Contains(m, "spec.volume.capacity 20Gi is not applied") &&
			strings.Contains(m, `PersistentVolumeClaim "my-volume-storage" stays at 10Gi`) && strings.Contains(m, "Forbidden") &&
			strings.Contains(m, "allowVolumeExpansion: true"), m
	})
	testenv.WaitFor(t, 30*time.Second, "one VolumeNotExpanded event", func() (bool, string) {
		evs, _ := env.Kube.CoreV1().Events(ns).List(ctx(), metav1.ListOptions{FieldSelector: "involvedObject.name=my-volume,reason=VolumeNotExpanded"})
		return evs != nil && len(evs.Items) == 1 && evs.Items[0].Type == corev1.EventTypeWarning && evs.Items[0].Count == 1, fmt.Sprint(evs)
	})
	if got, _ := env.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx(), "my-volume-storage", metav1.GetOptions{}); got != nil {
		if q := got.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "10Gi" {
			t.Errorf("the claim asks %s after a refused grow", q.String())
		}
	}

	// Deleting the Storage leaves the claim (and the data) in place.
	if err := env.Armory.KannikaV1alpha().Storages(ns).Delete(ctx(), "my-volume", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx(), "my-volume-storage", metav1.GetOptions{}); err != nil || len(got.OwnerReferences) != 0 {
		t.Errorf("the claim is gone or owned after deleting the Storage: %v", err)
	}
}

func TestEventHubAndRestoreStatus(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	kubectl(t, `apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: odd-kafka}
spec:
  kafka:
    properties: {bootstrap.servers: "kafka:9092", auto.offset.reset: earliest}
`, "apply", "-n", ns, "-f", "-")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "restore-example")
	testenv.WaitFor(t, 30*time.Second, "EventHub odd-kafka Failed", func() (bool, string) {
		eh, _ := env.Armory.KannikaV1alpha().EventHubs(ns).Get(ctx(), "odd-kafka", metav1.GetOptions{})
		return eh.Status.Phase == v1alpha.PhaseFailed &&
			strings.HasPrefix(eh.Status.Message, `💥 Failed: spec.kafka.properties[auto.offset.reset]: Unsupported value: "auto.offset.reset"`), eh.Status.Message
	})
	// Enabled, with no worker yet: a Job running the worker, Initializing.
	testenv.WaitFor(t, 30*time.Second, "restore-example Initializing", func() (bool, string) {
		r, _ := env.Armory.KannikaV1alpha().Restores(ns).Get(ctx(), "restore-example", metav1.GetOptions{})
		return r.Status.Phase == v1alpha.PhaseInitializing, r.Status.Message
	})
	assertGetShows(t, ns, "restores", "restore-example", "⏳ Initializing: waiting for the Job's worker to start")
	job, err := env.Kube.BatchV1().Jobs(ns).Get(ctx(), "restore-example-restore", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cmd := job.Spec.Template.Spec.Containers[0].Command; strings.Join(cmd, " ") != "armory worker --restore=restore-example" ||
		job.Spec.Suspend == nil || *job.Spec.Suspend || !metav1.IsControlledBy(job, restoreOf(t, ns, "restore-example")) {
		t.Errorf("Job: command %q, suspend %v, owners %+v", cmd, job.Spec.Suspend, job.OwnerReferences)
	}
	kubectl(t, "", "patch", "restore", "restore-example", "-n", ns, "--type=merge", "-p", `{"spec":{"enabled":false}}`)
	testenv.WaitFor(t, 30*time.Second, "restore-example Ready and its Job suspended once disabled", func() (bool, string) {
		r, _ := env.Armory.KannikaV1alpha().Restores(ns).Get(ctx(), "restore-example", metav1.GetOptions{})
		job, _ := env.Kube.BatchV1().Jobs(ns).Get(ctx(), "restore-example-restore", metav1.GetOptions{})
		return r.Status.Phase == v1alpha.PhaseReady && job != nil && job.Spec.Suspend != nil && *job.Spec.Suspend, r.Status.Message
	})
	assertGetShows(t, ns, "restores", "restore-example", "🌈 Ready")
}

func restoreOf(t *testing.T, ns, name string) *v1alpha.Restore {
	t.Helper()
	r, err := env.Armory.KannikaV1alpha().Restores(ns).Get(ctx(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSecretsStayOutOfTheControllerLogAtV10: at -v=10 client-go dumps every
// request and response body; the controller watches Secrets, whose bodies
// must not be among them.
func TestSecretsStayOutOfTheControllerLogAtV10(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	const password = "ctl-9f3e1d-never-logged"
	kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: scram-user}
stringData: {username: armory, password: %s}
---
apiVersion: kannika.io/v1alpha
kind: Credentials
metadata: {name: kafka-scram}
spec:
  sasl:
    mechanism: SCRAM-SHA-512
    usernameFrom: {secretKeyRef: {name: scram-user, key: username}}
    passwordFrom: {secretKeyRef: {name: scram-user, key: password}}
`, password), "apply", "-n", ns, "-f", "-")
	p := startControllerBinary(t, testenv.BuildArmoryWithoutRace(t), ns, "armory:test", "-v=10")
	applyExample(t, ns, "my-kafka-cluster", "my-storage")
	kubectl(t, "apiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: with-creds}\nspec:\n  source: my-kafka-cluster\n  sink: my-storage\n"+
		"  sourceCredentialsFrom: {credentialsRef: {name: kafka-scram}}\n  streams: [{topic: magic.events}]\n", "apply", "-n", ns, "-f", "-")
	waitForPhase(t, ns, "with-creds", v1alpha.PhaseReady, "🌈 Ready")
	// Rotate it while the controller watches.
	kubectl(t, "", "patch", "secret", "scram-user", "-n", ns, "--type=merge", "-p", `{"stringData":{"password":"`+password+`-2"}}`)
	time.Sleep(2 * time.Second)
	log := p.log.String()
	if !strings.Contains(log, "Response Body") && !strings.Contains(log, "body=") {
		t.Fatal("the controller at -v=10 logged no response body: the test would not see a leak")
	}
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte(password))} {
		if strings.Contains(testenv.LogText(log), secret) {
			t.Errorf("the Secret's password (%s…) appears in the controller's log", secret[:6])
		}
	}
}

// TestThousandFailingStreamsStillGetAStatus: the largest Backup the CRD
// admits, every stream reported Failed by the worker, gets a status the API
// server accepts, summarised, with every stream's message in status.streams.
func TestThousandFailingStreamsStillGetAStatus(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	applyExample(t, ns, "my-kafka-cluster", "my-storage")
	var streams strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&streams, "    - topic: team.events-%04d\n", i)
	}
	kubectl(t, "apiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: wide}\nspec:\n  source: my-kafka-cluster\n  sink: my-storage\n  streams:\n"+
		streams.String(), "apply", "-n", ns, "-f", "-")
	status := applyv1alpha.BackupStatus()
	for i := range 1000 {
		topic := fmt.Sprintf("team.events-%04d", i)
		status.WithStreams(applyv1alpha.BackupStreamStatus().WithTopic(topic).WithState("Failed").
			WithMessage(fmt.Sprintf("topic %q does not exist in the Kafka cluster; create it, or correct or remove the stream", topic)))
	}
	if _, err := env.Armory.KannikaV1alpha().Backups(ns).ApplyStatus(ctx(), applyv1alpha.Backup("wide", ns).WithStatus(status),
		metav1.ApplyOptions{FieldManager: "armory-worker", Force: true}); err != nil {
		t.Fatal(err)
	}
	startController(t, ns, "armory:test")
	b := waitForPhase(t, ns, "wide", v1alpha.PhaseFailed,
		`💥 Failed: no stream can run: stream "team.events-0000": topic "team.events-0000" does not exist in the Kafka cluster; create it, or correct or remove the stream (and 999 more: see kubectl describe)`)
	c := meta.FindStatusCondition(b.Status.Conditions, backup.ConditionStreamsHealthy)
	if c == nil || !strings.HasPrefix(c.Message, "1000 of 1000 streams failing: ") || !strings.Contains(c.Message, "more (every one is in status.streams)") {
		t.Errorf("StreamsHealthy = %+v", c)
	}
}

// TestStatusChangedBySomeoneElseIsCorrected: the controller's memory of
// what it wrote clears once its cache shows it (transition times compared at
// the API server's precision), so a status someone else overwrote is put
// right again, for a Backup and an EventHub.
func TestStatusChangedBySomeoneElseIsCorrected(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-storage", "backup-example")
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	testenv.WaitFor(t, 30*time.Second, "the EventHub Ready", func() (bool, string) {
		eh, err := env.Armory.KannikaV1alpha().EventHubs(ns).Get(ctx(), "my-kafka-cluster", metav1.GetOptions{})
		return err == nil && eh.Status.Phase == v1alpha.PhaseReady, fmt.Sprint(err)
	})
	time.Sleep(time.Second) // let the caches show the controller's writes
	for _, kind := range []string{"backup/backup-example", "eventhub/my-kafka-cluster"} {
		kubectl(t, "", "patch", kind, "-n", ns, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Streaming","message":"🚀 Streaming (not true)"}}`)
	}
	waitForPhase(t, ns, "backup-example", v1alpha.PhaseReady, "🌈 Ready")
	testenv.WaitFor(t, 30*time.Second, "the EventHub's status put right", func() (bool, string) {
		eh, err := env.Armory.KannikaV1alpha().EventHubs(ns).Get(ctx(), "my-kafka-cluster", metav1.GetOptions{})
		return err == nil && eh.Status.Message == "🌈 Ready", fmt.Sprint(err, eh.Status.Message)
	})
}

// TestSettingsTheWorkerWouldRefuseAreFailedAtOnce: a rollover size the
// worker refuses, and an EventHub address that cannot be a host, make the
// Backup Failed with the field and the fix before any worker runs; fixing
// them brings it back.
func TestSettingsTheWorkerWouldRefuseAreFailedAtOnce(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	startController(t, ns, "armory:test")
	applyExample(t, ns, "my-kafka-cluster", "my-storage")
	kubectl(t, `apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: tiny-segments}
spec:
  source: my-kafka-cluster
  sink: my-storage
  segmentRolloverTriggers: {size: -1Mi}
  streams: [{topic: magic.events, segmentRolloverTriggers: {size: "1"}}]
`, "apply", "-n", ns, "-f", "-")
	waitForPhase(t, ns, "tiny-segments", v1alpha.PhaseFailed,
		"💥 Failed: spec.segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is -1Mi)")
	if _, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "tiny-segments-backup", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("a Backup with settings the worker refuses got a Deployment (err %v)", err)
	}
	kubectl(t, "", "patch", "backup", "tiny-segments", "-n", ns, "--type=merge", "-p", `{"spec":{"segmentRolloverTriggers":{"size":"64Mi"}}}`)
	waitForPhase(t, ns, "tiny-segments", v1alpha.PhaseReady, "🌈 Ready")

	kubectl(t, "", "patch", "eventhub", "my-kafka-cluster", "-n", ns, "--type=merge", "-p",
		`{"spec":{"kafka":{"properties":{"bootstrap.servers":"kafka 0.kafka:9092"}}}}`)
	testenv.WaitFor(t, 30*time.Second, "the Backup to be Failed, naming the bad host", func() (bool, string) {
		b := backupOf(t, ns, "tiny-segments")
		return b.Status.Phase == v1alpha.PhaseFailed && strings.Contains(b.Status.Message, `"kafka 0.kafka" is not a host name or IP address`), b.Status.Message
	})
}

// TestSIGTERMDrainsWhatIsQueued: a controller stopped while its queue is
// full finishes the queued syncs (every Backup gets its status) instead of
// failing them on a cancelled context.
func TestSIGTERMDrainsWhatIsQueued(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	applyExample(t, ns, "my-kafka-cluster", "my-storage")
	const n = 40
	var manifest strings.Builder
	for i := range n {
		fmt.Fprintf(&manifest, "---\napiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: queued-%d}\nspec: {source: my-kafka-cluster, sink: my-storage, streams: [{topic: magic.events}]}\n", i)
	}
	kubectl(t, manifest.String(), "apply", "-n", ns, "-f", "-")
	p := startController(t, ns, "armory:test")
	// SIGTERM as soon as the first Backup is synced: the rest are queued.
	testenv.WaitFor(t, 30*time.Second, "the first sync", func() (bool, string) {
		list, err := env.Kube.AppsV1().Deployments(ns).List(ctx(), metav1.ListOptions{})
		return err == nil && len(list.Items) > 0, fmt.Sprint(err)
	})
	p.stop()
	list, err := env.Armory.KannikaV1alpha().Backups(ns).List(ctx(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	without := 0
	for _, b := range list.Items {
		if b.Status.Phase == "" {
			without++
		}
	}
	if without > 0 {
		t.Errorf("%d of %d Backups have no status after the controller drained its queue", without, n)
	}
	for _, line := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(line, "Sync failed") && strings.Contains(line, "context canceled") {
			t.Errorf("a sync failed on a cancelled context during the drain: %s", line)
		}
	}
}

// TestNameClashesAreShownAndForeignObjectsLeftAlone: objects of the names a
// Backup's worker needs that belong to something else (an unlabelled
// Deployment, a foreign ServiceAccount, a foreign Role that carries
// Armory's label) make the Backup Failed with the name and the fix; none of
// them is changed, adopted or bound to; removing the clash recovers it.
func TestNameClashesAreShownAndForeignObjectsLeftAlone(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	applyExample(t, ns, "my-kafka-cluster", "my-storage")
	kubectl(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: clash-deploy-backup}
spec:
  replicas: 0
  selector: {matchLabels: {app: theirs}}
  template:
    metadata: {labels: {app: theirs}}
    spec: {containers: [{name: c, image: theirs}]}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: clash-sa-backup}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: clash-role-backup
  labels: {app.kubernetes.io/part-of: armory}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
`, "apply", "-n", ns, "-f", "-")
	for _, name := range []string{"clash-deploy", "clash-sa", "clash-role"} {
		kubectl(t, fmt.Sprintf("apiVersion: kannika.io/v1alpha\nkind: Backup\nmetadata: {name: %s}\nspec: {source: my-kafka-cluster, sink: my-storage, streams: [{topic: magic.events}]}\n", name),
			"apply", "-n", ns, "-f", "-")
	}
	startController(t, ns, "armory:test")
	for name, kind := range map[string]string{"clash-deploy": "Deployment", "clash-sa": "ServiceAccount", "clash-role": "Role"} {
		waitForPhase(t, ns, name, v1alpha.PhaseFailed, fmt.Sprintf(
			`💥 Failed: metadata.name: a %s "%s-backup" already exists in namespace %q and does not belong to this Backup; delete or rename it`, kind, name, ns))
	}
	d, _ := env.Kube.AppsV1().Deployments(ns).Get(ctx(), "clash-deploy-backup", metav1.GetOptions{})
	sa, _ := env.Kube.CoreV1().ServiceAccounts(ns).Get(ctx(), "clash-sa-backup", metav1.GetOptions{})
	role, _ := env.Kube.RbacV1().Roles(ns).Get(ctx(), "clash-role-backup", metav1.GetOptions{})
	if len(d.OwnerReferences)+len(sa.OwnerReferences)+len(role.OwnerReferences) != 0 || role.Rules[0].Resources[0] != "configmaps" || d.Spec.Template.Spec.Containers[0].Image != "theirs" {
		t.Errorf("a foreign object was changed or adopted: %v %v %v %v", d.OwnerReferences, sa.OwnerReferences, role.OwnerReferences, role.Rules)
	}
	if _, err := env.Kube.RbacV1().RoleBindings(ns).Get(ctx(), "clash-sa-backup", metav1.GetOptions{}); !isNotFound(err) {
		t.Errorf("the worker's Role was bound to a ServiceAccount the Backup does not own (err %v)", err)
	}
	kubectl(t, "", "delete", "deployment", "clash-deploy-backup", "-n", ns)
	waitForPhase(t, ns, "clash-deploy", v1alpha.PhaseReady, "🌈 Ready")
	waitForReplicas(t, ns, "clash-deploy", 1)
}
