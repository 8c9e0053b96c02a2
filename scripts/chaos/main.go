// Command chaos backs topics up and restores them while it breaks what they
// depend on, then checks that storage, and the topics restored from it, hold
// every record produced, once, unchanged: `make chaos` (SEED=… replays a
// run), and once at a small size in make test (chaos_test.go). It writes
// docs/RELIABILITY.md.
//
// Scenarios (-only):
//
//   - kills: the backup worker is SIGKILLed at random moments while a
//     producer keeps writing to 3 topics; each next worker starts at once
//     and takes the Lease when the killed one's expires.
//   - restore-kills: the restore worker is SIGKILLed at moments spread over
//     one restore.
//   - kafka: kfake's hooks fail fetches, drop connections, hold requests and
//     move leaders during the backup; fail produce requests (also after the
//     write), drop them, hold commits and move leaders and the transaction
//     coordinator during the restore.
//   - volume: the backup's own tmpfs fills up and is remounted read-only, in
//     turns, each time until the Backup's status says so.
//   - outage: the controller, a backup and a restore reach the API server
//     through a proxy that refuses connections for a while; a supervisor
//     restarts what exits, as the kubelet would.
//   - handover: the Lease moves between two workers of one Backup.
//   - storage: the worker backs up to GCS (fake-gcs-server) through a proxy
//     that, on a share of calls, answers 503 or 429, resets the connection
//     before forwarding, forwards then drops the answer (the object was
//     created; the client's retry must be recognised), or stalls; the
//     restore reads through it too.
//   - sigterm: SIGTERM while every upload hangs.
//
// Every scenario ends with the same checks: each partition's objects tile it
// from 0 with no hole or overlap (layout.ListPartition), the decoded records
// equal the produced ones (offset, key, value, headers, timestamp, in
// order), storage holds nothing but topic.json, segments and gap markers,
// and, once the backup is restored into a second cluster, a read_committed
// consumer reads the same records in the same order. Every injected fault is
// counted, and a scenario whose faults did not happen fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/twmb/franz-go/pkg/kfake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/storage/volume"
	"github.com/kannika/armory/pkg/testenv"
)

// options say what one chaos run does, and how hard.
type options struct {
	seed           uint64
	only           string
	kills          int           // SIGKILLs in the kill storm
	restoreKills   int           // SIGKILLs of the restore worker in the restore kill storm
	restoreBatches int           // the batches the restore kill storm backs up and restores
	handovers      int           // Lease handovers between two workers
	batches        int           // the producer's batches at most (each: batchSize records per topic)
	batchSize      int           // records per topic per batch
	faultRate      float64       // share of storage calls given a fault
	stall          time.Duration // a stalled call's wait
	storageFor     time.Duration // how long the storage scenario produces
	kafkaFor       time.Duration // how long the Kafka faults scenario produces under faults
	volumeFor      time.Duration // how long the volume faults scenario produces under faults
	outage         time.Duration // how long the API server is away
	out            string
}

func main() {
	var o options
	flag.Uint64Var(&o.seed, "seed", 0, "the run's random seed (0: from the clock; the report and the log say which)")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios: kills, restore-kills, kafka, volume, outage, handover, storage, sigterm (empty: all)")
	flag.IntVar(&o.handovers, "handovers", 10, "times the Lease moves between two workers in the handover scenario")
	flag.IntVar(&o.kills, "kills", 50, "SIGKILLs of the backup worker in the kill storm")
	flag.IntVar(&o.restoreKills, "restore-kills", 20, "SIGKILLs of the restore worker in the restore kill storm")
	flag.IntVar(&o.restoreBatches, "restore-batches", 600, "batches produced, backed up and restored in the restore kill storm")
	flag.IntVar(&o.batches, "batches", 6000, "the producer's batches at most (production ends with the kills, or after -storage-for)")
	flag.IntVar(&o.batchSize, "batch-size", 50, "records per topic per batch (3 topics)")
	flag.Float64Var(&o.faultRate, "fault-rate", 0.1, "share of storage calls the proxy breaks")
	flag.DurationVar(&o.stall, "stall", 5*time.Second, "how long a stalled storage call waits")
	flag.DurationVar(&o.storageFor, "storage-for", 60*time.Second, "how long the storage scenario produces")
	flag.DurationVar(&o.kafkaFor, "kafka-for", 60*time.Second, "how long the Kafka faults scenario produces under faults")
	flag.DurationVar(&o.volumeFor, "volume-for", 60*time.Second, "how long the volume faults scenario produces under faults")
	flag.DurationVar(&o.outage, "outage", 30*time.Second, "how long the API server is unreachable in the outage scenario")
	flag.StringVar(&o.out, "out", "docs/RELIABILITY.md", "the report")
	flag.Parse()
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	rows, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	failed := false
	for _, r := range rows {
		failed = failed || !r.passed()
	}
	if failed {
		fmt.Fprintf(os.Stderr, "chaos: a scenario failed (replay: make chaos SEED=%d)\n", o.seed)
		os.Exit(1)
	}
}

