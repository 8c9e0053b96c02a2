package worker_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/worker"

	"github.com/kannika/armory/pkg/testenv"
)

// TestEveryRecordReachesStorageExactlyOnce: 3 topics × 3 partitions, over
// 50,000 records of every kind, some produced while the worker runs. What
// storage holds decodes to exactly what was produced, per partition, in
// order, field by field; the Backup's status and the metrics show progress.
func TestEveryRecordReachesStorageExactlyOnce(t *testing.T) {
	t.Parallel()
	topics := []string{unique("magic.events"), unique("pixie.dust"), unique("orders")}
	want := map[string]produced{}
	for _, topic := range topics {
		createTopic(t, topic, 3, nil)
		want[topic] = produced{}
		produce(t, topic, 3, 12_000, want[topic])
	}
	s := setupBackup(t, topics, "", false)
	w := s.startWorker(t)
	for _, topic := range topics {
		produce(t, topic, 3, 5_000, want[topic]) // while running
	}
	for _, topic := range topics {
		waitCaughtUp(t, s.bucket, topic, want[topic], 2*time.Minute)
	}

	// What a user sees while it runs: progress in the status, and metrics.
	testenv.WaitFor(t, 30*time.Second, "progress in the Backup's status", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		if len(b.Status.Streams) != 3 || b.Status.StreamsReady != "3/3" || b.Status.LastUploadTime == nil {
			return false, fmt.Sprintf("%d streams, ready %q", len(b.Status.Streams), b.Status.StreamsReady)
		}
		for _, st := range b.Status.Streams {
			if st.State != worker.StreamStreaming || st.RecordsStored != 17_000 || st.BytesStored == 0 || st.LastUploadTime == nil || len(st.Partitions) != 3 {
				return false, fmt.Sprintf("%+v", st)
			}
			for _, p := range st.Partitions {
				hw := highWater(t, st.Topic)[p.Partition]
				if p.LastOffsetStored == nil || *p.LastOffsetStored != hw-1 || p.NextOffset != hw {
					return false, fmt.Sprintf("%s/%d: %+v, high water %d", st.Topic, p.Partition, p, hw)
				}
			}
		}
		return true, ""
	})
	out, _, err := env.Kubectl(t, "", "get", "backup", s.name, "-n", s.ns, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"recordsStored: 17000", "lastOffsetStored:", "bytesStored:", "lastUploadTime:", "lag: 0", "streamsReady: 3/3"} {
		if !strings.Contains(out, field) {
			t.Errorf("kubectl get backup -o yaml does not show %q", field)
		}
	}
	code, metrics := testenv.HTTPGet(w.metricsAddr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, topic := range topics {
		line := fmt.Sprintf(`armory_worker_records_stored_total{topic=%q} 17000`, topic)
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics does not show %s", line)
		}
	}
	if code, _ := testenv.HTTPGet(w.healthAddr, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d while backing up", code)
	}

	w.stop(t)
	segments := 0
	for _, topic := range topics {
		assertExactly(t, s.bucket, topic, want[topic])
		meta, ok, err := layout.ReadTopicMeta(ctx(), s.bucket, topic)
		if err != nil || !ok || meta.Owner != s.ns+"/"+s.name || meta.Partitions != 3 || meta.ClusterID != "armory-test-cluster" || meta.TopicID == "" {
			t.Errorf("topic.json of %s = %+v, %v, %v", topic, meta, ok, err)
		}
		for p := range int32(3) {
			_, st := stored(t, s.bucket, topic, p)
			segments += len(st.Objects)
		}
	}
	t.Logf("%d segments stored for 51,000 records", segments)
	if logged := strings.Count(w.log.String(), "Uploaded segment"); logged != segments {
		t.Errorf("%d segments stored, %d logged: want one log line per segment", segments, logged)
	}
	if strings.Count(w.log.String(), "\n") > segments+100 {
		t.Errorf("the worker logged %d lines for %d segments: logging per record?", strings.Count(w.log.String(), "\n"), segments)
	}

	// A flipped byte in a stored segment is found and named.
	st, _ := layout.ListPartition(ctx(), s.bucket, topics[0], 0)
	name := st.Objects[0].Name
	r, _ := s.bucket.Open(ctx(), name)
	data, _ := io.ReadAll(r)
	r.Close()
	data[len(data)/2] ^= 0x01
	_, _, err = segment.Decode(data, name)
	var ce *segment.CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "at byte") {
		t.Errorf("a flipped byte in %s: err = %v, want one naming the object and the byte", name, err)
	}
}

