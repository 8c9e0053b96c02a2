// Command demo runs the whole of Armory on one machine, on loopback: a real
// kube-apiserver and etcd, a Kafka cluster (kfake) with a producer, a GCS
// bucket (fake-gcs-server), `armory controller`, and a development pod
// runner (scripts/podrunner) that plays the kubelet and the Job controller.
// It applies the product documentation's examples, shows the Backup
// streaming, pauses and resumes it, restores a topic, checks the counts, and
// stays up until Ctrl-C. `make demo` runs it; --check makes it exit after
// its checks (a test runs it so).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/twmb/franz-go/pkg/kfake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/testenv"
	"github.com/kannika/armory/scripts/podrunner"
)

const (
	namespace = "default"
	// The spec's examples' names.
	bucketName = "my-company-kafka-backups"
	prefix     = "prod"
	backupName = "backup-example"
	// The Deployment the controller makes for it.
	workerDeployment = "Deployment/backup-example-backup"
	restoreName      = "restore-magic-events"
	restoredTopic    = "magic.events.restored"
)

var topics = []string{"magic.events", "pixie.dust"}

func main() {
	check := flag.Bool("check", false, "exit 0 after the demo's checks instead of staying up (tests run it so)")
	armory := flag.String("armory", "", "the armory binary to run (default: build this checkout's)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{out: os.Stdout, armory: *armory}
	err := d.run(ctx, *check)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
	}
	d.teardown()
	if err != nil {
		os.Exit(1)
	}
}

type demo struct {
	out    io.Writer
	armory string
	dir    string

	env        *testenv.Env
	kfk        *kfake.Cluster
	gcs        *fakestorage.Server
	controller *exec.Cmd
	ctlDone    chan struct{}
	runner     *podrunner.Runner
	runnerDone chan struct{}
	stopRun    context.CancelFunc
	producer   *producer
	cleanups   []func()
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context, check bool) error {
	started := time.Now()
	var err error
	if d.dir, err = os.MkdirTemp("", "armory-demo-"); err != nil {
		return err
	}
	if err := d.startComponents(ctx); err != nil {
		return err
	}
	d.say("✓ up in %s\n", time.Since(started).Round(100*time.Millisecond))
	if err := d.backup(ctx); err != nil {
		return err
	}
	if err := d.pauseAndRestore(ctx); err != nil {
		return err
	}
	if err := d.resume(ctx); err != nil {
		return err
	}
	d.say("\n✓ every check passed in %s\n", time.Since(started).Round(time.Second))
	d.say("Try it (in another terminal):\n  export KUBECONFIG=%s\n  export PATH=%s:$PATH\n  kubectl get backups,restores -o wide\n  kubectl describe backup %s\n  kubectl get events --sort-by=.lastTimestamp\n", d.env.Kubeconfig, filepath.Dir(d.env.KubectlPath), backupName)
	d.say("Worker logs are in %s. Ctrl-C stops everything.", filepath.Join(d.dir, "pods", "logs"))
	if check {
		return nil
	}
	<-ctx.Done()
	d.say("\nstopping…")
	return nil
}

// startComponents brings up the API server, Kafka, GCS, the controller and
// the pod runner.
func (d *demo) startComponents(ctx context.Context) error {
	if d.armory == "" {
		d.say("… building armory")
		bin, cleanup, err := testenv.BuildArmory()
		if err != nil {
			return err
		}
		d.cleanups = append(d.cleanups, cleanup)
		d.armory = bin
	}

	d.say("… starting kube-apiserver and etcd (the first run builds them, minutes; then cached)")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	d.env = env
	d.say("✓ Kubernetes API at %s with Armory's CRDs (kube-apiserver and etcd: pids %s)", env.Config.Host, pids(env.ServerPIDs()))

	d.kfk, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.ClusterID("armory-demo"), kfake.SeedTopics(3, topics...))
	if err != nil {
		return fmt.Errorf("start kfake: %w", err)
	}
	d.producer, err = startProducer(d.kfk.ListenAddrs(), topics)
	if err != nil {
		return err
	}
	d.say("✓ Kafka (kfake, 3 brokers) at %s; a producer writes JSON events with keys and headers to %s",
		strings.Join(d.kfk.ListenAddrs(), ","), strings.Join(topics, " and "))

	d.gcs, err = fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		return fmt.Errorf("start fake-gcs-server: %w", err)
	}
	d.gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucketName})
	d.say("✓ GCS (fake-gcs-server) at %s with bucket %s", d.gcs.URL(), bucketName)

	logPath := filepath.Join(d.dir, "controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	d.controller = exec.Command(d.armory, "controller", "--kubeconfig", env.Kubeconfig,
		"--leader-election-namespace", namespace, "--worker-image", "armory:demo",
		"--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0")
	d.controller.Stdout, d.controller.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches it through the demo, in order.
	d.controller.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.controller.Start(); err != nil {
		return err
	}
	d.ctlDone = make(chan struct{})
	go func() { _ = d.controller.Wait(); logFile.Close(); close(d.ctlDone) }()
	d.say("✓ armory controller: pid %d (log %s)", d.controller.Process.Pid, logPath)

	runCtx, cancel := context.WithCancel(context.Background())
	d.stopRun = cancel
	d.runner = podrunner.New(podrunner.Config{Kube: env.Kube, Kubeconfig: env.Kubeconfig, Namespace: namespace,
		Binary: d.armory, Dir: filepath.Join(d.dir, "pods"), Events: d.out})
	d.runnerDone = make(chan struct{})
	go func() { _ = d.runner.Run(runCtx); close(d.runnerDone) }()
	d.say("✓ pod runner (dev-only, scripts/podrunner): runs each worker Deployment and Job of namespace %s as a local armory process", namespace)
	return ctx.Err()
}

