package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/twmb/franz-go/pkg/kfake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/testenv"
)

// One API server, one 3-broker Kafka and one GCS emulator for the package,
// all on loopback; each test uses its own namespace, topics and bucket.
var (
	env     *testenv.Env
	armory  string
	kfk     *kfake.Cluster
	gcsSrv  *fakestorage.Server
	brokers []string
)

func TestMain(m *testing.M) {
	bin, removeBin, err := testenv.BuildArmory()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	armory = bin
	// The tests' records carry fixed timestamps (restores by time need
	// them), so time retention is off: Kafka's default of 7 days would
	// delete them once the calendar passes them, whenever a test runs
	// kfk.Compact (which applies retention to every topic in the cluster).
	kfk, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.ClusterID("armory-test-cluster"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608", "log.retention.ms": "-1"}))
	if err != nil {
		panic(err)
	}
	brokers = kfk.ListenAddrs()
	gcsSrv, err = fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		panic(err)
	}
	stopTarget := startTargetKafka()
	testenv.Main(m, &env, removeBin, kfk.Close, stopTarget, gcsSrv.Stop)
}

func ctx() context.Context { return context.Background() }

var seq atomic.Int64

// unique returns a name no other test uses.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// saramaConfig is a client config for the tests' own producing and checks.
func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.MaxMessages = 500
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Metadata.AllowAutoTopicCreation = false
	return cfg
}

func createTopic(t *testing.T, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	if err := kfk.CreateTopic(topic, partitions, configs); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// produced records per partition, in order, as Kafka acknowledged them.
type produced map[int32][]segment.Record

// produce writes n records of every kind a backup must keep apart to a
// topic's partitions, round robin, and returns them with their offsets.
func produce(t *testing.T, topic string, partitions int32, n int, out produced) {
	t.Helper()
	p, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq.Add(1)) * time.Hour)
	const batch = 500
	for start := 0; start < n; start += batch {
		var msgs []*sarama.ProducerMessage
		for i := start; i < min(start+batch, n); i++ {
			msgs = append(msgs, recordMessage(topic, int32(i)%partitions, i, base))
		}
		if err := p.SendMessages(msgs); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, m := range msgs {
			out[m.Partition] = append(out[m.Partition], fromMessage(m))
		}
	}
}

// recordMessage makes record i: keys, null keys, empty keys, null and empty
// values, headers with null values and repeated keys, explicit timestamps.
func recordMessage(topic string, partition int32, i int, base time.Time) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Partition: partition, Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
	switch i % 5 {
	case 0:
		m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", i))
	case 1: // null key
	case 2:
		m.Key = sarama.ByteEncoder([]byte{})
	case 3:
		m.Key = sarama.ByteEncoder([]byte{0, byte(i), 0xff})
	case 4:
		m.Key = sarama.StringEncoder("repeated")
	}
	switch i % 7 {
	case 0: // null value (a tombstone)
	case 1:
		m.Value = sarama.ByteEncoder([]byte{})
	default:
		m.Value = sarama.StringEncoder(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%200)))
	}
	if i%3 == 0 {
		m.Headers = []sarama.RecordHeader{
			{Key: []byte("trace"), Value: []byte(fmt.Sprint(i))},
			{Key: []byte("null"), Value: nil},
			{Key: []byte("dup"), Value: []byte("1")},
			{Key: []byte("dup"), Value: []byte("2")},
			{Key: []byte("empty"), Value: []byte{}},
		}
	}
	return m
}

// fromMessage is the record a backup must store for an acknowledged message.
func fromMessage(m *sarama.ProducerMessage) segment.Record {
	r := segment.Record{Offset: m.Offset, Timestamp: m.Timestamp.Truncate(time.Millisecond)}
	if m.Key != nil {
		r.Key, _ = m.Key.Encode()
		if r.Key == nil {
			r.Key = []byte{}
		}
	}
	if m.Value != nil {
		r.Value, _ = m.Value.Encode()
		if r.Value == nil {
			r.Value = []byte{}
		}
	}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, segment.RecordHeader{Key: string(h.Key), Value: h.Value})
	}
	return r
}

