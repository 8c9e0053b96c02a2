package restore

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
)

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// stored: partition 0 has segments [0,100) [100,200), a gap [200,300), and
// [300,400); timestamps t0+offset seconds.
func testStored() map[string]*Stored {
	seg := func(start, end int64) layout.Object {
		return layout.Object{Name: layout.SegmentName("t", 0, start), Start: start, End: end, Records: end - start, Bytes: 10 * (end - start),
			MinTimestamp: t0.Add(time.Duration(start) * time.Second), MaxTimestamp: t0.Add(time.Duration(end-1) * time.Second)}
	}
	gap := layout.Object{Name: "t/0/gap.gap", Gap: true, Start: 200, End: 300}
	return map[string]*Stored{"t": {
		Meta:       &layout.TopicMeta{Topic: "t", Partitions: 2, Configs: map[string]string{"cleanup.policy": "compact"}},
		Partitions: map[int32]*layout.PartitionState{0: {Partition: 0, Objects: []layout.Object{seg(0, 100), seg(100, 200), gap, seg(300, 400)}, Next: 400}},
	}}
}

func TestNewPlan(t *testing.T) {
	spec := func(parts []v1alpha.RestorePartition, from, to *time.Time) v1alpha.RestoreSpec {
		s := v1alpha.RestoreSpec{Source: "s", Config: v1alpha.RestoreConfig{Topics: []v1alpha.RestoreTopic{{Source: "t", Target: "u", Partitions: parts}}}}
		if from != nil || to != nil {
			w := &v1alpha.AbsoluteTimeWindow{}
			if from != nil {
				w.FromDateTime = &metav1.Time{Time: *from}
			}
			if to != nil {
				w.ToDateTime = &metav1.Time{Time: *to}
			}
			s.Config.Filters = &v1alpha.RestoreFilters{Time: &v1alpha.TimeFilter{Absolute: w}}
		}
		return s
	}
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	tests := []struct {
		name         string
		spec         v1alpha.RestoreSpec
		segments     []string // start-end, W for whole
		records      int64    // counted from whole segments only
		gapPositions int64
		from, until  int64
	}{
		{"everything", spec(nil, nil, nil), []string{"0W", "100W", "300W"}, 300, 100, 0, math.MaxInt64},
		{"offset window cutting two segments", spec([]v1alpha.RestorePartition{{Number: 0, RestoreFromOffset: ptr.To[int64](50), RestoreUntilOffset: ptr.To[int64](150)}}, nil, nil),
			[]string{"0", "100"}, 0, 0, 50, 150},
		{"window on segment boundaries", spec([]v1alpha.RestorePartition{{Number: 0, RestoreFromOffset: ptr.To[int64](100), RestoreUntilOffset: ptr.To[int64](200)}}, nil, nil),
			[]string{"100W"}, 100, 0, 100, 200},
		{"window inside the gap", spec([]v1alpha.RestorePartition{{Number: 0, RestoreFromOffset: ptr.To[int64](210), RestoreUntilOffset: ptr.To[int64](220)}}, nil, nil),
			nil, 0, 10, 210, 220},
		{"time window skips segments by metadata", spec(nil, at(100), at(200)), []string{"100W"}, 100, 100, 0, math.MaxInt64},
		{"time window cutting a segment", spec(nil, at(150), at(320)), []string{"100", "300"}, 0, 100, 0, math.MaxInt64},
	}
	for _, tc := range tests {
		plan, problems := NewPlan(tc.spec, "gs://b", testStored())
		if len(problems) > 0 {
			t.Fatalf("%s: %v", tc.name, problems)
		}
		tp := plan.Topics[0]
		pp := tp.Partitions[0]
		var got []string
		for _, s := range pp.Segments {
			g := strconv.FormatInt(s.Start, 10)
			if s.Whole {
				g += "W"
			}
			got = append(got, g)
		}
		if strings.Join(got, ",") != strings.Join(tc.segments, ",") || pp.Records != tc.records || tp.GapPositions != tc.gapPositions ||
			pp.From != tc.from || pp.Until != tc.until || tp.SourcePartitions != 2 || tp.Configs["cleanup.policy"] != "compact" {
			t.Errorf("%s: segments %v records %d gaps %d window [%d,%d) partitions %d; want %v %d %d [%d,%d) 2",
				tc.name, got, pp.Records, tp.GapPositions, pp.From, pp.Until, tp.SourcePartitions, tc.segments, tc.records, tc.gapPositions, tc.from, tc.until)
		}
	}
}