func (o options) runs(s string) bool {
	return o.only == "" || strings.Contains(","+o.only+",", ","+s+",")
}

// row is one scenario's outcome, a line of RELIABILITY.md.
type row struct {
	scenario   string
	iterations string // what was done to it, e.g. "50 SIGKILLs"
	faults     map[string]int
	produced   int64
	stored     int64
	lost       int64 // produced, not stored
	duplicated int64 // stored more than once
	changed    int64 // stored with another key, value, header or timestamp
	// The same, for what a read_committed consumer reads from the topics
	// the backup was restored into.
	restoreChecked    bool
	restored          int64
	restoreWanted     int64 // records the restore selects
	restoreLost       int64
	restoreDuplicated int64
	restoreChanged    int64
	leftovers         []string
	notes             []string // for the report, under the table
	seconds           float64
	err               error // the scenario could not be run or checked
}

func (r row) passed() bool {
	if r.err != nil || r.lost != 0 || r.duplicated != 0 || r.changed != 0 || len(r.leftovers) != 0 || r.produced == 0 {
		return false
	}
	if !r.restoreChecked || r.restoreLost != 0 || r.restoreDuplicated != 0 || r.restoreChanged != 0 || r.restored != r.restoreWanted {
		return false
	}
	for _, n := range r.faults {
		if n == 0 {
			return false // a fault that never happened proves nothing
		}
	}
	return true
}

var topics = []string{"chaos.orders", "chaos.payments", "chaos.clicks"}

const partitions = 3

type chaos struct {
	options
	ctx     context.Context
	env     *testenv.Env
	armory  string
	cluster *kfake.Cluster
	dir     string
	rng     *rand.Rand
	mu      sync.Mutex // rng is used by the proxy's goroutines too
}

func run(o options) ([]row, error) {
	fmt.Printf("chaos seed %d (replay: make chaos SEED=%d)\n", o.seed, o.seed)
	c := &chaos{options: o, ctx: context.Background(), rng: rand.New(rand.NewPCG(o.seed, 0x61726d6f7279))}
	var err error
	if c.env, err = testenv.Start(); err != nil {
		return nil, err
	}
	defer c.env.Stop()
	armory, removeBin, err := testenv.BuildArmory()
	if err != nil {
		return nil, err
	}
	defer removeBin()
	c.armory = armory
	if c.dir, err = os.MkdirTemp("", "armory-chaos-"); err != nil {
		return nil, err
	}
	keepLogs := false
	defer func() {
		if keepLogs {
			fmt.Printf("the workers' logs are kept in %s\n", c.dir)
			return
		}
		os.RemoveAll(c.dir)
	}()

	var rows []row
	if o.runs("kills") {
		rows = append(rows, c.killStorm())
	}
	if o.runs("restore-kills") {
		rows = append(rows, c.restoreKillStorm())
	}
	if o.runs("kafka") {
		rows = append(rows, c.kafkaFaultsScenario())
	}
	if o.runs("volume") {
		rows = append(rows, c.volumeFaults())
	}
	if o.runs("outage") {
		rows = append(rows, c.apiOutage())
	}
	if o.runs("handover") {
		rows = append(rows, c.handover())
	}
	if o.runs("storage") {
		rows = append(rows, c.storageFaults())
	}
	if o.runs("sigterm") {
		rows = append(rows, c.sigtermDuringStalledUpload())
	}
	for _, r := range rows {
		fmt.Printf("%s: %s\n", r.scenario, r.summary())
		keepLogs = keepLogs || !r.passed()
	}
	if err := os.WriteFile(o.out, []byte(render(o, rows)), 0o644); err != nil {
		return nil, err
	}
	return rows, nil
}

func (r row) summary() string {
	if r.err != nil {
		return "ERROR " + r.err.Error()
	}
	result := "passed"
	if !r.passed() {
		result = "FAILED"
	}
	return fmt.Sprintf("%s; produced %d, stored %d, restored %d, lost %s, duplicated %s, changed %s, leftovers %d, faults %s: %s",
		r.iterations, r.produced, r.stored, r.restored, r.pair(r.lost, r.restoreLost), r.pair(r.duplicated, r.restoreDuplicated),
		r.pair(r.changed, r.restoreChanged), len(r.leftovers), faultList(r.faults), result)
}

// pair is a count in storage and in the restored topics: "0 / 0"; a
// scenario that never got to restore shows "—" for the second.
func (r row) pair(stored, restored int64) string {
	if !r.restoreChecked {
		return fmt.Sprintf("%d / —", stored)
	}
	return fmt.Sprintf("%d / %d", stored, restored)
}

func faultList(f map[string]int) string {
	if len(f) == 0 {
		return "—"
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, f[k])
	}
	return strings.Join(parts, ", ")
}

func (c *chaos) intn(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.IntN(n)
}