// backup applies the spec's examples and waits for the Backup to stream.
func (d *demo) backup(ctx context.Context) error {
	d.say("\n== 1. Back up: the spec's EventHub, Storage and Backup (addresses pointed at this machine)")
	hub := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata:
  name: my-kafka-cluster
spec:
  kafka:
    properties:
      bootstrap.servers: %q
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata:
  name: my-storage
spec:
  gcsBucket:
    bucket: %q
    prefix: %q
    endpoint: %q   # the local fake-gcs-server; a real bucket needs no endpoint
`, strings.Join(d.kfk.ListenAddrs(), ","), bucketName, prefix, d.gcs.URL())
	if err := d.kubectl(ctx, hub, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "apply", "-f", "docs/examples/backup-example.yaml"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "wait", "backup/"+backupName, "--for=jsonpath={.status.phase}=Streaming", "--timeout=90s"); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 30*time.Second, "the worker process", func() bool { return len(d.runner.PIDs(workerDeployment)) == 1 }); err != nil {
		return err
	}
	d.say("   the worker runs as pid %d; it reports its streams every 10 s…", d.runner.PIDs(workerDeployment)[0])
	if err := d.kubectl(ctx, "", "wait", "backup/"+backupName, "--for=jsonpath={.status.streamsReady}=2/2", "--timeout=60s"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "get", "backups", "-o", "wide"); err != nil {
		return err
	}
	d.say("   LAG counts records not stored yet: a segment is uploaded at 16 MiB or 60 s after its first record (or when the worker stops)")
	return nil
}

// pauseAndRestore pauses the Backup (its worker uploads what it holds and
// stops), shows the bucket, and restores magic.events into a new topic.
func (d *demo) pauseAndRestore(ctx context.Context) error {
	d.say("\n== 2. Pause: the worker uploads its open segments and stops")
	worker := d.runner.PIDs(workerDeployment)
	if err := d.kubectl(ctx, "", "patch", "backup", backupName, "--type=merge", "-p", `{"spec":{"enabled":false}}`); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "wait", "backup/"+backupName, "--for=jsonpath={.status.phase}=Paused", "--timeout=90s"); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 90*time.Second, "the worker process to stop", func() bool {
		return len(d.runner.PIDs(workerDeployment)) == 0 && !alive(worker[0])
	}); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "get", "backups"); err != nil {
		return err
	}
	stored, err := d.showBucket(ctx)
	if err != nil {
		return err
	}

	d.say("\n== 3. Restore magic.events into %s (a new topic, created with the backed-up partition count)", restoredTopic)
	restore := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: Restore
metadata:
  name: %s
spec:
  source: my-storage
  sink: my-kafka-cluster
  enabled: true
  config:
    createTopics: true
    topics:
      - source: magic.events
        target: %s
`, restoreName, restoredTopic)
	if err := d.kubectl(ctx, restore, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "wait", "restore/"+restoreName, "--for=jsonpath={.status.phase}=Done", "--timeout=120s"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "get", "restores", "-o", "wide"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "get", "job", restoreName+"-restore"); err != nil {
		return err
	}
	want := stored["magic.events"]
	restored, err := d.env.Armory.KannikaV1alpha().Restores(namespace).Get(ctx, restoreName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if got := restored.Status.Records; got != fmt.Sprintf("%d/%d", want, want) {
		return fmt.Errorf("the Restore says %q records; the bucket holds %d of magic.events", got, want)
	}
	inTopic, err := countCommitted(ctx, d.kfk.ListenAddrs(), restoredTopic, want)
	if err != nil {
		return err
	}
	if inTopic != want {
		return fmt.Errorf("%s holds %d records; the bucket holds %d of magic.events", restoredTopic, inTopic, want)
	}
	d.say("✓ restored %d records = %d backed up = %d read back from %s", want, want, inTopic, restoredTopic)
	return nil
}

