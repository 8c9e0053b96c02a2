package restore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/pkg/credentials"
	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/leader"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/workerlease"
)

// Options configure a restore worker.
type Options struct {
	Kube      kubernetes.Interface
	Armory    versioned.Interface
	Namespace string
	Name      string
	// Identity names this worker in the Lease: the pod's name.
	Identity string
	// StoragePath is where a volume Storage is mounted.
	StoragePath    string
	Lease          leader.Timings
	StatusInterval time.Duration
	// A transaction is committed at TxnRecords records, TxnBytes record
	// bytes, or TxnInterval after it began, whichever comes first.
	TxnRecords  int
	TxnBytes    int64
	TxnInterval time.Duration
	// Parallel is how many partitions are read at once.
	Parallel int
	Registry prometheus.Registerer
	// Ready is told when the worker starts and stops restoring.
	Ready func(bool)
}

// Defaults of Options.
const (
	DefaultTxnRecords  = 50_000
	DefaultTxnBytes    = 32 << 20
	DefaultTxnInterval = 2 * time.Second
	DefaultParallel    = 8
)

// Errors Run returns, for the exit code.
var (
	// ErrPermanent: a preflight check failed or the restore hit an error
	// retrying cannot fix; the status says which.
	ErrPermanent = errors.New("the restore cannot go on")
	// ErrInterrupted: stopped before the end (SIGTERM, disabled, Lease lost,
	// fenced by a newer worker); the next run resumes from what was committed.
	ErrInterrupted = errors.New("the restore was interrupted; what was committed is kept and the next run resumes")
)

// Run runs the Restore to completion: nil once every selected record is
// written and committed (or was already), else ErrPermanent or
// ErrInterrupted. It checks the Restore before taking its Lease, so a wrong
// name leaves no Lease behind.
func Run(ctx context.Context, o Options) error {
	r, err := o.Armory.KannikaV1alpha().Restores(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Restore %s/%s: %w", o.Namespace, o.Name, err)
	}
	if meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha.RestoreComplete) {
		klog.FromContext(ctx).Info("The Restore is already Done: nothing to write", "restore", klog.KObj(r))
		return nil
	}
	m := newMetrics(o.Registry)
	held := func(h bool) {
		m.leaseHeld.Set(map[bool]float64{true: 1}[h])
		if o.Ready != nil {
			o.Ready(h)
		}
	}
	lease := leader.Config{Kube: o.Kube, Namespace: o.Namespace, Name: workerlease.ForRestore(o.Name), Identity: o.Identity,
		Labels: workerlease.RestoreLabels(o.Name), Timings: o.Lease, Held: held}
	ran := false
	err = leader.Run(ctx, lease, func(ctx context.Context, drain <-chan struct{}) error {
		ran = true
		return run(ctx, drain, o, m)
	})
	switch {
	case errors.Is(err, leader.ErrLost):
		return fmt.Errorf("%w: %w", ErrInterrupted, err)
	case err == nil && !ran:
		return ErrInterrupted // stopped while waiting for the Lease
	}
	return err
}

// restoreRun is one Restore being restored, while the Lease is held.
type restoreRun struct {
	opts     Options
	restore  *v1alpha.Restore
	metrics  *metrics
	status   *status
	writer   *writer
	bucket   storage.Bucket
	eventHub *v1alpha.EventHub
	settings kafka.Settings
	auth     kafka.Auth
	client   sarama.Client
	admin    sarama.ClusterAdmin
	plan     *Plan
	group    string
}

