package worker_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/worker"

	"github.com/kannika/armory/pkg/testenv"
)

// TestSIGKILLLosesAndDuplicatesNothing kills the worker with SIGKILL at 5
// random moments while records are produced, restarting it each time:
// afterwards the objects tile every partition and hold exactly the records
// produced.
func TestSIGKILLLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	topic := unique("killed.events")
	createTopic(t, topic, 3, nil)
	s := setupBackup(t, []string{topic}, "", false)
	want := produced{}
	var mu sync.Mutex
	// Production goes on until every kill is done, so each kill lands while
	// records arrive (bounded: at most 400 batches).
	producing, stopProducing := make(chan struct{}), make(chan struct{})
	var batches atomic.Int64
	go func() {
		defer close(producing)
		for range 400 {
			select {
			case <-stopProducing:
				return
			default:
			}
			batch := produced{}
			produce(t, topic, 3, 300, batch)
			mu.Lock()
			for p, recs := range batch {
				want[p] = append(want[p], recs...)
			}
			mu.Unlock()
			batches.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	seed := uint64(time.Now().UnixNano())
	t.Logf("kill timing seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	for i := range 5 {
		w := s.startWorker(t)
		// Let it take the Lease (the killed one's must expire first) and
		// work for a random while, then kill it mid-whatever.
		testenv.WaitFor(t, 30*time.Second, "the worker to take the Lease", func() (bool, string) {
			return strings.Contains(w.log.String(), "Took the Lease"), "waiting"
		})
		time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		w.kill()
		t.Logf("kill %d done, after %d batches produced", i+1, batches.Load())
	}
	close(stopProducing)
	<-producing
	w := s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "the last worker to take the Lease", func() (bool, string) {
		return strings.Contains(w.log.String(), "Took the Lease"), "waiting"
	})
	mu.Lock()
	all := produced{}
	for p, recs := range want {
		all[p] = recs
	}
	mu.Unlock()
	waitCaughtUp(t, s.bucket, topic, all, 2*time.Minute)
	w.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if n := len(want[0]) + len(want[1]) + len(want[2]); n != int(batches.Load())*300 || n == 0 {
		t.Fatalf("produced %d records in %d batches", n, batches.Load())
	}
	assertExactly(t, s.bucket, topic, want)
}

