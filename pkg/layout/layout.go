// Package layout names a backup's objects in storage, reads and writes
// topic.json, and turns a listing into each partition's state: where the
// backup continues, and whether its objects tile the partition.
package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
)

// Object kinds, by name suffix.
const (
	SegmentSuffix = ".seg"
	GapSuffix     = ".gap"
	topicMetaName = "topic.json"
)

// Metadata keys on every segment and gap object, so a restore can plan from
// a listing alone.
const (
	MetaEnd          = "armory-end"
	MetaRecords      = "armory-records"
	MetaBytes        = "armory-bytes"
	MetaMinTimestamp = "armory-min-timestamp-ms"
	MetaMaxTimestamp = "armory-max-timestamp-ms"
	MetaFormat       = "armory-format"
)

// TopicMetaName is the name of a topic's topic.json.
func TopicMetaName(topic string) string { return topic + "/" + topicMetaName }

// PartitionPrefix is the prefix of a partition's objects.
func PartitionPrefix(topic string, partition int32) string {
	return fmt.Sprintf("%s/%d/", topic, partition)
}

// SegmentName names the segment starting at position start.
func SegmentName(topic string, partition int32, start int64) string {
	return fmt.Sprintf("%s%020d%s", PartitionPrefix(topic, partition), start, SegmentSuffix)
}

// GapName names the gap marker starting at position start.
func GapName(topic string, partition int32, start int64) string {
	return fmt.Sprintf("%s%020d%s", PartitionPrefix(topic, partition), start, GapSuffix)
}

// SegmentMetadata is the object metadata of a segment.
func SegmentMetadata(s segment.Summary) map[string]string {
	return map[string]string{
		MetaFormat:       fmt.Sprintf("segment-v%d-%s", segment.Version, s.Codec),
		MetaEnd:          strconv.FormatInt(s.End, 10),
		MetaRecords:      strconv.FormatInt(s.Records, 10),
		MetaBytes:        strconv.FormatInt(s.Bytes, 10),
		MetaMinTimestamp: strconv.FormatInt(s.MinTimestamp.UnixMilli(), 10),
		MetaMaxTimestamp: strconv.FormatInt(s.MaxTimestamp.UnixMilli(), 10),
	}
}

// Gap is a range of positions Kafka no longer had when the backup reached it.
type Gap struct {
	Topic      string    `json:"topic"`
	Partition  int32     `json:"partition"`
	Start      int64     `json:"start"`
	End        int64     `json:"end"`
	DetectedAt time.Time `json:"detectedAt"`
	Reason     string    `json:"reason"`
}

