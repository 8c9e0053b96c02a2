package worker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
)

// FieldManager is the worker's server-side apply field manager: it owns
// status.streams, streamsReady, lag and lastUploadTime, and nothing the
// controller writes.
const FieldManager = "armory-worker"

// Stream states reported in status.streams[].state.
const (
	StreamStreaming = v1alpha.StreamStreaming
	StreamRetrying  = v1alpha.StreamRetrying
	StreamStopped   = v1alpha.StreamStopped
	StreamFailed    = v1alpha.StreamFailed
)

// progress is what the worker knows of every stream, for status and metrics.
type progress struct {
	mu      sync.Mutex
	streams map[string]*streamProgress
	metrics *metrics
	// stoppedAt is when the worker began to stop (zero while it runs).
	stoppedAt time.Time
}

type streamProgress struct {
	topic      string
	state      v1alpha.StreamState
	message    string
	disabled   bool // Stopped because the Backup disables it
	partitions map[int32]*partitionProgress
}

type partitionProgress struct {
	mu         *sync.Mutex
	topic      string
	partition  int32
	metrics    *metrics
	next       int64 // where the backup continues: the end of the last stored object
	records    int64 // records stored, all segments
	bytes      int64
	hwm        int64 // Kafka's high watermark, as last seen
	lastUpload time.Time
	err        error // the current attempt's failure, until a new attempt starts
	// lastErr, lastErrAt and recentErrs keep a failure visible after the
	// retry that cleared err: a fault on one call in ten is otherwise gone
	// before any status write could show it.
	lastErr    error
	lastErrAt  time.Time
	recentErrs int
	// warning is shown in the stream's status until the worker restarts:
	// e.g. records lost to retention before the backup reached them.
	warning string
}

func newProgress(m *metrics) *progress {
	return &progress{streams: map[string]*streamProgress{}, metrics: m}
}

func (p *progress) stream(topic string) *streamProgress {
	s, ok := p.streams[topic]
	if !ok {
		s = &streamProgress{topic: topic, partitions: map[int32]*partitionProgress{}}
		p.streams[topic] = s
	}
	return s
}

// setStream records a stream's state and why.
func (p *progress) setStream(topic string, state v1alpha.StreamState, message string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stream(topic)
	s.state, s.message, s.disabled = state, message, false
}

// disableStream: the stream is disabled in the Backup (not merely stopped
// with the worker).
func (p *progress) disableStream(topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stream(topic)
	s.state, s.message, s.disabled = StreamStopped, "", true
}

// workerStopping: the worker is stopping (SIGTERM, the Backup paused); its
// enabled streams stop with it, and their lag is no longer measured.
func (p *progress) workerStopping(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stoppedAt = at
}

// forget drops a stream no longer in the Backup.
func (p *progress) forget(topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.streams[topic]; ok {
		for part := range s.partitions {
			p.metrics.lag.DeleteLabelValues(topic, strconv.Itoa(int(part)))
		}
	}
	delete(p.streams, topic)
}

func (p *progress) partition(topic string, partition int32) *partitionProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stream(topic)
	pp, ok := s.partitions[partition]
	if !ok {
		pp = &partitionProgress{mu: &p.mu, topic: topic, partition: partition, metrics: p.metrics}
		s.partitions[partition] = pp
	}
	return pp
}

func (pp *partitionProgress) stored(st *layout.PartitionState) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.next, pp.records, pp.bytes = st.Next, st.Records, st.Bytes
	if st.LastStored.After(pp.lastUpload) {
		// Storage says when the last segment landed, also after a restart
		// that has not uploaded yet.
		pp.lastUpload = st.LastStored
	}
	pp.updateLag()
}

func (pp *partitionProgress) uploaded(sum segment.Summary, at time.Time) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.next = sum.End
	pp.records += sum.Records
	pp.bytes += sum.Bytes
	pp.lastUpload = at
	pp.updateLag()
}

func (pp *partitionProgress) gap(start, end int64) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.warning = fmt.Sprintf("partition %d: offsets %d to %d were removed by Kafka's retention before the backup reached them (gap marker stored)", pp.partition, start, end-1)
	pp.next = end
	pp.updateLag()
}

func (pp *partitionProgress) highWater(hw int64) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if hw > pp.hwm {
		pp.hwm = hw
	}
	pp.updateLag()
}

func (pp *partitionProgress) setError(err error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.err = err
	if err == nil {
		return
	}
	now := time.Now()
	if now.Sub(pp.lastErrAt) > retryWindow {
		pp.recentErrs = 0
	}
	pp.lastErr, pp.lastErrAt = err, now
	pp.recentErrs++
}

// retryWindow is how long a partition's failure keeps its stream Retrying
// after the failure was retried.
const retryWindow = time.Minute

