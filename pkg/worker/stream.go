package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/storage"
)

// streamBackup backs up one topic: it checks that the topic in Kafka is the
// one whose backup storage holds, then runs one partitionBackup per
// partition, picking up partitions added while it runs.
type streamBackup struct {
	topic    string
	owner    string // the Backup, "namespace/name", recorded in topic.json
	settings segmentSettings
	bucket   storage.Bucket
	client   sarama.Client
	consumer sarama.Consumer
	metrics  *metrics
	progress *progress
	budget   *memoryBudget
	// recheck is how often partitions are listed again and the topic
	// checked again.
	recheck time.Duration

	// topicID is the id of the topic whose backup storage holds, once
	// checked; partitions read it before every upload.
	topicID atomic.Pointer[string]
}

// errStreamConflict is a check that cannot pass until a person acts.
var errStreamConflict = errors.New("stream cannot run")

// topicMissingError: the stream's topic is not in the cluster.
type topicMissingError struct{ topic string }

func (e topicMissingError) Error() string {
	return fmt.Sprintf("topic %q does not exist in the Kafka cluster; create it, or correct or remove the stream", e.topic)
}

// needsAPerson: a stream check failed in a way retrying cannot fix.
func needsAPerson(err error) bool {
	return errors.Is(err, errStreamConflict) || errors.As(err, new(topicMissingError))
}