// TestAbortedTransactionsAreNotBackedUp produces committed and aborted
// transactions: only the committed records are stored, and the positions of
// the aborted ones and of the transaction markers leave no hole.
func TestAbortedTransactionsAreNotBackedUp(t *testing.T) {
	t.Parallel()
	topic := unique("txn.events")
	createTopic(t, topic, 1, nil)
	cfg := saramaConfig()
	cfg.Producer.Transaction.ID = unique("armory-test-txn")
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	want := produced{}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for txn := range 10 {
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		var msgs []*sarama.ProducerMessage
		for i := range 20 {
			m := recordMessage(topic, 0, txn*20+i, base)
			m.Value = sarama.StringEncoder(fmt.Sprintf("txn %d record %d", txn, i))
			if _, _, err := p.SendMessage(m); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
		}
		if txn%3 == 1 {
			if err := p.AbortTxn(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := p.CommitTxn(); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			want[0] = append(want[0], fromMessage(m))
		}
	}
	s := setupBackup(t, []string{topic}, "", false)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
	got, _ := stored(t, s.bucket, topic, 0)
	for _, r := range got {
		if strings.HasPrefix(string(r.Value), "txn 1 ") || strings.HasPrefix(string(r.Value), "txn 4 ") || strings.HasPrefix(string(r.Value), "txn 7 ") {
			t.Fatalf("a record of an aborted transaction was backed up: %q", r.Value)
		}
	}
}

// TestNewPartitionsCompactionAndRetention: a partition added while running
// is backed up; a compacted topic's offset gaps leave no position hole and
// no stall; retention that removed records before the backup reached them
// leaves a gap marker, not a failure.
func TestNewPartitionsCompactionAndRetention(t *testing.T) {
	t.Parallel()
	growing, compacted, retained := unique("growing"), unique("compacted"), unique("retained")
	createTopic(t, growing, 1, nil)
	createTopic(t, compacted, 1, map[string]string{"cleanup.policy": "compact"})
	createTopic(t, retained, 1, nil)

	wantGrowing, wantRetained := produced{}, produced{}
	produce(t, growing, 1, 500, wantGrowing)
	// Compaction keeps the last record of each key: write 10 keys 50 times.
	cp, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, _, err := cp.SendMessage(&sarama.ProducerMessage{Topic: compacted, Key: sarama.StringEncoder(fmt.Sprint("k", i%10)),
			Value: sarama.StringEncoder(fmt.Sprint("v", i)), Timestamp: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	cp.Close()
	kfk.Compact()
	// Retention: 300 records, then the first 200 deleted before any backup.
	produce(t, retained, 1, 300, wantRetained)
	if err := kfk.DeleteRecords(retained, 0, 200); err != nil {
		t.Fatal(err)
	}
	wantRetained[0] = wantRetained[0][200:]

	s := setupBackup(t, []string{growing, compacted, retained}, "", false)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, growing, wantGrowing, time.Minute)

	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreatePartitions(growing, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	produce(t, growing, 3, 900, wantGrowing)
	testenv.WaitFor(t, 30*time.Second, "the worker to find the new partitions", func() (bool, string) {
		return strings.Count(w.log.String(), "New partition found") >= 2, "not yet"
	})
	waitCaughtUp(t, s.bucket, growing, wantGrowing, time.Minute)
	waitStored(t, s.bucket, compacted, map[int32]int64{0: 500}, time.Minute)
	waitCaughtUp(t, s.bucket, retained, wantRetained, time.Minute)
	w.stop(t)

	assertExactly(t, s.bucket, growing, wantGrowing)

	got, st := stored(t, s.bucket, compacted, 0)
	if st.Objects[0].Start != 0 || st.Next != 500 {
		t.Errorf("compacted topic stored positions [%d, %d), want [0, 500)", st.Objects[0].Start, st.Next)
	}
	if len(got) == 0 || len(got) >= 500 || got[len(got)-1].Offset != 499 {
		t.Errorf("compacted topic: %d records stored in %+v; want the compacted survivors, ending at offset 499", len(got), st.Objects)
	}

	assertExactly(t, s.bucket, retained, wantRetained)
	_, st = stored(t, s.bucket, retained, 0)
	if !st.Objects[0].Gap || st.Objects[0].Start != 0 || st.Objects[0].End != 200 {
		t.Errorf("retention: first object = %+v, want a gap marker for [0, 200)", st.Objects[0])
	}
	if !strings.Contains(w.log.String(), "stored a gap marker") {
		t.Error("the gap was not logged")
	}
}

// TestTwoWorkersOneWriter: a second worker on the same Backup (someone
// debugging from a laptop) waits, saying who holds the Lease; when the first
// stops, it takes over and continues with nothing lost or repeated.
func TestTwoWorkersOneWriter(t *testing.T) {
	t.Parallel()
	topic := unique("shared.events")
	createTopic(t, topic, 3, nil)
	want := produced{}
	produce(t, topic, 3, 3_000, want)
	s := setupBackup(t, []string{topic}, "", false)
	first := s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "the first worker to take the Lease", func() (bool, string) {
		return strings.Contains(first.log.String(), "Took the Lease"), ""
	})
	second := s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "the second worker to wait for the Lease", func() (bool, string) {
		return strings.Contains(second.log.String(), "Another holds the Lease: waiting"), ""
	})
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	if strings.Contains(second.log.String(), "Uploaded segment") || strings.Contains(second.log.String(), "Took the Lease") {
		t.Fatal("the second worker wrote while the first held the Lease")
	}
	first.stop(t)
	produce(t, topic, 3, 3_000, want)
	testenv.WaitFor(t, 30*time.Second, "the second worker to take over", func() (bool, string) {
		return strings.Contains(second.log.String(), "Took the Lease"), ""
	})
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	second.stop(t)
	assertExactly(t, s.bucket, topic, want)
}

// TestDisablingAStreamStopsItWithoutAGap: a stream disabled mid-run stores
// everything up to then and nothing after; re-enabled, it continues from
// where it stopped.
func TestDisablingAStreamStopsItWithoutAGap(t *testing.T) {
	t.Parallel()
	topic := unique("toggled.events")
	createTopic(t, topic, 2, nil)
	want := produced{}
	produce(t, topic, 2, 1_000, want)
	s := setupBackup(t, []string{topic}, "", false)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)

	kubectl := func(args ...string) {
		if out, errOut, err := env.Kubectl(t, "", args...); err != nil {
			t.Fatalf("kubectl: %v\n%s%s", err, out, errOut)
		}
	}
	kubectl("patch", "backup", s.name, "-n", s.ns, "--type=json", "-p", `[{"op":"replace","path":"/spec/streams/0/enabled","value":false}]`)
	testenv.WaitFor(t, 30*time.Second, "the stream to be reported Stopped", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		return len(b.Status.Streams) == 1 && b.Status.Streams[0].State == worker.StreamStopped, fmt.Sprintf("%+v", b.Status.Streams)
	})
	before := map[int32]int64{}
	for p := range int32(2) {
		st, _ := layout.ListPartition(ctx(), s.bucket, topic, p)
		before[p] = st.Next
	}
	produce(t, topic, 2, 1_000, want)
	time.Sleep(3 * time.Second) // more than a rollover timeout
	for p := range int32(2) {
		if st, _ := layout.ListPartition(ctx(), s.bucket, topic, p); st.Next != before[p] {
			t.Errorf("partition %d: stored up to %d while disabled (was %d)", p, st.Next, before[p])
		}
	}

	kubectl("patch", "backup", s.name, "-n", s.ns, "--type=json", "-p", `[{"op":"replace","path":"/spec/streams/0/enabled","value":true}]`)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
}