// newBucket makes an empty GCS bucket on the emulator and a client for it.
func newBucket(t *testing.T) (name string, b storage.Bucket) {
	t.Helper()
	name = unique("bucket")
	gcsSrv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	b, err := gcs.New(ctx(), gcs.Config{Bucket: name, Prefix: "prod", Endpoint: gcsSrv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return name, b
}

// backupSetup creates, in a namespace of its own, an EventHub for the test
// Kafka, a Storage (GCS on the emulator, or a volume) and a Backup of topics.
type backupSetup struct {
	ns, name string
	bucket   storage.Bucket
	// storagePath is the volume's folder, for a volume Storage.
	storagePath string
	// kubeconfig is what the worker runs with: the test's admin one, or
	// one acting as the worker's ServiceAccount.
	kubeconfig string
	// workerArgs are added to the worker's command line (e.g. -v=10).
	workerArgs []string
	// binary runs instead of the package's armory, if set.
	binary string
}

func setupBackup(t *testing.T, topics []string, extraSpec string, volumeStorage bool) *backupSetup {
	t.Helper()
	return setupBackupOn(t, brokers, topics, extraSpec, volumeStorage)
}

// setupBackupOn is setupBackup against another Kafka cluster.
func setupBackupOn(t *testing.T, brokers []string, topics []string, extraSpec string, volumeStorage bool) *backupSetup {
	t.Helper()
	s := &backupSetup{ns: env.Namespace(t), name: "backup-example"}
	var storageSpec string
	if volumeStorage {
		s.storagePath = t.TempDir()
		storageSpec = "volume: {capacity: 1Gi}"
		var err error
		if s.bucket, err = volumeBucket(s.storagePath); err != nil {
			t.Fatal(err)
		}
	} else {
		var bucket string
		bucket, s.bucket = newBucket(t)
		storageSpec = fmt.Sprintf("gcsBucket: {bucket: %s, prefix: prod, endpoint: %q}", bucket, gcsSrv.URL())
	}
	var streams strings.Builder
	for _, topic := range topics {
		fmt.Fprintf(&streams, "    - topic: %s\n", topic)
	}
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: my-kafka-cluster}
spec:
  kafka:
    properties:
      bootstrap.servers: %q
      fetch.max.wait.ms: "100"
      metadata.max.age.ms: "1000"
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: my-storage}
spec:
  %s
---
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: %s}
spec:
  source: my-kafka-cluster
  sink: my-storage
  segmentRolloverTriggers: {size: 256Ki, timeoutSeconds: 1}