// run backs the topic up until ctx ends (stop now) or drain is closed
// (upload open segments, then stop).
func (s *streamBackup) run(ctx context.Context, drain <-chan struct{}) {
	logger := klog.FromContext(ctx).WithValues("topic", s.topic)
	ctx = klog.NewContext(ctx, logger)
	defer s.progress.setStream(s.topic, StreamStopped, "")

	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[int32]bool{}
	tick := time.NewTicker(s.recheck)
	defer tick.Stop()
	checked := false // the topic passed its check once: partitions run
	healthy := false // the last check passed
	for {
		// Checked at every tick, not only once: a topic deleted and
		// recreated while running must stop the stream.
		if err := s.check(ctx); err != nil {
			healthy = false
			if needsAPerson(err) {
				s.metrics.errors.WithLabelValues(s.topic, "stream").Inc()
				s.progress.setStream(s.topic, StreamFailed, err.Error())
				logger.Error(err, "Stream cannot run; checking again later", "in", s.recheck)
			} else {
				// Storage or Kafka failed this time: it may pass the next.
				s.metrics.errors.WithLabelValues(s.topic, errorKind(err)).Inc()
				s.progress.setStream(s.topic, StreamRetrying, err.Error()+" (retrying)")
				logger.Error(err, "Stream check failed; retrying", "in", s.recheck)
			}
		} else if !healthy {
			checked, healthy = true, true
			s.progress.setStream(s.topic, StreamStreaming, "")
		}
		if checked {
			parts, err := s.partitions()
			if err != nil {
				s.metrics.errors.WithLabelValues(s.topic, "kafka").Inc()
				logger.Error(err, "Could not list the topic's partitions; retrying")
			}
			initial := len(running) == 0
			for _, part := range parts {
				if running[part] {
					continue
				}
				if !initial {
					logger.Info("New partition found: backing it up", "partition", part)
				}
				running[part] = true
				pb := &partitionBackup{topic: s.topic, partition: part, settings: s.settings, bucket: s.bucket,
					client: s.client, consumer: s.consumer, metrics: s.metrics, progress: s.progress.partition(s.topic, part),
					budget: s.budget, verifyTopic: s.verifyTopic}
				wg.Go(func() { pb.run(ctx, drain) })
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-drain:
			logger.Info("Stream stopping: uploading open segments")
			return
		case <-tick.C:
		}
	}
}

// partitions lists the topic's partitions from fresh metadata.
func (s *streamBackup) partitions() ([]int32, error) {
	if err := s.client.RefreshMetadata(s.topic); err != nil {
		return nil, err
	}
	return s.client.Partitions(s.topic)
}

// check makes sure the topic exists, and that storage holds this topic's
// backup (or none yet): same owner Backup, same Kafka cluster, same topic id.
// It writes topic.json before the first segment.
func (s *streamBackup) check(ctx context.Context) error {
	clusterID, topicID, partitions, err := s.describe()
	if err != nil {
		return err
	}
	want := layout.TopicMeta{FormatVersion: 1, Topic: s.topic, Owner: s.owner, ClusterID: clusterID, TopicID: topicID,
		Partitions: int32(partitions), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	for range 2 {
		have, ok, err := layout.ReadTopicMeta(ctx, s.bucket, s.topic)
		if err != nil {
			return storageError{err}
		}
		if !ok {
			// A restore with createTopics recreates the topic with these.
			if want.Configs, err = s.topicConfigs(); err != nil {
				return err
			}
			err := layout.WriteTopicMeta(ctx, s.bucket, want)
			if errors.Is(err, storage.ErrExists) {
				continue // written meanwhile: read it
			}
			if err != nil {
				return storageError{err}
			}
			s.topicID.Store(&topicID)
			return nil
		}
		switch {
		case have.Owner != s.owner:
			return fmt.Errorf("%w: topic %q in this Storage is backed up by Backup %s; two Backups cannot write one topic of one Storage: remove the stream, or use another Storage or prefix",
				errStreamConflict, s.topic, have.Owner)
		case have.ClusterID != clusterID:
			return fmt.Errorf("%w: topic %q in this Storage was backed up from Kafka cluster %s, the EventHub is cluster %s; use another Storage or prefix for this cluster",
				errStreamConflict, s.topic, have.ClusterID, clusterID)
		case have.TopicID != topicID:
			return recreatedError(s.topic, have.TopicID, topicID)
		}
		s.topicID.Store(&topicID)
		return nil
	}
	return fmt.Errorf("could not read %s", layout.TopicMetaName(s.topic))
}

func recreatedError(topic, stored, current string) error {
	return fmt.Errorf("%w: topic %q was deleted and recreated (topic id %s in storage, %s in Kafka); its old backup is kept: back the new topic up to another Storage or prefix",
		errStreamConflict, topic, stored, current)
}

// verifyTopic checks, before a segment is uploaded, that the topic in Kafka
// is still the one whose backup storage holds: records of a topic recreated
// under the same name are never mixed into the old topic's backup.
func (s *streamBackup) verifyTopic() error {
	checked := s.topicID.Load()
	if checked == nil {
		return fmt.Errorf("topic %q has not been checked yet", s.topic)
	}
	_, topicID, _, err := s.describe()
	if err != nil {
		return err
	}
	if topicID != *checked {
		return recreatedError(s.topic, *checked, topicID)
	}
	return nil
}

// topicConfigs returns the configs set on the topic itself (not the
// broker's defaults), as `kafka-configs --describe` lists them.
func (s *streamBackup) topicConfigs() (map[string]string, error) {
	broker, err := s.client.Controller()
	if err != nil {
		return nil, fmt.Errorf("reach the Kafka controller: %w", err)
	}
	resp, err := broker.DescribeConfigs(&sarama.DescribeConfigsRequest{Version: 1,
		Resources: []*sarama.ConfigResource{{Type: sarama.TopicResource, Name: s.topic}}})
	if err != nil {
		return nil, fmt.Errorf("read the configs of topic %q: %w", s.topic, err)
	}
	configs := map[string]string{}
	for _, r := range resp.Resources {
		if r.ErrorCode != 0 {
			return nil, fmt.Errorf("read the configs of topic %q: %w", s.topic, sarama.KError(r.ErrorCode))
		}
		for _, c := range r.Configs {
			if c.Source == sarama.SourceTopic && !c.Sensitive {
				configs[c.Name] = c.Value
			}
		}
	}
	return configs, nil
}

// describe returns the cluster id, the topic's id and partition count.
func (s *streamBackup) describe() (clusterID, topicID string, partitions int, err error) {
	broker, err := s.client.Controller()
	if err != nil {
		return "", "", 0, fmt.Errorf("reach the Kafka controller: %w", err)
	}
	resp, err := broker.GetMetadata(sarama.NewMetadataRequest(kafka.Version, []string{s.topic}))
	if err != nil {
		return "", "", 0, fmt.Errorf("read topic metadata: %w", err)
	}
	if len(resp.Topics) != 1 {
		return "", "", 0, fmt.Errorf("read topic metadata: %d topics in the answer", len(resp.Topics))
	}
	t := resp.Topics[0]
	if errors.Is(t.Err, sarama.ErrUnknownTopicOrPartition) {
		return "", "", 0, topicMissingError{s.topic}
	}
	if t.Err != sarama.ErrNoError {
		return "", "", 0, fmt.Errorf("topic %q: %w", s.topic, t.Err)
	}
	if resp.ClusterID != nil {
		clusterID = *resp.ClusterID
	}
	return clusterID, t.Uuid.String(), len(t.Partitions), nil
}
