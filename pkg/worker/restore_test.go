package worker_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/testenv"
	"github.com/kannika/armory/pkg/workerlease"
)

// The restore tests write into a second Kafka cluster, as a restore into
// another cluster (cloning production into a test environment) does.
var (
	targetKafka   *kfake.Cluster
	targetBrokers []string
)

func startTargetKafka() func() {
	var err error
	targetKafka, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.ClusterID("armory-restore-target"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "8388608"}))
	if err != nil {
		panic(err)
	}
	targetBrokers = targetKafka.ListenAddrs()
	return targetKafka.Close
}

// restoreSetup is a Restore, in the namespace of a backupSetup, writing into
// the target cluster through an EventHub of its own.
type restoreSetup struct {
	*backupSetup
	name string
}

// setupRestore applies an EventHub for the target cluster and a Restore of
// the given config (YAML under spec.config, indented by 4 spaces).
func (s *backupSetup) setupRestore(t *testing.T, name, config string) *restoreSetup {
	t.Helper()
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: target-kafka}
spec:
  kafka:
    properties:
      bootstrap.servers: %q
      metadata.max.age.ms: "1000"
---
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: %s}
spec:
  source: my-storage
  sink: target-kafka
  enabled: true
  config:
%s`, strings.Join(targetBrokers, ","), name, config)
	if out, errOut, err := env.Kubectl(t, manifest, "apply", "-n", s.ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	return &restoreSetup{backupSetup: s, name: name}
}

// startRestoreWorker runs `armory worker --restore` as the Job would.
func (s *restoreSetup) startRestoreWorker(t *testing.T, extra ...string) *workerProcess {
	t.Helper()
	w := &workerProcess{log: &testenv.Output{}, metricsAddr: testenv.FreeAddr(t), healthAddr: testenv.FreeAddr(t), done: make(chan struct{})}
	args := append([]string{"worker", "--restore=" + s.name,
		"--kubeconfig", s.kubeconfigOrAdmin(), "--namespace", s.ns,
		"--metrics-bind-address", w.metricsAddr, "--health-probe-bind-address", w.healthAddr,
		"--status-interval", "300ms",
		"--lease-duration", "3s", "--lease-renew-deadline", "2s", "--lease-retry-period", "300ms"}, extra...)
	if s.storagePath != "" {
		args = append(args, "--storage-path", s.storagePath)
	}
	w.start(t, s.binary, args, "restore-pod")
	return w
}

// wait waits for the worker to exit by itself and returns its exit code.
func (w *workerProcess) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		t.Fatalf("the worker did not exit within %v:\n%s", timeout, w.log.String())
	}
	return w.cmd.ProcessState.ExitCode()
}

func (s *restoreSetup) restore(t *testing.T) *v1alpha.Restore {
	t.Helper()
	r, err := env.Armory.KannikaV1alpha().Restores(s.ns).Get(ctx(), s.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// consumeCommitted reads a target topic as a read_committed consumer does:
// every partition from its start to its end.
func consumeCommitted(t *testing.T, brokers []string, topic string) map[int32][]*sarama.ConsumerMessage {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("target topic %s: %v", topic, err)
	}
	out := map[int32][]*sarama.ConsumerMessage{}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		// The end offset can be a transaction marker no consumer sees: stop
		// at it, or when nothing more comes.
		idle := time.NewTimer(3 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], m)
				if m.Offset >= end-1 {
					break read
				}
				idle.Reset(3 * time.Second)
			case <-idle.C:
				break read
			}
		}
		pc.Close()
	}
	return out
}

// assertRestored checks that a target topic holds exactly the wanted source
// records, per partition, in order, every field; with offsetHeader set, each
// carries its source offset in that header, after its own headers.
func assertRestored(t *testing.T, topic string, want produced, offsetHeader string) {
	t.Helper()
	got := consumeCommitted(t, targetBrokers, topic)
	for p, records := range want {
		if len(got[p]) != len(records) {
			t.Errorf("%s partition %d: %d records restored, want %d", topic, p, len(got[p]), len(records))
		}
		for i := range min(len(got[p]), len(records)) {
			m := got[p][i]
			r := segment.Record{Offset: records[i].Offset, Timestamp: m.Timestamp, Key: m.Key, Value: m.Value}
			for _, h := range m.Headers {
				r.Headers = append(r.Headers, segment.RecordHeader{Key: string(h.Key), Value: h.Value})
			}
			if offsetHeader != "" {
				last := len(r.Headers) - 1
				if last < 0 || r.Headers[last].Key != offsetHeader || string(r.Headers[last].Value) != strconv.FormatInt(records[i].Offset, 10) {
					t.Fatalf("%s partition %d record %d: headers %+v lack %s=%d last", topic, p, i, r.Headers, offsetHeader, records[i].Offset)
				}
				r.Headers = r.Headers[:last]
			}
			if msg := diffRecord(records[i], r); msg != "" {
				t.Fatalf("%s partition %d record %d: %s", topic, p, i, msg)
			}
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok && len(got[p]) > 0 {
			t.Errorf("%s partition %d: %d records restored, want none", topic, p, len(got[p]))
		}
	}
}

func total(p produced) int64 {
	var n int64
	for _, recs := range p {
		n += int64(len(recs))
	}
	return n
}

// produceFarApart writes, in one batch per partition, records whose
// timestamps lie years apart, out of order.
func produceFarApart(t *testing.T, topic string, partitions int32, out produced) {
	t.Helper()
	p, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	var msgs []*sarama.ProducerMessage
	for i := range 12 {
		m := recordMessage(topic, int32(i)%partitions, i, base)
		m.Timestamp = base.AddDate(3*(i%3)-3, 0, i) // 2023, 2026, 2029
		msgs = append(msgs, m)
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		out[m.Partition] = append(out[m.Partition], fromMessage(m))
	}
}

// produceAborted writes a transaction and aborts it: no restore may hold it.
func produceAborted(t *testing.T, topic string) {
	t.Helper()
	cfg := saramaConfig()
	cfg.Producer.Transaction.ID = unique("armory-test-aborted")
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.BeginTxn(); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		m := recordMessage(topic, int32(i%3), i, time.Now())
		m.Value = sarama.StringEncoder("aborted")
		if _, _, err := p.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AbortTxn(); err != nil {
		t.Fatal(err)
	}
}

// backedUp backs topics up with the real backup worker until storage holds
// every record produced, then stops it.
func backedUp(t *testing.T, topics []string, want map[string]produced, volumeStorage bool) *backupSetup {
	t.Helper()
	s := setupBackup(t, topics, "", volumeStorage)
	w := s.startWorker(t)
	for _, topic := range topics {
		waitCaughtUp(t, s.bucket, topic, want[topic], 2*time.Minute)
	}
	w.stop(t)
	return s
}

// TestRoundTrip: 3 topics × 3 partitions of every kind of record, and an
// aborted transaction, backed up by the real backup worker, restored into
// renamed topics of another cluster (created by the restore with the
// backed-up partition count and configs), read back read_committed: equal,
// record by record; the status counts what the target holds.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := map[string]produced{}
	var topics []string
	for i := range 3 {
		topic := unique("round.trip")
		topics = append(topics, topic)
		// A retention of 100 years: the records' fixed timestamps must
		// outlive a parallel test's kfk.Compact, which applies retention.
		createTopic(t, topic, 3, map[string]string{"retention.ms": "3153600000000", "max.message.bytes": "2097152"})
		want[topic] = produced{}
		produce(t, topic, 3, 10_000, want[topic])
		if i == 0 {
			produceAborted(t, topic)
			produceFarApart(t, topic, 3, want[topic])
		}
	}
	s := backedUp(t, topics, want, false)
	var config strings.Builder
	config.WriteString("    createTopics: true\n    legacyOffsetHeader: __original_offset\n    topics:\n")
	for _, topic := range topics {
		fmt.Fprintf(&config, "      - {source: %s, target: %s.restored}\n", topic, topic)
	}
	rs := s.setupRestore(t, "round-trip", config.String())
	w := rs.startRestoreWorker(t)
	if code := w.wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("restore worker exited %d:\n%s", code, w.log.String())
	}
	var sum int64
	for _, topic := range topics {
		assertRestored(t, topic+".restored", want[topic], "__original_offset")
		sum += total(want[topic])
	}
	// createTopics made the target like the source.
	admin, err := sarama.NewClusterAdmin(targetBrokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	meta, err := admin.DescribeTopics([]string{topics[0] + ".restored"})
	if err != nil || len(meta) != 1 || len(meta[0].Partitions) != 3 {
		t.Fatalf("created target: %+v, %v", meta, err)
	}
	configs, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topics[0] + ".restored"})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, c := range configs {
		if (c.Name == "retention.ms" && c.Value == "3153600000000") || (c.Name == "max.message.bytes" && c.Value == "2097152") {
			found++
		}
	}
	if found != 2 {
		t.Errorf("the created target lacks the backed-up configs retention.ms and max.message.bytes: %+v", configs)
	}
	r := rs.restore(t)
	if !conditionTrue(r, v1alpha.RestoreComplete) || r.Status.Records != fmt.Sprintf("%d/%d", sum, sum) || r.Status.Progress != "100%" ||
		r.Status.StartTime == nil || r.Status.CompletionTime == nil {
		t.Errorf("status after the restore: records %q progress %q start %v completion %v conditions %+v",
			r.Status.Records, r.Status.Progress, r.Status.StartTime, r.Status.CompletionTime, r.Status.Conditions)
	}
	for _, ts := range r.Status.Topics {
		if ts.RecordsRestored != ts.RecordsTotal || ts.RecordsRestored != total(want[ts.Source]) || ts.BytesRestored != ts.BytesTotal {
			t.Errorf("topic status %+v, %d produced", ts, total(want[ts.Source]))
		}
	}
	// Run again: a Done Restore writes nothing more.
	again := rs.startRestoreWorker(t)
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("second run exited %d", code)
	}
	assertRestored(t, topics[1]+".restored", want[topics[1]], "__original_offset")
}

func conditionTrue(r *v1alpha.Restore, typ string) bool {
	return meta.IsStatusConditionTrue(r.Status.Conditions, typ)
}

// TestWindows: offset windows and a time window at their exact boundaries,
// a window that cuts one segment, and one that falls inside a gap marker.
func TestWindows(t *testing.T) {
	t.Parallel()
	a, b := unique("window.a"), unique("window.b")
	want := map[string]produced{a: {}, b: {}}
	createTopic(t, a, 3, nil)
	createTopic(t, b, 2, nil)
	produce(t, a, 3, 3_000, want[a])
	produce(t, b, 2, 2_000, want[b])
	s := backedUp(t, []string{a, b}, want, true)
	// A gap marker for positions [5000, 5100) of b partition 1, as a backup
	// writes when retention removed them first.
	stAfter, err := layout.ListPartition(ctx(), s.bucket, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	gapStart := stAfter.Next
	gapJSON := fmt.Sprintf(`{"topic":%q,"partition":1,"start":%d,"end":%d}`, b, gapStart, gapStart+100)
	if err := s.bucket.Create(ctx(), layout.GapName(b, 1, gapStart), strings.NewReader(gapJSON),
		map[string]string{layout.MetaEnd: fmt.Sprint(gapStart + 100), layout.MetaRecords: "0", layout.MetaBytes: "0"}); err != nil {
		t.Fatal(err)
	}
	a0 := want[a][0]
	from, until := a0[100].Offset, a0[900].Offset // cuts segments in the middle
	createTarget := func(topic string, partitions int32) {
		if err := targetKafka.CreateTopic(topic, partitions, nil); err != nil {
			t.Fatal(err)
		}
	}
	ta, tb := a+".w", b+".w"
	createTarget(ta, 3)
	createTarget(tb, 2)
	rs := s.setupRestore(t, "offset-windows", fmt.Sprintf(`    topics:
      - source: %s
        target: %s
        partitions:
          - {number: 0, restoreFromOffset: %d, restoreUntilOffset: %d}
          - {number: 2, restoreUntilOffset: 1}
      - source: %s
        target: %s
        partitions:
          - {number: 1, restoreFromOffset: %d, restoreUntilOffset: %d}
