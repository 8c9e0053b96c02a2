package restore

import (
	"fmt"
	"strings"
)

// Target is what the target cluster says of one target topic.
type Target struct {
	Exists     bool
	Partitions int32
	// Held counts, per partition, the positions the partition holds
	// (newest minus oldest offset): 0 is an empty partition.
	Held map[int32]int64
}

// Claimed lists, per target topic, the partitions this Restore has already
// committed progress for: what they hold is its own earlier writes.
type Claimed map[string]map[int32]bool

// Preflight checks, before the first write, what would make the restore
// fail half-way or mix data. It returns every problem found, each naming
// the field and the fix; an empty result means the restore may write.
// Targets that do not exist are created only when createTopics is set.
func Preflight(plan *Plan, targets map[string]Target, claimed Claimed, createTopics bool, eventHub string) []*PlanError {
	var problems []*PlanError
	add := func(field, format string, args ...any) {
		problems = append(problems, &PlanError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	writers := map[string]map[int32]string{} // target → partition → source writing it
	for i, t := range plan.Topics {
		field := fmt.Sprintf("spec.config.topics[%d].target", i)
		if strings.HasPrefix(t.Target, "__") {
			add(field, "%q is a Kafka internal topic name (names starting with '__' are the cluster's own, like __consumer_offsets): restore into a topic of your own", t.Target)
			continue
		}
		if writers[t.Target] == nil {
			writers[t.Target] = map[int32]string{}
		}
		need := int32(0)
		for _, p := range t.Partitions {
			need = max(need, p.Partition+1)
			if other, ok := writers[t.Target][p.Partition]; ok {
				add(field, "topic %q partition %d would be written by both %q and %q: restore them into different topics", t.Target, p.Partition, other, t.Source)
			}
			writers[t.Target][p.Partition] = t.Source
		}
		target := targets[t.Target]
		if !target.Exists {
			if !createTopics {
				add(field, "topic %q does not exist in EventHub %q: create it with at least %d partitions, or set spec.config.createTopics: true to create it with the backed-up partition count (%d)",
					t.Target, eventHub, need, t.SourcePartitions)
			}
			continue
		}
		if target.Partitions < need {
			add(field, "topic %q has %d partitions but the restore writes partition %d: add partitions to it (at least %d), or restore into another topic",
				t.Target, target.Partitions, need-1, need)
			continue
		}
		if t.AllowNonEmpty {
			continue
		}
		for _, p := range t.Partitions {
			if claimed[t.Target][p.Partition] {
				continue // holds this Restore's own committed records
			}
			if held := target.Held[p.Partition]; held > 0 {
				add(field, "topic %q partition %d is not empty (%d offsets): restore into an empty topic, or set disablePreflightChecks: true on this topic to add the records after what it holds",
					t.Target, p.Partition, held)
				break
			}
		}
	}
	return problems
}

// joinProblems is one message for several problems, every one in full.
func joinProblems(problems []*PlanError) string {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}
