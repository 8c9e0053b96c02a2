package backup

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
)

func testBackup() *v1alpha.Backup {
	return &v1alpha.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: "backup-example", Namespace: "team-a", UID: "uid-1", Generation: 1},
		Spec: v1alpha.BackupSpec{
			Source:  "my-kafka-cluster",
			Sink:    "my-storage",
			Enabled: ptr.To(true),
			Streams: []v1alpha.BackupStream{
				{Topic: "magic.events", Enabled: ptr.To(true)},
				{Topic: "pixie.dust", Enabled: ptr.To(true)},
			},
		},
	}
}

func testResolved() refs.Resolved {
	return refs.Resolved{
		EventHub: &v1alpha.EventHub{ObjectMeta: metav1.ObjectMeta{Name: "my-kafka-cluster", Namespace: "team-a"},
			Spec: v1alpha.EventHubSpec{Kafka: v1alpha.KafkaSettings{Properties: map[string]string{"bootstrap.servers": "kafka:9092"}}}},
		Storage: &v1alpha.Storage{ObjectMeta: metav1.ObjectMeta{Name: "my-storage", Namespace: "team-a"},
			Spec: v1alpha.StorageSpec{GCSBucket: &v1alpha.GCSBucket{Bucket: "bucket"}}},
		SourceCredentials: &v1alpha.Credentials{ObjectMeta: metav1.ObjectMeta{Name: "kafka-sasl", Namespace: "team-a"},
			Spec: v1alpha.CredentialsSpec{SASL: &v1alpha.SASLCredentials{
				Mechanism:    v1alpha.SASLScramSHA512,
				UsernameFrom: v1alpha.SecretValueSource{SecretKeyRef: v1alpha.SecretKeySelector{Name: "kafka-user", Key: "username"}},
				PasswordFrom: v1alpha.SecretValueSource{SecretKeyRef: v1alpha.SecretKeySelector{Name: "kafka-user", Key: "password"}},
			}}},
		Secrets: map[string]*corev1.Secret{"kafka-user": {
			ObjectMeta: metav1.ObjectMeta{Name: "kafka-user", Namespace: "team-a", ResourceVersion: "7"},
			Data:       map[string][]byte{"username": []byte("svc-backup-user-42"), "password": []byte("hunter2-secret-value")},
		}},
	}
}

var testConfig = Config{Image: "registry.example/armory:v1"}

func TestNewDeployment(t *testing.T) {
	b := testBackup()
	d := NewDeployment(b, testResolved(), testConfig)

	if d.Name != "backup-example-backup" || d.Namespace != "team-a" {
		t.Errorf("name = %s/%s, want team-a/backup-example-backup", d.Namespace, d.Name)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if got, want := strings.Join(c.Command, " "), "armory worker --backup=backup-example"; got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
	if len(c.Args) != 0 {
		t.Errorf("args = %q, want none: the command line is only the Backup's name", c.Args)
	}
	if c.Image != testConfig.Image {
		t.Errorf("image = %q, want %q", c.Image, testConfig.Image)
	}
	if got := *d.Spec.Replicas; got != 1 {
		t.Errorf("replicas = %d, want 1", got)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %s, want Recreate", d.Spec.Strategy.Type)
	}
	if ref := metav1.GetControllerOf(d); ref == nil || ref.Kind != "Backup" || ref.Name != "backup-example" || ref.UID != "uid-1" {
		t.Errorf("controller reference = %+v, want the Backup", ref)
	}
	if got := d.Spec.Template.Spec.ServiceAccountName; got != "backup-example-backup" {
		t.Errorf("serviceAccountName = %q, want the worker's own", got)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("pod template lacks selector label %s=%s", k, v)
		}
	}
	for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} {
		if d.Labels[k] == "" {
			t.Errorf("missing recommended label %s", k)
		}
	}
	psc, sc := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) == 0 {
		t.Errorf("pod security context %+v does not run as non-root", psc)
	}
	if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context %+v is not read-only, unprivileged, without capabilities", sc)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe.HTTPGet.Port.StrVal != "health" {
		t.Errorf("probes = %+v / %+v, want /healthz and /readyz on the health port", c.LivenessProbe, c.ReadinessProbe)
	}
	for _, e := range c.Env {
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("env %s is a literal or a secret; only downward-API values belong here", e.Name)
		}
	}
	if d.Spec.Template.Annotations[InputsHashAnnotation] == "" {
		t.Error("no inputs hash on the pod template")
	}
}

func TestNewDeploymentCarriesNoSecret(t *testing.T) {
	out, err := json.Marshal(NewDeployment(testBackup(), testResolved(), testConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2-secret-value", "svc-backup-user-42"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the Deployment contains a secret value %q:\n%s", secret, out)
		}
	}
}

