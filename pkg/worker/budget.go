package worker

import (
	"sync"
)

// DefaultMemoryBudget bounds what a backup worker holds in memory, whatever
// the number of partitions it backs up (`armory worker --memory-budget`).
const DefaultMemoryBudget = 256 << 20

// MinMemoryBudget is the smallest budget a worker takes: a few partitions'
// blocks and fetches.
const MinMemoryBudget = 8 << 20

// Limits of the sizes derived from the budget.
const (
	minBlockSize = 32 << 10
	minRollSize  = 128 << 10
	minFetchSize = 64 << 10
	maxFetchSize = 1 << 20 // sarama's and Kafka's own default
)

// memoryBudget bounds the bytes the partitions of one worker hold for
// segments: the open segment of each (its encoded blocks and the block being
// filled) and the segment it is uploading. 3/8 of the worker's budget goes
// to segments (1.25 × that at most, see below), a quarter to Kafka's fetch
// buffers (consumerSizing), and the rest is the garbage collector's
// headroom: Go's memory limit is the budget (armory worker sets it), so the
// heap may hold garbage up to the budget before it is collected.
//
// When the segments' bytes pass the limit, the partition with the largest
// open segment is asked to close and upload it now: a smaller segment than
// its rollover triggers ask for, never a record lost or repeated, since a
// segment early is a segment like any other. A quiet partition holds little
// and is never asked. Segments are not closed early below a minimum size
// (minRoll), so the bytes held stay below limit + partitions × minimum.
type memoryBudget struct {
	limit int64

	mu     sync.Mutex
	held   int64 // open + uploading, every share
	asked  int64 // open bytes of shares asked to close early, not closed yet
	shares map[*budgetShare]struct{}
	noneAt int64 // a scan found nothing to close at this held: wait for growth
}

func newMemoryBudget(workerBudget int64) *memoryBudget {
	return &memoryBudget{limit: workerBudget * 3 / 8, shares: map[*budgetShare]struct{}{}}
}

// budgetShare is one partition's part of the budget. Only its partition
// calls its methods; roll is how the budget asks it to close its open
// segment early.
type budgetShare struct {
	b         *memoryBudget
	open      int64
	uploading int64
	asked     bool
	roll      chan struct{}
}

func (b *memoryBudget) join() *budgetShare {
	s := &budgetShare{b: b, roll: make(chan struct{}, 1)}
	b.mu.Lock()
	b.shares[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// leave returns whatever the share still holds.
func (s *budgetShare) leave() {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.setOpenLocked(0)
	b.held -= s.uploading
	s.uploading = 0
	delete(b.shares, s)
	b.noneAt = 0
}

// blockSize is the uncompressed block size for a new segment: 1 MiB while
// the partitions' blocks fit a quarter of the limit, smaller when many
// partitions share it.
func (b *memoryBudget) blockSize() int {
	b.mu.Lock()
	n := int64(max(len(b.shares), 1))
	b.mu.Unlock()
	return int(min(max(b.limit/(4*n), minBlockSize), 1<<20))
}

// minRoll is the smallest open segment asked to close early.
func (b *memoryBudget) minRoll() int64 {
	return max(b.limit/(4*int64(max(len(b.shares), 1))), minRollSize)
}

// setOpen records the bytes the share's open segment holds now.
func (s *budgetShare) setOpen(n int64) {
	if n == s.open {
		return
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.setOpenLocked(n)
	b.rebalance()
}

func (s *budgetShare) setOpenLocked(n int64) {
	b := s.b
	if minRoll := b.minRoll(); s.open < minRoll && n >= minRoll {
		b.noneAt = 0 // one more segment may close early: scan again
	}
	b.held += n - s.open
	if s.asked {
		b.asked += n - s.open
		s.asked = n != 0

	}
	s.open = n
}

// closing moves the open segment, n bytes once encoded, to uploading (the
// segment before it may still be uploading too).
func (s *budgetShare) closing(n int64) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	s.setOpenLocked(0)
	b.held += n
	s.uploading += n
	select { // an ask that came too late is for this segment, now closed
	case <-s.roll:
	default:
	}
}

// uploaded releases n bytes that closing counted, once their segment is
// stored or dropped.
func (s *budgetShare) uploaded(n int64) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	s.uploading -= n
	b.noneAt = 0
	b.rebalance()
}

// rebalance asks the largest open segments to close until what is not
// already asked fits the limit. A scan that finds nothing to ask is not
// repeated until the held bytes grow by a 64th of the limit or some are
// released, so a full budget of small segments costs no scan per record.
func (b *memoryBudget) rebalance() {
	for b.held-b.asked > b.limit {
		if b.noneAt != 0 && b.held < b.noneAt+b.limit/64 {
			return
		}
		minRoll := b.minRoll()
		var largest *budgetShare
		for s := range b.shares {
			if !s.asked && s.open >= minRoll && (largest == nil || s.open > largest.open) {
				largest = s
			}
		}
		if largest == nil {
			b.noneAt = b.held
			return
		}
		b.noneAt = 0
		largest.asked = true
		b.asked += largest.open
		select {
		case largest.roll <- struct{}{}:
		default:
		}
	}
}

// consumerSizing sizes sarama's consumer for partitions partitions across
// brokers brokers within a quarter of the worker's budget: per
// partition, the bytes asked for in one fetch (max.partition.fetch.bytes)
// and the decoded records its channel holds; per broker, the bytes one
// fetch response may carry. Kafka returns at least one record batch per
// partition even when it is larger, so a small fetch size slows a partition
// with large batches but never stops it.
func consumerSizing(workerBudget int64, partitions, brokers int) (fetchDefault, fetchMax int32, channel int) {
	partitions, brokers = max(partitions, 1), max(brokers, 1)
	quarter := workerBudget / 4
	// What each partition was sent waits in its channel while the next
	// fetch is decoded: two fetches per partition, in half the quarter.
	fetch := min(max(quarter/(4*int64(partitions)), minFetchSize), maxFetchSize)
	// The same for the responses, per broker, in the other half.
	perBroker := max(quarter/(4*int64(brokers)), maxFetchSize)
	// Records of about 1 KiB: a channel of fetch/4 KiB records (16 to
	// sarama's default 256) holds about a quarter of an uncompressed fetch
	// (less of a compressed one: a 1 MiB fetch of lz4 batches of the
	// bench's JSON-like records is about 2,300 records). A count, not
	// bytes, is all sarama bounds it by, so it stays small: channels large
	// enough for a whole fetch (sarama fetches for a broker again only once
	// every record of its last fetch is in a channel) made a none backup of
	// 3 partitions a tenth faster at most, within the noise, and would hold
	// 4,096 records however large they are (docs/worker.md, Throughput).
	channel = int(min(max(fetch/(4<<10), 16), 256))
	return int32(fetch), int32(min(perBroker, 1<<30)), channel
}
