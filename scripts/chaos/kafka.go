package main

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaFaults injects faults into one kfake cluster through its control
// hooks, one at a time, the kinds taking turns (so that a short run has
// every kind too), each counted only once it has happened.
type kafkaFaults struct {
	c       *chaos
	cluster *kfake.Cluster
	kinds   []kafkaFault

	mu      sync.Mutex
	counts  map[string]int
	handles map[string][]*kfake.FaultHandle // error faults: their hits are the count
	// armed is the control-hook kinds injected that have not fired yet:
	// a kind is not armed twice, so that faults never pile up while no
	// request comes (a run of drops would be one long outage).
	armed map[string]bool
}

// kafkaFault is one kind of fault: inject arms it once.
type kafkaFault struct {
	name   string
	inject func(f *kafkaFaults, topic string, partition int32) error
}

// The faults a backup meets: its fetches answered with errors, held (the
// cluster stalled), or their connections dropped, and a partition's leader
// moving.
var backupKafkaFaults = []kafkaFault{
	errorFault("NOT_LEADER_OR_FOLLOWER on fetch", kmsg.Fetch, kerr.NotLeaderForPartition),
	errorFault("REQUEST_TIMED_OUT on fetch", kmsg.Fetch, kerr.RequestTimedOut),
	droppedConnection("fetch connection dropped", kmsg.Fetch),
	stalledCluster("stalled cluster (a fetch held 2 s)", kmsg.Fetch, 2*time.Second),
	{name: "partition leader moved", inject: moveLeader},
}

// The faults a restore meets: its produce requests refused, timed out after
// the broker wrote them (the producer's retry must not write them twice),
// their connections dropped, a commit held (the cluster stalled), a leader and the
// transaction coordinator moving.
var restoreKafkaFaults = []kafkaFault{
	errorFault("NOT_LEADER_OR_FOLLOWER on produce", kmsg.Produce, kerr.NotLeaderForPartition),
	errorFault("REQUEST_TIMED_OUT on produce, after the write", kmsg.Produce, kerr.RequestTimedOut),
	droppedConnection("produce connection dropped", kmsg.Produce),
	stalledCluster("stalled cluster (a commit held 2 s)", kmsg.EndTxn, 2*time.Second),
	{name: "partition leader moved", inject: moveLeader},
	{name: "transaction coordinator moved", inject: func(f *kafkaFaults, _ string, _ int32) error {
		f.cluster.RehashCoordinators()
		f.count("transaction coordinator moved")
		return nil
	}},
}

func (c *chaos) kafkaFaultsOn(cluster *kfake.Cluster, kinds []kafkaFault) *kafkaFaults {
	return &kafkaFaults{c: c, cluster: cluster, kinds: kinds, counts: map[string]int{}, handles: map[string][]*kfake.FaultHandle{}, armed: map[string]bool{}}
}

// count records that a fault of kind happened (and is no longer armed).
func (f *kafkaFaults) count(kind string) {
	f.mu.Lock()
	f.counts[kind]++
	f.armed[kind] = false
	f.mu.Unlock()
}

// arm records that a control-hook fault of kind waits for its request.
func (f *kafkaFaults) arm(kind string) {
	f.mu.Lock()
	f.armed[kind] = true
	f.mu.Unlock()
}

// waiting reports whether a fault of kind was injected and has not yet
// happened in full.
func (f *kafkaFaults) waiting(kind string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.handles[kind]
	return f.armed[kind] || len(hs) > 0 && hs[len(hs)-1].Hits() < errorFaultCount
}

// errorFaultCount is how many requests in a row an error fault answers.
const errorFaultCount = 2

// errorFault answers the next two requests of key for one partition (for
// any partition, given no topic) with err. REQUEST_TIMED_OUT on produce is answered after the broker wrote the
// records, as a real broker's timeout can be.
func errorFault(name string, key kmsg.Key, err *kerr.Error) kafkaFault {
	return kafkaFault{name: name, inject: func(f *kafkaFaults, topic string, partition int32) error {
		fault := kfake.Fault{Keys: []kmsg.Key{key}, Topic: topic, Err: err, Count: errorFaultCount}
		if topic != "" {
			fault.Partitions = []int32{partition}
		}
		h := f.cluster.Fault(fault)
		f.mu.Lock()
		f.handles[name] = append(f.handles[name], h)
		f.mu.Unlock()
		return nil
	}}
}

// droppedConnection closes the connection of the next request of key,
// unanswered.
func droppedConnection(name string, key kmsg.Key) kafkaFault {
	return kafkaFault{name: name, inject: func(f *kafkaFaults, _ string, _ int32) error {
		f.arm(name)
		f.cluster.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			f.count(name)
			return nil, errors.New("dropped by the chaos scenario"), true
		})
		return nil
	}}
}

// stalledCluster holds the next request of key for d, then answers it.
// The control sleeps in place, so the cluster answers nothing else
// meanwhile: kfake's SleepControl, which would hold that one request
// alone, races with itself when a request sleeps a second time or after
// waiting behind a sleeping one (bsleep.enqueue rewrites the sleeping head
// that its wait goroutine reads unlocked), and the race detector stops the
// run.
func stalledCluster(name string, key kmsg.Key, d time.Duration) kafkaFault {
	return kafkaFault{name: name, inject: func(f *kafkaFaults, _ string, _ int32) error {
		f.arm(name)
		f.cluster.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			f.cluster.DropControl()
			time.Sleep(d)
			f.count(name)
			return nil, nil, false // then handled as usual
		})
		return nil
	}}
}