// retrying describes the partition's failures of the last retryWindow, or "".
func (pp *partitionProgress) retrying(now time.Time) string {
	if pp.lastErr == nil || now.Sub(pp.lastErrAt) > retryWindow {
		return ""
	}
	if pp.err != nil {
		return fmt.Sprintf("partition %d: %v (retrying)", pp.partition, pp.err)
	}
	return fmt.Sprintf("partition %d: %d failures in the last minute, retried; the last at %s: %v", pp.partition,
		pp.recentErrs, pp.lastErrAt.UTC().Format(time.RFC3339), pp.lastErr)
}

func (pp *partitionProgress) lag() int64 { return max(pp.hwm-pp.next, 0) }

func (pp *partitionProgress) updateLag() {
	pp.metrics.lag.WithLabelValues(pp.topic, strconv.Itoa(int(pp.partition))).Set(float64(pp.lag()))
}

// apply builds the worker's part of the Backup's status.
func (p *progress) apply(name, namespace string) *applyv1alpha.BackupApplyConfiguration {
	p.mu.Lock()
	defer p.mu.Unlock()
	topics := make([]string, 0, len(p.streams))
	for t := range p.streams {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	status := applyv1alpha.BackupStatus()
	var totalLag int64
	var lastUpload time.Time
	running, enabled := 0, 0
	now := time.Now()
	for _, t := range topics {
		s := p.streams[t]
		state := s.state
		message := s.message
		ss := applyv1alpha.BackupStreamStatus().WithTopic(t)
		var records, bytes, lag int64
		var streamUpload time.Time
		parts := make([]int32, 0, len(s.partitions))
		for part := range s.partitions {
			parts = append(parts, part)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		for _, part := range parts {
			pp := s.partitions[part]
			records += pp.records
			bytes += pp.bytes
			lag += pp.lag()
			if pp.lastUpload.After(streamUpload) {
				streamUpload = pp.lastUpload
			}
			pa := applyv1alpha.PartitionProgress().WithPartition(part).WithNextOffset(pp.next)
			if state != StreamStopped {
				pa.WithLag(pp.lag()) // a stopped stream's lag is not measured: say nothing rather than a stale number
			}
			if pp.next > 0 {
				pa.WithLastOffsetStored(pp.next - 1)
			}
			ss.WithPartitions(pa)
			if why := pp.retrying(now); why != "" && state == StreamStreaming {
				state, message = StreamRetrying, why
			}
			if pp.warning != "" && message == "" {
				message = pp.warning
			}
		}
		ss.WithState(state).WithRecordsStored(records).WithBytesStored(bytes)
		if state != StreamStopped {
			ss.WithLag(lag)
		}
		if state == StreamStopped && !s.disabled && !p.stoppedAt.IsZero() && message == "" {
			message = "not running: the worker stopped at " + p.stoppedAt.UTC().Format(time.RFC3339) + "; lag is not measured until a worker runs"
		}
		if message != "" {
			ss.WithMessage(message)
		}
		if !streamUpload.IsZero() {
			ss.WithLastUploadTime(metav1.NewTime(streamUpload.Truncate(time.Second)))
		}
		if streamUpload.After(lastUpload) {
			lastUpload = streamUpload
		}
		if !s.disabled {
			enabled++ // stopped with the worker, it is still one of the Backup's streams
		}
		if state == StreamStreaming || state == StreamRetrying {
			running++ // a retrying stream still backs up
			totalLag += lag
		}
		status.WithStreams(ss)
	}
	status.WithStreamsReady(fmt.Sprintf("%d/%d", running, enabled))
	if running > 0 {
		status.WithLag(totalLag) // else unset: LAG is blank, not 0, while nothing measures it
	}
	if !lastUpload.IsZero() {
		status.WithLastUploadTime(metav1.NewTime(lastUpload.Truncate(time.Second)))
	}
	return applyv1alpha.Backup(name, namespace).WithStatus(status)
}

// report writes the worker's status every interval while it changed, until
// ctx ends, and once more at the end (with a short deadline of its own) if
// stillHeld says the Lease is still held: a worker that lost its Lease
// leaves the status to its successor.
func (p *progress) report(ctx context.Context, client versioned.Interface, name, namespace string, interval time.Duration, stillHeld func() bool) {
	logger := klog.FromContext(ctx)
	var last *applyv1alpha.BackupApplyConfiguration
	write := func(ctx context.Context) {
		cur := p.apply(name, namespace)
		if last != nil && equality.Semantic.DeepEqual(cur, last) {
			return
		}
		_, err := client.KannikaV1alpha().Backups(namespace).ApplyStatus(ctx, cur, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			logger.Error(err, "Could not report progress in the Backup's status; will retry")
			return
		}
		last = cur
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if stillHeld() {
				final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				write(final)
				cancel()
			}
			return
		case <-tick.C:
			write(ctx)
		}
	}
}