// TestVolumeStorage runs a backup to a volume Storage end to end.
func TestVolumeStorage(t *testing.T) {
	t.Parallel()
	topic := unique("volume.events")
	createTopic(t, topic, 3, nil)
	want := produced{}
	produce(t, topic, 3, 6_000, want)
	s := setupBackup(t, []string{topic}, "  compression: {algorithm: lz4}\n", true)
	// What a SIGKILL during an upload leaves: a temporary file.
	stale := filepath.Join(s.storagePath, topic, "1", ".tmp-1234567")
	if err := os.MkdirAll(filepath.Dir(stale), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("ARMOBJ1\npartial"), 0o640); err != nil {
		t.Fatal(err)
	}
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file a killed upload left is still there: %v", err)
	}
	st, _ := layout.ListPartition(ctx(), s.bucket, topic, 0)
	attrs, err := s.bucket.Attributes(ctx(), st.Objects[0].Name)
	if err != nil || attrs.Metadata[layout.MetaFormat] != fmt.Sprintf("segment-v%d-%s", segment.Version, segment.CodecLZ4) {
		t.Errorf("segment metadata = %v, %v; want lz4 segments as the Backup asks", attrs.Metadata, err)
	}
}

// TestStreamsThatMustNotBeWritten: a topic already backed up by another
// Backup into the same Storage, and a topic deleted and recreated since its
// backup began, are not written; each stream says why in the status, while
// the healthy stream goes on.
func TestStreamsThatMustNotBeWritten(t *testing.T) {
	t.Parallel()
	healthy, taken, recreated := unique("healthy"), unique("taken"), unique("recreated")
	for _, topic := range []string{healthy, taken, recreated} {
		createTopic(t, topic, 1, nil)
	}
	want := produced{}
	produce(t, healthy, 1, 500, want)
	s := setupBackup(t, []string{healthy, taken, recreated}, "", false)

	// taken: topic.json names another Backup.
	if err := layout.WriteTopicMeta(ctx(), s.bucket, layout.TopicMeta{FormatVersion: 1, Topic: taken, Owner: "team-b/other-backup",
		ClusterID: "armory-test-cluster", TopicID: "whatever", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	// recreated: topic.json holds the id of the topic before it was recreated.
	if err := layout.WriteTopicMeta(ctx(), s.bucket, layout.TopicMeta{FormatVersion: 1, Topic: recreated, Owner: s.ns + "/" + s.name,
		ClusterID: "armory-test-cluster", TopicID: "AAAAAAAAAAAAAAAAAAAAAA", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce(t, taken, 1, 10, produced{})
	produce(t, recreated, 1, 10, produced{})

	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, healthy, want, time.Minute)
	testenv.WaitFor(t, 30*time.Second, "both streams to report why they cannot run", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		msgs := map[string]string{}
		for _, st := range b.Status.Streams {
			if st.State == worker.StreamFailed {
				msgs[st.Topic] = st.Message
			}
		}
		return strings.Contains(msgs[taken], "is backed up by Backup team-b/other-backup") &&
				strings.Contains(msgs[recreated], "was deleted and recreated") && b.Status.StreamsReady == "1/3",
			fmt.Sprintf("%v, ready %s", msgs, b.Status.StreamsReady)
	})
	for _, topic := range []string{taken, recreated} {
		if parts, _ := layout.ListPartitions(ctx(), s.bucket, topic); len(parts) != 0 {
			t.Errorf("%s: segments were written: %v", topic, parts)
		}
	}
	w.stop(t)
	assertExactly(t, s.bucket, healthy, want)
}

// TestSIGTERMUploadsOpenSegments: with rollover far away, records sit in
// open segments; SIGTERM uploads them before the worker exits.
func TestSIGTERMUploadsOpenSegments(t *testing.T) {
	t.Parallel()
	topic := unique("open.events")
	createTopic(t, topic, 2, nil)
	want := produced{}
	produce(t, topic, 2, 1_000, want)
	s := setupBackup(t, []string{topic}, "", false)
	s.patchSpec(t, `{"spec":{"segmentRolloverTriggers":{"size":"1Gi","timeoutSeconds":3600}}}`)
	w := s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "every record read into the open segments", func() (bool, string) {
		_, m := testenv.HTTPGet(w.metricsAddr, "/metrics")
		return strings.Contains(m, fmt.Sprintf(`armory_worker_open_segment_records{partition="0",topic=%q} 500`, topic)) &&
			strings.Contains(m, fmt.Sprintf(`armory_worker_open_segment_records{partition="1",topic=%q} 500`, topic)), "not yet"
	})
	for p := range int32(2) {
		if st, _ := layout.ListPartition(ctx(), s.bucket, topic, p); len(st.Objects) != 0 {
			t.Fatalf("partition %d has objects before SIGTERM; the rollover settings did not apply", p)
		}
	}
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
}

// TestLosingTheLeaseStopsWritingAtOnce: when another holder takes the Lease
// (here the test overwrites it, as a partitioned-away worker would find it
// taken), the worker stops writing at once and exits non-zero; records
// produced afterwards are not stored by it.
func TestLosingTheLeaseStopsWritingAtOnce(t *testing.T) {
	t.Parallel()
	topic := unique("stolen.events")
	createTopic(t, topic, 1, nil)
	want := produced{}
	produce(t, topic, 1, 500, want)
	s := setupBackup(t, []string{topic}, "", false)
	// Segments that only SIGTERM (or an hour) would close: what the worker
	// holds when it loses the Lease is an open segment it could upload.
	s.patchSpec(t, `{"spec":{"segmentRolloverTriggers":{"size":"1Gi","timeoutSeconds":3600}}}`)
	w := s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "every record read into the open segment", func() (bool, string) {
		_, m := testenv.HTTPGet(w.metricsAddr, "/metrics")
		return strings.Contains(m, fmt.Sprintf(`armory_worker_open_segment_records{partition="0",topic=%q} 500`, topic)), "not yet"
	})

	leases := env.Kube.CoordinationV1().Leases(s.ns)
	lease, err := leases.Get(ctx(), s.name+"-backup", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewMicroTime(time.Now())
	intruder := "someone-else"
	lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.AcquireTime = &intruder, &now, &now
	lease.Spec.LeaseDurationSeconds = ptr(int32(3600))
	if _, err := leases.Update(ctx(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(time.Second)
		t.Fatal("the worker kept running after losing its Lease")
	}
	if code := w.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(w.log.String(), "lost the Lease") {
		t.Errorf("exit code %d; want non-zero with a message saying the Lease was lost", code)
	}
	// Unlike SIGTERM (TestSIGTERMUploadsOpenSegments), a lost Lease uploads
	// nothing more: the new holder owns the partition now.
	if st, _ := layout.ListPartition(ctx(), s.bucket, topic, 0); len(st.Objects) != 0 {
		t.Errorf("the worker uploaded %d objects (up to %d) after it lost the Lease", len(st.Objects), st.Next)
	}
}

func ptr[T any](v T) *T { return &v }

// TestRecreatedTopicIsNotMixedIn deletes and recreates a topic while its
// backup runs: records of the new topic never enter the old backup, and the
// stream says why it stopped.
func TestRecreatedTopicIsNotMixedIn(t *testing.T) {
	t.Parallel()
	topic := unique("reborn.events")
	createTopic(t, topic, 1, nil)
	want := produced{}
	produce(t, topic, 1, 300, want)
	s := setupBackup(t, []string{topic}, "", false)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)

	if err := kfk.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
	createTopic(t, topic, 1, nil)
	produce(t, topic, 1, 800, produced{}) // offsets pass the old topic's 300
	testenv.WaitFor(t, 30*time.Second, "the stream to report the recreated topic", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		return len(b.Status.Streams) == 1 && b.Status.Streams[0].State == worker.StreamFailed &&
			strings.Contains(b.Status.Streams[0].Message, "was deleted and recreated"), fmt.Sprintf("%+v", b.Status.Streams)
	})
	time.Sleep(2 * time.Second) // more than a rollover timeout
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
}