func run(ctx context.Context, drain <-chan struct{}, o Options, m *metrics) error {
	logger := klog.FromContext(ctx).WithValues("restore", klog.KRef(o.Namespace, o.Name))
	ctx = klog.NewContext(ctx, logger)
	r, err := o.Armory.KannikaV1alpha().Restores(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Restore %s/%s: %w", o.Namespace, o.Name, err)
	}
	if meta.IsStatusConditionTrue(r.Status.Conditions, v1alpha.RestoreComplete) {
		return nil
	}
	rr := &restoreRun{opts: o, restore: r, metrics: m, status: newStatus(r), group: "armory-restore-" + string(r.UID)}
	rr.writer = &writer{client: o.Armory, name: o.Name, namespace: o.Namespace, status: rr.status}
	defer rr.close()

	// Stop, as on SIGTERM, when the Restore is disabled or deleted.
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopNow := func() { stopOnce.Do(func() { close(stop) }) }
	context.AfterFunc(ctx, stopNow)
	go func() {
		select {
		case <-drain:
			stopNow()
		case <-stop:
		}
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	rr.watch(watchCtx, func(reason string) {
		logger.Info("Stopping: " + reason)
		stopNow()
	})
	reportCtx, stopReport := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() { defer close(reported); rr.writer.every(reportCtx, o.StatusInterval) }()
	defer func() { stopReport(); <-reported }()

	backoff := time.Second
	for {
		before, _ := rr.status.totals()
		err := rr.attempt(ctx, stop)
		var planErrs planErrors
		var corrupt *segment.CorruptError
		var perm *permanentError
		switch {
		case err == nil:
			rr.status.completed()
			rr.status.set(v1alpha.RestoreRetrying, false, "Done", "every selected record is written")
			rr.status.set(v1alpha.RestoreComplete, true, "Done", rr.doneMessage())
			rr.status.set(v1alpha.RestoreFailed, false, "Done", "no failure")
			restored, total := rr.status.totals()
			logger.Info("Restore done", "records", restored, "selected", total)
			return rr.finalWrite(ctx)
		case ctx.Err() != nil:
			return nil // the Lease is lost: the successor owns the status
		case errors.Is(err, errStopped):
			restored, total := rr.status.totals()
			logger.Info("Stopped; the next run resumes from what was committed", "records", restored, "selected", total)
			_ = rr.finalWrite(ctx)
			return ErrInterrupted
		case errors.Is(err, sarama.ErrProducerFenced), errors.Is(err, sarama.ErrInvalidProducerEpoch):
			// Fenced while still holding the Lease: a stale worker of this
			// Restore (one that lost its Lease but had not yet stopped)
			// started a producer. Its transaction is aborted; a new
			// producer of ours fences it in turn, and it stops as soon as it
			// sees its Lease is gone. Nothing it wrote is visible.
			logger.Info("Fenced by a stale worker of this Restore; starting a new producer, which fences it", "err", err.Error())
		case errors.As(err, &planErrs):
			rr.status.set(v1alpha.RestorePreflight, false, "PreflightFailed", joinProblems(planErrs))
			rr.status.set(v1alpha.RestoreRetrying, false, "PreflightFailed", "nothing was written")
			_ = rr.finalWrite(ctx)
			return fmt.Errorf("%w: %s", ErrPermanent, joinProblems(planErrs))
		case errors.As(err, &corrupt), errors.As(err, &perm):
			restored, _ := rr.status.totals()
			reason := "CorruptSegment"
			msg := fmt.Sprintf("%v; the %d records before it are restored and committed, nothing after it is written", err, restored)
			if perm != nil {
				reason = perm.reason
				msg = fmt.Sprintf("%v; %d records were restored and committed before it", err, restored)
			}
			rr.status.set(v1alpha.RestoreFailed, true, reason, msg)
			rr.status.set(v1alpha.RestoreRetrying, false, reason, "stopped")
			_ = rr.finalWrite(ctx)
			return fmt.Errorf("%w: %s", ErrPermanent, msg)
		}
		// An attempt that committed something ends the run of failures:
		// the next fault, hours into a restore, waits 1 s again, not 30.
		if after, _ := rr.status.totals(); after > before {
			backoff = time.Second
		}
		rr.metrics.errors.WithLabelValues(errorKind(err)).Inc()
		rr.status.set(v1alpha.RestoreRetrying, true, "Retrying", fmt.Sprintf("%v; retrying in %s", err, backoff))
		_ = rr.writer.write(ctx)
		logger.Error(err, "Restore attempt failed; retrying from what was committed", "in", backoff)
		select {
		case <-stop:
			_ = rr.finalWrite(ctx)
			return ErrInterrupted
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		rr.closeKafka() // reconnect from scratch
	}
}

// finalWrite writes the status once more with a deadline of its own.
func (rr *restoreRun) finalWrite(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return rr.writer.write(wctx)
}

func (rr *restoreRun) doneMessage() string {
	restored, _ := rr.status.totals()
	msg := fmt.Sprintf("%d records restored", restored)
	var gaps int64
	for _, t := range rr.plan.Topics {
		gaps += t.GapPositions
	}
	if gaps > 0 {
		msg += fmt.Sprintf("; %d positions in the window were not in the backup (Kafka's retention removed them first): see status.topics[].gaps", gaps)
	}
	return msg
}

var errStopped = errors.New("stopped")

// permanentError is an error retrying cannot fix.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

type planErrors []*PlanError

func (p planErrors) Error() string { return joinProblems(p) }

// attempt runs the restore from what Kafka says was committed. It returns
// nil when every planned partition is done.
func (rr *restoreRun) attempt(ctx context.Context, stop <-chan struct{}) error {
	logger := klog.FromContext(ctx)
	if err := rr.connect(ctx, stop); err != nil {
		return err
	}
	if rr.plan == nil {
		plan, err := rr.makePlan(ctx)
		if err != nil {
			return err
		}
		rr.plan = plan
		rr.status.setPlan(plan)
		records, bytes := plan.Totals()
		logger.Info("Planned", "topics", len(plan.Topics), "records", records, "bytes", bytes)
	}
	if missing, err := exactlyOnceSupport(rr.client); err != nil {
		return err
	} else if missing != "" {
		return planErrors{{Field: "spec.sink", Message: missing}}
	}
	// Starting the transactional producer fences any earlier producer of
	// this Restore and settles its open transaction: only then is the
	// committed progress final.
	txnID := rr.group
	settings, err := kafka.NewTransactionalSettings(rr.eventHub.Spec.Kafka.Properties, rr.auth, txnID)
	if err != nil {
		return planErrors{{Field: "spec.sink", Message: fmt.Sprintf("EventHub %q: %v", rr.eventHub.Name, err)}}
	}
	producer, err := sarama.NewAsyncProducer(settings.Brokers, settings.Config)
	if err != nil {
		return classifyKafka(fmt.Errorf("start the transactional producer %s: %w", txnID, err))
	}
	defer producer.Close()

	progress, err := fetchProgress(rr.admin, rr.group, rr.plan)
	if err != nil {
		return err
	}
	if len(progress) == 0 && rr.restore.Status.StartTime != nil {
		return &permanentError{reason: "ProgressLost", err: fmt.Errorf(
			"the restore started at %s but Kafka no longer holds its progress (consumer group %s has no offsets; group offsets expire after the cluster's offsets.retention.minutes, e.g. while a Restore is disabled for long): resuming could write records twice, so it stops; check the target topics and restore what is missing with a new Restore",
			rr.restore.Status.StartTime.UTC().Format(time.RFC3339), rr.group)}
	}
	rr.status.commit(progress)
	claimed := Claimed{}
	for k := range progress {
		if claimed[k.topic] == nil {
			claimed[k.topic] = map[int32]bool{}
		}
		claimed[k.topic][k.partition] = true
	}
	targets, err := describeTargets(rr.client, rr.admin, rr.plan)
	if err != nil {
		return classifyKafka(err)
	}
	if problems := Preflight(rr.plan, targets, claimed, rr.restore.Spec.Config.CreateTopics, rr.eventHub.Name); len(problems) > 0 {
		return planErrors(problems)
	}
	if rr.restore.Spec.Config.CreateTopics {
		created, err := createTargets(rr.admin, rr.plan, targets, kafka.ReplicationFactor(rr.eventHub.Spec.Kafka.Properties))
		if err != nil {
			return classifyKafka(err)
		}
		for _, t := range created {
			logger.Info("Created target topic", "topic", t)
		}
	}
	if err := rr.claim(producer, progress); err != nil {
		return classifyKafka(err)
	}
	rr.status.set(v1alpha.RestorePreflight, true, "Passed", "every check passed before the first write")
	rr.status.set(v1alpha.RestoreRetrying, false, "Restoring", "writing")
	rr.status.set(v1alpha.RestoreFailed, false, "Restoring", "no failure")
	rr.status.started()
	if err := rr.writer.write(ctx); err != nil {
		logger.Error(err, "Could not report progress; will retry")
	}
	return rr.pipeline(ctx, stop, producer, progress)
}

// claim commits, in one transaction with no records, the start position of
// every planned partition that has no progress yet. From then on, what
// those partitions hold past their start is this Restore's own writes, and
// the emptiness check no longer applies to them.
func (rr *restoreRun) claim(producer sarama.AsyncProducer, progress map[partitionKey]committed) error {
	offsets := map[string][]*sarama.PartitionOffsetMetadata{}
	for _, t := range rr.plan.Topics {
		for _, p := range t.Partitions {
			k := partitionKey{t.Target, p.Partition}
			if _, ok := progress[k]; ok {
				continue
			}
			c := committed{next: p.From}
			progress[k] = c
			md := c.metadata()
			offsets[t.Target] = append(offsets[t.Target], &sarama.PartitionOffsetMetadata{Partition: p.Partition, Offset: c.next, Metadata: &md})
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	if err := producer.BeginTxn(); err != nil {
		return err
	}
	if err := producer.AddOffsetsToTxn(offsets, rr.group); err != nil {
		_ = producer.AbortTxn()
		return err
	}
	if err := producer.CommitTxn(); err != nil {
		_ = producer.AbortTxn()
		return fmt.Errorf("commit the restore's start positions: %w", err)
	}
	rr.metrics.txnCommitted.Inc()
	rr.status.commit(progress)
	return nil
}

// pipeline reads the planned partitions (Parallel at a time) and writes
// their records in transactions, each committing the progress it covers.
func (rr *restoreRun) pipeline(ctx context.Context, stop <-chan struct{}, producer sarama.AsyncProducer, progress map[partitionKey]committed) error {
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	batches := make(chan batch, 2*rr.opts.Parallel)
	slots := make(chan struct{}, rr.opts.Parallel)
	var readers sync.WaitGroup
	defer readers.Wait()
	defer cancelRead()
	pending := 0
	for ti := range rr.plan.Topics {
		t := &rr.plan.Topics[ti]
		for pi := range t.Partitions {
			pp := &t.Partitions[pi]
			pending++
			from := progress[partitionKey{t.Target, pp.Partition}].next
			readers.Go(func() {
				select {
				case slots <- struct{}{}:
					defer func() { <-slots }()
				case <-readCtx.Done():
					return
				}
				// A batch never outgrows a transaction.
				readPartition(readCtx, rr.bucket, pp, ti, pi, from, min(batchRecords, max(rr.opts.TxnRecords, 1)), batches)
			})
		}
	}
	// Produce errors surface when the transaction commits; the first one
	// says why.
	var produceErr error
	var errMu sync.Mutex
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for perr := range producer.Errors() {
			errMu.Lock()
			if produceErr == nil {
				produceErr = perr.Err
			}
			errMu.Unlock()
		}
	}()
	firstProduceErr := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return produceErr
	}
	return rr.write(ctx, stop, producer, batches, pending, progress, firstProduceErr)
}

// txn is what one transaction holds.
type txn struct {
	records int
	bytes   int64
	topics  map[string]int64 // records per source topic
	tbytes  map[string]int64
	next    map[partitionKey]committed
}

// write is the writer loop: begin a transaction, produce the batches that
// arrive until it is full or old enough, commit it with the progress it
// covers, record that progress, repeat until every partition is done.
func (rr *restoreRun) write(ctx context.Context, stop <-chan struct{}, producer sarama.AsyncProducer, batches <-chan batch,
	pending int, progress map[partitionKey]committed, produceErr func() error) error {
	logger := klog.FromContext(ctx)
	o := rr.opts
	for pending > 0 {
		if err := producer.BeginTxn(); err != nil {
			return classifyKafka(fmt.Errorf("begin a transaction: %w", err))
		}
		began := time.Now()
		t := txn{topics: map[string]int64{}, tbytes: map[string]int64{}, next: map[partitionKey]committed{}}
		deadline := time.NewTimer(o.TxnInterval)
		var readErr error
		stopped := false
	fill:
		for t.records < o.TxnRecords && t.bytes < o.TxnBytes && pending > 0 {
			select {
			case b := <-batches:
				tp := &rr.plan.Topics[b.topic]
				pp := &tp.Partitions[b.part]
				k := partitionKey{tp.Target, pp.Partition}
				c, ok := t.next[k]
				if !ok {
					c = progress[k]
				}
				msgs := rr.messages(tp.Target, pp.Partition, b.records)
				for i := range msgs {
					select {
					case producer.Input() <- &msgs[i].msg:
					case <-ctx.Done():
						// The Lease is lost: abandon the transaction
						// without a word to Kafka (no abort: sarama may
						// re-initialise the producer, which would fence
						// the worker that now holds the Lease).
						deadline.Stop()
						return ctx.Err()
					}
				}
				c.next = max(c.next, b.next)
				c.records += int64(len(b.records))
				c.bytes += b.bytes
				t.next[k] = c
				t.records += len(b.records)
				t.bytes += b.bytes
				t.topics[tp.Source] += int64(len(b.records))
				t.tbytes[tp.Source] += b.bytes
				if b.done {
					pending--
				}
				if b.err != nil {
					readErr = b.err
					break fill
				}
			case <-deadline.C:
				break fill
			case <-stop:
				stopped = true
				break fill
			case <-ctx.Done():
				deadline.Stop()
				return ctx.Err() // abandoned, as above
			}
		}
		deadline.Stop()
		commitStart := time.Now()
		if err := rr.commit(producer, t); err != nil {
			rr.metrics.txnAborted.Inc()
			if perr := produceErr(); perr != nil {
				err = fmt.Errorf("%w (first produce error: %w)", err, perr)
			}
			if ctx.Err() == nil && producer.TxnStatus()&sarama.ProducerTxnFlagAbortableError != 0 {
				_ = producer.AbortTxn()
			}
			return rr.classifyWrite(err)
		}
		took := time.Since(began)
		for k, c := range t.next {
			progress[k] = c
		}
		rr.status.commit(t.next)
		rr.metrics.txnCommitted.Inc()
		rr.metrics.commitDuration.Observe(took.Seconds())
		for topic, n := range t.topics {
			rr.metrics.recordsRestored.WithLabelValues(topic).Add(float64(n))
			rr.metrics.bytesRestored.WithLabelValues(topic).Add(float64(t.tbytes[topic]))
		}
		restored, total := rr.status.totals()
		logger.Info("Committed transaction", "records", t.records, "bytes", t.bytes, "partitions", len(t.next),
			"took", took, "commit", time.Since(commitStart), "restored", restored, "selected", total)
		if readErr != nil {
			return readErr
		}
		if stopped {
			return errStopped
		}
	}
	return nil
}

// commit adds the transaction's progress to it and commits both at once.
func (rr *restoreRun) commit(producer sarama.AsyncProducer, t txn) error {
	if len(t.next) > 0 {
		offsets := map[string][]*sarama.PartitionOffsetMetadata{}
		for k, c := range t.next {
			md := c.metadata()
			offsets[k.topic] = append(offsets[k.topic], &sarama.PartitionOffsetMetadata{Partition: k.partition, Offset: c.next, Metadata: &md})
		}
		if err := producer.AddOffsetsToTxn(offsets, rr.group); err != nil {
			return fmt.Errorf("add the restore's progress to the transaction: %w", err)
		}
	}
	if err := producer.CommitTxn(); err != nil {
		return fmt.Errorf("commit a transaction of %d records: %w", t.records, err)
	}
	return nil
}

// messages are the records to produce for a batch of backed-up records:
// same partition, key, value, headers (in order, null values kept) and
// timestamp. They are allocated together, one slab per batch, as they live
// and die together (until their transaction commits): per-record
// allocations are most of a restore's garbage.
func (rr *restoreRun) messages(topic string, partition int32, recs []*segment.Record) []produced {
	legacy := rr.restore.Spec.Config.LegacyOffsetHeader
	headers := 0
	for _, rec := range recs {
		headers += len(rec.Headers)
		if legacy != "" {
			headers++
		}
	}
	out := make([]produced, len(recs))
	hs := make([]sarama.RecordHeader, 0, headers)
	for i, rec := range recs {
		p := &out[i]
		p.msg = sarama.ProducerMessage{Topic: topic, Partition: partition, Timestamp: rec.Timestamp}
		if rec.Key != nil {
			p.key = rec.Key
			p.msg.Key = &p.key
		}
		if rec.Value != nil {
			p.value = rec.Value
			p.msg.Value = &p.value
		}
		first := len(hs)
		for _, h := range rec.Headers {
			hs = append(hs, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		if legacy != "" {
			hs = append(hs, sarama.RecordHeader{Key: []byte(legacy), Value: strconv.AppendInt(nil, rec.Offset, 10)})
		}
		if len(hs) > first {
			p.msg.Headers = hs[first:len(hs):len(hs)]
		}
	}
	return out
}

// produced is a message with its key and value, so that the Encoders the
// message holds point into the same allocation.
type produced struct {
	msg        sarama.ProducerMessage
	key, value sarama.ByteEncoder
}

// classifyWrite turns a failed commit into a permanent error when retrying
// cannot help: a target topic deleted, writes not authorized.
func (rr *restoreRun) classifyWrite(err error) error {
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) && rr.client != nil {
		for _, t := range rr.plan.Topics {
			_ = rr.client.RefreshMetadata(t.Target)
			if _, perr := rr.client.Partitions(t.Target); errors.Is(perr, sarama.ErrUnknownTopicOrPartition) {
				return &permanentError{reason: "TargetDeleted", err: fmt.Errorf(
					"target topic %q was deleted while the restore wrote to it: recreate it, or restore into another topic with a new Restore", t.Target)}
			}
		}
	}
	return classifyKafka(err)
}

// classifyKafka marks authorization failures as permanent, with what the
// principal needs.
func classifyKafka(err error) error {
	for _, kerr := range []sarama.KError{sarama.ErrTopicAuthorizationFailed, sarama.ErrGroupAuthorizationFailed,
		sarama.ErrTransactionalIDAuthorizationFailed, sarama.ErrClusterAuthorizationFailed, sarama.ErrSASLAuthenticationFailed} {
		if errors.Is(err, kerr) {
			return &permanentError{reason: "Unauthorized", err: fmt.Errorf(
				"%w: the Kafka principal of spec.sinkCredentialsFrom needs Write and Describe on the target topics, Read on group armory-restore-<uid>, Write on transactional id armory-restore-<uid>, and Create if createTopics is set", err)}
		}
	}
	return err
}

func errorKind(err error) string {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		return "kafka"
	}
	return "other"
}

// connect opens the Storage and the Kafka cluster the Restore names, with
// its Credentials, read now.
func (rr *restoreRun) connect(ctx context.Context, stop <-chan struct{}) error {
	o, r := rr.opts, rr.restore
	if rr.bucket != nil && rr.client != nil {
		return nil
	}
	creds := credentials.Reader{Kube: o.Kube, Armory: o.Armory, Namespace: o.Namespace}
	eh, err := o.Armory.KannikaV1alpha().EventHubs(o.Namespace).Get(ctx, r.Spec.Sink, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("spec.sink: read EventHub %q: %w", r.Spec.Sink, err)
	}
	rr.eventHub = eh
	if rr.bucket == nil {
		st, err := o.Armory.KannikaV1alpha().Storages(o.Namespace).Get(ctx, r.Spec.Source, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("spec.source: read Storage %q: %w", r.Spec.Source, err)
		}
		sourceCreds, err := creds.Get(ctx, "spec.sourceCredentialsFrom", r.Spec.SourceCredentialsFrom)
		if err != nil {
			return err
		}
		if rr.bucket, err = creds.OpenStorage(ctx, st, "spec.sourceCredentialsFrom", sourceCreds, o.StoragePath); err != nil {
			return err
		}
		if err := storage.Probe(ctx, rr.bucket); err != nil {
			rr.bucket.Close()
			rr.bucket = nil
			return fmt.Errorf("cannot use Storage %q: %w", st.Name, err)
		}
	}
	sinkCreds, err := creds.Get(ctx, "spec.sinkCredentialsFrom", r.Spec.SinkCredentialsFrom)
	if err != nil {
		return err
	}
	auth, err := creds.KafkaAuth(ctx, sinkCreds)
	if err != nil {
		return fmt.Errorf("spec.sinkCredentialsFrom: %w", err)
	}
	if rr.settings, err = kafka.NewSettings(eh.Spec.Kafka.Properties, auth); err != nil {
		return fmt.Errorf("EventHub %q: %w", eh.Name, err)
	}
	rr.auth = auth
	// A stop (SIGTERM, disabled) ends the connecting too.
	if rr.client, err = kafka.Connect(ctx, stop, rr.settings); err != nil {
		if errors.Is(err, kafka.ErrStopped) || ctx.Err() != nil {
			return errStopped
		}
		return classifyKafka(fmt.Errorf("connect to Kafka at %v (EventHub %q): %w", rr.settings.Brokers, eh.Name, err))
	}
	if rr.admin, err = sarama.NewClusterAdminFromClient(rr.client); err != nil {
		return fmt.Errorf("Kafka admin client: %w", err)
	}
	klog.FromContext(ctx).Info("Connected", "kafka", rr.settings.Brokers, "storage", rr.bucket.Location())
	return nil
}

// makePlan lists what the Storage holds of each source topic and plans the
// restore from it, with exact totals.
func (rr *restoreRun) makePlan(ctx context.Context) (*Plan, error) {
	stored := map[string]*Stored{}
	for _, m := range rr.restore.Spec.Config.Topics {
		st := &Stored{Partitions: map[int32]*layout.PartitionState{}}
		meta, ok, err := layout.ReadTopicMeta(ctx, rr.bucket, m.Source)
		if err != nil {
			return nil, err
		}
		if ok {
			st.Meta = &meta
		}
		parts, err := layout.ListPartitions(ctx, rr.bucket, m.Source)
		if err != nil {
			return nil, fmt.Errorf("list the backup of topic %q: %w", m.Source, err)
		}
		for _, p := range parts {
			ps, err := layout.ListPartition(ctx, rr.bucket, m.Source, p)
			if err != nil {
				return nil, &permanentError{reason: "BackupDamaged", err: err}
			}
			st.Partitions[p] = ps
		}
		stored[m.Source] = st
	}
	plan, problems := NewPlan(rr.restore.Spec, rr.bucket.Location(), stored)
	if len(problems) > 0 {
		return nil, planErrors(problems)
	}
	if err := CountPartial(ctx, rr.bucket, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// watch calls stop when the Restore is disabled or deleted.
func (rr *restoreRun) watch(ctx context.Context, stop func(reason string)) {
	o := rr.opts
	lw := cache.NewListWatchFromClient(o.Armory.KannikaV1alpha().RESTClient(), "restores", o.Namespace,
		fields.OneTermEqualSelector("metadata.name", o.Name))
	check := func(obj any) {
		if r, ok := obj.(*v1alpha.Restore); ok && (r.Spec.Enabled == nil || !*r.Spec.Enabled) {
			stop("spec.enabled is false")
		}
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &v1alpha.Restore{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    check,
			UpdateFunc: func(_, obj any) { check(obj) },
			DeleteFunc: func(any) { stop("the Restore was deleted") },
		},
	})
	go informer.RunWithContext(ctx)
}

func (rr *restoreRun) closeKafka() {
	if rr.admin != nil {
		_ = rr.admin.Close() // closes the client too
	} else if rr.client != nil {
		_ = rr.client.Close()
	}
	rr.admin, rr.client = nil, nil
}

func (rr *restoreRun) close() {
	rr.closeKafka()
	if rr.bucket != nil {
		_ = rr.bucket.Close()
	}
}
