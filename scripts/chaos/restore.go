package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/segment"
)

// restoreName is the Restore every scenario ends with: each chaos topic into
// <topic>.restored on a second Kafka cluster, as a restore into another
// cluster (cloning production into a test environment) does.
const restoreName = "chaos-restore"

func restoredTopic(t string) string { return t + ".restored" }

// restoreTarget is the cluster a scenario restores into, with its Restore
// applied.
type restoreTarget struct {
	cluster *kfake.Cluster
	brokers []string
	ns      string
}

// restoreInto starts the target cluster and applies an EventHub for it and a
// Restore of every chaos topic from the scenario's Storage, creating the
// target topics (same partitions).
func (c *chaos) restoreInto(ns string) (*restoreTarget, error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.ClusterID("armory-chaos-target"))
	if err != nil {
		return nil, err
	}
	t := &restoreTarget{cluster: cluster, brokers: cluster.ListenAddrs(), ns: ns}
	var mapping strings.Builder
	for _, topic := range topics {
		fmt.Fprintf(&mapping, "      - {source: %s, target: %s}\n", topic, restoredTopic(topic))
	}
	manifest := fmt.Sprintf(`apiVersion: kannika.io/v1alpha
kind: EventHub
metadata: {name: target}
spec: {kafka: {properties: {bootstrap.servers: %q, metadata.max.age.ms: "1000"}}}
---
apiVersion: kannika.io/v1alpha
kind: Restore
metadata: {name: %s}
spec:
  source: storage
  sink: target
  enabled: true
  config:
    createTopics: true
    topics:
%s`, strings.Join(t.brokers, ","), restoreName, mapping.String())
	if err := c.kubectlApply(ns, manifest); err != nil {
		cluster.Close()
		return nil, err
	}
	return t, nil
}

// startRestoreWorker runs `armory worker --restore=chaos-restore` as the
// Job would.
func (c *chaos) startRestoreWorker(ns, storagePath, logName string, extra ...string) (*worker, error) {
	return c.startArmory("--restore="+restoreName, ns, storagePath, logName, extra...)
}

// restoreHow says what a scenario's restore goes through.
type restoreHow struct {
	kills int      // SIGKILLs of the restore worker, spread over the restore
	flags []string // for every restore worker
	// during, if set, runs from the first restore worker's start until the
	// last one exits (stop closed), against the target cluster.
	during func(target *kfake.Cluster, stop <-chan struct{}) error
	// final, if set, runs the restore to its end (exit 0) after the kills,
	// starting workers with start; by default one worker, within 5 minutes.
	final func(start func(life int) (*worker, error)) error
}

// restoreAndCheck restores the scenario's backup into a new cluster, as how
// says, runs it to the end and compares what a read_committed consumer
// reads from the target with what was produced.
func (c *chaos) restoreAndCheck(ns, storagePath string, produced map[string]map[int32][]segment.Record, r *row, how restoreHow) error {
	t, err := c.restoreInto(ns)
	if err != nil {
		return err
	}
	defer t.cluster.Close()
	stopDuring := func() error { return nil }
	if how.during != nil {
		stop, done := make(chan struct{}), make(chan error, 1)
		go func() { done <- how.during(t.cluster, stop) }()
		var once sync.Once
		var duringErr error
		stopDuring = func() error {
			once.Do(func() { close(stop); duringErr = <-done })
			return duringErr
		}
		defer stopDuring()
	}
	kills, extra := how.kills, how.flags
	var n int64
	for _, parts := range produced {
		for _, recs := range parts {
			n += int64(len(recs))
		}
	}
	// Each kill lands once a random share of the records is committed (the
	// worker logs each commit), plus a random few milliseconds that put it
	// inside a transaction or between two. The shares are one in each of
	// kills equal bands between 5% and 70% of the records: every successor
	// commits at least one transaction before it is killed, so thresholds
	// drawn close together, or near the end, would let a fast machine's
	// successors finish the restore before the last kill.
	var thresholds []int64
	lo, hi := n/20, n*7/10
	band := max((hi-lo)/int64(max(kills, 1)), 1)
	for i := range kills {
		thresholds = append(thresholds, lo+int64(i)*band+int64(c.intn(int(band))))
	}
	for i, at := range thresholds {
		w, err := c.startRestoreWorker(ns, storagePath, fmt.Sprintf("restore-%s-%d.log", ns, i),
			append([]string{"--lease-duration", "2s", "--lease-renew-deadline", "1500ms"}, extra...)...)
		if err != nil {
			return err
		}
		if err := waitRestored(w, at); err != nil {
			w.kill()
			return fmt.Errorf("kill %d: %w", i+1, err)
		}
		time.Sleep(time.Duration(c.intn(30)) * time.Millisecond)
		if !w.kill() {
			return fmt.Errorf("kill %d: the restore worker exited (%s) before the SIGKILL, after %d records were committed (log %s)", i+1, w.cmd.ProcessState, at, w.path)
		}
		r.faults["restore worker SIGKILL"]++
	}
	start := func(life int) (*worker, error) {
		return c.startRestoreWorker(ns, storagePath, fmt.Sprintf("restore-%s-final-%d.log", ns, life), extra...)
	}
	final := how.final
	if final == nil {
		final = func(start func(int) (*worker, error)) error {
			w, err := start(0)
			if err != nil {
				return err
			}
			select {
			case <-w.done:
			case <-time.After(5 * time.Minute):
				w.kill()
				return fmt.Errorf("the restore did not finish within 5 minutes (log %s)", w.path)
			}
			if code := w.cmd.ProcessState.ExitCode(); code != 0 {
				return fmt.Errorf("the restore worker exited %d, want 0 (log %s)", code, w.path)
			}
			return nil
		}
	}
	if err := final(start); err != nil {
		return err
	}
	if err := stopDuring(); err != nil {
		return err
	}
	for _, topic := range topics {
		got, err := consumeCommitted(t.brokers, restoredTopic(topic))
		if err != nil {
			return err
		}
		for p := range int32(partitions) {
			compareRestored(produced[topic][p], got[p], r)
		}
	}
	r.restoreWanted += n
	r.restoreChecked = true
	return nil
}