// TestWorkerThatCannotReachKafkaShowsFailed: a worker that cannot reach
// Kafka writes why before it exits, and kubectl shows the Backup Failed with
// the address and the fix; once the EventHub is fixed, the next worker start
// brings it to Streaming by itself.
func TestWorkerThatCannotReachKafkaShowsFailed(t *testing.T) {
	t.Parallel()
	topic := unique("unreachable.backup")
	createTopic(t, topic, 1, nil)
	closed := testenv.FreeAddr(t)
	s := setupBackupOn(t, []string{closed}, []string{topic}, "", true)
	startController(t, s.ns)
	w := s.startWorker(t)
	if code := w.wait(t, time.Minute); code == 0 {
		t.Fatal("the worker exited 0 without reaching Kafka")
	}
	want := "💥 Failed: cannot reach Kafka at " + closed
	testenv.WaitFor(t, 30*time.Second, "kubectl get backup to show why the worker stopped", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "backup", s.name, "-n", s.ns)
		return strings.Contains(out, want) && strings.Contains(out, "check spec.kafka.properties[bootstrap.servers]"), out
	})
	patch := fmt.Sprintf(`{"spec":{"kafka":{"properties":{"bootstrap.servers":%q}}}}`, strings.Join(brokers, ","))
	if out, errOut, err := env.Kubectl(t, "", "patch", "eventhub", "my-kafka-cluster", "-n", s.ns, "--type=merge", "-p", patch); err != nil {
		t.Fatal(out, errOut)
	}
	s.startWorker(t) // the kubelet's restart
	testenv.WaitFor(t, 30*time.Second, "the Backup to stream again", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		return b.Status.Phase == "Streaming", b.Status.Message
	})
}

