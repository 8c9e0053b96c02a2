package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/volume"
)

// TestStaleWriterIsFencedByStorage: a writer that read the listing before
// another stored the same position has its upload refused by the
// create-if-absent precondition, then re-lists and resumes after what the
// other stored, so every record is stored exactly once.
func TestStaleWriterIsFencedByStorage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers, produce := singlePartitionTopic(t, "fenced")
	produce(300)
	bucket, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(prometheus.NewRegistry())
	writer := func() *partitionBackup {
		return partitionWriter(t, brokers, "fenced", bucket, m,
			segmentSettings{codec: segment.CodecZstd, rollBytes: 1 << 30, rollAge: 300 * time.Millisecond})
	}
	stale, fresh := writer(), writer()
	stale.share = stale.budget.join() // fill is called without run, which joins

	// The stale writer reads everything from position 0 into a segment...
	pc, _, err := stale.consume(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := stale.fill(ctx, nil, pc, 0, nil)
	data, sum := seg.data, seg.sum
	pc.Close()
	if err != nil || sum.Records != 300 {
		t.Fatalf("stale fill: %d records, %v", sum.Records, err)
	}
	// ...but the fresh one stores position 0 first.
	runUntilStored(t, ctx, fresh, bucket, 300)

	if err := stale.upload(ctx, data, sum); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("the stale writer's upload: err = %v, want storage.ErrExists", err)
	}
	// It resumes from what storage holds.
	produce(200)
	runUntilStored(t, ctx, stale, bucket, 500)

	recs, _ := storedSegments(t, ctx, bucket, "fenced", 0)
	next := int64(0)
	for _, rec := range recs {
		if rec.Offset != next || string(rec.Value) != fmt.Sprint(next%300) && next < 300 {
			t.Fatalf("record at offset %d, want %d (value %q)", rec.Offset, next, rec.Value)
		}
		next++
	}
	if next != 500 {
		t.Errorf("%d records stored, want 500 exactly once", next)
	}
}

// singlePartitionTopic starts a one-broker cluster with a topic of one
// partition, and returns its address and a function that produces n more
// records ("0", "1", ... counting from 0 at each call).
func singlePartitionTopic(t *testing.T, topic string) ([]string, func(n int)) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	produce := func(n int) {
		cfg := sarama.NewConfig()
		cfg.Version = kafka.Version
		cfg.Producer.Return.Successes = true
		p, err := sarama.NewSyncProducer(cluster.ListenAddrs(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var msgs []*sarama.ProducerMessage
		for i := range n {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))})
		}
		if err := p.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
	}
	return cluster.ListenAddrs(), produce
}

// partitionWriter is a partition backup of the topic's partition 0, with
// a client of its own.
func partitionWriter(t *testing.T, brokers []string, topic string, bucket storage.Bucket, m *metrics, settings segmentSettings) *partitionBackup {
	t.Helper()
	ks, err := kafka.NewSettings(map[string]string{"bootstrap.servers": brokers[0], "fetch.max.wait.ms": "50"}, kafka.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(ks.Brokers, ks.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	return &partitionBackup{topic: topic, partition: 0, bucket: bucket, client: client, consumer: consumer, metrics: m,
		settings: settings, progress: newProgress(m).partition(topic, 0), budget: newMemoryBudget(DefaultMemoryBudget)}
}

// runUntilStored runs a partition backup until storage holds up to end,
// then drains it.
func runUntilStored(t *testing.T, ctx context.Context, p *partitionBackup, b storage.Bucket, end int64) {
	t.Helper()
	drain := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx, drain) }()
	waitPartitionStored(t, ctx, b, p.topic, p.partition, end)
	close(drain)
	<-done
}