func (c *chaos) float() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.Float64()
}

// newCluster starts a Kafka cluster of 3 brokers with the scenario's topics.
func newCluster() (*kfake.Cluster, error) {
	return kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, topics...))
}

// volumeBackup starts a Kafka cluster with the chaos topics, applies a
// Backup of them in namespace ns to a volume at c.dir/name, and starts
// producing. The caller closes the cluster.
func (c *chaos) volumeBackup(ns, name string) (*kfake.Cluster, string, *producer, error) {
	cluster, err := newCluster()
	if err != nil {
		return nil, "", nil, err
	}
	vol := filepath.Join(c.dir, name)
	if err := os.MkdirAll(vol, 0o755); err != nil {
		cluster.Close()
		return nil, "", nil, err
	}
	if err := c.backupIn(ns, cluster.ListenAddrs(), "volume: {capacity: 1Gi}"); err != nil {
		cluster.Close()
		return nil, "", nil, err
	}
	p, err := c.produce(cluster.ListenAddrs())
	if err != nil {
		cluster.Close()
		return nil, "", nil, err
	}
	return cluster, vol, p, nil
}

// waitStreams waits (60 s at most) until the worker has started every
// topic's stream.
func waitStreams(w *worker) {
	for range 600 {
		if log, _ := os.ReadFile(w.path); strings.Count(string(log), "Stream started") >= len(topics) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backupIn applies an EventHub, a Storage and a Backup of every topic to a
// new namespace, with a 1 s rollover timeout so that segments are many.
func (c *chaos) backupIn(ns string, brokers []string, storageSpec string) error {
	if _, err := c.env.Kube.CoreV1().Namespaces().Create(c.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	var streams strings.Builder
	for _, t := range topics {
		fmt.Fprintf(&streams, "  - {topic: %s}\n", t)
	}
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: kafka}
spec: {kafka: {properties: {bootstrap.servers: %q, fetch.max.wait.ms: "100"}}}
---
apiVersion: kannika.io/v1alpha
kind: Storage
metadata: {name: storage}
spec: {%s}
---
apiVersion: kannika.io/v1alpha
kind: Backup
metadata: {name: chaos}
spec:
  source: kafka
  sink: storage
  segmentRolloverTriggers: {size: 256Ki, timeoutSeconds: 1}
  streams:
%s`, strings.Join(brokers, ","), storageSpec, streams.String())
	return c.kubectlApply(ns, manifest)
}

// kubectlApply applies a manifest to a namespace, as a user would.
func (c *chaos) kubectlApply(ns, manifest string) error {
	cmd := exec.Command(c.env.KubectlPath, "--kubeconfig", c.env.Kubeconfig, "apply", "-n", ns, "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl apply: %v: %s", err, out)
	}
	return nil
}

// worker is one armory worker process.
type worker struct {
	cmd  *exec.Cmd
	log  *os.File
	path string // of its log
	done chan struct{}
}

// holds reports whether the worker has logged taking the Lease.
func (w *worker) holds() bool {
	log, _ := os.ReadFile(w.path)
	return strings.Contains(string(log), "Took the Lease")
}

// startWorker runs `armory worker --backup=chaos` as the Deployment would.
// Its Lease is long enough not to be lost on a loaded machine (a released
// Lease is taken at the next retry anyway); the kill storm passes a short
// one, so that a killed worker's successor takes over fast.
func (c *chaos) startWorker(ns, storagePath, logName string, extra ...string) (*worker, error) {
	return c.startArmory("--backup=chaos", ns, storagePath, logName, extra...)
}

// startArmory runs one armory worker process for the resource named by
// resourceFlag (--backup=… or --restore=…); extra flags come last, so they
// win (--kubeconfig, say).
func (c *chaos) startArmory(resourceFlag, ns, storagePath, logName string, extra ...string) (*worker, error) {
	args := []string{"worker", resourceFlag, "--kubeconfig", c.env.Kubeconfig, "--namespace", ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--lease-duration", "10s", "--lease-renew-deadline", "8s", "--lease-retry-period", "250ms"}
	if storagePath != "" {
		args = append(args, "--storage-path", storagePath)
	}
	return c.startProcess(logName, append(args, extra...))
}

// startProcess runs armory with args, its output appended to logName.
func (c *chaos) startProcess(logName string, args []string) (*worker, error) {
	log, err := os.OpenFile(filepath.Join(c.dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.armory, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	w := &worker{cmd: cmd, log: log, path: log.Name(), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); log.Close(); close(w.done) }()
	return w, nil
}

// kill SIGKILLs the worker and waits for it to exit; it reports whether the
// signal is what ended it (not an exit of its own just before).
func (w *worker) kill() bool {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
	status, ok := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && status.Signaled() && status.Signal() == syscall.SIGKILL
}

// stop is SIGTERM, within the pod's grace period, else SIGKILL.
func (w *worker) stop() error {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
		if !w.cmd.ProcessState.Success() {
			return fmt.Errorf("the worker exited with %s after SIGTERM", w.cmd.ProcessState)
		}
		return nil
	case <-time.After(30 * time.Second):
		w.kill()
		return fmt.Errorf("the worker did not exit within 30 s of SIGTERM")
	}
}

// producer writes batches to every topic until stopped or out of batches,
// and keeps what Kafka acknowledged.
type producer struct {
	mu       sync.Mutex
	produced map[string]map[int32][]segment.Record
	stop     chan struct{}
	done     chan struct{}
	err      error
	batches  int
}

func (c *chaos) produce(brokers []string) (*producer, error) {
	return c.produceFrom(brokers, 0)
}

// produceFrom is produce whose first record is the first-th: a second
// producer of a scenario starts where the first ended, so that every record
// stays distinct.
func (c *chaos) produceFrom(brokers []string, first int) (*producer, error) {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	sp, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		return nil, err
	}
	p := &producer{produced: map[string]map[int32][]segment.Record{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, t := range topics {
		p.produced[t] = map[int32][]segment.Record{}
	}
	base := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	go func() {
		defer close(p.done)
		defer sp.Close()
		n := first
		for b := range c.batches {
			select {
			case <-p.stop:
				return
			default:
			}
			var msgs []*sarama.ProducerMessage
			for _, t := range topics {
				for i := range c.batchSize {
					msgs = append(msgs, message(t, int32(i%partitions), n, base))
					n++
				}
			}
			if err := sp.SendMessages(msgs); err != nil {
				p.err = fmt.Errorf("batch %d: %w", b, err)
				return
			}
			p.mu.Lock()
			for _, m := range msgs {
				p.produced[m.Topic][m.Partition] = append(p.produced[m.Topic][m.Partition], record(m))
			}
			p.batches++
			p.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return p, nil
}

// message is the n-th record: every kind a backup must keep apart (null
// and empty keys and values, headers with null values, distinct times).
func message(topic string, partition int32, n int, base time.Time) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Partition: partition, Timestamp: base.Add(time.Duration(n) * time.Millisecond)}
	switch n % 4 {
	case 0:
		m.Key, m.Value = sarama.StringEncoder(fmt.Sprintf("key-%d", n)), sarama.StringEncoder(fmt.Sprintf(`{"n":%d,"topic":%q}`, n, topic))
	case 1:
		m.Value = sarama.ByteEncoder([]byte{}) // null key, empty value
	case 2:
		m.Key = sarama.ByteEncoder([]byte{}) // empty key, null value
	case 3:
		m.Key, m.Value = sarama.StringEncoder(fmt.Sprint(n)), sarama.StringEncoder(strings.Repeat("x", n%500))
		m.Headers = []sarama.RecordHeader{{Key: []byte("trace"), Value: []byte(fmt.Sprint(n))}, {Key: []byte("null"), Value: nil}}
	}
	return m
}

func record(m *sarama.ProducerMessage) segment.Record {
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

func (p *producer) finish() (map[string]map[int32][]segment.Record, error) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.produced, p.err
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batches
}

// killStorm SIGKILLs the worker o.kills times while records arrive.
func (c *chaos) killStorm() row {
	r := row{scenario: "kill storm", faults: map[string]int{"SIGKILL": 0}}
	start := time.Now()
	const ns = "chaos-kills"
	cluster, vol, p, err := c.volumeBackup(ns, "kills")
	if err != nil {
		r.err = err
		return r
	}
	defer cluster.Close()
	for i := range c.kills {
		w, err := c.startWorker(ns, vol, "kills.log", "--lease-duration", "2s", "--lease-renew-deadline", "1500ms")
		if err != nil {
			r.err = err
			break
		}
		// Kill at a random moment of its life: while it waits for the
		// Lease, starts, reads, or uploads.
		time.Sleep(time.Duration(100+c.intn(2500)) * time.Millisecond)
		if !w.kill() {
			r.err = fmt.Errorf("kill %d: the backup worker exited (%s) before the SIGKILL (log %s)", i+1, w.cmd.ProcessState, w.path)
			break
		}
		r.faults["SIGKILL"]++
		if (i+1)%10 == 0 {
			fmt.Printf("kill storm: %d kills, %d batches produced\n", i+1, p.count())
		}
	}
	batches := p.count()
	produced, perr := p.finish()
	r.iterations = fmt.Sprintf("backup worker SIGKILLed at random moments (0.1-2.6 s into each life) while %d batches were produced", batches)
	if r.err == nil {
		r.err = perr
	}
	if r.err == nil {
		r.err = c.finalRun(ns, vol, nil, produced, &r)
	}
	if r.err == nil {
		r.err = c.restoreAndCheck(ns, vol, produced, &r, restoreHow{})
	}
	r.seconds = time.Since(start).Seconds()
	return r
}

// handover runs two workers on one Backup under load and moves the Lease
// between them: the holder is stopped with SIGTERM (it drains and releases
// the Lease), the standby takes over, and a new standby starts.
func (c *chaos) handover() row {
	r := row{scenario: "Lease handover", faults: map[string]int{"handover": 0}}
	start := time.Now()
	const ns = "chaos-handover"
	cluster, vol, p, err := c.volumeBackup(ns, "handover")
	if err != nil {
		r.err = err
		return r
	}
	defer cluster.Close()
	waitHolds := func(w *worker) error {
		for range 300 {
			if w.holds() {
				return nil
			}
			select {
			case <-w.done:
				return fmt.Errorf("a worker exited (%s) before it took the Lease", w.cmd.ProcessState)
			case <-time.After(100 * time.Millisecond):
			}
		}
		return fmt.Errorf("no worker took the Lease within 30 s")
	}
	holder, err := c.startWorker(ns, vol, "handover-0.log")
	if err == nil {
		err = waitHolds(holder)
	}
	for i := 1; err == nil && i <= c.handovers; i++ {
		var standby *worker
		if standby, err = c.startWorker(ns, vol, fmt.Sprintf("handover-%d.log", i)); err != nil {
			break
		}
		time.Sleep(time.Duration(200+c.intn(1800)) * time.Millisecond)
		if err = holder.stop(); err != nil { // SIGTERM: drains, releases, exits 0
			break
		}
		if err = waitHolds(standby); err != nil {
			break
		}
		r.faults["handover"]++
		holder = standby
	}
	batches := p.count()
	produced, perr := p.finish()
	r.iterations = fmt.Sprintf("two workers on one Backup; the holder SIGTERMed %d times at random moments while %d batches were produced",
		c.handovers, batches)
	if holder != nil {
		if serr := holder.stop(); err == nil {
			err = serr
		}
	}
	r.err = errors.Join(err, perr)
	if r.err == nil {
		r.err = c.finalRun(ns, vol, nil, produced, &r)
	}
	if r.err == nil {
		r.err = c.restoreAndCheck(ns, vol, produced, &r, restoreHow{})
	}
	r.seconds = time.Since(start).Seconds()
	return r
}

// finalRun starts one last worker, lets it store everything produced, stops
// it with SIGTERM, and checks storage: bucket, or the volume at storagePath
// if bucket is nil.
func (c *chaos) finalRun(ns, storagePath string, bucket storage.Bucket, produced map[string]map[int32][]segment.Record, r *row) error {
	if bucket == nil {
		var err error
		if bucket, err = volume.New(storagePath); err != nil {
			return err
		}
	}
	w, err := c.startWorker(ns, storagePath, "final-"+ns+".log")
	if err != nil {
		return err
	}
	// Until it holds the Lease: storage may be caught up already, and a
	// SIGTERM before the worker handles signals would kill it outright.
	for i := 0; !w.holds(); i++ {
		if i == 600 {
			w.kill()
			return fmt.Errorf("the last worker did not take the Lease within 60 s")
		}
		select {
		case <-w.done:
			return fmt.Errorf("the last worker exited (%s) before it took the Lease", w.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !caughtUp(c.ctx, bucket, produced) {
		if time.Now().After(deadline) {
			w.kill()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := w.stop(); err != nil {
		return err
	}
	check(c.ctx, bucket, produced, r)
	if storagePath != "" {
		r.leftovers = append(r.leftovers, strayFiles(storagePath)...)
	}
	return nil
}

func caughtUp(ctx context.Context, b storage.Bucket, produced map[string]map[int32][]segment.Record) bool {
	for t, parts := range produced {
		for p, recs := range parts {
			if len(recs) == 0 {
				continue
			}
			st, err := layout.ListPartition(ctx, b, t, p)
			if err != nil || st.Next <= recs[len(recs)-1].Offset {
				return false
			}
		}
	}
	return true
}

// check compares what storage holds with what was produced.
func check(ctx context.Context, b storage.Bucket, produced map[string]map[int32][]segment.Record, r *row) {
	for _, t := range topics {
		for p := range int32(partitions) {
			want := produced[t][p]
			r.produced += int64(len(want))
			got, err := stored(ctx, b, t, p)
			if err != nil {
				r.err = fmt.Errorf("%s/%d: %w", t, p, err)
				return
			}
			r.stored += int64(len(got))
			seen := map[int64]int{}
			for _, g := range got {
				seen[g.Offset]++
			}
			byOffset := map[int64]segment.Record{}
			for _, g := range got {
				byOffset[g.Offset] = g
			}
			for _, w := range want {
				g, ok := byOffset[w.Offset]
				switch {
				case !ok:
					r.lost++
				case !same(w, g):
					r.changed++
				}
			}
			for _, n := range seen {
				if n > 1 {
					r.duplicated += int64(n - 1)
				}
			}
		}
	}
	_ = b.List(ctx, "", func(a storage.ObjectAttrs) error {
		base := a.Name[strings.LastIndex(a.Name, "/")+1:]
		if base != "topic.json" && !strings.HasSuffix(base, layout.SegmentSuffix) && !strings.HasSuffix(base, layout.GapSuffix) {
			r.leftovers = append(r.leftovers, a.Name)
		}
		return nil
	})
}

func stored(ctx context.Context, b storage.Bucket, topic string, p int32) ([]segment.Record, error) {
	st, err := layout.ListPartition(ctx, b, topic, p)
	if err != nil {
		return nil, err
	}
	var out []segment.Record
	for _, o := range st.Objects {
		if o.Gap {
			return nil, fmt.Errorf("a gap marker %s: nothing was removed by retention", o.Name)
		}
		rc, err := b.Open(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		recs, _, err := segment.Decode(data, o.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func same(a, b segment.Record) bool {
	eq := func(x, y []byte) bool { return (x == nil) == (y == nil) && string(x) == string(y) }
	if a.Offset != b.Offset || !a.Timestamp.Equal(b.Timestamp) || !eq(a.Key, b.Key) || !eq(a.Value, b.Value) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !eq(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// gcsSetup is a Kafka cluster with the scenario's topics, and a Backup of
// them to fake-gcs-server, reached through a faultProxy (off until a
// scenario turns it on).
type gcsSetup struct {
	brokers []string
	faults  *faultProxy
	bucket  storage.Bucket // the bucket itself, not through the proxy: for the checks
	close   func()
}

func (c *chaos) backupToGCSBehindProxy(ns string) (*gcsSetup, error) {
	var closers []func()
	s := &gcsSetup{close: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}
	fail := func(err error) (*gcsSetup, error) { s.close(); return nil, err }
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		return nil, err
	}
	closers = append(closers, srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "chaos"})
	target, _ := url.Parse(srv.URL())
	s.faults = &faultProxy{c: c, backend: httputil.NewSingleHostReverseProxy(target), counts: map[string]int{}}
	proxy := httptest.NewServer(s.faults)
	closers = append(closers, proxy.Close)
	cluster, err := newCluster()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, cluster.Close)
	s.brokers = cluster.ListenAddrs()
	if err := c.backupIn(ns, s.brokers, fmt.Sprintf("gcsBucket: {bucket: chaos, endpoint: %q}", proxy.URL)); err != nil {
		return fail(err)
	}
	bucket, err := gcs.New(c.ctx, gcs.Config{Bucket: "chaos", Endpoint: srv.URL()})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { bucket.Close() })
	s.bucket = bucket
	return s, nil
}

// storageFaults backs up to GCS through a fault-injecting proxy.
func (c *chaos) storageFaults() row {
	r := row{scenario: "storage faults (GCS)"}
	start := time.Now()
	const ns = "chaos-storage"
	s, err := c.backupToGCSBehindProxy(ns)
	if err != nil {
		r.err = err
		return r
	}
	defer s.close()
	faults, bucket := s.faults, s.bucket
	p, err := c.produce(s.brokers)
	if err != nil {
		r.err = err
		return r
	}
	w, err := c.startWorker(ns, "", "storage.log")
	if err != nil {
		r.err = err
		return r
	}
	// Faults start once the streams run: a worker that cannot reach its
	// storage at start exits (and a kubelet would restart it), which the
	// kill storm covers; this scenario is about a backup under way.
	waitStreams(w)
	faults.on.Store(true)
	time.Sleep(c.storageFor)
	// Production ends once every kind of fault has happened (bounded).
	for range 300 {
		if f := faults.snapshot(); !slices.Contains(slices.Collect(maps.Values(f)), 0) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	produced, perr := p.finish()
	// The last records are stored with faults still on; the checks read
	// the bucket directly.
	deadline := time.Now().Add(3 * time.Minute)
	for !caughtUp(c.ctx, bucket, produced) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	faults.on.Store(false)
	if err := w.stop(); err != nil && r.err == nil {
		r.err = err
	}
	if r.err == nil {
		r.err = perr
	}
	if r.err == nil {
		check(c.ctx, bucket, produced, &r)
	}
	// The restore reads the bucket through the proxy, faults on.
	if r.err == nil {
		faults.on.Store(true)
		r.err = c.restoreAndCheck(ns, "", produced, &r, restoreHow{})
		faults.on.Store(false)
	}
	r.faults = faults.snapshot()
	total := 0
	for _, n := range r.faults {
		total += n
	}
	r.iterations = fmt.Sprintf("%d storage calls, %d broken (%.0f%%), over %s of production and the restore", faults.calls(), total,
		100*float64(total)/float64(max(faults.calls(), 1)), c.storageFor)
	r.seconds = time.Since(start).Seconds()
	return r
}

// render writes RELIABILITY.md.
func render(o options, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability\n\nProduced by `make chaos` (`go run ./scripts/chaos %s`, seed %d) on %s, %s, %d cores. "+
		"Every figure below was printed by that run; `make chaos SEED=%d` replays its random choices (kill moments, which "+
		"calls fail and how). Each scenario ends with the same checks: every partition's objects tile it from "+
		"position 0 with no hole or overlap, the stored records equal the produced ones (offset, key, value, headers, "+
		"timestamp, in order, null and empty kept apart), storage holds only `topic.json`, segments and gap markers, and "+
		"after the backup is restored into a second Kafka cluster (`createTopics`), a `read_committed` consumer reads "+
		"the same records, partition by partition, in the same order. Lost, duplicated and changed are counted twice: "+
		"in storage / in the restored topics. Each fault is counted where it happened (a proxy, a kfake hook, a mount), "+
		"and a scenario in which one kind never happened fails.\n\n",
		strings.Join(os.Args[1:], " "), o.seed, time.Now().UTC().Format("2006-01-02"), runtime.GOARCH, runtime.NumCPU(), o.seed)
	b.WriteString("| scenario | what was done | faults injected | records produced | stored | restored | lost (stored / restored) | duplicated | changed | left in storage | seconds | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		result := "passed"
		if r.err != nil {
			result = "error: " + r.err.Error()
		} else if !r.passed() {
			result = "**FAILED**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s | %s | %s | %d | %.0f | %s |\n", r.scenario, r.iterations, faultList(r.faults),
			r.produced, r.stored, r.restored, r.pair(r.lost, r.restoreLost), r.pair(r.duplicated, r.restoreDuplicated),
			r.pair(r.changed, r.restoreChanged), len(r.leftovers), r.seconds, result)
	}
	for _, r := range rows {
		for _, n := range r.notes {
			fmt.Fprintf(&b, "\n- %s, %s", r.scenario, n)
		}
	}
	b.WriteString("\n")
	b.WriteString(promises)
	return b.String()
}

const promises = `
## What Armory promises under each fault

- **A worker killed at any moment** (SIGKILL, OOM, node loss): nothing stored is lost; what it had read but not stored
  is read again by the next worker, from the end storage shows. A segment is stored whole or not at all (GCS: one
  request with a does-not-exist precondition; volume: a temporary file, fsynced, then linked), so a kill leaves no
  partial object; the temporary files a killed volume writer leaves are removed when its partition next starts.
- **A restore worker killed at any moment**: records and progress are committed in one Kafka transaction, so a
  killed worker's open transaction is aborted (a ` + "`read_committed`" + ` consumer never sees it) and the next worker
  resumes from the last commit: no record is missing or written twice in the target.
- **Kafka misbehaving** (errors on fetch or produce, a produce that timed out after the broker wrote it, dropped
  connections, a stalled cluster, leaders and the transaction coordinator moving): the backup re-reads from the end storage
  shows; the restore's idempotent, transactional producer retries, and an attempt that fails is aborted and started
  again from the last commit. The stream's or the Restore's status says ` + "`Retrying`" + ` while it lasts.
- **Storage failing calls** (5xx, 429, resets, stalls, an answer lost after the object was created): each call is
  retried a few times by the client, then the partition lists storage again and continues from what it holds; a
  segment whose creation succeeded but whose answer was lost is found by that listing and adopted (counted, not
  written again). The stream's status says ` + "`Retrying`" + ` while it lasts. A restore reading through the same
  faults retries from its last commit.
- **A volume that is full or read-only**: the upload fails, the temporary file is removed, and the stream says
  ` + "`Retrying`" + ` with the system's words (` + "`no space left on device`" + `, ` + "`read-only file system`" + `) within a
  status interval; once space is back, it continues where storage ends.
- **The API server away** (stopped, unreachable): a worker or controller that cannot renew its Lease within the renew
  deadline stops and exits, before another could take the Lease (the deadline is shorter than the Lease); the kubelet
  restarts it, and it waits for the API server, takes the Lease and continues from storage (a backup) or the last
  commit (a restore). Statuses are stale during the outage and right again soon after it. Should two writers ever
  overlap, storage's create-if-absent and the transactional producer's fencing still let only one write.
- **The Lease moving between workers** (a rolling update, a drained node): the holder uploads its open segments and
  releases the Lease before it exits; the standby takes it and continues from what storage holds, no record twice.
  Should two workers ever write at once, the create-if-absent of every object still lets only one store a position.
- **SIGTERM while the storage hangs**: the worker drains (uploads its open segments) for at most ` + "`--drain-timeout`" + `
  (25 s), then stops without them and exits 1; no partial object is left, and the next worker reads those records
  again. The pod's grace period (60 s) is never what ends it.
- **Not promised**: records Kafka removed (retention) before the backup reached them are not in the backup; a gap
  marker records the missing positions and the status says so. A topic deleted on the source while its backup runs
  stops that stream (` + "`Failed`" + `); what was stored stays. A disk failing with EIO is not injected here (no
  fault-injecting filesystem on this machine); the worker treats it as any failed write.
`

// faultProxy stands between the worker and the GCS emulator. While on, it
// breaks a share of the calls, each in one of these ways, chosen by the
// run's seed.
type faultProxy struct {
	c       *chaos
	backend *httputil.ReverseProxy
	on      atomic.Bool

	mu     sync.Mutex
	counts map[string]int
	total  int // calls
	broken int // calls broken
	// stallUploads makes every upload hang (the sigterm scenario);
	// stalled counts them.
	stallUploads bool
	stalled      int
}

var faultKinds = []string{"503", "429", "reset before the call", "answer lost after the call", "stall"}

func (f *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.total++
	f.mu.Unlock()
	f.mu.Lock()
	stallAll := f.stallUploads
	f.mu.Unlock()
	if !f.on.Load() || !stallAll && f.c.float() >= f.c.faultRate {
		f.backend.ServeHTTP(w, r)
		return
	}
	// Which calls break is the seed's; the kinds take turns, so that a
	// short run has every kind too.
	f.mu.Lock()
	kind := faultKinds[f.broken%len(faultKinds)]
	if f.stallUploads && r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/upload/") {
		kind = "upload stalled"
	}
	f.broken++
	f.counts[kind]++
	f.mu.Unlock()
	switch kind {
	case "upload stalled":
		f.mu.Lock()
		f.stalled++
		f.mu.Unlock()
		// Read the body first: only then does the server notice the
		// client hanging up, which ends the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		select { // until the client gives up (bounded)
		case <-r.Context().Done():
		case <-time.After(2 * time.Minute):
		}
		return
	case "503", "429":
		code := map[string]int{"503": http.StatusServiceUnavailable, "429": http.StatusTooManyRequests}[kind]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"injected by the chaos proxy"}}`, code)
	case "reset before the call":
		hangUp(w)
	case "answer lost after the call":
		rec := httptest.NewRecorder()
		f.backend.ServeHTTP(rec, r) // the object is created (or read)...
		hangUp(w)                   // ...and the answer never arrives
	case "stall":
		select {
		case <-time.After(f.c.stall):
		case <-r.Context().Done():
			return
		}
		f.backend.ServeHTTP(w, r)
	}
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (f *faultProxy) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, k := range faultKinds {
		out[k] = f.counts[k]
	}
	return out
}