`, a, ta, from, until, b, tb, gapStart+10, gapStart+20))
	w := rs.startRestoreWorker(t)
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	assertRestored(t, ta, produced{0: a0[100:900], 2: want[a][2][:1]}, "")
	assertRestored(t, tb, produced{}, "")
	r := rs.restore(t)
	var gaps []v1alpha.RestoreGap
	for _, ts := range r.Status.Topics {
		gaps = append(gaps, ts.Gaps...)
	}
	if len(gaps) != 1 || gaps[0] != (v1alpha.RestoreGap{Partition: 1, Start: gapStart + 10, End: gapStart + 20}) ||
		!strings.Contains(meta.FindStatusCondition(r.Status.Conditions, v1alpha.RestoreComplete).Message, "10 positions in the window were not in the backup") {
		t.Errorf("the gap inside the window is not reported: gaps %+v, conditions %+v", gaps, r.Status.Conditions)
	}

	// Time window: [ts of record 300 of a/1, ts of record 700 of a/1): the
	// first record in is the one at from, the last one before to.
	a1 := want[a][1]
	tFrom, tTo := a1[300].Timestamp, a1[700].Timestamp
	ta2 := a + ".t"
	createTarget(ta2, 3)
	rs2 := s.setupRestore(t, "time-window", fmt.Sprintf(`    filters:
      time:
        absolute: {fromDateTime: %q, toDateTime: %q}
    topics:
      - {source: %s, target: %s}