// TestWrongBackupNameLeavesNoLease: a worker started for a Backup that does
// not exist says so and exits, without taking a Lease for it.
func TestWrongBackupNameLeavesNoLease(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"backup", "restore"} {
		ns := env.Namespace(t)
		cmd := exec.Command(armory, "worker", "--"+kind+"=no-such-thing", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), `"no-such-thing" not found`) {
			t.Errorf("%s: exit %v, output %s", kind, err, out)
		}
		leases, err := env.Kube.CoordinationV1().Leases(ns).List(ctx(), metav1.ListOptions{})
		if err != nil || len(leases.Items) != 0 {
			t.Errorf("%s: a wrong name left Leases behind: %v %v", kind, leases, err)
		}
	}
}

// TestRestartedWorkerKnowsTheLastUpload: a worker restarted with nothing new
// to upload still reports when the last segment was stored, from the
// listing, instead of an empty lastUploadTime.
func TestRestartedWorkerKnowsTheLastUpload(t *testing.T) {
	t.Parallel()
	topic := unique("restarted.events")
	createTopic(t, topic, 1, nil)
	want := produced{}
	produce(t, topic, 1, 500, want)
	s := setupBackup(t, []string{topic}, "", true)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	w.stop(t)
	st, err := layout.ListPartition(ctx(), s.bucket, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	w = s.startWorker(t)
	testenv.WaitFor(t, 30*time.Second, "the new worker to start its stream", func() (bool, string) {
		return strings.Contains(w.log.String(), "Stream started"), ""
	})
	time.Sleep(2 * time.Second) // several status intervals of the new worker
	b := backupOf(t, s.ns, s.name)
	if b.Status.LastUploadTime == nil || len(b.Status.Streams) != 1 || b.Status.Streams[0].LastUploadTime == nil ||
		b.Status.LastUploadTime.Unix() != st.LastStored.Unix() {
		t.Errorf("after a restart: lastUploadTime %v, streams %+v; the last segment was stored at %v", b.Status.LastUploadTime, b.Status.Streams, st.LastStored)
	}
	w.stop(t)
}

// TestTLSToAPlaintextListenerEndsAndSaysWhy: an EventHub that asks for TLS
// (security.protocol SSL, no Credentials) against a plaintext listener must
// not hang the worker: it gives up within its connect timeout and says
// what is wrong, and SIGTERM ends it within the pod's grace period whatever
// it is doing.
func TestTLSToAPlaintextListenerEndsAndSaysWhy(t *testing.T) {
	t.Parallel()
	topic := unique("tls.mismatch")
	createTopic(t, topic, 1, nil)
	s := setupBackup(t, []string{topic}, "", true)
	if out, errOut, err := env.Kubectl(t, "", "patch", "eventhub", "my-kafka-cluster", "-n", s.ns, "--type=merge",
		"-p", `{"spec":{"kafka":{"properties":{"security.protocol":"SSL"}}}}`); err != nil {
		t.Fatal(out, errOut)
	}
	startController(t, s.ns)

	// SIGTERM while it is connecting: it ends at once.
	w := s.startWorker(t)
	time.Sleep(3 * time.Second)
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the worker ignored SIGTERM for 20s while connecting over TLS to a plaintext listener:\n%s", w.log.String())
	}

	// Left alone, it gives up and says why.
	w = s.startWorker(t)
	if code := w.wait(t, 2*time.Minute); code == 0 {
		t.Fatal("the worker exited 0 without reaching Kafka")
	}
	testenv.WaitFor(t, 30*time.Second, "kubectl get backup to say TLS is the problem", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "backup", s.name, "-n", s.ns)
		return strings.Contains(out, "💥 Failed: cannot reach Kafka at") && strings.Contains(out, "security.protocol"), out
	})
}