// waitRestored waits until the worker has logged committing at least at
// records (bounded).
func waitRestored(w *worker, at int64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		log, _ := os.ReadFile(w.path)
		if lastRestored(string(log)) >= at {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the restore did not commit %d records within 2 minutes (log %s)", at, w.path)
		}
		select {
		case <-w.done:
			return fmt.Errorf("the restore worker exited (%s) before %d records were committed (log %s)", w.cmd.ProcessState, at, w.path)
		case <-time.After(20 * time.Millisecond):
		}
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
	if j := strings.IndexAny(rest, " \n"); j >= 0 {
		rest = rest[:j]
	}
	n, _ := strconv.ParseInt(rest, 10, 64)
	return n
}

// compareRestored counts how the records restored into one partition differ
// from those produced to its source: in the target a record has a new
// offset, so it is known by its timestamp, which the producer makes unique.
// A record restored out of order counts as changed.
func compareRestored(want, got []segment.Record, r *row) {
	index := make(map[int64]int, len(want))
	for i, w := range want {
		index[w.Timestamp.UnixMilli()] = i
	}
	seen := make([]int, len(want))
	last := -1
	for _, g := range got {
		r.restored++
		i, ok := index[g.Timestamp.UnixMilli()]
		if !ok {
			r.restoreChanged++ // a record no one produced
			continue
		}
		seen[i]++
		g.Offset = want[i].Offset
		if seen[i] == 1 && (!same(want[i], g) || i < last) {
			r.restoreChanged++
		}
		last = max(last, i)
	}
	for _, s := range seen {
		switch {
		case s == 0:
			r.restoreLost++
		case s > 1:
			r.restoreDuplicated += int64(s - 1)
		}
	}
}

// consumeCommitted reads every partition of a target topic from its start to
// its end as a read_committed consumer does.
func consumeCommitted(brokers []string, topic string) (map[int32][]segment.Record, error) {
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("target topic %s: %w", topic, err)
	}
	out := map[int32][]segment.Record{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			defer pc.Close()
			var recs []segment.Record
			// The end offset is a transaction marker no consumer sees:
			// stop at it, or once nothing more comes for 3 s.
			idle := time.NewTimer(3 * time.Second)
		read:
			for {
				select {
				case m := <-pc.Messages():
					recs = append(recs, fromMessage(m))
					if m.Offset >= end-1 {
						break read
					}
					idle.Reset(3 * time.Second)
				case cerr := <-pc.Errors():
					errs[i] = cerr
					break read
				case <-idle.C:
					break read
				}
			}
			mu.Lock()
			out[p] = recs
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
	}
	return out, nil
}

// fromMessage is a consumed record as the producer's copy of it.
func fromMessage(m *sarama.ConsumerMessage) segment.Record {
	r := segment.Record{Offset: m.Offset, Timestamp: m.Timestamp, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, segment.RecordHeader{Key: string(h.Key), Value: h.Value})
	}
	return r
}

// restoreKillStorm backs a fixed production up, then restores it into a new
// cluster while SIGKILLing the restore worker o.restoreKills times.
func (c *chaos) restoreKillStorm() row {
	r := row{scenario: "restore kill storm", faults: map[string]int{"restore worker SIGKILL": 0}}
	start := time.Now()
	const ns = "chaos-restore-kills"
	vol, produced, err := c.backupFixed(ns, "restore-kills", c.restoreBatches, &r)
	if r.err = err; r.err != nil {
		return r
	}
	// Small transactions, so that the restore spans many commits and the
	// kills land inside and between them; each commit held 100 ms, so that
	// a restore on a fast machine still lasts longer than the harness
	// takes to see a commit in the log and kill.
	r.err = c.restoreAndCheck(ns, vol, produced, &r, restoreHow{kills: c.restoreKills,
		flags: []string{"--transaction-records", "500", "--transaction-interval", "100ms", "--parallel-partitions", "3"},
		during: func(t *kfake.Cluster, stop <-chan struct{}) error {
			paceCommits(t, restoreKillPace)
			<-stop
			return nil
		}})
	r.iterations = fmt.Sprintf("restore worker SIGKILLed %d times at moments spread over one restore (500-record transactions, each commit held %s), each successor taking the Lease when it expires", c.restoreKills, restoreKillPace)
	r.seconds = time.Since(start).Seconds()
	return r
}

// restoreKillPace is how long the restore kill storm holds each commit.
const restoreKillPace = 100 * time.Millisecond

// paceCommits holds every EndTxn the target cluster receives for d before
// it is handled as usual, as on a cluster farther away than loopback: a
// restore then lasts at least its commits × d, whatever the machine's speed.
func paceCommits(t *kfake.Cluster, d time.Duration) {
	t.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		t.KeepControl()
		time.Sleep(d)
		return nil, nil, false
	})
}

// recordCount is how many records produced holds.
func recordCount(produced map[string]map[int32][]segment.Record) int {
	n := 0
	for _, parts := range produced {
		for _, recs := range parts {
			n += len(recs)
		}
	}
	return n
}