`, tFrom.UTC().Format(time.RFC3339Nano), tTo.UTC().Format(time.RFC3339Nano), a, ta2))
	w2 := rs2.startRestoreWorker(t)
	if code := w2.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d", code)
	}
	inWindow := produced{}
	for p, recs := range want[a] {
		for _, r := range recs {
			if !r.Timestamp.Before(tFrom) && r.Timestamp.Before(tTo) {
				inWindow[p] = append(inWindow[p], r)
			}
		}
	}
	if inWindow[1][0].Offset != a1[300].Offset || inWindow[1][len(inWindow[1])-1].Offset != a1[699].Offset {
		t.Fatalf("test setup: the window does not start at record 300 and end at 699 of partition 1")
	}
	assertRestored(t, ta2, inWindow, "")
	if r := rs2.restore(t); r.Status.Records != fmt.Sprintf("%d/%d", total(inWindow), total(inWindow)) {
		t.Errorf("time window status records %q, want %d", r.Status.Records, total(inWindow))
	}
}

// TestPreflightFailuresChangeNothing: each check that fails gives Invalid
// with its message and exit 2, and the target cluster is unchanged.
func TestPreflightFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	topic := unique("preflight")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 3, nil)
	produce(t, topic, 3, 300, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	small, full := unique("small"), unique("full")
	if err := targetKafka.CreateTopic(small, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := targetKafka.CreateTopic(full, 3, nil); err != nil {
		t.Fatal(err)
	}
	p, err := sarama.NewSyncProducer(targetBrokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: full, Partition: 1, Value: sarama.StringEncoder("already here")}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	missing := unique("missing")
	cases := []struct{ name, config, message string }{
		{"source-missing", fmt.Sprintf("    topics:\n      - {source: no.such.topic, target: %s}\n", small),
			`spec.config.topics[0].source: topic "no.such.topic" is not in Storage "my-storage"`},
		{"target-missing", fmt.Sprintf("    topics:\n      - {source: %s, target: %s}\n", topic, missing),
			fmt.Sprintf(`spec.config.topics[0].target: topic %q does not exist in EventHub "target-kafka": create it with at least 3 partitions, or set spec.config.createTopics: true`, missing)},
		{"too-few-partitions", fmt.Sprintf("    topics:\n      - {source: %s, target: %s}\n", topic, small),
			fmt.Sprintf(`spec.config.topics[0].target: topic %q has 2 partitions but the restore writes partition 2`, small)},
		{"not-empty", fmt.Sprintf("    topics:\n      - {source: %s, target: %s}\n", topic, full),
			fmt.Sprintf(`spec.config.topics[0].target: topic %q partition 1 is not empty (1 offsets): restore into an empty topic, or set disablePreflightChecks: true`, full)},
		{"past-the-end", fmt.Sprintf("    topics:\n      - source: %s\n        target: %s\n        partitions: [{number: 0, restoreFromOffset: 100000}]\n", topic, small),
			`spec.config.topics[0].partitions[0].restoreFromOffset: offset 100000 is past the end of the backup`},
	}
	// Other tests write to the target cluster meanwhile: watch the topics
	// these Restores name.
	before := targetState(t, small, full, missing)
	startController(t, s.ns)
	for _, tc := range cases {
		rs := s.setupRestore(t, tc.name, tc.config)
		w := rs.startRestoreWorker(t)
		if code := w.wait(t, time.Minute); code != 2 {
			t.Errorf("%s: exit %d, want 2", tc.name, code)
		}
		r := rs.restore(t)
		c := meta.FindStatusCondition(r.Status.Conditions, v1alpha.RestorePreflight)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, tc.message) {
			t.Errorf("%s: Preflight condition %+v, want False with %q", tc.name, c, tc.message)
		}
		testenv.WaitFor(t, 30*time.Second, tc.name+" to show Invalid", func() (bool, string) {
			r := rs.restore(t)
			return r.Status.Phase == v1alpha.PhaseInvalid && strings.HasPrefix(r.Status.Message, "🚫 Invalid: ") &&
				strings.Contains(r.Status.Message, tc.message), r.Status.Message
		})
	}
	if after := targetState(t, small, full, missing); after != before {
		t.Errorf("the target cluster changed:\nbefore %s\nafter  %s", before, after)
	}
	// disablePreflightChecks writes after what is there.
	rs := s.setupRestore(t, "allowed", fmt.Sprintf("    topics:\n      - {source: %s, target: %s, disablePreflightChecks: true}\n", topic, full))
	if code := rs.startRestoreWorker(t).wait(t, time.Minute); code != 0 {
		t.Fatalf("disablePreflightChecks: exit %d", code)
	}
	if got := consumeCommitted(t, targetBrokers, full); len(got[1]) != len(want[topic][1])+1 {
		t.Errorf("disablePreflightChecks: partition 1 holds %d records, want %d", len(got[1]), len(want[topic][1])+1)
	}
}

// targetState describes topics of the target cluster: absent, or each
// partition's end offset.
func targetState(t *testing.T, topics ...string) string {
	t.Helper()
	client, err := sarama.NewClient(targetBrokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.RefreshMetadata(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			out = append(out, topic+": "+err.Error())
			continue
		}
		for _, p := range parts {
			end, _ := client.GetOffset(topic, p, sarama.OffsetNewest)
			out = append(out, fmt.Sprintf("%s/%d@%d", topic, p, end))
		}
	}
	return strings.Join(out, " ")
}

// TestSIGKILLDuringRestoreWritesNothingTwice kills the restore worker at
// random moments spread over the restore and starts it again each time.
func TestSIGKILLDuringRestoreWritesNothingTwice(t *testing.T) {
	t.Parallel()
	topic := unique("killed.restore")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 3, nil)
	produce(t, topic, 3, 30_000, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	rs := s.setupRestore(t, "killed", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	// Tiny transactions, so the restore spans many commits; each kill lands
	// once a random share of the records is committed, plus a random delay
	// that puts it inside a transaction or between two.
	slow := []string{"--transaction-records", "20", "--transaction-interval", "50ms", "--parallel-partitions", "2"}
	n := total(want[topic])
	var thresholds []int64
	for range 5 {
		thresholds = append(thresholds, n/20+rng.Int64N(n*17/20))
	}
	sort.Slice(thresholds, func(i, j int) bool { return thresholds[i] < thresholds[j] })
	for i, at := range thresholds {
		w := rs.startRestoreWorker(t, slow...)
		testenv.WaitFor(t, 2*time.Minute, fmt.Sprintf("the restore to commit %d records", at), func() (bool, string) {
			if isDone(w) {
				t.Fatalf("the restore ended (exit %d) before kill %d at %d records", w.cmd.ProcessState.ExitCode(), i+1, at)
			}
			got := lastRestored(w.log.String())
			return got >= at, fmt.Sprint(got)
		})
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		w.kill()
		t.Logf("kill %d after %d of %d records committed", i+1, lastRestored(w.log.String()), n)
	}
	if code := rs.startRestoreWorker(t, slow...).wait(t, 3*time.Minute); code != 0 {
		t.Fatalf("final run exited %d", code)
	}
	assertRestored(t, topic+".r", want[topic], "")
	r := rs.restore(t)
	if r.Status.Records != fmt.Sprintf("%d/%d", n, n) {
		t.Errorf("status records %q, want %d/%d", r.Status.Records, n, n)
	}
}

// lastRestored is the restored count of the last transaction a worker
// logged as committed.
func lastRestored(log string) int64 {
	i := strings.LastIndex(log, " restored=")
	if i < 0 {
		return 0
	}
	rest := log[i+len(" restored="):]
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	n, _ := strconv.ParseInt(rest, 10, 64)
	return n
}

func isDone(w *workerProcess) bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// TestCorruptSegmentStopsTheRestore: a flipped byte in a stored segment
// fails the Restore naming the object and the byte; what came before it is
// restored once, nothing after it.
func TestCorruptSegmentStopsTheRestore(t *testing.T) {
	t.Parallel()
	topic := unique("corrupt")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 1, nil)
	produce(t, topic, 1, 6_000, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	st, err := layout.ListPartition(ctx(), s.bucket, topic, 0)
	if err != nil || len(st.Objects) < 3 {
		t.Fatalf("want at least 3 segments: %+v %v", st, err)
	}
	bad := st.Objects[1]
	var before int64
	before = st.Objects[0].Records
	path := filepath.Join(s.storagePath, filepath.FromSlash(bad.Name))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the middle of the file: inside a block's payload.
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rs := s.setupRestore(t, "corrupt", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	startController(t, s.ns)
	w := rs.startRestoreWorker(t)
	if code := w.wait(t, time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	r := rs.restore(t)
	c := meta.FindStatusCondition(r.Status.Conditions, v1alpha.RestoreFailed)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "segment "+bad.Name+" is corrupt at byte ") {
		t.Fatalf("Failed condition %+v does not name %s and a byte", c, bad.Name)
	}
	testenv.WaitFor(t, 30*time.Second, "kubectl get restore to show Failed with the object", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "restore", rs.name, "-n", s.ns)
		return strings.Contains(out, "💥 Failed: segment "+bad.Name+" is corrupt at byte "), out
	})
	got := consumeCommitted(t, targetBrokers, topic+".r")[0]
	if int64(len(got)) < before || int64(len(got)) >= before+bad.Records {
		t.Errorf("%d records restored: want every record before the corrupt segment (%d) and none past its damage (< %d)",
			len(got), before, before+bad.Records)
	}
	for i, m := range got {
		if !bytes.Equal(m.Value, want[topic][0][i].Value) || !m.Timestamp.Equal(want[topic][0][i].Timestamp) {
			t.Fatalf("record %d restored differs from the source", i)
		}
	}
	if !strings.Contains(r.Status.Records, fmt.Sprintf("%d/", len(got))) {
		t.Errorf("status records %q, target holds %d", r.Status.Records, len(got))
	}
}

// TestTwoRestoreWorkersOneWriter: a second worker waits for the Lease; a
// stale worker (its Lease taken over) is fenced by Kafka: nothing twice.
func TestTwoRestoreWorkersOneWriter(t *testing.T) {
	t.Parallel()
	topic := unique("two.restorers")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 3, nil)
	produce(t, topic, 3, 9_000, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	rs := s.setupRestore(t, "two", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	slow := []string{"--transaction-records", "10", "--transaction-interval", "50ms", "--parallel-partitions", "1"}
	first := rs.startRestoreWorker(t, slow...)
	testenv.WaitFor(t, time.Minute, "the first worker to commit", func() (bool, string) {
		return strings.Contains(first.log.String(), "Committed transaction"), first.log.String()
	})
	second := rs.startRestoreWorker(t, slow...)
	testenv.WaitFor(t, 30*time.Second, "the second worker to wait for the Lease", func() (bool, string) {
		return strings.Contains(second.log.String(), "Another holds the Lease: waiting"), second.log.String()
	})
	// Freeze the first worker: its Lease expires, the second takes over and
	// its producer fences the first's. Thawed, the first must write nothing.
	_ = first.cmd.Process.Signal(syscall.SIGSTOP)
	testenv.WaitFor(t, 30*time.Second, "the second worker to take over", func() (bool, string) {
		return strings.Contains(second.log.String(), "Committed transaction"), second.log.String()
	})
	_ = first.cmd.Process.Signal(syscall.SIGCONT)
	if code := first.wait(t, time.Minute); code == 0 {
		t.Errorf("the stale worker exited 0")
	}
	if code := second.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("the second worker exited %d", code)
	}
	assertRestored(t, topic+".r", want[topic], "")
}

// TestDisablingARestoreStopsAndResumes: spec.enabled false stops the worker
// (exit 3, the Job is suspended); true again resumes it to Done with totals
// equal to what was written.
func TestDisablingARestoreStopsAndResumes(t *testing.T) {
	t.Parallel()
	topic := unique("paused.restore")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 2, nil)
	produce(t, topic, 2, 8_000, want[topic])
	s := backedUp(t, []string{topic}, want, false)
	rs := s.setupRestore(t, "paused", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	controller := startController(t, s.ns)
	// Transactions of 10 records: 800 commits, seconds even on a fast
	// machine, so the Restore is seen Restoring and disabled mid-way.
	slow := []string{"--transaction-records", "10", "--parallel-partitions", "1"}
	w := rs.startRestoreWorker(t, slow...)
	testenv.WaitFor(t, time.Minute, "kubectl get restores to show Restoring", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "restores", "-n", s.ns, rs.name, "-o", "wide")
		return strings.Contains(out, "🚀 Restoring"), out
	})
	if out, errOut, err := env.Kubectl(t, "", "patch", "restore", rs.name, "-n", s.ns, "--type=merge", "-p", `{"spec":{"enabled":false}}`); err != nil {
		t.Fatal(out, errOut)
	}
	if code := w.wait(t, 30*time.Second); code != 3 {
		t.Fatalf("disabled: exit %d, want 3", code)
	}
	testenv.WaitFor(t, 30*time.Second, "the Job suspended and the Restore Ready with its progress", func() (bool, string) {
		job, err := env.Kube.BatchV1().Jobs(s.ns).Get(ctx(), rs.name+"-restore", metav1.GetOptions{})
		r := rs.restore(t)
		return err == nil && job.Spec.Suspend != nil && *job.Spec.Suspend && strings.HasPrefix(r.Status.Message, "🌈 Ready: paused at "), r.Status.Message
	})
	if out, errOut, err := env.Kubectl(t, "", "patch", "restore", rs.name, "-n", s.ns, "--type=merge", "-p", `{"spec":{"enabled":true}}`); err != nil {
		t.Fatal(out, errOut)
	}
	w = rs.startRestoreWorker(t, slow...)
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("resumed: exit %d", code)
	}
	assertRestored(t, topic+".r", want[topic], "")
	n := total(want[topic])
	testenv.WaitFor(t, 30*time.Second, "kubectl get restores to show Done", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "restores", "-n", s.ns, "-o", "wide")
		return strings.Contains(out, fmt.Sprintf("✅ Done: %d records restored", n)) && strings.Contains(out, "100%") &&
			strings.Contains(out, fmt.Sprintf("%d/%d", n, n)), out
	})
	// One event per transition: Completed once.
	testenv.WaitFor(t, 30*time.Second, "one Completed event", func() (bool, string) {
		events, err := env.Kube.CoreV1().Events(s.ns).List(ctx(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + rs.name})
		if err != nil {
			return false, err.Error()
		}
		var reasons []string
		completed := 0
		for _, e := range events.Items {
			reasons = append(reasons, fmt.Sprintf("%s×%d", e.Reason, e.Count))
			if e.Reason == "Completed" {
				completed += int(e.Count)
			}
		}
		return completed == 1, strings.Join(reasons, " ")
	})
	_ = controller
}

// startController runs `armory controller` for one namespace until the test ends.
func startController(t *testing.T, ns string) *exec.Cmd {
	t.Helper()
	controller := exec.Command(armory, "controller", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--leader-election-namespace", ns, "--worker-image", "armory:test",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	var log testenv.Output
	controller.Stdout, controller.Stderr = &log, &log
	controller.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := controller.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = controller.Process.Signal(syscall.SIGTERM)
		if err := controller.Wait(); err != nil && !errors.Is(err, os.ErrProcessDone) && t.Failed() {
			t.Logf("controller: %v", err)
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", log.String())
		}
	})
	return controller
}

// TestSpecRestoreExample applies the spec's restore-example verbatim (its
// EventHub and Storage pointed at the test's target cluster and bucket) and
// checks that it restores exactly the window it describes. It runs as the
// ServiceAccount the controller made for it, so the Role is proven enough.
func TestSpecRestoreExample(t *testing.T) {
	t.Parallel()
	// The example's topics: records two minutes apart from 2026-11-19T12:00Z,
	// so the example's day, 2026-11-20, cuts through them.
	ts := func(i int) time.Time {
		return time.Date(2026, 11, 19, 12, 0, 0, 0, time.UTC).Add(time.Duration(2*i) * time.Minute)
	}
	want := map[string]produced{"magic.events": {}, "pixie.dust": {}}
	createTopic(t, "magic.events", 3, nil)
	createTopic(t, "pixie.dust", 3, nil)
	p, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	for topic, perPartition := range map[string][]int{"magic.events": {1000, 1000, 1000}, "pixie.dust": {2500, 100, 100}} {
		for part, n := range perPartition {
			var msgs []*sarama.ProducerMessage
			for i := range n {
				m := recordMessage(topic, int32(part), i, time.Time{})
				m.Timestamp = ts(i)
				msgs = append(msgs, m)
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				want[topic][m.Partition] = append(want[topic][m.Partition], fromMessage(m))
			}
		}
	}
	p.Close()
	s := backedUp(t, []string{"magic.events", "pixie.dust"}, want, false)

	// Another namespace, as another team's: the same bucket and prefix, an
	// EventHub of the same name for the target cluster, the example as is.
	ns := env.Namespace(t)
	controller := startController(t, ns)
	_ = controller
	bucketCfg := s.bucket.Location() // gs://bucket/prod
	bucket := strings.TrimSuffix(strings.TrimPrefix(bucketCfg, "gs://"), "/prod")
	setup := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: my-kafka-cluster}
spec:
  kafka:
    properties: {bootstrap.servers: %q}
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: my-storage}
spec:
  gcsBucket: {bucket: %s, prefix: prod, endpoint: %q}
`, strings.Join(targetBrokers, ","), bucket, gcsSrv.URL())
	if out, errOut, err := env.Kubectl(t, setup, "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := env.Kubectl(t, "", "apply", "-n", ns, "-f", filepath.Join(testenv.RepoRoot(), "docs", "examples", "restore-example.yaml")); err != nil {
		t.Fatalf("kubectl apply the example: %v\n%s%s", err, out, errOut)
	}
	testenv.WaitFor(t, 30*time.Second, "the controller to make the Job's RoleBinding", func() (bool, string) {
		_, err := env.Kube.RbacV1().RoleBindings(ns).Get(ctx(), "restore-example-restore", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	rs := &restoreSetup{backupSetup: &backupSetup{ns: ns, kubeconfig: env.KubeconfigAs(t, "system:serviceaccount:"+ns+":restore-example-restore")},
		name: "restore-example"}
	w := rs.startRestoreWorker(t)
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("restore-example exited %d", code)
	}
	if strings.Contains(w.log.String(), "forbidden") {
		t.Errorf("the worker was refused something as its ServiceAccount:\n%s", w.log.String())
	}
	from, to := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	in := func(r segment.Record) bool { return !r.Timestamp.Before(from) && r.Timestamp.Before(to) }
	magic, pixie := produced{}, produced{}
	for part, recs := range want["magic.events"] {
		for _, r := range recs {
			if in(r) {
				magic[part] = append(magic[part], r)
			}
		}
	}
	for _, r := range want["pixie.dust"][0] {
		if in(r) && r.Offset >= 1000 && r.Offset < 2000 {
			pixie[0] = append(pixie[0], r)
		}
	}
	if len(magic[0]) == 0 || len(pixie[0]) == 0 || len(pixie[0]) == 1000 {
		t.Fatalf("test setup: the example's windows select %d and %d records", len(magic[0]), len(pixie[0]))
	}
	assertRestored(t, "magic.events.restored", magic, "__original_offset")
	assertRestored(t, "pixie.dust", pixie, "__original_offset")
	n := total(magic) + total(pixie)
	testenv.WaitFor(t, 30*time.Second, "kubectl get restores to show Done", func() (bool, string) {
		out, _, _ := env.Kubectl(t, "", "get", "restores", "-n", ns)
		return strings.Contains(out, fmt.Sprintf("✅ Done: %d records restored", n)), out
	})
}

// TestUnreachableClusterIsRetriedAndSaidInTheStatus: a transient error
// (nothing listens at the EventHub's address) is retried with backoff and
// shown in the status; fixing the EventHub lets the same run finish.
func TestUnreachableClusterIsRetriedAndSaidInTheStatus(t *testing.T) {
	t.Parallel()
	topic := unique("unreachable")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 1, nil)
	produce(t, topic, 1, 500, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	rs := s.setupRestore(t, "unreachable", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	closed := testenv.FreeAddr(t)
	patch := fmt.Sprintf(`{"spec":{"kafka":{"properties":{"bootstrap.servers":%q}}}}`, closed)
	if out, errOut, err := env.Kubectl(t, "", "patch", "eventhub", "target-kafka", "-n", s.ns, "--type=merge", "-p", patch); err != nil {
		t.Fatal(out, errOut)
	}
	w := rs.startRestoreWorker(t)
	testenv.WaitFor(t, time.Minute, "the status to say it retries and why", func() (bool, string) {
		c := meta.FindStatusCondition(rs.restore(t).Status.Conditions, v1alpha.RestoreRetrying)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, closed) && strings.Contains(c.Message, "retrying in"), fmt.Sprint(c)
	})
	code, body := testenv.HTTPGet(w.metricsAddr, "/metrics")
	if code != 200 || !strings.Contains(body, `armory_restore_errors_total{kind=`) {
		t.Errorf("metrics do not count the failed attempts: %d %s", code, body)
	}
	patch = fmt.Sprintf(`{"spec":{"kafka":{"properties":{"bootstrap.servers":%q}}}}`, strings.Join(targetBrokers, ","))
	if out, errOut, err := env.Kubectl(t, "", "patch", "eventhub", "target-kafka", "-n", s.ns, "--type=merge", "-p", patch); err != nil {
		t.Fatal(out, errOut)
	}
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("exit %d after the EventHub was fixed", code)
	}
	assertRestored(t, topic+".r", want[topic], "")
	if c := meta.FindStatusCondition(rs.restore(t).Status.Conditions, v1alpha.RestoreRetrying); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Retrying after success: %+v", c)
	}
}