// TestMissingBucketIsNamed: a Storage naming a bucket that does not exist
// stops the worker at start with the bucket's name and the fix, in the
// Backup's STATUS.
func TestMissingBucketIsNamed(t *testing.T) {
	t.Parallel()
	topic := unique("missing.bucket")
	createTopic(t, topic, 1, nil)
	s := setupBackup(t, []string{topic}, "", false)
	if out, errOut, err := env.Kubectl(t, "", "patch", "storage", "my-storage", "-n", s.ns, "--type=merge",
		"-p", `{"spec":{"gcsBucket":{"bucket":"no-such-bucket-here"}}}`); err != nil {
		t.Fatal(out, errOut)
	}
	startController(t, s.ns)
	w := s.startWorker(t)
	if code := w.wait(t, time.Minute); code == 0 {
		t.Fatal("the worker exited 0 with a bucket that does not exist")
	}
	want := `GCS bucket "no-such-bucket-here" does not exist`
	testenv.WaitFor(t, 30*time.Second, "kubectl get backup to name the missing bucket", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "backup", s.name, "-n", s.ns)
		return strings.Contains(out, "💥 Failed: cannot use Storage") && strings.Contains(out, want) &&
			strings.Contains(out, "create it, or correct spec.gcsBucket.bucket"), out
	})
}