// waitPartitionStored waits until storage holds the partition up to end.
func waitPartitionStored(t *testing.T, ctx context.Context, b storage.Bucket, topic string, partition int32, end int64) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		st, err := layout.ListPartition(ctx, b, topic, partition)
		if err == nil && st.Next >= end {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage did not reach %d within 45s (err %v)", end, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storedSegments decodes the partition's stored segments, in order: their
// records and how many segments hold them.
func storedSegments(t *testing.T, ctx context.Context, b storage.Bucket, topic string, partition int32) ([]segment.Record, int) {
	t.Helper()
	st, err := layout.ListPartition(ctx, b, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	var out []segment.Record
	for _, o := range st.Objects {
		r, err := b.Open(ctx, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs, _, err := segment.Decode(data, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out, len(st.Objects)
}

// answerLosingBucket stores every object but, every other time, answers
// Create with an error, as when the upload's response is lost.
type answerLosingBucket struct {
	storage.Bucket
	calls int
}

func (b *answerLosingBucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error {
	if err := b.Bucket.Create(ctx, name, data, metadata); err != nil {
		return err
	}
	b.calls++
	if b.calls%2 == 0 {
		return errors.New("connection reset by peer (the object was stored)")
	}
	return nil
}

// TestStoredMetricsCountUploadsWhoseAnswerWasLost: records_stored is what
// storage holds, also when half the uploads' answers are lost and the
// listing adopts those segments.
func TestStoredMetricsCountUploadsWhoseAnswerWasLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers, produce := singlePartitionTopic(t, "lost")
	produce(2000)
	vol, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket := &answerLosingBucket{Bucket: vol}
	m := newMetrics(prometheus.NewRegistry())
	// About 100 records a segment: 20 uploads, 10 answers lost, each
	// retried after a second (the back-off starts afresh after progress).
	p := partitionWriter(t, brokers, "lost", bucket, m,
		segmentSettings{codec: segment.CodecZstd, rollBytes: 300, rollAge: 300 * time.Millisecond})
	runUntilStored(t, ctx, p, vol, 2000)

	st, err := layout.ListPartition(ctx, vol, "lost", 0)
	if err != nil {
		t.Fatal(err)
	}
	if bucket.calls < 10 {
		t.Fatalf("only %d uploads: the test needs many answers lost", bucket.calls)
	}
	if got := testutil.ToFloat64(m.recordsStored.WithLabelValues("lost")); got != float64(st.Records) || st.Records != 2000 {
		t.Errorf("armory_worker_records_stored_total = %v; storage holds %d records (want 2000)", got, st.Records)
	}
	if got := testutil.ToFloat64(m.segmentsUploaded.WithLabelValues("lost")); got != float64(len(st.Objects)) {
		t.Errorf("armory_worker_segments_uploaded_total = %v; storage holds %d segments", got, len(st.Objects))
	}
	if got := testutil.ToFloat64(m.bytesStored.WithLabelValues("lost")); got != float64(st.Bytes) {
		t.Errorf("armory_worker_bytes_stored_total = %v; storage holds %d bytes", got, st.Bytes)
	}
}

// TestErrorKinds: errors_total says which side failed; a broker that cannot
// be reached is Kafka's, not storage's.
func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("consume from offset 5: %w", sarama.ErrOutOfBrokers), "kafka"},
		{fmt.Errorf("consume from offset 5: %w", sarama.ErrNotLeaderForPartition), "kafka"},
		{fmt.Errorf("read: %w", errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")), "kafka"},
		{storageError{fmt.Errorf("upload x: %w", errors.New("googleapi: Error 503"))}, "storage"},
		{storageError{fmt.Errorf("list stored objects: %w", errors.New("permission denied"))}, "storage"},
	} {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	if !errors.Is(storageError{fmt.Errorf("upload: %w", storage.ErrExists)}, storage.ErrExists) {
		t.Errorf("a storage error hides ErrExists")
	}
}

// closedConsumer is a partition consumer whose channels were closed after
// some messages.
type closedConsumer struct {
	sarama.PartitionConsumer
	msgs chan *sarama.ConsumerMessage
	errs chan *sarama.ConsumerError
}

func newClosedConsumer(n int) *closedConsumer {
	c := &closedConsumer{msgs: make(chan *sarama.ConsumerMessage, n), errs: make(chan *sarama.ConsumerError)}
	for i := range n {
		c.msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: int64(i), Value: []byte(fmt.Sprint(i)), Timestamp: time.UnixMilli(int64(i))}
	}
	close(c.msgs)
	close(c.errs)
	return c
}

func (c *closedConsumer) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }
func (c *closedConsumer) Errors() <-chan *sarama.ConsumerError     { return c.errs }
func (c *closedConsumer) HighWaterMarkOffset() int64               { return 3 }

// newFillPartition is a partition backup for fill alone: uncompressed
// segments that close at rollBytes, a default budget of its own.
func newFillPartition(rollBytes int64) *partitionBackup {
	m := newMetrics(prometheus.NewRegistry())
	budget := newMemoryBudget(DefaultMemoryBudget)
	return &partitionBackup{topic: "t", metrics: m, progress: newProgress(m).partition("t", 0),
		budget: budget, share: budget.join(),
		settings: segmentSettings{codec: segment.CodecNone, rollBytes: rollBytes, rollAge: time.Minute}}
}

// TestFillStopsWhenTheConsumerCloses: closed channels end the segment with
// what was read (no panic, no busy loop), and say why.
func TestFillStopsWhenTheConsumerCloses(t *testing.T) {
	p := newFillPartition(1 << 20)
	for _, n := range []int{0, 3} {
		seg, err := p.fill(context.Background(), nil, newClosedConsumer(n), 0, nil)
		data, sum, stop := seg.data, seg.sum, seg.stop
		if err != nil || !errors.Is(stop, errConsumerClosed) {
			t.Errorf("%d messages: err %v, stop %v; want stop errConsumerClosed", n, err, stop)
		}
		if sum.Records != int64(n) || (n == 0) != (data == nil) {
			t.Errorf("%d messages: a segment of %d records (data %v)", n, sum.Records, data)
		}
	}
}

// TestFillTakesWaitingRecordsWithoutLosingOne: records that wait in the
// consumer's channel, more than fill takes at once, some before the
// requested offset (a compressed batch's head), fill segments that close by
// size mid-way through what waits; the next fill goes on with the very next
// record, so the segments hold each record once, in order.
func TestFillTakesWaitingRecordsWithoutLosingOne(t *testing.T) {
	p := newFillPartition(2_000)
	const first, start, last = 5, 10, 5 + 3*takeAtOnce
	c := &closedConsumer{msgs: make(chan *sarama.ConsumerMessage, last-first+1), errs: make(chan *sarama.ConsumerError)}
	for o := first; o <= last; o++ {
		c.msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: int64(o), Value: []byte(fmt.Sprintf("value-%05d", o))}
	}
	close(c.msgs)
	next, segments := int64(start), 0
	for range last {
		seg, err := p.fill(context.Background(), nil, c, next, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seg.data == nil {
			break
		}
		segments++
		var data bytes.Buffer
		if _, err := io.Copy(&data, seg.data.Reader()); err != nil {
			t.Fatal(err)
		}
		seg.data.Release()
		recs, sum, err := segment.Decode(data.Bytes(), "t/0")
		if err != nil {
			t.Fatal(err)
		}
		if sum.Start != next {
			t.Fatalf("segment %d starts at %d, want %d", segments, sum.Start, next)
		}
		for _, r := range recs {
			if r.Offset != next || string(r.Value) != fmt.Sprintf("value-%05d", next) {
				t.Fatalf("segment %d: record at offset %d (%q), want offset %d", segments, r.Offset, r.Value, next)
			}
			next++
		}
		if sum.End != next {
			t.Fatalf("segment %d ends at %d, its records at %d", segments, sum.End, next)
		}
		if errors.Is(seg.stop, errConsumerClosed) {
			break
		}
		if sum.Bytes < p.settings.rollBytes {
			t.Fatalf("segment %d closed at %d bytes, under its %d, with records waiting", segments, sum.Bytes, p.settings.rollBytes)
		}
	}
	if next != last+1 {
		t.Errorf("the segments hold offsets %d to %d, want %d to %d", start, next-1, start, last)
	}
	// The records before start were delivered but not read into a segment.
	if got := testutil.ToFloat64(p.metrics.recordsRead.WithLabelValues("t")); got != last-start+1 {
		t.Errorf("armory_worker_records_read_total = %v, want %d", got, last-start+1)
	}
	// 764 records of 11 bytes in segments closed at 2,000 bytes: about
	// 180 records each, so segments close within takes and across them.
	if segments < 4 {
		t.Errorf("%d segments: the test did not close segments mid-take", segments)
	}
}

// TestFillDropsItsSegmentWhenThePreviousUploadFails: the segment that fills
// while the one before it uploads is never handed over after that upload
// failed (storage would hold it past a hole); its records are read again
// after the next listing. After an upload that succeeded, it fills on.
func TestFillDropsItsSegmentWhenThePreviousUploadFails(t *testing.T) {
	p := newFillPartition(3)
	openConsumer := func() *closedConsumer { // three messages, channels left open
		c := &closedConsumer{msgs: make(chan *sarama.ConsumerMessage, 3), errs: make(chan *sarama.ConsumerError)}
		for i := range 3 {
			c.msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: int64(10 + i), Value: []byte{'a' + byte(i)}}
		}
		return c
	}
	uploadErr := storageError{errors.New("upload t/0/10: 503")}
	failed := &segmentUpload{done: make(chan struct{}), err: uploadErr}
	time.AfterFunc(10*time.Millisecond, func() { close(failed.done) })
	c := openConsumer()
	<-c.msgs // two records only: under rollBytes, the segment stays open
	seg, err := p.fill(context.Background(), nil, c, 10, failed)
	data, stop := seg.data, seg.stop
	if !errors.Is(err, uploadErr) || data != nil || stop != nil {
		t.Fatalf("after the previous upload failed: data %v, stop %v, err %v; want no segment and the upload's error", data, stop, err)
	}
	if p.share.open != 0 || p.budget.held != 0 {
		t.Errorf("the dropped segment still counts in the budget: open %d, held %d", p.share.open, p.budget.held)
	}

	stored := &segmentUpload{done: make(chan struct{})}
	close(stored.done)
	seg, err = p.fill(context.Background(), nil, openConsumer(), 10, stored)
	data, sum, stop := seg.data, seg.sum, seg.stop
	if err != nil || stop != nil || data == nil || sum.Records != 3 || sum.Start != 10 || sum.End != 13 {
		t.Fatalf("after the previous upload was stored: %d records [%d, %d), stop %v, err %v; want records 10-12", sum.Records, sum.Start, sum.End, stop, err)
	}
	p.drop(data)
	if p.budget.held != 0 {
		t.Errorf("held %d after the segment was dropped", p.budget.held)
	}
}

// saramaLog keeps the lines of sarama's log (process-wide, so set before
// any test runs) that say a partition was taken out of its broker's fetches.
var saramaLog abandonLog

func init() { sarama.Logger = &saramaLog }

type abandonLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *abandonLog) keep(line string) {
	if strings.Contains(line, "abandoned subscription") {
		l.mu.Lock()
		l.lines = append(l.lines, strings.TrimSpace(line))
		l.mu.Unlock()
	}
}

func (l *abandonLog) Print(v ...any)                 { l.keep(fmt.Sprint(v...)) }
func (l *abandonLog) Printf(format string, v ...any) { l.keep(fmt.Sprintf(format, v...)) }
func (l *abandonLog) Println(v ...any)               { l.keep(fmt.Sprintln(v...)) }

func (l *abandonLog) about(topic string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, " "+topic+"/") {
			out = append(out, line)
		}
	}
	return out
}

