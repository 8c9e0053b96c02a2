// Package restore runs one Restore: it plans what to write from the Storage's
// listing alone, checks the target cluster before the first write, then
// reads segments and produces their records into Kafka in transactions that
// also commit the restore's progress, so a restore killed at any moment
// resumes and writes no record twice (docs/restore.md).
package restore

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
)

// Stored is what a Storage holds of one backed-up topic.
type Stored struct {
	// Meta is the topic's topic.json; nil if there is none.
	Meta *layout.TopicMeta
	// Partitions are the partitions that have objects, by number.
	Partitions map[int32]*layout.PartitionState
}

// Plan is everything a Restore will write, known before its first write.
type Plan struct {
	Topics []TopicPlan
}

// TopicPlan restores one backed-up topic into a target topic.
type TopicPlan struct {
	Source, Target string
	// SourcePartitions is the partition count of the backed-up topic, which
	// createTopics gives a created target.
	SourcePartitions int32
	// Configs are the topic configs the backup recorded.
	Configs map[string]string
	// AllowNonEmpty is the mapping's disablePreflightChecks.
	AllowNonEmpty bool
	Partitions    []PartitionPlan
	// Records and Bytes are the totals selected, over every partition.
	Records, Bytes int64
	// Gaps are the parts of the window the backup does not hold.
	Gaps         []v1alpha.RestoreGap
	GapPositions int64
}

// PartitionPlan restores one partition's window of positions and times.
type PartitionPlan struct {
	Partition int32
	// From and Until bound the positions restored: [From, Until).
	From, Until int64
	// TimeFrom and TimeTo bound the timestamps restored: [TimeFrom,
	// TimeTo); zero means unbounded.
	TimeFrom, TimeTo time.Time
	// Segments are the segments that may hold selected records, in order.
	Segments []SegmentPlan
	// Records and Bytes are what the window selects.
	Records, Bytes int64
}

// SegmentPlan is one segment to read.
type SegmentPlan struct {
	layout.Object
	// Whole is true when the window selects every record of the segment,
	// so its metadata's counts are exact; otherwise they are counted by
	// reading it (CountPartial).
	Whole bool
}

// Selects reports whether a record at offset with timestamp ts is restored.
func (p *PartitionPlan) Selects(offset int64, ts time.Time) bool {
	return offset >= p.From && offset < p.Until &&
		(p.TimeFrom.IsZero() || !ts.Before(p.TimeFrom)) &&
		(p.TimeTo.IsZero() || ts.Before(p.TimeTo))
}

// PlanError is a spec that cannot be planned: the field and the fix.
type PlanError struct {
	Field   string
	Message string
}

func (e *PlanError) Error() string { return e.Field + ": " + e.Message }

// maxListedGaps bounds the gaps listed in the status (the CRD's MaxItems).
const maxListedGaps = 20