func (f *faultProxy) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// sigtermDuringStalledUpload stops a worker with SIGTERM while its storage
// holds every upload: the drain cannot finish, so --drain-timeout must end
// the worker within the pod's grace period, with no partial object, and the
// next worker must resume exactly where storage ends.
func (c *chaos) sigtermDuringStalledUpload() row {
	const drainTimeout, grace = 5 * time.Second, 60 * time.Second
	r := row{scenario: "SIGTERM during a stalled upload", faults: map[string]int{"upload stalled at SIGTERM": 0}}
	start := time.Now()
	const ns = "chaos-sigterm"
	s, err := c.backupToGCSBehindProxy(ns)
	if err != nil {
		r.err = err
		return r
	}
	defer s.close()
	faults, bucket := s.faults, s.bucket
	p, err := c.produce(s.brokers)
	if err != nil {
		r.err = err
		return r
	}
	w, err := c.startWorker(ns, "", "sigterm.log", "--drain-timeout", drainTimeout.String())
	if err != nil {
		r.err = err
		return r
	}
	// Some segments stored normally, then every upload hangs.
	for range 300 {
		if stored, _ := countStored(c.ctx, bucket); stored > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	faults.mu.Lock()
	faults.stallUploads = true
	faults.mu.Unlock()
	faults.on.Store(true)
	for range 300 {
		faults.mu.Lock()
		n := faults.stalled
		faults.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	faults.mu.Lock()
	r.faults["upload stalled at SIGTERM"] = faults.stalled
	faults.mu.Unlock()
	produced, perr := p.finish()
	termAt := time.Now()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	var took time.Duration
	select {
	case <-w.done:
		took = time.Since(termAt)
	case <-time.After(grace):
		w.kill()
		r.err = fmt.Errorf("the worker did not exit within the pod's %s grace period after SIGTERM", grace)
		return r
	}
	faults.on.Store(false)
	r.iterations = fmt.Sprintf("every upload hung at SIGTERM; the worker (--drain-timeout %s) exited in %.1f s (%s), within the %s grace period",
		drainTimeout, took.Seconds(), w.cmd.ProcessState, grace)
	if r.err = perr; r.err == nil {
		r.err = c.finalRun(ns, "", bucket, produced, &r)
	}
	if r.err == nil {
		r.err = c.restoreAndCheck(ns, "", produced, &r, restoreHow{})
	}
	r.seconds = time.Since(start).Seconds()
	return r
}

// countStored counts the segments a bucket holds.
func countStored(ctx context.Context, b storage.Bucket) (int, error) {
	n := 0
	err := b.List(ctx, "", func(a storage.ObjectAttrs) error {
		if strings.HasSuffix(a.Name, layout.SegmentSuffix) {
			n++
		}
		return nil
	})
	return n, err
}
