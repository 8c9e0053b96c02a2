package restore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
)

// committed is a target partition's progress as Kafka holds it: the offset
// the Restore's consumer group committed for it, in the same transaction as
// the records it covers.
type committed struct {
	// next is the source position the partition resumes from.
	next int64
	// records and bytes restored so far, carried in the offset's metadata.
	records, bytes int64
}

// progressMetadata is stored with each committed offset.
const progressMetadata = "armory-restore/v1 records=%d bytes=%d"

func (c committed) metadata() string { return fmt.Sprintf(progressMetadata, c.records, c.bytes) }

type partitionKey struct {
	topic     string
	partition int32
}

// fetchProgress reads the Restore's committed progress for every planned
// target partition. Call it after the transactional producer started: its
// start fences an earlier producer and completes that one's transaction, so
// what is read here is settled.
func fetchProgress(admin sarama.ClusterAdmin, group string, plan *Plan) (map[partitionKey]committed, error) {
	want := map[string][]int32{}
	for _, t := range plan.Topics {
		for _, p := range t.Partitions {
			want[t.Target] = append(want[t.Target], p.Partition)
		}
	}
	resp, err := admin.ListConsumerGroupOffsets(group, want)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return map[partitionKey]committed{}, nil // nothing committed yet
	}
	if err != nil {
		return nil, fmt.Errorf("read the restore's progress (consumer group %s): %w", group, err)
	}
	if errors.Is(resp.Err, sarama.ErrGroupIDNotFound) {
		return map[partitionKey]committed{}, nil // nothing committed yet
	}
	if resp.Err != sarama.ErrNoError {
		return nil, fmt.Errorf("read the restore's progress (consumer group %s): %w", group, resp.Err)
	}
	out := map[partitionKey]committed{}
	for topic, parts := range resp.Blocks {
		for p, b := range parts {
			if b.Err != sarama.ErrNoError && !errors.Is(b.Err, sarama.ErrUnknownTopicOrPartition) {
				return nil, fmt.Errorf("read the restore's progress for %s partition %d: %w", topic, p, b.Err)
			}
			if b.Offset < 0 {
				continue
			}
			c := committed{next: b.Offset}
			if _, err := fmt.Sscanf(b.Metadata, progressMetadata, &c.records, &c.bytes); err != nil {
				return nil, fmt.Errorf("consumer group %s holds offset %d for %s partition %d that this Armory did not commit (metadata %q): use a new Restore",
					group, b.Offset, topic, p, b.Metadata)
			}
			out[partitionKey{topic, p}] = c
		}
	}
	return out, nil
}

// describeTargets reads what the target cluster holds of each target topic.
// It asks with one metadata request: the client's own refresh retries a
// topic that does not exist yet (Metadata.Retry.Max times, 250 ms apart),
// which is the usual case for a restore that creates its topics.
func describeTargets(client sarama.Client, admin sarama.ClusterAdmin, plan *Plan) (map[string]Target, error) {
	var names []string
	for _, t := range plan.Topics {
		names = append(names, t.Target)
	}
	described, err := admin.DescribeTopics(names)
	if err != nil {
		return nil, fmt.Errorf("read the target topics' metadata: %w", err)
	}
	partitions := map[string]int32{}
	for _, d := range described {
		switch {
		case errors.Is(d.Err, sarama.ErrUnknownTopicOrPartition):
		case d.Err != sarama.ErrNoError:
			return nil, fmt.Errorf("read topic %q: %w", d.Name, d.Err)
		default:
			partitions[d.Name] = int32(len(d.Partitions))
		}
	}
	out := map[string]Target{}
	for _, t := range plan.Topics {
		n, ok := partitions[t.Target]
		if !ok {
			out[t.Target] = Target{}
			continue
		}
		tg := Target{Exists: true, Partitions: n, Held: map[int32]int64{}}
		for _, p := range t.Partitions {
			if p.Partition >= tg.Partitions {
				continue
			}
			oldest, err := client.GetOffset(t.Target, p.Partition, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("read topic %q partition %d: %w", t.Target, p.Partition, err)
			}
			newest, err := client.GetOffset(t.Target, p.Partition, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("read topic %q partition %d: %w", t.Target, p.Partition, err)
			}
			tg.Held[p.Partition] = newest - oldest
		}
		out[t.Target] = tg
	}
	return out, nil
}

// createTargets creates the targets that do not exist, with the backed-up
// partition count and the topic configs the backup recorded.
func createTargets(admin sarama.ClusterAdmin, plan *Plan, targets map[string]Target, replication int16) ([]string, error) {
	var created []string
	for _, t := range plan.Topics {
		if targets[t.Target].Exists {
			continue
		}
		configs := map[string]*string{}
		for k, v := range t.Configs {
			configs[k] = &v
		}
		detail := &sarama.TopicDetail{NumPartitions: t.SourcePartitions, ReplicationFactor: replication, ConfigEntries: configs}
		err := admin.CreateTopic(t.Target, detail, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return created, fmt.Errorf("create topic %q with %d partitions: %w", t.Target, t.SourcePartitions, err)
		}
		created = append(created, t.Target)
	}
	return created, nil
}

// exactlyOnceSupport names what the cluster lacks for transactions, or "".
func exactlyOnceSupport(client sarama.Client) (string, error) {
	b, err := client.Controller()
	if err != nil {
		return "", fmt.Errorf("reach the Kafka controller: %w", err)
	}
	resp, err := b.ApiVersions(&sarama.ApiVersionsRequest{Version: 0})
	if err != nil {
		return "", fmt.Errorf("ask broker %s for its API versions: %w", b.Addr(), err)
	}
	have := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		have[k.ApiKey] = true
	}
	var missing []string
	for key, name := range map[int16]string{22: "InitProducerId", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 28: "TxnOffsetCommit"} {
		if !have[key] {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return "", nil
	}
	return fmt.Sprintf("the Kafka cluster does not support transactions (no %s): a restore writes exactly once with them; Kafka 2.5 or newer is needed",
		strings.Join(missing, ", ")), nil
}
