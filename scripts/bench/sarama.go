package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kannika/armory/pkg/kafka"
)

// saramaAloneName is the row of sarama's consumer reading the topic by
// itself: what the Kafka client costs a backup, without the worker's work.
const saramaAloneName = "sarama's consumer alone, records dropped (the worker's Kafka settings)"

// saramaReadEnv, set to "brokers/topic", makes the bench's binary (or its
// test binary: hence an env var read in init, not a flag) read that topic
// with saramaRead and exit, so that the client is measured in a process of
// its own, as kcat and the worker are.
const saramaReadEnv = "ARMORY_BENCH_SARAMA_READ"

func init() {
	if v := os.Getenv(saramaReadEnv); v != "" {
		brokers, topic, _ := strings.Cut(v, "/")
		n, err := saramaRead(strings.Split(brokers, ","), topic)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sarama read:", err)
			os.Exit(1)
		}
		fmt.Println(n)
		os.Exit(0)
	}
}

// saramaRead reads every partition of topic from its start to its end, as a
// partition backup consumes it (kafka.NewSettings: read_committed, the
// worker's processing time; sarama's default fetch sizes, which are what
// the worker's sizing gives 3 partitions at the default budget), taking
// each record from its channel and dropping it. It returns the records read.
func saramaRead(brokers []string, topic string) (int64, error) {
	settings, err := kafka.NewSettings(map[string]string{"bootstrap.servers": strings.Join(brokers, ",")}, kafka.Auth{})
	if err != nil {
		return 0, err
	}
	client, err := sarama.NewClient(brokers, settings.Config)
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
		return 0, err
	}
	var read atomic.Int64
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			defer pc.Close()
			deadline := time.After(15 * time.Minute)
			for {
				select {
				case m := <-pc.Messages():
					read.Add(1)
					if m.Offset+1 >= end {
						return
					}
				case err := <-pc.Errors():
					errs <- err
					return
				case <-deadline:
					errs <- fmt.Errorf("partition %d: not read to offset %d in 15 minutes", p, end)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return read.Load(), nil
}

// runSaramaAlone measures saramaRead in a process of its own, like kcat -C,
// and checks that it read every record.
func runSaramaAlone(brokers []string, topic string, records int64) (result, error) {
	fmt.Println("sarama's consumer alone...")
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), saramaReadEnv+"="+strings.Join(brokers, ",")+"/"+topic)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	r, err := runReader(cmd)
	if err != nil {
		return result{}, fmt.Errorf("sarama's consumer alone: %w", err)
	}
	if got := strings.TrimSpace(out.String()); got != fmt.Sprint(records) {
		return result{}, fmt.Errorf("sarama's consumer alone read %s records, want %d", got, records)
	}
	r.name, r.records, r.bytes = saramaAloneName, records, records*(valueSize+16)
	return r, nil
}