// showBucket prints what the bucket holds and returns the records stored
// per topic.
func (d *demo) showBucket(ctx context.Context) (map[string]int64, error) {
	b, err := gcs.New(ctx, gcs.Config{Bucket: bucketName, Prefix: prefix, Endpoint: d.gcs.URL()})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	stored := map[string]int64{}
	for _, topic := range topics {
		parts, err := layout.ListPartitions(ctx, b, topic)
		if err != nil {
			return nil, err
		}
		var objects []string
		for _, p := range parts {
			st, err := layout.ListPartition(ctx, b, topic, p)
			if err != nil {
				return nil, err
			}
			stored[topic] += st.Records
			for _, o := range st.Objects {
				objects = append(objects, o.Name)
			}
		}
		if stored[topic] == 0 {
			return nil, fmt.Errorf("the bucket holds no record of %s after the pause", topic)
		}
		d.say("   gs://%s/%s/%s: %d records in %d segments, e.g. %s", bucketName, prefix, topic, stored[topic], len(objects), objects[0])
	}
	return stored, nil
}

// resume turns the Backup back on: a new worker process starts where the
// last one stopped.
func (d *demo) resume(ctx context.Context) error {
	d.say("\n== 4. Resume: a new worker continues from the last stored offset")
	if err := d.kubectl(ctx, "", "patch", "backup", backupName, "--type=merge", "-p", `{"spec":{"enabled":true}}`); err != nil {
		return err
	}
	if err := d.waitFor(ctx, 60*time.Second, "a new worker process", func() bool { return len(d.runner.PIDs(workerDeployment)) == 1 }); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "wait", "backup/"+backupName, "--for=jsonpath={.status.phase}=Streaming", "--timeout=90s"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "", "wait", "backup/"+backupName, "--for=jsonpath={.status.streamsReady}=2/2", "--timeout=90s"); err != nil {
		return err
	}
	return d.kubectl(ctx, "", "get", "backups", "-o", "wide")
}

// kubectl runs kubectl as a user would and shows the command and its output.
func (d *demo) kubectl(ctx context.Context, stdin string, args ...string) error {
	shown := []string{"kubectl"}
	for _, a := range args {
		shown = append(shown, shellQuote(a))
	}
	if stdin != "" {
		shown = append(shown, "<<EOF\n"+strings.TrimRight(stdin, "\n")+"\nEOF")
	}
	d.say("$ %s", strings.Join(shown, " "))
	cmd := exec.CommandContext(ctx, d.env.KubectlPath, args...)
	cmd.Dir = testenv.RepoRoot() // paths as in the README
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.env.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	d.say("%s", strings.TrimRight(indent(string(out)), "\n"))
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// waitFor polls cond every 200ms for at most timeout.
func (d *demo) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// teardown stops everything the demo started, newest first, and says so.
func (d *demo) teardown() {
	if d.producer != nil {
		d.producer.stop()
	}
	if d.runner != nil {
		d.stopRun()
		<-d.runnerDone
	}
	if d.controller != nil {
		_ = d.controller.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.ctlDone:
		case <-time.After(30 * time.Second):
			_ = d.controller.Process.Kill()
			<-d.ctlDone
		}
	}
	if d.gcs != nil {
		d.gcs.Stop()
	}
	if d.kfk != nil {
		d.kfk.Close()
	}
	var servers []int
	if d.env != nil {
		servers = d.env.ServerPIDs()
		if err := d.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: stop the API server: %v\n", err)
		}
	}
	for _, c := range slices.Backward(d.cleanups) {
		c()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
	all := servers
	if d.runner != nil {
		all = append(all, d.runner.Started()...)
	}
	if d.controller != nil {
		all = append(all, d.controller.Process.Pid)
	}
	var left []int
	for _, pid := range all {
		if alive(pid) {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "demo: processes still running: pids %s\n", pids(left))
		return
	}
	d.say("demo: stopped; every process it started has exited (pids %s)", pids(all))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// alive: pid is a running process (a zombie counts as gone).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func pids(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, " ")
}

// shellQuote writes an argument as a shell would need it typed, so that the
// commands shown can be pasted.
func shellQuote(a string) string {
	if a != "" && !strings.ContainsAny(a, " \"'{}[]$*?;&|<>()\\`!#~") {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "   " + l
	}
	return strings.Join(lines, "\n")
}

// saramaConfig is what the demo's producer and reader use.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	return cfg
}