// TestKubectlShowsTheRealWorkerStreaming runs the controller and the worker
// together, as in a cluster: the worker runs the Deployment's command line as
// the worker ServiceAccount the controller made (so its Role is proven
// enough), and kubectl shows the Backup Streaming with its progress, then
// Ready again once the worker stops.
func TestKubectlShowsTheRealWorkerStreaming(t *testing.T) {
	t.Parallel()
	topic := unique("shown.events")
	createTopic(t, topic, 2, nil)
	want := produced{}
	produce(t, topic, 2, 2_000, want)
	s := setupBackup(t, []string{topic}, "", false)
	controller := exec.Command(armory, "controller", "--kubeconfig", env.Kubeconfig, "--namespace", s.ns,
		"--leader-election-namespace", s.ns, "--worker-image", "armory:test",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	var controllerLog testenv.Output
	controller.Stdout, controller.Stderr = &controllerLog, &controllerLog
	controller.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := controller.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = controller.Process.Signal(syscall.SIGTERM)
		_ = controller.Wait()
		if t.Failed() {
			t.Logf("controller log:\n%s", controllerLog.String())
		}
	}()

	// The worker runs the Deployment's command line.
	var d *appsv1.Deployment
	testenv.WaitFor(t, 30*time.Second, "the worker Deployment", func() (bool, string) {
		var err error
		d, err = env.Kube.AppsV1().Deployments(s.ns).Get(ctx(), s.name+"-backup", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if got := strings.Join(d.Spec.Template.Spec.Containers[0].Command, " "); got != "armory worker --backup="+s.name {
		t.Fatalf("Deployment command = %q", got)
	}
	testenv.WaitFor(t, 30*time.Second, "the worker's RoleBinding", func() (bool, string) {
		_, err := env.Kube.RbacV1().RoleBindings(s.ns).Get(ctx(), s.name+"-backup", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	s.kubeconfig = env.KubeconfigAs(t, "system:serviceaccount:"+s.ns+":"+d.Spec.Template.Spec.ServiceAccountName)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, time.Minute)
	testenv.WaitFor(t, 30*time.Second, "kubectl get backups to show Streaming with progress", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "backups", "-n", s.ns, "-o", "wide")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			return false, out
		}
		row := lines[1]
		return strings.Contains(row, "🚀 Streaming") && strings.Contains(row, " 1/1 ") &&
			strings.Contains(row, " 0 ") && strings.Contains(row, time.Now().UTC().Format("2006-01-02T")), out
	})
	if strings.Contains(w.log.String(), "forbidden") {
		t.Errorf("the worker was refused something as its ServiceAccount:\n%s", w.log.String())
	}
	w.stop(t)
	testenv.WaitFor(t, 30*time.Second, "the Backup to be Ready once the worker stopped", func() (bool, string) {
		b := backupOf(t, s.ns, s.name)
		return b.Status.Phase == "Ready" && b.Status.Message == "🌈 Ready", b.Status.Message
	})
}

// TestSmallMemoryBudgetClosesSegmentsEarly: 16 partitions whose open
// segments together need more than a small --memory-budget. Segments close
// early, smaller than their triggers (64 MiB or 10 minutes) ask for, and
// storage holds every record exactly once.
func TestSmallMemoryBudgetClosesSegmentsEarly(t *testing.T) {
	t.Parallel()
	topic := unique("wide")
	createTopic(t, topic, 16, nil)
	want := produced{}
	produce(t, topic, 16, 64_000, want)
	s := setupBackup(t, []string{topic}, "", true)
	s.patchSpec(t, `{"spec":{"compression":{"algorithm":"none"},"segmentRolloverTriggers":{"size":"64Mi","timeoutSeconds":600}}}`)
	s.workerArgs = []string{"--memory-budget=8Mi"}
	w := s.startWorker(t)
	produce(t, topic, 16, 16_000, want) // while it runs
	early := regexp.MustCompile(`armory_worker_segments_closed_early_total\{topic="` + regexp.QuoteMeta(topic) + `"\} (\d+)`)
	testenv.WaitFor(t, time.Minute, "segments closed early for the memory budget", func() (bool, string) {
		_, metrics := testenv.HTTPGet(w.metricsAddr, "/metrics")
		m := early.FindStringSubmatch(metrics)
		return m != nil && m[1] != "0", fmt.Sprint(m)
	})
	// Every record read, stored or in an open segment, before the stop
	// uploads the open ones.
	read := regexp.MustCompile(`armory_worker_(records_stored_total|open_segment_records)\{(partition="\d+",)?topic="` + regexp.QuoteMeta(topic) + `"\} (\d+)`)
	testenv.WaitFor(t, time.Minute, "every record read", func() (bool, string) {
		_, metrics := testenv.HTTPGet(w.metricsAddr, "/metrics")
		n := 0
		for _, m := range read.FindAllStringSubmatch(metrics, -1) {
			v, _ := strconv.Atoi(m[3])
			n += v
		}
		return n == 80_000, fmt.Sprintf("%d records stored or open", n)
	})
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
	segments := 0
	for p := range int32(16) {
		_, st := stored(t, s.bucket, topic, p)
		segments += len(st.Objects)
	}
	// Without the budget each partition would hold one segment, uploaded
	// at the stop.
	if segments <= 16 {
		t.Errorf("%d segments for 16 partitions: none closed early", segments)
	}
	t.Logf("%d segments for 16 partitions", segments)
}

// TestAQuietPartitionDoesNotHoldUploadsBack: before each upload the worker
// asks the cluster's controller for the topic's id. A broker answers the
// requests of one connection in order, so that question must not travel
// behind a fetch the broker holds until records arrive (fetch.max.wait.ms),
// as it does on the controller for a quiet partition it leads. Here every
// fetch the controller gets is held until it sees a metadata request (at
// most 20 s): on a connection of its own, each upload's question releases
// it; behind the fetch, each waits for the bound.
func TestAQuietPartitionDoesNotHoldUploadsBack(t *testing.T) {
	t.Parallel()
	const topic = "quiet.beside.busy"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	client, err := sarama.NewClient(cluster.ListenAddrs(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	controller, err := client.Controller()
	if err != nil {
		t.Fatal(err)
	}
	// Partition 1, quiet, on the controller; partition 0, busy, on the
	// other broker.
	var other int32
	for _, b := range client.Brokers() {
		if b.ID() != controller.ID() {
			other = b.ID()
		}
	}
	client.Close()
	if err := cluster.MoveTopicPartition(topic, 0, other); err != nil {
		t.Fatal(err)
	}
	if err := cluster.MoveTopicPartition(topic, 1, controller.ID()); err != nil {
		t.Fatal(err)
	}

	metadataSeen := make(chan struct{}, 1)
	stopHolding := make(chan struct{})
	var held, heldToTheBound atomic.Int64
	cluster.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if cluster.CurrentNode() == controller.ID() {
			select {
			case metadataSeen <- struct{}{}:
			default:
			}
		}
		return nil, nil, false
	})
	cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if cluster.CurrentNode() != controller.ID() {
			return nil, nil, false
		}
		held.Add(1)
		cluster.SleepControl(func() {
			select {
			case <-metadataSeen:
			case <-stopHolding:
			case <-time.After(20 * time.Second):
				heldToTheBound.Add(1)
			}
		})
		return nil, nil, false
	})
	defer close(stopHolding)

	producer, err := sarama.NewSyncProducer(cluster.ListenAddrs(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := produced{}
	base := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	var msgs []*sarama.ProducerMessage
	for i := range 3000 {
		msgs = append(msgs, recordMessage(topic, 0, i, base))
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	for _, m := range msgs {
		want[0] = append(want[0], fromMessage(m))
	}

	// About 8 segments of 64 KiB, each uploaded with its question.
	s := setupBackupOn(t, cluster.ListenAddrs(), []string{topic}, "", true)
	s.patchSpec(t, `{"spec":{"compression":{"algorithm":"none"},"segmentRolloverTriggers":{"size":"64Ki"}}}`)
	w := s.startWorker(t)
	waitCaughtUp(t, s.bucket, topic, want, 2*time.Minute)
	bound := heldToTheBound.Load()
	w.stop(t)
	assertExactly(t, s.bucket, topic, want)
	_, st := stored(t, s.bucket, topic, 0)
	if held.Load() == 0 || len(st.Objects) < 4 {
		t.Fatalf("%d fetches held on the controller, %d segments stored: the test did not test", held.Load(), len(st.Objects))
	}
	if bound > 0 {
		t.Errorf("%d of the %d fetches held on the controller were released only by the 20 s bound: an upload's question to the controller waited behind a fetch",
			bound, held.Load())
	}
}