func TestPlanSelectsAtExactBoundaries(t *testing.T) {
	pp := PartitionPlan{From: 10, Until: 20, TimeFrom: t0, TimeTo: t0.Add(time.Second)}
	for _, tc := range []struct {
		offset int64
		ts     time.Time
		want   bool
	}{
		{10, t0, true}, {19, t0.Add(999 * time.Millisecond), true}, {9, t0, false}, {20, t0, false},
		{15, t0.Add(-time.Millisecond), false}, {15, t0.Add(time.Second), false},
	} {
		if got := pp.Selects(tc.offset, tc.ts); got != tc.want {
			t.Errorf("Selects(%d, %v) = %v, want %v", tc.offset, tc.ts, got, tc.want)
		}
	}
}

func TestPlanProblems(t *testing.T) {
	spec := v1alpha.RestoreSpec{Source: "s", Config: v1alpha.RestoreConfig{Topics: []v1alpha.RestoreTopic{
		{Source: "missing", Target: "a"},
		{Source: "t", Target: "b", Partitions: []v1alpha.RestorePartition{{Number: 7}, {Number: 0, RestoreFromOffset: ptr.To[int64](400)}}},
	}}}
	_, problems := NewPlan(spec, "gs://b", testStored())
	want := []string{
		`spec.config.topics[0].source: topic "missing" is not in Storage "s" (gs://b)`,
		`spec.config.topics[1].partitions[0].number: partition 7 of topic "t" is not in the backup (it holds partitions 0)`,
		`spec.config.topics[1].partitions[1].restoreFromOffset: offset 400 is past the end of the backup of topic "t" partition 0, which holds offsets below 400`,
	}
	if len(problems) != len(want) {
		t.Fatalf("problems %v", problems)
	}
	for i, w := range want {
		if !strings.HasPrefix(problems[i].Error(), w) {
			t.Errorf("problem %d = %q, want %q…", i, problems[i].Error(), w)
		}
	}
}

func TestPreflight(t *testing.T) {
	plan := &Plan{Topics: []TopicPlan{
		{Source: "a", Target: "ta", SourcePartitions: 3, Partitions: []PartitionPlan{{Partition: 0}, {Partition: 2}}},
	}}
	tests := []struct {
		name    string
		targets map[string]Target
		claimed Claimed
		create  bool
		want    string
	}{
		{"missing", map[string]Target{}, nil, false, `topic "ta" does not exist in EventHub "eh": create it with at least 3 partitions, or set spec.config.createTopics: true`},
		{"missing, created", map[string]Target{}, nil, true, ""},
		{"too small", map[string]Target{"ta": {Exists: true, Partitions: 2}}, nil, false, `topic "ta" has 2 partitions but the restore writes partition 2`},
		{"not empty", map[string]Target{"ta": {Exists: true, Partitions: 3, Held: map[int32]int64{2: 5}}}, nil, false, `topic "ta" partition 2 is not empty (5 offsets)`},
		{"not empty but claimed by this restore", map[string]Target{"ta": {Exists: true, Partitions: 3, Held: map[int32]int64{2: 5}}},
			Claimed{"ta": {2: true}}, false, ""},
		{"empty", map[string]Target{"ta": {Exists: true, Partitions: 3, Held: map[int32]int64{}}}, nil, false, ""},
	}
	for _, tc := range tests {
		problems := Preflight(plan, tc.targets, tc.claimed, tc.create, "eh")
		got := joinProblems(problems)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	internal := &Plan{Topics: []TopicPlan{{Target: "__consumer_offsets"}, {Source: "x", Target: "d", Partitions: []PartitionPlan{{Partition: 0}}},
		{Source: "y", Target: "d", Partitions: []PartitionPlan{{Partition: 0}}}}}
	got := joinProblems(Preflight(internal, map[string]Target{"d": {Exists: true, Partitions: 1}}, nil, false, "eh"))
	for _, want := range []string{`spec.config.topics[0].target: "__consumer_offsets" is a Kafka internal topic`,
		`spec.config.topics[2].target: topic "d" partition 0 would be written by both "x" and "y"`} {
		if !strings.Contains(got, want) {
			t.Errorf("Preflight = %q, want %q", got, want)
		}
	}
}
