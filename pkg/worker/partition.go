package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
)

// segmentSettings say how a stream's segments are written.
type segmentSettings struct {
	codec     segment.Codec
	level     segment.Level
	rollBytes int64         // close a segment at this many uncompressed record bytes
	rollAge   time.Duration // ... or this long after its first record
}

// partitionBackup copies one partition into storage. Its run reads top to
// bottom: list what is stored → consume from there → fill a segment → upload
// it → advance. Storage is its only memory: after any failure it lists again.
type partitionBackup struct {
	topic     string
	partition int32
	settings  segmentSettings
	bucket    storage.Bucket
	client    sarama.Client
	consumer  sarama.Consumer
	metrics   *metrics
	progress  *partitionProgress
	// budget is the worker's memory budget; share is this partition's
	// part of it while it runs.
	budget *memoryBudget
	share  *budgetShare
	// verifyTopic is asked before every upload whether the topic is still
	// the one being backed up (not deleted and recreated).
	verifyTopic func() error
	// clock times the rollover by age and the progress reports; nil is
	// the wall clock.
	clock clock.WithTicker
	// counted is the position up to which this worker's metrics count the
	// stored segments; listed is false until the first listing set it.
	counted int64
	listed  bool
}

// errDrained ends a partition's run after its last segment is uploaded.
var errDrained = errors.New("drained")

// errConsumerClosed: the partition consumer's channels closed under the run
// (sarama closes them when the consumer shuts down); the run starts again.
var errConsumerClosed = errors.New("the Kafka partition consumer closed")