// TopicMeta is topic.json: who owns a topic's backup and what the topic was.
type TopicMeta struct {
	FormatVersion int    `json:"formatVersion"`
	Topic         string `json:"topic"`
	// Owner is the Backup writing this topic: "namespace/name".
	Owner      string            `json:"owner"`
	ClusterID  string            `json:"clusterId"`
	TopicID    string            `json:"topicId"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
}

// ReadTopicMeta reads a topic's topic.json; ok is false if there is none.
func ReadTopicMeta(ctx context.Context, b storage.Bucket, topic string) (meta TopicMeta, ok bool, err error) {
	r, err := b.Open(ctx, TopicMetaName(topic))
	if errors.Is(err, storage.ErrNotExist) {
		return TopicMeta{}, false, nil
	}
	if err != nil {
		return TopicMeta{}, false, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return TopicMeta{}, false, err
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return TopicMeta{}, false, fmt.Errorf("%s is damaged: %w", TopicMetaName(topic), err)
	}
	return meta, true, nil
}

// WriteTopicMeta writes topic.json if absent; storage.ErrExists if present.
func WriteTopicMeta(ctx context.Context, b storage.Bucket, meta TopicMeta) error {
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return b.Create(ctx, TopicMetaName(meta.Topic), bytes.NewReader(data), nil)
}

// Object is a segment or gap marker found in a listing.
type Object struct {
	Name       string
	Gap        bool
	Start, End int64
	Records    int64
	Bytes      int64
	// MinTimestamp and MaxTimestamp bound a segment's record timestamps
	// (zero for gap markers and objects written without them).
	MinTimestamp, MaxTimestamp time.Time
	// Created is when the object was stored.
	Created time.Time
}

// PartitionState is what storage says about one partition.
type PartitionState struct {
	Partition int32
	Objects   []Object
	// Next is where the backup continues: the end of the last object, or 0.
	Next int64
	// Records and Bytes stored, over all segments.
	Records, Bytes int64
	// LastStored is when the newest segment was stored (zero if none).
	LastStored time.Time
}

// ListPartition reads one partition's objects and checks that they tile it
// from position 0, with no hole and no overlap.
func ListPartition(ctx context.Context, b storage.Bucket, topic string, partition int32) (*PartitionState, error) {
	st := &PartitionState{Partition: partition}
	prefix := PartitionPrefix(topic, partition)
	err := b.List(ctx, prefix, func(a storage.ObjectAttrs) error {
		o, err := parseObject(prefix, a)
		if err != nil {
			return err
		}
		if o.Name != "" {
			st.Objects = append(st.Objects, o)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(st.Objects, func(i, j int) bool { return st.Objects[i].Start < st.Objects[j].Start })
	// A partition is tiled from position 0: a backup starts there, with a
	// gap marker if Kafka no longer had the first offsets.
	for _, o := range st.Objects {
		if o.Start != st.Next {
			what := "hole"
			if o.Start < st.Next {
				what = "overlap"
			}
			return nil, fmt.Errorf("the backup of %s partition %d has a %s: %s starts at %d, the previous object ends at %d",
				topic, partition, what, o.Name, o.Start, st.Next)
		}
		st.Next = o.End
		st.Records += o.Records
		st.Bytes += o.Bytes
		if !o.Gap && o.Created.After(st.LastStored) {
			st.LastStored = o.Created
		}
	}
	return st, nil
}

// parseObject reads an object's name and metadata; an unrelated name gives
// an empty Object.
func parseObject(prefix string, a storage.ObjectAttrs) (Object, error) {
	base := strings.TrimPrefix(a.Name, prefix)
	var gap bool
	switch {
	case strings.HasSuffix(base, SegmentSuffix):
	case strings.HasSuffix(base, GapSuffix):
		gap = true
	default:
		return Object{}, nil
	}
	// Only the name the writer gives a position: 20 digits (no sign, no
	// other spelling of the same number), then the suffix.
	digits := base[:len(base)-4]
	if len(base) != 24 || strings.Trim(digits, "0123456789") != "" {
		return Object{}, nil
	}
	start, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return Object{}, nil
	}
	o := Object{Name: a.Name, Gap: gap, Start: start, Created: a.Created}
	if o.End, err = strconv.ParseInt(a.Metadata[MetaEnd], 10, 64); err != nil || o.End <= o.Start {
		return Object{}, fmt.Errorf("%s has no valid %s metadata (%q)", a.Name, MetaEnd, a.Metadata[MetaEnd])
	}
	// The counts plan restores (a segment of 0 records is skipped): a
	// damaged one is an error, not a zero.
	for _, count := range []struct {
		key string
		n   *int64
	}{{MetaRecords, &o.Records}, {MetaBytes, &o.Bytes}} {
		if *count.n, err = strconv.ParseInt(a.Metadata[count.key], 10, 64); err != nil || *count.n < 0 {
			return Object{}, fmt.Errorf("%s has no valid %s metadata (%q)", a.Name, count.key, a.Metadata[count.key])
		}
	}
	if ms, err := strconv.ParseInt(a.Metadata[MetaMinTimestamp], 10, 64); err == nil {
		o.MinTimestamp = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(a.Metadata[MetaMaxTimestamp], 10, 64); err == nil {
		o.MaxTimestamp = time.UnixMilli(ms)
	}
	return o, nil
}

// ListPartitions lists the partitions that have objects under a topic.
func ListPartitions(ctx context.Context, b storage.Bucket, topic string) ([]int32, error) {
	seen := map[int32]bool{}
	err := b.List(ctx, topic+"/", func(a storage.ObjectAttrs) error {
		rest := strings.TrimPrefix(a.Name, topic+"/")
		if i := strings.Index(rest, "/"); i > 0 {
			if p, err := strconv.ParseInt(rest[:i], 10, 32); err == nil {
				seen[int32(p)] = true
			}
		}
		return nil
	})
	var out []int32
	for p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, err
}