// faultyGCS is a proxy in front of the GCS emulator that answers uploads
// with 503 while failing is set.
type faultyGCS struct {
	failing atomic.Bool
	refused atomic.Int64
	proxy   *httputil.ReverseProxy
}

func (f *faultyGCS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.failing.Load() && strings.Contains(r.URL.Path, "/upload/") {
		f.refused.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, `{"error":{"code":503,"message":"backend unavailable (injected)"}}`, http.StatusServiceUnavailable)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// TestStorageFaultsShowWhileRetried: uploads that fail are retried, and
// while they fail (and for a minute after) the stream says Retrying with the
// error, and the Backup's STATUS says a stream retries; once storage
// recovers, every record is stored exactly once and the stream is
// Streaming again.
func TestStorageFaultsShowWhileRetried(t *testing.T) {
	t.Parallel()
	topic := unique("faulty.storage")
	createTopic(t, topic, 1, nil)
	target, _ := url.Parse(gcsSrv.URL())
	faults := &faultyGCS{proxy: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(faults)
	defer proxy.Close()

	s := setupBackup(t, []string{topic}, "", false)
	patch := fmt.Sprintf(`{"spec":{"gcsBucket":{"endpoint":%q}}}`, proxy.URL)
	if out, errOut, err := env.Kubectl(t, "", "patch", "storage", "my-storage", "-n", s.ns, "--type=merge", "-p", patch); err != nil {
		t.Fatal(out, errOut)
	}
	startController(t, s.ns)
	w := s.startWorker(t)
	testenv.WaitFor(t, 60*time.Second, "the stream to start (its topic.json stored)", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		return len(b.Status.Streams) == 1 && b.Status.Streams[0].State == v1alpha.StreamStreaming, fmt.Sprintf("%+v", b.Status.Streams)
	})
	// Then storage fails every upload, while records arrive.
	faults.failing.Store(true)
	want := produced{}
	produce(t, topic, 1, 300, want)

	testenv.WaitFor(t, 90*time.Second, "the stream to say it retries failed uploads", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		for _, st := range b.Status.Streams {
			if st.Topic == topic && st.State == v1alpha.StreamRetrying && strings.Contains(st.Message, "503") {
				return strings.Contains(b.Status.Message, "1 of 1 streams retrying") && b.Status.Phase == v1alpha.PhaseStreaming, b.Status.Message
			}
		}
		return false, fmt.Sprintf("%+v", b.Status.Streams)
	})
	out, _, _ := env.Kubectl(t, "", "get", "backup", s.name, "-n", s.ns)
	if !strings.Contains(out, "🚀 Streaming: 1 of 1 streams retrying") {
		t.Errorf("kubectl get backup does not say a stream retries:\n%s", out)
	}
	faults.failing.Store(false)
	testenv.WaitFor(t, 2*time.Minute, "the stream to be Streaming again once storage recovered", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		for _, st := range b.Status.Streams {
			if st.Topic == topic {
				return st.State == v1alpha.StreamStreaming && st.RecordsStored == 300, fmt.Sprintf("%s %d %q", st.State, st.RecordsStored, st.Message)
			}
		}
		return false, "no stream status"
	})
	if faults.refused.Load() == 0 {
		t.Fatal("no upload was refused: the test injected nothing")
	}
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
}
