package worker

import (
	"testing"
)

func asked(s *budgetShare) bool {
	select {
	case <-s.roll:
		return true
	default:
		return false
	}
}

// TestBudgetAsksTheLargestOpenSegmentToClose: past the limit, the largest
// open segment is asked to close, once; the bytes it moves to uploading
// count until the upload returns; quiet partitions are never asked.
func TestBudgetAsksTheLargestOpenSegmentToClose(t *testing.T) {
	b := newMemoryBudget(0)
	b.limit = 8 << 20 // segments: 8 MiB
	big, mid, quiet := b.join(), b.join(), b.join()
	quiet.setOpen(4 << 10)
	mid.setOpen(3 << 20)
	big.setOpen(4 << 20)
	if asked(big) || asked(mid) || asked(quiet) {
		t.Fatal("a segment was asked to close within the limit")
	}
	mid.setOpen(5 << 20) // 9 MiB + 4 KiB: over
	if !asked(mid) || asked(big) || asked(quiet) {
		t.Fatal("over the limit: want the largest open segment (mid, 5 MiB) asked, and only it")
	}
	// Still over until mid closes, but mid is already asked: big is
	// not asked on top of it.
	big.setOpen(4<<20 + 1)
	if asked(big) {
		t.Fatal("big was asked while the one already asked was enough")
	}
	// mid closes (3 MiB once encoded) and uploads: still counted.
	mid.closing(3 << 20)
	if b.held != 4<<20+1+4<<10+3<<20 {
		t.Fatalf("held %d after closing", b.held)
	}
	big.setOpen(6 << 20) // 6 + 3 + 4 KiB > 8 MiB
	if !asked(big) {
		t.Fatal("over the limit with mid uploading: want big asked")
	}
	big.closing(2 << 20)
	// mid's next segment closes while its first still uploads: both count.
	mid.setOpen(1 << 20)
	mid.closing(1 << 20)
	if mid.uploading != 4<<20 || b.held != 4<<10+6<<20 {
		t.Fatalf("two of mid's segments uploading: mid %d, held %d", mid.uploading, b.held)
	}
	mid.uploaded(3 << 20)
	mid.uploaded(1 << 20)
	big.uploaded(2 << 20)
	if b.held != 4<<10 || b.asked != 0 {
		t.Fatalf("after every upload: held %d, asked %d; want only the quiet partition's 4 KiB", b.held, b.asked)
	}
	if asked(quiet) {
		t.Fatal("the quiet partition was asked")
	}
	quiet.leave()
	mid.leave()
	big.leave()
	if b.held != 0 || len(b.shares) != 0 {
		t.Fatalf("after every partition left: held %d, %d shares", b.held, len(b.shares))
	}
}

// TestBudgetFullOfSmallSegmentsAsksNone: segments below the minimum are not
// closed early (no flood of tiny objects), and the bytes held stay within
// limit + partitions × minimum.
func TestBudgetFullOfSmallSegmentsAsksNone(t *testing.T) {
	b := newMemoryBudget(64 << 20) // segments: 24 MiB
	var shares []*budgetShare
	for range 600 {
		shares = append(shares, b.join())
	}
	minRoll := b.minRoll()
	if minRoll != minRollSize {
		t.Fatalf("minRoll %d with 600 partitions, want the floor %d", minRoll, minRollSize)
	}
	for _, s := range shares {
		s.setOpen(minRoll - 1)
	}
	for i, s := range shares {
		if asked(s) {
			t.Fatalf("share %d asked to close a segment below the minimum", i)
		}
	}
	if b.held > b.limit+int64(len(shares))*minRoll {
		t.Fatalf("held %d, past limit + partitions × minimum", b.held)
	}
	// One grows past the minimum: it is the one asked.
	shares[7].setOpen(minRoll + 1)
	if !asked(shares[7]) {
		t.Fatal("the only segment past the minimum, over the limit, was not asked")
	}
}

// TestBudgetBlockSizeShrinksWithPartitions: 1 MiB blocks for a few
// partitions; many partitions' blocks together fit a quarter of the limit.
func TestBudgetBlockSizeShrinksWithPartitions(t *testing.T) {
	b := newMemoryBudget(DefaultMemoryBudget)
	b.join()
	if got := b.blockSize(); got != 1<<20 {
		t.Errorf("one partition: block %d, want 1 MiB", got)
	}
	for range 999 {
		b.join()
	}
	if got := b.blockSize(); got != minBlockSize {
		t.Errorf("1,000 partitions: block %d, want the floor %d", got, minBlockSize)
	}
	b = newMemoryBudget(1 << 30)
	for range 600 {
		b.join()
	}
	if got := b.blockSize(); got*600 > int(b.limit/4) || got <= minBlockSize {
		t.Errorf("600 partitions in 1 GiB: block %d; 600 blocks = %d, want ≤ %d", got, got*600, b.limit/4)
	}
}

func TestConsumerSizing(t *testing.T) {
	for _, c := range []struct {
		budget             int64
		partitions         int
		brokers            int
		fetch, max         int32
		channelMin, chanMx int
	}{
		// A few partitions: sarama's defaults (1 MiB, 256 records).
		{DefaultMemoryBudget, 3, 3, 1 << 20, DefaultMemoryBudget / 48, 256, 256},
		// 600 partitions: 64 KiB fetches, short channels.
		{DefaultMemoryBudget, 600, 3, 64 << 10, DefaultMemoryBudget / 48, 16, 16},
		{DefaultMemoryBudget, 100, 3, 163 << 10, DefaultMemoryBudget / 48, 16, 256},
	} {
		fetch, fetchMax, channel := consumerSizing(c.budget, c.partitions, c.brokers)
		if fetch/1024 != c.fetch/1024 || fetchMax/1024 != c.max/1024 || channel < c.channelMin || channel > c.chanMx {
			t.Errorf("%d partitions, %d brokers: fetch %d, max %d, channel %d; want %d, %d, %d-%d",
				c.partitions, c.brokers, fetch, fetchMax, channel, c.fetch, c.max, c.channelMin, c.chanMx)
		}
		// What the fetches may hold stays within the quarter of the
		// budget they are given, but for the 64 KiB floor.
		if held := int64(c.partitions)*int64(fetch)*2 + int64(c.brokers)*int64(fetchMax)*2; c.partitions > 3 && held > c.budget/2 {
			t.Errorf("%d partitions: fetch buffers up to %d bytes, budget %d", c.partitions, held, c.budget)
		}
	}
}