func TestNewDeploymentReplicas(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*v1alpha.Backup, *refs.Resolved)
		want   int32
	}{
		{"enabled", func(*v1alpha.Backup, *refs.Resolved) {}, 1},
		{"enabled unset (defaults to true)", func(b *v1alpha.Backup, _ *refs.Resolved) { b.Spec.Enabled = nil }, 1},
		{"paused", func(b *v1alpha.Backup, _ *refs.Resolved) { b.Spec.Enabled = ptr.To(false) }, 0},
		{"every stream disabled", func(b *v1alpha.Backup, _ *refs.Resolved) {
			for i := range b.Spec.Streams {
				b.Spec.Streams[i].Enabled = ptr.To(false)
			}
		}, 0},
		{"one stream disabled", func(b *v1alpha.Backup, _ *refs.Resolved) { b.Spec.Streams[0].Enabled = ptr.To(false) }, 1},
		{"a reference problem", func(_ *v1alpha.Backup, r *refs.Resolved) {
			r.Problems = []refs.Problem{{Reason: refs.ReasonEventHubNotFound, Message: "x"}}
		}, 0},
	}
	for _, tc := range tests {
		b, r := testBackup(), testResolved()
		tc.mutate(b, &r)
		if got := *NewDeployment(b, r, testConfig).Spec.Replicas; got != tc.want {
			t.Errorf("%s: replicas = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestInputsHash(t *testing.T) {
	hash := func(b *v1alpha.Backup, r refs.Resolved, cfg Config) string {
		return NewDeployment(b, r, cfg).Spec.Template.Annotations[InputsHashAnnotation]
	}
	base := hash(testBackup(), testResolved(), testConfig)
	if again := hash(testBackup(), testResolved(), testConfig); again != base {
		t.Fatalf("the same inputs give two hashes: %s, %s", base, again)
	}

	tests := []struct {
		name    string
		mutate  func(*v1alpha.Backup, *refs.Resolved, *Config)
		changes bool
	}{
		{"a stream added", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) {
			b.Spec.Streams = append(b.Spec.Streams, v1alpha.BackupStream{Topic: "new.topic"})
		}, true},
		{"a stream's compression", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) {
			b.Spec.Streams[0].Compression = &v1alpha.Compression{Algorithm: v1alpha.CompressionLZ4}
		}, true},
		{"rollover timeout", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) {
			b.Spec.SegmentRolloverTriggers = &v1alpha.SegmentRolloverTriggers{TimeoutSeconds: ptr.To[int32](30)}
		}, true},
		{"an EventHub property", func(_ *v1alpha.Backup, r *refs.Resolved, _ *Config) {
			r.EventHub.Spec.Kafka.Properties["client.id"] = "x"
		}, true},
		{"a Secret rotated", func(_ *v1alpha.Backup, r *refs.Resolved, _ *Config) {
			r.Secrets["kafka-user"].ResourceVersion = "8"
		}, true},
		{"the worker image", func(_ *v1alpha.Backup, _ *refs.Resolved, c *Config) { c.Image = "registry.example/armory:v2" }, true},
		{"paused", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) { b.Spec.Enabled = ptr.To(false) }, false},
		{"a stream disabled", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) { b.Spec.Streams[1].Enabled = ptr.To(false) }, false},
		{"a label on the Backup", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) { b.Labels = map[string]string{"team": "a"} }, false},
		{"the Backup's status", func(b *v1alpha.Backup, _ *refs.Resolved, _ *Config) { b.Status.Phase = v1alpha.PhaseStreaming }, false},
	}
	for _, tc := range tests {
		b, r, cfg := testBackup(), testResolved(), testConfig
		tc.mutate(b, &r, &cfg)
		if got := hash(b, r, cfg); (got != base) != tc.changes {
			t.Errorf("%s: hash changed = %v, want %v", tc.name, got != base, tc.changes)
		}
	}
}

func TestNewDeploymentMountsVolumeStorage(t *testing.T) {
	r := testResolved()
	r.Storage.Spec = v1alpha.StorageSpec{Volume: &v1alpha.VolumeStorage{Capacity: resource.MustParse("10Gi")}}
	d := NewDeployment(testBackup(), r, testConfig)
	var claim string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if claim != "my-storage-storage" {
		t.Errorf("claim = %q, want the Storage's PersistentVolumeClaim my-storage-storage", claim)
	}
	mounted := false
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.Name == "storage" && m.MountPath == StorageMountPath)
	}
	if !mounted {
		t.Errorf("the storage volume is not mounted at %s", StorageMountPath)
	}
}

func TestNewRoleNamesOnlyWhatTheWorkerNeeds(t *testing.T) {
	b := testBackup()
	b.Spec.SourceCredentialsFrom = &v1alpha.CredentialsFrom{CredentialsRef: v1alpha.LocalObjectReference{Name: "kafka-sasl"}}
	role := NewRole(b, testResolved())
	for _, rule := range role.Rules {
		wildcard := len(rule.ResourceNames) == 0
		create := len(rule.Verbs) == 1 && rule.Verbs[0] == "create"
		if wildcard && !create {
			t.Errorf("rule %+v is not limited to named objects", rule)
		}
		if rule.Resources[0] == "secrets" && strings.Join(rule.ResourceNames, ",") != "kafka-user" {
			t.Errorf("secrets rule names %v, want only kafka-user", rule.ResourceNames)
		}
		for _, v := range rule.Verbs {
			if v == "*" || v == "delete" || (v == "update" && rule.Resources[0] != "leases") {
				t.Errorf("rule %+v grants %s", rule, v)
			}
		}
	}
}