// slowBucket takes delay to store each object, as a distant bucket does,
// and counts the stores that took longer than slow (a loaded machine's
// fsync can add much to the delay).
type slowBucket struct {
	storage.Bucket
	delay, slow time.Duration

	mu      sync.Mutex
	slowest int // stores that took longer than slow
}

func (b *slowBucket) Create(ctx context.Context, name string, data io.Reader, metadata map[string]string) error {
	began := time.Now()
	time.Sleep(b.delay)
	err := b.Bucket.Create(ctx, name, data, metadata)
	if time.Since(began) > b.slow {
		b.mu.Lock()
		b.slowest++
		b.mu.Unlock()
	}
	return err
}

// TestWaitingForAnUploadKeepsThePartitionFetched (kafka.NewSettings'
// Consumer.MaxProcessingTime): a partition whose
// segments fill faster than storage takes them waits for each upload with
// its sarama channel full. Sarama must not take it out of its broker's
// fetches meanwhile: when the broker's other partition is caught up, a
// partition taken out waits for that partition's long poll before it is
// fetched again, and a backup catching up crawls. Every record is stored
// once all the same.
func TestWaitingForAnUploadKeepsThePartitionFetched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, records = "slow-storage", 4000
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	// Partition 0 has records to catch up on; partition 1, on the same
	// broker, has none: its fetches wait for data (fetch.max.wait.ms).
	pcfg := sarama.NewConfig()
	pcfg.Version = kafka.Version
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(cluster.ListenAddrs(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("v", 1000)
	var msgs []*sarama.ProducerMessage
	for i := range records {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(value)})
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	producer.Close()

	ks, err := kafka.NewSettings(map[string]string{"bootstrap.servers": cluster.ListenAddrs()[0]}, kafka.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(ks.Brokers, ks.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	vol, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// About 10 segments of 400 records; each fills in a few milliseconds,
	// then waits for the one before it for most of the 250 ms its upload
	// takes: past sarama's default 100 ms, within the 500 ms set. Sarama
	// takes a partition out only when one wait lasts 500 ms or more, as it
	// should for an upload that slow (counted, from 400 ms).
	bucket := &slowBucket{Bucket: vol, delay: 250 * time.Millisecond, slow: 400 * time.Millisecond}
	m := newMetrics(prometheus.NewRegistry())
	budget := newMemoryBudget(DefaultMemoryBudget)
	drain := make(chan struct{})
	var wg sync.WaitGroup
	for p := range int32(2) {
		pb := &partitionBackup{topic: topic, partition: p, bucket: bucket, client: client, consumer: consumer, metrics: m,
			settings: segmentSettings{codec: segment.CodecNone, rollBytes: 400 * 1010, rollAge: 500 * time.Millisecond},
			progress: newProgress(m).partition(topic, p), budget: budget}
		wg.Go(func() { pb.run(ctx, drain) })
	}
	waitPartitionStored(t, ctx, vol, topic, 0, records)
	close(drain)
	wg.Wait()

	if lines := saramaLog.about(topic); len(lines) > bucket.slowest {
		t.Errorf("sarama took a partition waiting for its upload out of the fetches %d times, %d uploads took over %v; e.g. %q",
			len(lines), bucket.slowest, bucket.slow, lines[0])
	}
	recs, segments := storedSegments(t, ctx, vol, topic, 0)
	next := int64(0)
	for _, rec := range recs {
		if rec.Offset != next || string(rec.Key) != fmt.Sprint(next) || string(rec.Value) != value {
			t.Fatalf("record at offset %d (key %q), want offset %d", rec.Offset, rec.Key, next)
		}
		next++
	}
	if next != records || segments < 5 {
		t.Errorf("%d records in %d segments, want %d exactly once in about 10", next, segments, records)
	}
}