// TestTargetDeletedMidRestoreFails: deleting the target topic while the
// restore writes stops it Failed with a message that says so.
func TestTargetDeletedMidRestoreFails(t *testing.T) {
	t.Parallel()
	topic := unique("deleted.target")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 1, nil)
	produce(t, topic, 1, 6_000, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	target := topic + ".r"
	if err := targetKafka.CreateTopic(target, 1, nil); err != nil {
		t.Fatal(err)
	}
	rs := s.setupRestore(t, "deleted", fmt.Sprintf("    topics:\n      - {source: %s, target: %s}\n", topic, target))
	w := rs.startRestoreWorker(t, "--transaction-records", "10", "--transaction-interval", "50ms", "--parallel-partitions", "1")
	testenv.WaitFor(t, time.Minute, "the restore to commit", func() (bool, string) {
		return lastRestored(w.log.String()) > 0, w.log.String()
	})
	if err := targetKafka.DeleteTopic(target); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(t, 2*time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	c := meta.FindStatusCondition(rs.restore(t).Status.Conditions, v1alpha.RestoreFailed)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, fmt.Sprintf("target topic %q was deleted while the restore wrote to it", target)) {
		t.Errorf("Failed condition %+v", c)
	}
}

// TestRestoreOverTLSToAPlaintextListenerSaysWhyAndStops: a restore whose
// EventHub asks for TLS against a plaintext listener retries, says in its
// status that TLS is the likely cause, and stops at once on SIGTERM.
func TestRestoreOverTLSToAPlaintextListenerSaysWhyAndStops(t *testing.T) {
	t.Parallel()
	topic := unique("tls.restore")
	want := map[string]produced{topic: {}}
	createTopic(t, topic, 1, nil)
	produce(t, topic, 1, 100, want[topic])
	s := backedUp(t, []string{topic}, want, true)
	rs := s.setupRestore(t, "tls-mismatch", fmt.Sprintf("    createTopics: true\n    topics:\n      - {source: %s, target: %s.r}\n", topic, topic))
	if out, errOut, err := env.Kubectl(t, "", "patch", "eventhub", "target-kafka", "-n", s.ns, "--type=merge",
		"-p", `{"spec":{"kafka":{"properties":{"security.protocol":"SSL"}}}}`); err != nil {
		t.Fatal(out, errOut)
	}
	w := rs.startRestoreWorker(t)
	testenv.WaitFor(t, 90*time.Second, "the status to say it retries and that TLS is in use", func() (bool, string) {
		c := meta.FindStatusCondition(rs.restore(t).Status.Conditions, v1alpha.RestoreRetrying)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "security.protocol"), fmt.Sprint(c)
	})
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(t, 20*time.Second); code != workerlease.ExitRestoreInterrupted {
		t.Errorf("exit %d after SIGTERM, want %d (interrupted, resumable)", code, workerlease.ExitRestoreInterrupted)
	}
}
