package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/volume"
)

// TestPartitionRunOnce table-tests one partition's data path (list →
// consume → fill → upload → advance) against a scripted Kafka partition, a
// fake clock and a real volume: each case hands records over one at a time
// and checks what storage holds afterwards, record by record, and what the
// run returned.
func TestPartitionRunOnce(t *testing.T) {
	const rollAge = time.Minute
	type span struct{ start, end int64 }
	for _, tc := range []struct {
		name   string
		oldest int64 // Kafka's earliest offset: storage starts at 0, so > 0 is a gap
		bucket func(storage.Bucket) storage.Bucket
		script func(d *dataPath)
		want   error  // what runOnce returns (errors.Is)
		wantIn string // ... and a part of its message
		// What storage holds afterwards: segments, and a gap marker.
		segments []span
		gap      *span
	}{{
		name: "segments roll over by size; drain uploads the open one",
		script: func(d *dataPath) {
			d.send(0, 10)
			d.drain()
		},
		want:     errDrained,
		segments: []span{{0, 3}, {3, 6}, {6, 9}, {9, 10}},
	}, {
		name: "a segment rolls over by age",
		script: func(d *dataPath) {
			d.send(0, 2) // once the second is taken, the first armed the timer
			d.clock.Step(rollAge)
			d.waitStored(2)
			d.send(2, 3)
			d.drain()
		},
		want:     errDrained,
		segments: []span{{0, 2}, {2, 3}},
	}, {
		name:   "drain with no record read stores nothing",
		script: func(d *dataPath) { d.drain() },
		want:   errDrained,
	}, {
		name: "a consumer error mid-segment: what was read is stored, the run ends with the error",
		script: func(d *dataPath) {
			d.send(0, 5)
			d.pc.errs <- &sarama.ConsumerError{Topic: "t", Partition: 0, Err: sarama.ErrNotLeaderForPartition}
		},
		want: sarama.ErrNotLeaderForPartition, wantIn: "consume: ",
		segments: []span{{0, 3}, {3, 5}},
	}, {
		name: "the consumer closes mid-segment",
		script: func(d *dataPath) {
			d.send(0, 4)
			close(d.pc.msgs)
		},
		want:     errConsumerClosed,
		segments: []span{{0, 3}, {3, 4}},
	}, {
		name:   "another writer stored the position first",
		bucket: func(b storage.Bucket) storage.Bucket { return &racedBucket{Bucket: b} },
		script: func(d *dataPath) {
			d.send(0, 3)
			d.offer(3, 6) // the next segment, never stored by this run
		},
		want:     storage.ErrExists,
		segments: []span{{0, 3}}, // the other writer's copy, once
	}, {
		name:   "Kafka lost offsets to retention: a gap marker, then what Kafka has",
		oldest: 5,
		script: func(d *dataPath) {
			d.send(5, 9)
			d.drain()
		},
		want:     errDrained,
		gap:      &span{0, 5},
		segments: []span{{5, 8}, {8, 9}},
	}, {
		name:   "an upload fails: the segment filled behind it is dropped, nothing is stored past the hole",
		bucket: func(b storage.Bucket) storage.Bucket { return &failingBucket{Bucket: b, failCall: 2} },
		script: func(d *dataPath) {
			d.send(0, 6)
			d.offer(6, 9)
		},
		want: errUploadRefused, wantIn: "upload t/0/00000000000000000003.seg",
		segments: []span{{0, 3}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDataPath(t, tc.oldest, rollAge, tc.bucket)
			tc.script(d)
			err := d.wait()
			if !errors.Is(err, tc.want) || !bytes.Contains([]byte(fmt.Sprint(err)), []byte(tc.wantIn)) {
				t.Errorf("runOnce returned %v; want %v containing %q", err, tc.want, tc.wantIn)
			}
			st, err := layout.ListPartition(context.Background(), d.volume, "t", 0)
			if err != nil {
				t.Fatal(err)
			}
			var gotSegments []span
			var gotGap *span
			for _, o := range st.Objects {
				if o.Gap {
					gotGap = &span{o.Start, o.End}
				} else {
					gotSegments = append(gotSegments, span{o.Start, o.End})
				}
			}
			if fmt.Sprint(gotSegments) != fmt.Sprint(tc.segments) || fmt.Sprint(gotGap) != fmt.Sprint(tc.gap) {
				t.Errorf("storage holds segments %v and gap %v; want %v and %v", gotSegments, gotGap, tc.segments, tc.gap)
			}
			var want []segment.Record
			for _, s := range tc.segments {
				for o := s.start; o < s.end; o++ {
					want = append(want, scriptedRecord(o))
				}
			}
			got := decodeStored(t, d.volume, st)
			if len(got) != len(want) {
				t.Fatalf("%d records stored, want %d", len(got), len(want))
			}
			for i := range want {
				if !sameRecord(want[i], got[i]) {
					t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// dataPath runs one partitionBackup.runOnce against a scripted partition.
type dataPath struct {
	t      *testing.T
	clock  *clocktesting.FakeClock
	volume storage.Bucket
	pc     *scriptedPartition
	drainc chan struct{}
	ended  chan struct{}
	err    error
}

func newDataPath(t *testing.T, oldest int64, rollAge time.Duration, wrap func(storage.Bucket) storage.Bucket) *dataPath {
	vol, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var bucket storage.Bucket = vol
	if wrap != nil {
		bucket = wrap(vol)
	}
	d := &dataPath{t: t, clock: clocktesting.NewFakeClock(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)), volume: vol,
		drainc: make(chan struct{}), ended: make(chan struct{})}
	kafka := &scriptedConsumer{oldest: oldest, started: make(chan *scriptedPartition, 1)}
	m := newMetrics(prometheus.NewRegistry())
	budget := newMemoryBudget(DefaultMemoryBudget)
	p := &partitionBackup{topic: "t", partition: 0, bucket: bucket, client: &scriptedClient{oldest: oldest}, consumer: kafka,
		metrics: m, progress: newProgress(m).partition("t", 0), budget: budget, share: budget.join(), clock: d.clock,
		// Three records a segment.
		settings: segmentSettings{codec: segment.CodecZstd, rollBytes: 3*scriptedRecordBytes - 1, rollAge: rollAge}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	go func() {
		defer close(d.ended)
		d.err = p.runOnce(ctx, d.drainc)
	}()
	select {
	case d.pc = <-kafka.started:
	case <-d.ended:
		t.Fatalf("runOnce ended before it consumed: %v", d.err)
	case <-time.After(10 * time.Second):
		t.Fatal("runOnce did not start consuming within 10s")
	}
	return d
}

// send hands the records at offsets [from, to) over, one at a time: each
// send returns once the data path has taken it.
func (d *dataPath) send(from, to int64) {
	d.t.Helper()
	for o := from; o < to; o++ {
		select {
		case d.pc.msgs <- scriptedMessage(o):
		case <-d.ended:
			d.t.Fatalf("runOnce ended (%v) before it took offset %d", d.err, o)
		case <-time.After(10 * time.Second):
			d.t.Fatalf("offset %d was not taken within 10s", o)
		}
	}
}

// offer hands records over until the run ends: for a case where it must
// end without them.
func (d *dataPath) offer(from, to int64) {
	for o := from; o < to; o++ {
		select {
		case d.pc.msgs <- scriptedMessage(o):
		case <-d.ended:
			return
		case <-time.After(10 * time.Second):
			d.t.Fatalf("offset %d was neither taken nor did the run end within 10s", o)
		}
	}
}

func (d *dataPath) drain() { close(d.drainc) }

func (d *dataPath) wait() error {
	select {
	case <-d.ended:
		return d.err
	case <-time.After(30 * time.Second):
		d.t.Fatal("runOnce did not end within 30s")
		return nil
	}
}

// waitStored waits until storage holds up to offset end.
func (d *dataPath) waitStored(end int64) {
	d.t.Helper()
	for range 200 {
		if st, err := layout.ListPartition(context.Background(), d.volume, "t", 0); err == nil && st.Next >= end {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("storage did not reach offset %d within 10s", end)
}

// scriptedRecord is the record at offset o: a key, a value and a header of
// the same sizes at every offset (so that three make a segment).
func scriptedRecord(o int64) segment.Record {
	return segment.Record{Offset: o, Timestamp: time.UnixMilli(1764662400000 + o),
		Key: []byte(fmt.Sprintf("k%03d", o)), Value: []byte(fmt.Sprintf("value-%04d", o)),
		Headers: []segment.RecordHeader{{Key: "h", Value: []byte(fmt.Sprintf("%02d", o%100))}}}
}

// scriptedRecordBytes is what one scriptedRecord counts toward a segment's
// size trigger: key, value, header key and value.
const scriptedRecordBytes = 4 + 10 + 1 + 2

func scriptedMessage(o int64) *sarama.ConsumerMessage {
	r := scriptedRecord(o)
	m := &sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: o, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	return m
}

// scriptedConsumer is Kafka's consumer for partition 0 of topic t: it
// starts a scriptedPartition at the offset asked for, if Kafka still has it.
type scriptedConsumer struct {
	sarama.Consumer
	oldest  int64
	started chan *scriptedPartition
}

func (c *scriptedConsumer) ConsumePartition(topic string, partition int32, offset int64) (sarama.PartitionConsumer, error) {
	if offset < c.oldest {
		return nil, sarama.ErrOffsetOutOfRange
	}
	pc := &scriptedPartition{msgs: make(chan *sarama.ConsumerMessage), errs: make(chan *sarama.ConsumerError, 1)}
	c.started <- pc
	return pc, nil
}

// scriptedPartition delivers what the test sends, unbuffered.
type scriptedPartition struct {
	sarama.PartitionConsumer
	msgs chan *sarama.ConsumerMessage
	errs chan *sarama.ConsumerError
}

func (p *scriptedPartition) Messages() <-chan *sarama.ConsumerMessage { return p.msgs }
func (p *scriptedPartition) Errors() <-chan *sarama.ConsumerError     { return p.errs }
func (p *scriptedPartition) HighWaterMarkOffset() int64               { return 1000 }
func (p *scriptedPartition) Close() error                             { return nil }

// scriptedClient answers the earliest offset Kafka still has.
type scriptedClient struct {
	sarama.Client
	oldest int64
}

func (c *scriptedClient) GetOffset(topic string, partition int32, at int64) (int64, error) {
	if at == sarama.OffsetOldest {
		return c.oldest, nil
	}
	return 1000, nil
}

// racedBucket: another writer stores the first segment under the same name
// just before this one does (the same records: a stale worker's copy).
type racedBucket struct {
	storage.Bucket
	raced bool
}

func (b *racedBucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error {
	if !b.raced {
		b.raced = true
		body, err := io.ReadAll(data)
		if err != nil {
			return err
		}
		if err := b.Bucket.Create(ctx, name, bytes.NewReader(body), metadata); err != nil {
			return err
		}
		data = bytes.NewReader(body)
	}
	return b.Bucket.Create(ctx, name, data, metadata)
}

var errUploadRefused = errors.New("googleapi: Error 503: backend unavailable")

// failingBucket refuses its failCall-th Create.
type failingBucket struct {
	storage.Bucket
	mu       sync.Mutex
	calls    int
	failCall int
}

func (b *failingBucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error {
	b.mu.Lock()
	b.calls++
	fail := b.calls == b.failCall
	b.mu.Unlock()
	if fail {
		return errUploadRefused
	}
	return b.Bucket.Create(ctx, name, data, metadata)
}

// decodeStored decodes every segment a listing shows, in order.
func decodeStored(t *testing.T, b storage.Bucket, st *layout.PartitionState) []segment.Record {
	t.Helper()
	var records []segment.Record
	for _, o := range st.Objects {
		if o.Gap {
			continue
		}
		r, err := b.Open(context.Background(), o.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := segment.Decode(data, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, got...)
	}
	return records
}

func sameRecord(a, b segment.Record) bool {
	same := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	if a.Offset != b.Offset || !a.Timestamp.Equal(b.Timestamp) || !same(a.Key, b.Key) || !same(a.Value, b.Value) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !same(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// TestSegmentSettingsOf reads a stream's compression and rollover as the
// worker applies them, and the message a stream fails with when the API
// server's rules were bypassed (an older CRD).
func TestSegmentSettingsOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       *v1alpha.Compression
		want    segmentSettings
		wantErr string
	}{
		{"defaults", nil, segmentSettings{codec: segment.CodecZstd, level: segment.LevelDefault}, ""},
		{"zstd fastest", &v1alpha.Compression{Algorithm: "zstd", Level: "fastest"}, segmentSettings{codec: segment.CodecZstd, level: segment.LevelFastest}, ""},
		{"level alone", &v1alpha.Compression{Level: "better"}, segmentSettings{codec: segment.CodecZstd, level: segment.LevelBetter}, ""},
		{"gzip default", &v1alpha.Compression{Algorithm: "gzip", Level: "default"}, segmentSettings{codec: segment.CodecGzip, level: segment.LevelDefault}, ""},
		{"none fastest", &v1alpha.Compression{Algorithm: "none", Level: "fastest"}, segmentSettings{},
			`compression.level: none has no level "fastest": leave level out, or use zstd, gzip or lz4`},
		{"unknown level", &v1alpha.Compression{Algorithm: "lz4", Level: "max"}, segmentSettings{},
			`compression.level: unknown level "max": use fastest, default or better`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := segmentSettingsOf(v1alpha.BackupStream{Topic: "t", Compression: tc.c})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			tc.want.rollBytes, tc.want.rollAge = DefaultRolloverSize, DefaultRolloverTimeout
			if err != nil || got != tc.want {
				t.Fatalf("segmentSettingsOf = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