// moveLeader moves a partition's leadership to the next broker (any
// partition's, given no topic).
func moveLeader(f *kafkaFaults, topic string, partition int32) error {
	if topic == "" {
		topic, partition = restoredTopic(topics[f.c.intn(len(topics))]), int32(f.c.intn(partitions))
	}
	leader := f.cluster.LeaderFor(topic, partition)
	if leader < 0 {
		return nil // not created yet (a restore's target)
	}
	if err := f.cluster.MoveTopicPartition(topic, partition, (leader+1)%3); err != nil {
		return err
	}
	f.count("partition leader moved")
	return nil
}

// run injects a fault every every (randomly up to twice as long) until stop
// is closed: into a random partition of topics, or, without topics, into
// whichever the next request carries.
func (f *kafkaFaults) run(every time.Duration, topics []string, stop <-chan struct{}) error {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-time.After(every + time.Duration(f.c.intn(int(every/time.Millisecond)))*time.Millisecond):
		}
		kind := f.kinds[i%len(f.kinds)]
		if f.waiting(kind.name) {
			continue
		}
		topic, partition := "", int32(-1)
		if len(topics) > 0 {
			topic, partition = topics[f.c.intn(len(topics))], int32(f.c.intn(partitions))
		}
		if err := kind.inject(f, topic, partition); err != nil {
			return fmt.Errorf("inject %s: %w", kind.name, err)
		}
	}
}

// snapshot is every kind with how often it happened.
func (f *kafkaFaults) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, k := range f.kinds {
		out[k.name] = f.counts[k.name]
		for _, h := range f.handles[k.name] {
			out[k.name] += h.Hits()
		}
	}
	return out
}

// The Kafka faults scenario's restore commits about restoreCommits
// transactions, each held commitPace: at least 9 s.
const (
	restoreCommits = 300
	commitPace     = 30 * time.Millisecond
)

// kafkaFaultsScenario backs up while the source cluster misbehaves, then
// restores while the target cluster does.
func (c *chaos) kafkaFaultsScenario() row {
	r := row{scenario: "Kafka faults"}
	start := time.Now()
	const ns = "chaos-kafka"
	cluster, vol, p, err := c.volumeBackup(ns, "kafka")
	if err != nil {
		r.err = err
		return r
	}
	defer cluster.Close()
	w, err := c.startWorker(ns, vol, "kafka.log")
	if err != nil {
		r.err = err
		return r
	}
	waitStreams(w) // faults start once the streams run
	source := c.kafkaFaultsOn(cluster, backupKafkaFaults)
	stop := make(chan struct{})
	injected := make(chan error, 1)
	go func() { injected <- source.run(300*time.Millisecond, topics, stop) }()
	time.Sleep(c.kafkaFor)
	close(stop)
	produced, perr := p.finish()
	r.err = errors.Join(<-injected, perr, w.stop())
	if r.err == nil {
		r.err = c.finalRun(ns, vol, nil, produced, &r)
	}
	var target *kafkaFaults
	txnRecords := max(10, recordCount(produced)/restoreCommits)
	if r.err == nil {
		// Every kind of fault must come up during the restore, 0.3-0.6 s
		// apart: its commits are paced (commitPace each, as on a cluster
		// farther away than loopback) and its transactions sized for
		// about restoreCommits of them, so it lasts that long whatever
		// the machine's speed.
		target = c.kafkaFaultsOn(nil, restoreKafkaFaults)
		r.err = c.restoreAndCheck(ns, vol, produced, &r, restoreHow{
			flags: []string{"--transaction-records", strconv.Itoa(txnRecords), "--transaction-interval", "100ms"},
			// Faults for the first -kafka-for of the restore: a restore
			// of every record at this rate of faults would take long.
			during: func(t *kfake.Cluster, stop <-chan struct{}) error {
				paceCommits(t, commitPace)
				target.cluster = t
				enough := make(chan struct{})
				timer := time.AfterFunc(c.kafkaFor, func() { close(enough) })
				defer timer.Stop()
				go func() {
					select {
					case <-stop:
						if timer.Stop() {
							close(enough)
						}
					case <-enough:
					}
				}()
				return target.run(300*time.Millisecond, nil, enough)
			},
		})
	}
	r.faults = map[string]int{}
	for k, n := range source.snapshot() {
		r.faults["backup: "+k] = n
	}
	if target != nil {
		for k, n := range target.snapshot() {
			r.faults["restore: "+k] = n
		}
	}
	r.iterations = fmt.Sprintf("a fault every 0.3-0.6 s in the source cluster over %s of production and backup, then every 0.3-0.6 s in the target cluster over the first %[1]s of the restore (%d-record transactions, each commit held %s)", c.kafkaFor, txnRecords, commitPace)
	r.seconds = time.Since(start).Seconds()
	return r
}