// NewPlan selects, for every mapping of the Restore, the partitions, the
// positions and the segments to restore, from the Storage's listing alone.
// location names the Storage in errors. Segments whose metadata shows they
// hold no selected record are skipped; segments the window cuts are marked
// for CountPartial.
func NewPlan(spec v1alpha.RestoreSpec, location string, stored map[string]*Stored) (*Plan, []*PlanError) {
	var problems []*PlanError
	plan := &Plan{}
	var timeFrom, timeTo time.Time
	if f := spec.Config.Filters; f != nil && f.Time != nil && f.Time.Absolute != nil {
		if a := f.Time.Absolute; a.FromDateTime != nil {
			timeFrom = a.FromDateTime.Time
		}
		if a := f.Time.Absolute; a.ToDateTime != nil {
			timeTo = a.ToDateTime.Time
		}
	}
	for i, m := range spec.Config.Topics {
		field := fmt.Sprintf("spec.config.topics[%d]", i)
		st := stored[m.Source]
		if st == nil || (st.Meta == nil && len(st.Partitions) == 0) {
			problems = append(problems, &PlanError{Field: field + ".source", Message: fmt.Sprintf(
				"topic %q is not in Storage %q (%s): correct the topic name, or point spec.source at the Storage that holds its backup",
				m.Source, spec.Source, location)})
			continue
		}
		tp := TopicPlan{Source: m.Source, Target: m.Target, AllowNonEmpty: m.DisablePreflightChecks,
			SourcePartitions: sourcePartitions(st)}
		if st.Meta != nil {
			tp.Configs = st.Meta.Configs
		}
		type window struct{ from, until int64 }
		windows := map[int32]window{}
		if len(m.Partitions) == 0 {
			for p := range st.Partitions {
				windows[p] = window{0, math.MaxInt64}
			}
		}
		for j, sel := range m.Partitions {
			pfield := fmt.Sprintf("%s.partitions[%d]", field, j)
			ps := st.Partitions[sel.Number]
			if ps == nil || len(ps.Objects) == 0 {
				problems = append(problems, &PlanError{Field: pfield + ".number", Message: fmt.Sprintf(
					"partition %d of topic %q is not in the backup (it holds partitions %s): remove it or correct the number",
					sel.Number, m.Source, partitionList(st))})
				continue
			}
			w := window{0, math.MaxInt64}
			if sel.RestoreFromOffset != nil {
				w.from = *sel.RestoreFromOffset
			}
			if sel.RestoreUntilOffset != nil {
				w.until = *sel.RestoreUntilOffset
			}
			if w.from >= ps.Next {
				problems = append(problems, &PlanError{Field: pfield + ".restoreFromOffset", Message: fmt.Sprintf(
					"offset %d is past the end of the backup of topic %q partition %d, which holds offsets below %d: lower it",
					w.from, m.Source, sel.Number, ps.Next)})
				continue
			}
			windows[sel.Number] = w
		}
		numbers := make([]int32, 0, len(windows))
		for p := range windows {
			numbers = append(numbers, p)
		}
		sort.Slice(numbers, func(a, b int) bool { return numbers[a] < numbers[b] })
		for _, p := range numbers {
			w := windows[p]
			pp := PartitionPlan{Partition: p, From: w.from, Until: w.until, TimeFrom: timeFrom, TimeTo: timeTo}
			for _, o := range st.Partitions[p].Objects {
				if o.End <= w.from || o.Start >= w.until {
					continue
				}
				if o.Gap {
					g := v1alpha.RestoreGap{Partition: p, Start: max(o.Start, w.from), End: min(o.End, w.until)}
					tp.GapPositions += g.End - g.Start
					if len(tp.Gaps) < maxListedGaps {
						tp.Gaps = append(tp.Gaps, g)
					}
					continue
				}
				// A segment stored without its timestamp bounds may hold
				// records of any time: it is read, never skipped or
				// counted whole by a time window.
				timed := !o.MinTimestamp.IsZero() && !o.MaxTimestamp.IsZero()
				if o.Records == 0 || timed && ((!timeFrom.IsZero() && o.MaxTimestamp.Before(timeFrom)) ||
					(!timeTo.IsZero() && !o.MinTimestamp.Before(timeTo))) {
					continue // no record of it can be selected
				}
				whole := o.Start >= w.from && o.End <= w.until &&
					(timeFrom.IsZero() || timed && !o.MinTimestamp.Before(timeFrom)) &&
					(timeTo.IsZero() || timed && o.MaxTimestamp.Before(timeTo))
				pp.Segments = append(pp.Segments, SegmentPlan{Object: o, Whole: whole})
				if whole {
					pp.Records += o.Records
					pp.Bytes += o.Bytes
				}
			}
			tp.Partitions = append(tp.Partitions, pp)
		}
		plan.Topics = append(plan.Topics, tp)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	plan.sum()
	return plan, nil
}

// sum adds the partitions' counts up into their topics.
func (p *Plan) sum() {
	for i := range p.Topics {
		t := &p.Topics[i]
		t.Records, t.Bytes = 0, 0
		for _, pp := range t.Partitions {
			t.Records += pp.Records
			t.Bytes += pp.Bytes
		}
	}
}

// Totals are the records and bytes selected over every topic.
func (p *Plan) Totals() (records, bytes int64) {
	for _, t := range p.Topics {
		records += t.Records
		bytes += t.Bytes
	}
	return records, bytes
}

// sourcePartitions is the backed-up topic's partition count: what topic.json
// recorded, or more if partitions were added while it was backed up.
func sourcePartitions(st *Stored) int32 {
	var n int32
	if st.Meta != nil {
		n = st.Meta.Partitions
	}
	for p := range st.Partitions {
		n = max(n, p+1)
	}
	return n
}

func partitionList(st *Stored) string {
	var ps []string
	for p, s := range st.Partitions {
		if len(s.Objects) > 0 {
			ps = append(ps, fmt.Sprint(p))
		}
	}
	if len(ps) == 0 {
		return "none"
	}
	sort.Slice(ps, func(a, b int) bool { return len(ps[a]) < len(ps[b]) || (len(ps[a]) == len(ps[b]) && ps[a] < ps[b]) })
	return strings.Join(ps, ", ")
}
