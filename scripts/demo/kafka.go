package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// producer writes realistic traffic until stopped: JSON values, keys (a user
// id, sometimes none), headers, about 100 records a second per topic.
type producer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var kinds = map[string][]string{
	"magic.events": {"spell.cast", "spell.failed", "wand.charged", "potion.brewed"},
	"pixie.dust":   {"dust.sprinkled", "dust.collected", "flight.started"},
}

func startProducer(brokers, topics []string) (*producer, error) {
	p, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		return nil, fmt.Errorf("the demo's producer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := &producer{cancel: cancel}
	pr.wg.Go(func() {
		defer p.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var msgs []*sarama.ProducerMessage
			for _, topic := range topics {
				for range 10 {
					n++
					msgs = append(msgs, event(topic, n))
				}
			}
			// A failed batch is retried by the next tick's: the demo's
			// counts come from what Kafka and the bucket hold, not from here.
			_ = p.SendMessages(msgs)
		}
	})
	return pr, nil
}

func (p *producer) stop() {
	p.cancel()
	p.wg.Wait()
}

func event(topic string, n int) *sarama.ProducerMessage {
	user := rand.IntN(50)
	k := kinds[topic]
	value := fmt.Sprintf(`{"id":"evt-%07d","type":%q,"user":"user-%02d","amount":%d,"at":%q}`,
		n, k[n%len(k)], user, rand.IntN(1000), time.Now().UTC().Format(time.RFC3339Nano))
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(value),
		Headers: []sarama.RecordHeader{
			{Key: []byte("trace-id"), Value: fmt.Appendf(nil, "%016x", rand.Uint64())},
			{Key: []byte("source"), Value: []byte("armory-demo")},
		}}
	if n%10 != 0 { // one record in ten has no key
		m.Key = sarama.StringEncoder(fmt.Sprintf("user-%02d", user))
	}
	return m
}

// countCommitted reads a topic's committed records from the start and
// returns how many there are: it reads until it has want records, then 2 s
// more to see that no extra one follows (at most 60 s in all).
func countCommitted(ctx context.Context, brokers []string, topic string, want int64) (int64, error) {
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("topic %s: %w", topic, err)
	}
	got, done := make(chan struct{}), make(chan struct{})
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		defer pc.Close()
		go func() {
			for range pc.Messages() {
				select {
				case got <- struct{}{}:
				case <-done:
					return
				}
			}
		}()
	}
	defer close(done) // before the partition consumers close
	var n int64
	deadline := time.After(60 * time.Second)
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-deadline:
			return n, nil
		case <-settle:
			return n, nil
		case <-got:
			n++
			if n == want {
				settle = time.After(2 * time.Second)
			}
		}
	}
}
