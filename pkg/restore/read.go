package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
)

// batch is a run of selected records of one partition, in order, handed from
// its reader to the writer.
type batch struct {
	topic, part int // indexes into Plan.Topics and its Partitions
	records     []*segment.Record
	bytes       int64
	// next is the position after this batch: every selected record before
	// it is in this batch or an earlier one.
	next int64
	// done marks the partition's last batch.
	done bool
	// err stops the restore after this batch's records (which verified):
	// a corrupt segment, a storage error.
	err error
}

// Batch bounds: a reader hands a batch over at this many records or bytes.
const (
	batchRecords = 1000
	batchBytes   = 256 << 10
)

// readPartition reads a partition's planned segments from position from and
// sends its selected records in batches, then a done batch. A segment that
// cannot be read ends the partition with a batch carrying the error, after
// the records that verified before it.
func readPartition(ctx context.Context, bucket storage.Bucket, pp *PartitionPlan, ti, pi int, from int64, maxRecords int, out chan<- batch) {
	b := batch{topic: ti, part: pi, next: max(from, pp.From)}
	send := func() bool {
		select {
		case out <- b:
			b = batch{topic: ti, part: pi, next: b.next}
			return true
		case <-ctx.Done():
			return false
		}
	}
	for i := range pp.Segments {
		seg := &pp.Segments[i]
		if seg.End <= b.next {
			continue // restored before
		}
		err := eachRecord(ctx, bucket, seg.Name, func(rec *segment.Record) bool {
			if rec.Offset < b.next || !pp.Selects(rec.Offset, rec.Timestamp) {
				return true
			}
			b.records = append(b.records, rec)
			b.bytes += rec.Size()
			b.next = rec.Offset + 1
			if len(b.records) >= maxRecords || b.bytes >= batchBytes {
				return send()
			}
			return true
		})
		if err != nil {
			b.err = err
			send()
			return
		}
		if ctx.Err() != nil {
			return
		}
		b.next = max(b.next, seg.End)
	}
	b.done = true
	send()
}

// eachRecord decodes one segment as it is read, calling fn for each record
// until fn returns false. Records come only from blocks whose checksum
// verified; damage is a *segment.CorruptError naming the object and byte.
func eachRecord(ctx context.Context, bucket storage.Bucket, name string, fn func(*segment.Record) bool) error {
	obj, err := bucket.Open(ctx, name)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer obj.Close()
	sr, err := segment.NewReader(bufio.NewReaderSize(obj, 256<<10), name)
	if err != nil {
		return err
	}
	for {
		rec, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fn(rec) {
			return ctx.Err()
		}
	}
}

// CountPartial reads the segments the window cuts (at most a few per
// partition: where the offset or time window begins and ends) and counts the
// records it selects, so the plan's totals are exact before the first write.
func CountPartial(ctx context.Context, bucket storage.Bucket, plan *Plan) error {
	for ti := range plan.Topics {
		for pi := range plan.Topics[ti].Partitions {
			pp := &plan.Topics[ti].Partitions[pi]
			for _, seg := range pp.Segments {
				if seg.Whole {
					continue
				}
				err := eachRecord(ctx, bucket, seg.Name, func(rec *segment.Record) bool {
					if pp.Selects(rec.Offset, rec.Timestamp) {
						pp.Records++
						pp.Bytes += rec.Size()
					}
					return true
				})
				if err != nil {
					return err
				}
			}
		}
	}
	plan.sum()
	return nil
}