// run backs the partition up until ctx is cancelled (stop at once, e.g. the
// Lease is lost) or drain is closed (upload what is open, then stop).
func (p *partitionBackup) run(ctx context.Context, drain <-chan struct{}) {
	logger := klog.FromContext(ctx).WithValues("topic", p.topic, "partition", p.partition)
	ctx = klog.NewContext(ctx, logger)
	p.share = p.budget.join()
	defer p.share.leave()
	backoff := time.Second
	for {
		before := p.counted
		err := p.runOnce(ctx, drain)
		if p.counted > before {
			// Segments were stored since the last failure: this failure
			// is a new one, not the same one again.
			backoff = time.Second
		}
		switch {
		case ctx.Err() != nil, errors.Is(err, errDrained):
			return
		case errors.Is(err, errStreamConflict):
			// The stream reports it; this partition must not write again.
			p.progress.setError(err)
			logger.Error(err, "Partition backup stopped")
			return
		case errors.Is(err, storage.ErrExists):
			// Another writer stored this segment first (a stale worker, or a
			// newer one): drop ours and continue from what storage holds.
			p.metrics.errors.WithLabelValues(p.topic, "conflict").Inc()
			logger.Info("Another writer stored this position first; resuming from storage", "err", err.Error())
			continue
		}
		p.metrics.errors.WithLabelValues(p.topic, errorKind(err)).Inc()
		p.progress.setError(err)
		logger.Error(err, "Partition backup failed; retrying", "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-drain:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// errorKind is the errors_total kind of a partition failure: storage for
// what the bucket refused or could not do, kafka for everything else (the
// consumer, the cluster's metadata, a connection to a broker).
func errorKind(err error) string {
	if errors.As(err, new(storageError)) {
		return "storage"
	}
	return "kafka"
}

// storageError marks a failure of the bucket.
type storageError struct{ error }

func (e storageError) Unwrap() error { return e.error }

func (p *partitionBackup) runOnce(ctx context.Context, drain <-chan struct{}) error {
	// Temporary files a killed worker left behind (volume storage). Safe
	// here: this goroutine is the partition's only writer in this Backup
	// (the Lease) and is not writing now; a stale worker's Create whose
	// file this removes fails at its link and stores nothing.
	if tr, ok := p.bucket.(storage.TempRemover); ok {
		n, err := tr.RemoveTemp(ctx, layout.PartitionPrefix(p.topic, p.partition))
		if err != nil {
			return storageError{fmt.Errorf("remove temporary files: %w", err)}
		}
		if n > 0 {
			klog.FromContext(ctx).Info("Removed temporary files a killed writer left", "count", n)
		}
	}
	state, err := layout.ListPartition(ctx, p.bucket, p.topic, p.partition)
	if err != nil {
		return storageError{fmt.Errorf("list stored objects: %w", err)}
	}
	p.progress.stored(state)
	p.countAdopted(state)

	pc, next, err := p.consume(ctx, state.Next)
	if err != nil {
		return err
	}
	defer pc.Close()
	p.progress.setError(nil)

	// Segment N uploads while segment N+1 fills, so the consumer does not
	// wait for the storage nor the storage for the consumer. N+1 is handed
	// over only once N is stored: storage never holds a segment whose
	// predecessor is missing. If N fails, N+1 is dropped unread by
	// storage, and the next run starts again from what storage holds.
	var inflight *segmentUpload
	defer func() {
		if inflight != nil {
			<-inflight.done
		}
	}()
	for {
		seg, err := p.fill(ctx, drain, pc, next, inflight)
		if err != nil {
			return err
		}
		if seg.data != nil {
			if err := inflight.wait(); err != nil {
				p.drop(seg.data)
				return err
			}
			inflight = p.startUpload(ctx, seg.data, seg.sum)
			next = seg.sum.End
		}
		if seg.stop != nil {
			if err := inflight.wait(); err != nil {
				return err
			}
			return seg.stop
		}
	}
}

// segmentUpload is a closed segment being uploaded; done is closed once
// it is stored (err nil) or failed.
type segmentUpload struct {
	done chan struct{}
	err  error
}

// wait returns the upload's outcome once it has one (nil for no upload).
func (u *segmentUpload) wait() error {
	if u == nil {
		return nil
	}
	<-u.done
	return u.err
}

// startUpload uploads a closed segment in the background and releases its
// memory once done, stored or not.
func (p *partitionBackup) startUpload(ctx context.Context, data *segmentBuffer, sum segment.Summary) *segmentUpload {
	u := &segmentUpload{done: make(chan struct{})}
	go func() {
		defer close(u.done)
		u.err = p.upload(ctx, data, sum)
		p.drop(data)
	}()
	return u
}

// drop releases a closed segment's memory, uploaded or not.
func (p *partitionBackup) drop(data *segmentBuffer) {
	held := int64(data.Held())
	data.Release()
	p.share.uploaded(held)
}

// consume starts reading at next. If Kafka no longer has next (retention
// removed it before the backup got there), it stores a gap marker for the
// missing positions and starts at the earliest offset Kafka has.
func (p *partitionBackup) consume(ctx context.Context, next int64) (sarama.PartitionConsumer, int64, error) {
	pc, err := p.consumer.ConsumePartition(p.topic, p.partition, next)
	if err == nil {
		return pc, next, nil
	}
	if !errors.Is(err, sarama.ErrOffsetOutOfRange) {
		return nil, 0, fmt.Errorf("consume from offset %d: %w", next, err)
	}
	oldest, err := p.client.GetOffset(p.topic, p.partition, sarama.OffsetOldest)
	if err != nil {
		return nil, 0, fmt.Errorf("earliest offset: %w", err)
	}
	if next > oldest {
		newest, _ := p.client.GetOffset(p.topic, p.partition, sarama.OffsetNewest)
		return nil, 0, fmt.Errorf("storage holds this partition up to offset %d but Kafka ends at %d: the topic was truncated or recreated", next, newest)
	}
	if err := p.storeGap(ctx, next, oldest); err != nil {
		return nil, 0, err
	}
	pc, err = p.consumer.ConsumePartition(p.topic, p.partition, oldest)
	if err != nil {
		return nil, 0, fmt.Errorf("consume from the earliest offset %d: %w", oldest, err)
	}
	return pc, oldest, nil
}

func (p *partitionBackup) storeGap(ctx context.Context, start, end int64) error {
	gap := layout.Gap{Topic: p.topic, Partition: p.partition, Start: start, End: end, DetectedAt: time.Now().UTC(),
		Reason: "Kafka no longer had these offsets (retention) when the backup reached them"}
	body, _ := json.Marshal(gap)
	meta := map[string]string{layout.MetaEnd: strconv.FormatInt(end, 10), layout.MetaRecords: "0", layout.MetaBytes: "0"}
	if err := p.bucket.Create(ctx, layout.GapName(p.topic, p.partition, start), bytes.NewReader(body), meta); err != nil {
		return storageError{fmt.Errorf("store gap marker: %w", err)}
	}
	p.metrics.gaps.WithLabelValues(p.topic).Inc()
	p.progress.gap(start, end)
	klog.FromContext(ctx).Info("Kafka no longer has offsets the backup had not reached: stored a gap marker",
		"from", start, "to", end, "missing", end-start)
	return nil
}

// filledSegment is what fill read: the encoded segment (data nil if no
// record was read; the caller releases it once uploaded), and stop when this
// run must end once the segment is uploaded: errDrained, or the consumer's
// error. Records already read are uploaded even then, so that nothing read
// is lost to, say, retention removing what follows.
type filledSegment struct {
	data *segmentBuffer
	sum  segment.Summary
	stop error
}

// takeAtOnce bounds the records fill takes from the consumer's channel
// between two looks at its other cases (sarama's channel holds at most 256).
const takeAtOnce = 256

// fill reads records into a new segment starting at position start until it
// reaches the size or age limit, the memory budget asks for it, drain is
// closed, or Kafka reports an error. prev is the upload of the segment
// before it, if it is still in flight: if that fails, fill drops what it
// read and returns prev's error.
func (p *partitionBackup) fill(ctx context.Context, drain <-chan struct{}, pc sarama.PartitionConsumer, start int64, prev *segmentUpload) (seg filledSegment, err error) {
	buf := &segmentBuffer{}
	// What the open segment holds counts in the budget until it is
	// uploaded (closing, then uploaded, in runOnce) or dropped.
	defer func() {
		if seg.data == nil {
			buf.Release()
			p.share.setOpen(0)
		}
	}()
	w, err := segment.NewWriter(buf, p.settings.codec, p.partition, start, p.budget.blockSize())
	if err != nil {
		return seg, err
	}
	if err := w.SetLevel(p.settings.level); err != nil {
		return seg, err
	}
	clk := p.clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	held := func() int64 { return int64(buf.Held() + w.Held()) }
	var rollTimer <-chan time.Time
	var rec segment.Record // reused: Append copies what it keeps
	records := 0
	// Progress (high watermark, open records) is published once a second,
	// not per record.
	progressTicker := clk.NewTicker(time.Second)
	defer progressTicker.Stop()
	openRecords := p.metrics.openRecords.WithLabelValues(p.topic, strconv.Itoa(int(p.partition)))
	defer openRecords.Set(0)
	recordsRead := p.metrics.recordsRead.WithLabelValues(p.topic)
	msgs, errs := pc.Messages(), pc.Errors()
	var prevDone <-chan struct{}
	if prev != nil {
		prevDone = prev.done
	}
	for {
		select {
		case <-prevDone:
			if prev.err != nil {
				// What this segment holds follows a segment that was not
				// stored: it is read again after storage is listed.
				return seg, prev.err
			}
			prevDone = nil
			continue
		case msg, ok := <-msgs:
			if !ok {
				seg.stop = errConsumerClosed
				if records == 0 {
					return seg, nil
				}
				break // upload what was read
			}
			// The records already waiting in the channel are taken here,
			// not through the select one by one: its seven cases cost an
			// uncompressed backup about an eighth of its CPU. The other
			// cases wait for at most takeAtOnce records.
			full, before := false, records
			for n := 1; ; n++ {
				// A compressed batch can begin before the requested offset.
				if msg.Offset >= start {
					toRecord(msg, &rec)
					if err := w.Append(&rec); err != nil {
						return seg, err
					}
					records++
					if records == 1 {
						rollTimer = clk.After(p.settings.rollAge)
					}
					p.share.setOpen(held())
					if full = w.Summary().Bytes >= p.settings.rollBytes; full {
						break
					}
				}
				if n == takeAtOnce {
					break
				}
				select {
				case msg, ok = <-msgs:
				default:
					ok = false
				}
				if !ok {
					break // none waiting, or closed: the select sees which
				}
			}
			recordsRead.Add(float64(records - before))
			if !full {
				continue
			}
		case <-p.share.roll:
			if records == 0 {
				continue // asked for a segment already closed
			}
			p.metrics.earlyCloses.WithLabelValues(p.topic).Inc()
		case cerr, ok := <-errs:
			if !ok {
				errs = nil // closed with the consumer: read the messages left
				continue
			}
			seg.stop = fmt.Errorf("consume: %w", cerr.Err)
			if records == 0 {
				return seg, nil
			}
		case <-rollTimer:
		case <-progressTicker.C():
			p.progress.highWater(pc.HighWaterMarkOffset())
			openRecords.Set(float64(records))
			continue
		case <-drain:
			seg.stop = errDrained
			if records == 0 {
				return seg, nil
			}
		case <-ctx.Done():
			return seg, ctx.Err()
		}
		p.progress.highWater(pc.HighWaterMarkOffset())
		sum, err := w.Close(0)
		if err != nil {
			return filledSegment{}, err
		}
		p.share.closing(int64(buf.Held()))
		seg.data, seg.sum = buf, sum
		return seg, nil
	}
}

// toRecord fills r from a consumed message, reusing r's header slice.
func toRecord(msg *sarama.ConsumerMessage, r *segment.Record) {
	r.Offset, r.Timestamp, r.Key, r.Value = msg.Offset, msg.Timestamp, msg.Key, msg.Value
	r.Headers = r.Headers[:0]
	for _, h := range msg.Headers {
		r.Headers = append(r.Headers, segment.RecordHeader{Key: string(h.Key), Value: h.Value})
	}
}

// countAdopted counts, in the stored metrics, the segments a listing shows
// past what this worker counted: an upload that was stored although its
// answer was lost (the worker saw an error and re-listed), or another
// writer's. What the first listing shows was stored before this worker ran.
func (p *partitionBackup) countAdopted(state *layout.PartitionState) {
	if !p.listed {
		p.counted, p.listed = state.Next, true
		return
	}
	for _, o := range state.Objects {
		if o.Gap || o.Start < p.counted {
			continue
		}
		p.metrics.segmentsUploaded.WithLabelValues(p.topic).Inc()
		p.metrics.recordsStored.WithLabelValues(p.topic).Add(float64(o.Records))
		p.metrics.bytesStored.WithLabelValues(p.topic).Add(float64(o.Bytes))
	}
	p.counted = max(p.counted, state.Next)
}

// upload stores a segment under its start position. The segment counts as
// backed up only when Create returns nil; storage.ErrExists means another
// writer got there first.
func (p *partitionBackup) upload(ctx context.Context, data *segmentBuffer, sum segment.Summary) error {
	name := layout.SegmentName(p.topic, p.partition, sum.Start)
	if p.verifyTopic != nil {
		if err := p.verifyTopic(); err != nil {
			return fmt.Errorf("before uploading %s: %w", name, err)
		}
	}
	began := time.Now()
	if err := p.bucket.Create(ctx, name, data.Reader(), layout.SegmentMetadata(sum)); err != nil {
		return storageError{fmt.Errorf("upload %s: %w", name, err)}
	}
	took := time.Since(began)
	p.metrics.uploadDuration.WithLabelValues(p.topic).Observe(took.Seconds())
	p.metrics.segmentsUploaded.WithLabelValues(p.topic).Inc()
	p.metrics.recordsStored.WithLabelValues(p.topic).Add(float64(sum.Records))
	p.metrics.bytesStored.WithLabelValues(p.topic).Add(float64(sum.Bytes))
	p.counted = sum.End
	p.progress.uploaded(sum, time.Now())
	klog.FromContext(ctx).Info("Uploaded segment", "object", name, "records", sum.Records,
		"offsets", fmt.Sprintf("%d-%d", sum.Start, sum.End-1), "bytes", sum.Bytes, "compressed", data.Len(), "took", took)
	return nil
}
