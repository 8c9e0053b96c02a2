package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
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
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fenced"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	produce := func(n int) {
		cfg := sarama.NewConfig()
		cfg.Version = kafka.Version
		cfg.Producer.Return.Successes = true
		p, err := sarama.NewSyncProducer(cluster.ListenAddrs(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for i := range n {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "fenced", Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(300)
	bucket, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(prometheus.NewRegistry())
	writer := func() *partitionBackup {
		settings, err := kafka.NewSettings(map[string]string{"bootstrap.servers": cluster.ListenAddrs()[0], "fetch.max.wait.ms": "50"}, kafka.Auth{})
		if err != nil {
			t.Fatal(err)
		}
		client, err := sarama.NewClient(settings.Brokers, settings.Config)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		return &partitionBackup{topic: "fenced", partition: 0, bucket: bucket, client: client, consumer: consumer, metrics: m,
			settings: segmentSettings{codec: segment.CodecZstd, rollBytes: 1 << 30, rollAge: 300 * time.Millisecond},
			progress: newProgress(m).partition("fenced", 0)}
	}
	stale, fresh := writer(), writer()

	// The stale writer reads everything from position 0 into a segment...
	pc, _, err := stale.consume(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, sum, _, err := stale.fill(ctx, nil, pc, 0)
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

	st, err := layout.ListPartition(ctx, bucket, "fenced", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, o := range st.Objects {
		r, _ := bucket.Open(ctx, o.Name)
		b, _ := io.ReadAll(r)
		r.Close()
		recs, _, err := segment.Decode(b, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Offset != next || string(rec.Value) != fmt.Sprint(next%300) && next < 300 {
				t.Fatalf("record at offset %d, want %d (value %q)", rec.Offset, next, rec.Value)
			}
			next++
		}
	}
	if next != 500 {
		t.Errorf("%d records stored, want 500 exactly once", next)
	}
}

// runUntilStored runs a partition backup until storage holds up to end,
// then drains it.
func runUntilStored(t *testing.T, ctx context.Context, p *partitionBackup, b storage.Bucket, end int64) {
	t.Helper()
	drain := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); p.run(ctx, drain) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := layout.ListPartition(ctx, b, p.topic, p.partition)
		if err == nil && st.Next >= end {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage did not reach %d within 30s (err %v)", end, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(drain)
	<-done
}