%s  streams:
%s`, strings.Join(brokers, ","), storageSpec, s.name, extraSpec, streams.String())
	if out, errOut, err := env.Kubectl(t, manifest, "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	return s
}

// patchSpec merge-patches the Backup with kubectl, as a user would.
func (s *backupSetup) patchSpec(t *testing.T, patch string) {
	t.Helper()
	if out, errOut, err := env.Kubectl(t, "", "patch", "backup", s.name, "-n", s.ns, "--type=merge", "-p", patch); err != nil {
		t.Fatalf("kubectl patch: %v\n%s%s", err, out, errOut)
	}
}

// workerProcess is `armory worker --backup` run as a Deployment would run it.
type workerProcess struct {
	cmd         *exec.Cmd
	log         *testenv.Output
	metricsAddr string
	healthAddr  string
	done        chan struct{}
}

func (s *backupSetup) startWorker(t *testing.T) *workerProcess {
	t.Helper()
	w := &workerProcess{log: &testenv.Output{}, metricsAddr: testenv.FreeAddr(t), healthAddr: testenv.FreeAddr(t), done: make(chan struct{})}
	args := []string{"worker", "--backup=" + s.name,
		"--kubeconfig", s.kubeconfigOrAdmin(), "--namespace", s.ns,
		"--metrics-bind-address", w.metricsAddr, "--health-probe-bind-address", w.healthAddr,
		"--status-interval", "500ms", "--recheck-interval", "1s",
		"--lease-duration", "4s", "--lease-renew-deadline", "3s", "--lease-retry-period", "500ms"}
	if s.storagePath != "" {
		args = append(args, "--storage-path", s.storagePath)
	}
	args = append(args, s.workerArgs...)
	w.start(t, s.binary, args, "worker-pod")
	return w
}

// start runs binary (default: the package's armory) with args as a pod named podPrefix-N would, until the
// test ends; its output is logged if the test fails.
func (w *workerProcess) start(t *testing.T, binary string, args []string, podPrefix string) {
	t.Helper()
	if binary == "" {
		binary = armory
	}
	w.cmd = exec.Command(binary, args...)
	// Die with the test binary, even if it panics.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	w.cmd.Env = append(os.Environ(), "POD_NAME="+unique(podPrefix))
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", podPrefix, strings.Join(args[:2], " "), w.log.String())
		}
	})
}

func (s *backupSetup) kubeconfigOrAdmin() string {
	if s.kubeconfig != "" {
		return s.kubeconfig
	}
	return env.Kubeconfig
}

// stop sends SIGTERM and waits for the worker to upload and exit.
func (w *workerProcess) stop(t *testing.T) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the worker did not exit within 30s of SIGTERM")
		w.kill()
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the worker exited with %d after SIGTERM", code)
	}
}

func (w *workerProcess) kill() {
	select {
	case <-w.done:
	default:
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}

// highWater is Kafka's end offset of each partition of a topic.
func highWater(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if out[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// waitCaughtUp waits until storage holds every record produced: each
// partition stored past its last produced offset. (Kafka's end offset can lie
// beyond the last record: a transaction marker holds a position no record
// does, and a backup covers it only when a later record arrives.)
func waitCaughtUp(t *testing.T, b storage.Bucket, topic string, want produced, timeout time.Duration) {
	t.Helper()
	hw := map[int32]int64{}
	for p, recs := range want {
		if len(recs) > 0 {
			hw[p] = recs[len(recs)-1].Offset + 1
		}
	}
	waitStored(t, b, topic, hw, timeout)
}

// waitStored waits until storage holds each partition up to a position.
func waitStored(t *testing.T, b storage.Bucket, topic string, hw map[int32]int64, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, "the backup of "+topic+" to catch up with Kafka", func() (bool, string) {
		var state []string
		done := true
		// Each listing is bounded too, so a hung call cannot outlive timeout.
		listCtx, cancel := context.WithTimeout(ctx(), 10*time.Second)
		defer cancel()
		for p, end := range hw {
			st, err := layout.ListPartition(listCtx, b, topic, p)
			if err != nil {
				return false, err.Error()
			}
			state = append(state, fmt.Sprintf("p%d %d/%d", p, st.Next, end))
			done = done && st.Next >= end
		}
		return done, strings.Join(state, ", ")
	})
}

// stored decodes every object of a topic's partition: the records, in order.
// It fails the test if the objects do not tile the partition.
func stored(t *testing.T, b storage.Bucket, topic string, partition int32) ([]segment.Record, *layout.PartitionState) {
	t.Helper()
	st, err := layout.ListPartition(ctx(), b, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	var recs []segment.Record
	for _, o := range st.Objects {
		if o.Gap {
			continue
		}
		r, err := b.Open(ctx(), o.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, sum, err := segment.Decode(data, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Start != o.Start || sum.End != o.End || sum.Records != o.Records {
			t.Fatalf("%s: trailer %+v does not match its metadata %+v", o.Name, sum, o)
		}
		recs = append(recs, got...)
	}
	return recs, st
}

// assertExactly checks that storage holds exactly the records produced, per
// partition, in order, field by field: none lost, none twice.
func assertExactly(t *testing.T, b storage.Bucket, topic string, want produced) {
	t.Helper()
	for p, records := range want {
		got, _ := stored(t, b, topic, p)
		if len(got) != len(records) {
			t.Errorf("%s partition %d: %d records stored, %d produced", topic, p, len(got), len(records))
		}
		for i := range min(len(got), len(records)) {
			if msg := diffRecord(records[i], got[i]); msg != "" {
				t.Fatalf("%s partition %d record %d: %s", topic, p, i, msg)
			}
		}
	}
}

func diffRecord(want, got segment.Record) string {
	same := func(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }
	switch {
	case got.Offset != want.Offset:
		return fmt.Sprintf("offset %d, want %d", got.Offset, want.Offset)
	case !got.Timestamp.Equal(want.Timestamp):
		return fmt.Sprintf("timestamp %v, want %v", got.Timestamp, want.Timestamp)
	case !same(got.Key, want.Key):
		return fmt.Sprintf("key %q (nil %v), want %q (nil %v)", got.Key, got.Key == nil, want.Key, want.Key == nil)
	case !same(got.Value, want.Value):
		return fmt.Sprintf("value %q (nil %v), want %q (nil %v)", got.Value, got.Value == nil, want.Value, want.Value == nil)
	case len(got.Headers) != len(want.Headers):
		return fmt.Sprintf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range want.Headers {
		if got.Headers[i].Key != want.Headers[i].Key || !same(got.Headers[i].Value, want.Headers[i].Value) {
			return fmt.Sprintf("header %d = %+v, want %+v", i, got.Headers[i], want.Headers[i])
		}
	}
	return ""
}

func backupOf(t *testing.T, ns, name string) *v1alpha.Backup {
	t.Helper()
	b, err := env.Armory.KannikaV1alpha().Backups(ns).Get(ctx(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
