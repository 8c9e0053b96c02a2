package layout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage/volume"
)

func TestNames(t *testing.T) {
	if got := SegmentName("magic.events", 3, 1234); got != "magic.events/3/00000000000000001234.seg" {
		t.Errorf("SegmentName = %q", got)
	}
	if got := GapName("magic.events", 0, 0); got != "magic.events/0/00000000000000000000.gap" {
		t.Errorf("GapName = %q", got)
	}
	if got := TopicMetaName("pixie.dust"); got != "pixie.dust/topic.json" {
		t.Errorf("TopicMetaName = %q", got)
	}
}

func TestListPartitionTilesAndFindsHoles(t *testing.T) {
	ctx := context.Background()
	b, err := volume.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, start, end, records int64) {
		t.Helper()
		meta := SegmentMetadata(segment.Summary{Start: start, End: end, Records: records, Bytes: records * 10,
			MinTimestamp: time.UnixMilli(1), MaxTimestamp: time.UnixMilli(2)})
		if err := b.Create(ctx, name, strings.NewReader("x"), meta); err != nil {
			t.Fatal(err)
		}
	}
	empty, err := ListPartition(ctx, b, "t", 0)
	if err != nil || empty.Next != 0 || len(empty.Objects) != 0 {
		t.Fatalf("empty partition = %+v, %v", empty, err)
	}
	put(SegmentName("t", 0, 0), 0, 100, 100)
	put(GapName("t", 0, 100), 100, 150, 0)
	put(SegmentName("t", 0, 150), 150, 160, 7)
	put(SegmentName("t", 1, 0), 0, 5, 5) // another partition
	st, err := ListPartition(ctx, b, "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Next != 160 || st.Records != 107 || len(st.Objects) != 3 || !st.Objects[1].Gap {
		t.Errorf("state = %+v", st)
	}
	parts, err := ListPartitions(ctx, b, "t")
	if err != nil || len(parts) != 2 || parts[0] != 0 || parts[1] != 1 {
		t.Errorf("partitions = %v, %v", parts, err)
	}

	put(SegmentName("t", 2, 10), 10, 20, 10) // a partition not starting at 0
	if _, err := ListPartition(ctx, b, "t", 2); err == nil || !strings.Contains(err.Error(), "has a hole") {
		t.Errorf("a missing start went unnoticed: %v", err)
	}

	put(SegmentName("t", 0, 170), 170, 180, 10) // a hole at 160..170
	if _, err := ListPartition(ctx, b, "t", 0); err == nil || !strings.Contains(err.Error(), "has a hole") {
		t.Errorf("a hole went unnoticed: %v", err)
	}
}
