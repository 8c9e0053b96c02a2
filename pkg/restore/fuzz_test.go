package restore

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/layout"
)

// FuzzPlanWindows: whatever the offset and time window, the plan reads
// every segment that holds a selected record, a gap marker never hides one,
// and a segment marked whole (counted from its metadata, not read) holds
// only selected records. Timestamps within a segment are not ordered (Kafka
// does not order them), and some segments may carry no timestamp metadata.
// A spec that cannot be planned is an error naming a field, never a panic.
func FuzzPlanWindows(f *testing.F) {
	f.Add(int64(0), int64(1000), int64(0), int64(0), uint8(10), uint16(1), uint8(0))
	f.Add(int64(45), int64(47), int64(0), int64(0), uint8(7), uint16(3), uint8(0))
	f.Add(int64(3), int64(90), int64(20), int64(60), uint8(9), uint16(13), uint8(2))
	f.Add(int64(0), int64(100), int64(50), int64(51), uint8(100), uint16(0), uint8(1))
	f.Add(int64(99), int64(3), int64(-5), int64(0), uint8(1), uint16(5), uint8(3))
	f.Add(int64(-1), int64(-1), int64(0), int64(-1), uint8(0), uint16(7), uint8(0))
	f.Fuzz(func(t *testing.T, from, until, timeFrom, timeTo int64, segLen uint8, tsStep uint16, bareEvery uint8) {
		// 100 positions: segments of segLen records, except a gap marker
		// over [40, 50); the record at offset o has timestamp ts(o).
		const n, gapStart, gapEnd = 100, 40, 50
		ts := func(o int64) time.Time { return t0.Add(time.Duration(o*int64(tsStep)%97) * time.Second) }
		size := max(int64(segLen), 1)
		var objects []layout.Object
		for start := int64(0); start < n; {
			if start == gapStart {
				objects = append(objects, layout.Object{Name: layout.GapName("t", 0, start), Gap: true, Start: gapStart, End: gapEnd})
				start = gapEnd
				continue
			}
			end := min(start+size, n)
			if start < gapStart && end > gapStart {
				end = gapStart
			}
			o := layout.Object{Name: layout.SegmentName("t", 0, start), Start: start, End: end, Records: end - start, Bytes: 10 * (end - start)}
			if bareEvery == 0 || len(objects)%int(bareEvery) != 0 {
				o.MinTimestamp, o.MaxTimestamp = ts(start), ts(start)
				for off := start; off < end; off++ {
					if ts(off).Before(o.MinTimestamp) {
						o.MinTimestamp = ts(off)
					}
					if ts(off).After(o.MaxTimestamp) {
						o.MaxTimestamp = ts(off)
					}
				}
			}
			objects = append(objects, o)
			start = end
		}
		stored := map[string]*Stored{"t": {Meta: &layout.TopicMeta{Topic: "t", Partitions: 1},
			Partitions: map[int32]*layout.PartitionState{0: {Partition: 0, Objects: objects, Next: n}}}}
		spec := v1alpha.RestoreSpec{Source: "s", Config: v1alpha.RestoreConfig{Topics: []v1alpha.RestoreTopic{{Source: "t", Target: "u",
			Partitions: []v1alpha.RestorePartition{{Number: 0, RestoreFromOffset: &from, RestoreUntilOffset: &until}}}}}}
		if timeFrom != 0 || timeTo != 0 {
			w := &v1alpha.AbsoluteTimeWindow{}
			if timeFrom != 0 {
				w.FromDateTime = &metav1.Time{Time: t0.Add(time.Duration(timeFrom%200) * time.Second)}
			}
			if timeTo != 0 {
				w.ToDateTime = &metav1.Time{Time: t0.Add(time.Duration(timeTo%200) * time.Second)}
			}
			spec.Config.Filters = &v1alpha.RestoreFilters{Time: &v1alpha.TimeFilter{Absolute: w}}
		}

		plan, problems := NewPlan(spec, "gs://b", stored)
		if len(problems) > 0 {
			for _, p := range problems {
				if !strings.HasPrefix(p.Field, "spec.") || p.Message == "" {
					t.Errorf("a problem without its field or its fix: %+v", p)
				}
			}
			return
		}
		pp := plan.Topics[0].Partitions[0]
		var selected int64
		for _, o := range objects {
			var planned *SegmentPlan
			for i := range pp.Segments {
				if pp.Segments[i].Start == o.Start {
					planned = &pp.Segments[i]
				}
			}
			if o.Gap {
				if planned != nil {
					t.Fatalf("the gap marker %s is planned as a segment to read", o.Name)
				}
				continue
			}
			for off := o.Start; off < o.End; off++ {
				sel := pp.Selects(off, ts(off))
				if sel {
					selected++
				}
				if sel && planned == nil {
					t.Fatalf("offset %d (timestamp %s) is in the window but its segment %s is not read (window [%d, %d), times %v-%v)",
						off, ts(off).Format(time.TimeOnly), o.Name, pp.From, pp.Until, pp.TimeFrom, pp.TimeTo)
				}
				if !sel && planned != nil && planned.Whole {
					t.Fatalf("segment %s is counted whole but offset %d (timestamp %s) is outside the window", o.Name, off, ts(off).Format(time.TimeOnly))
				}
			}
		}
		if pp.Records > selected {
			t.Fatalf("the plan counts %d records from whole segments, the window selects %d", pp.Records, selected)
		}
	})
}
