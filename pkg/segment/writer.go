package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"
)

// Writer encodes one segment to an io.Writer: a header, blocks of records as
// they fill, and a trailer on Close. A full block is compressed on a
// goroutine of its own while the next one fills, when one of the process's
// compression slots is free, so a single busy partition can compress on
// every core; blocks are written to w in order, each once every block
// before it is. It holds the open block and up to maxPending blocks being
// compressed or waiting for those before them.
type Writer struct {
	w         io.Writer
	codec     Codec
	level     Level
	blockSize int
	summary   Summary

	block      []byte // uncompressed records of the open block
	blockBase  int64
	blockCount uint32
	lastOffset int64
	hasRecords bool
	closed     bool
	err        error

	pending []*pendingBlock // oldest first
}

// pendingBlock is a full block handed over for compression: done closes
// once compressed holds its compressed copy (or err says why not) and
// header its block header.
type pendingBlock struct {
	codec   Codec
	level   Level
	block   []byte
	count   uint32
	base    int64
	scratch *[]byte

	done       chan struct{}
	header     [blockHeaderSize]byte
	compressed []byte
	err        error
}

// compressSlots bounds the blocks compressed on goroutines of their own,
// across every Writer of the process, to one per core: more would only wait
// for cores while holding their blocks. A block that finds no slot free is
// compressed by the goroutine that filled it.
var compressSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// maxPending bounds a Writer's blocks not yet written: while the oldest is
// being compressed, later ones wait behind it, holding memory.
var maxPending = cap(compressSlots)

// blockBuffers hold the open blocks of closed Writers for new ones: a
// worker opens a segment after each upload, and each would otherwise grow a
// block from nothing.
var blockBuffers sync.Pool // *[]byte

// getBlock returns an empty block buffer for blocks of size bytes, with
// room for the record that crosses the size (and not much more: what a
// Writer holds counts in a worker's memory budget).
func getBlock(size int) []byte {
	if b, ok := blockBuffers.Get().(*[]byte); ok && cap(*b) >= size && cap(*b) <= 2*size {
		return (*b)[:0]
	}
	return make([]byte, 0, size+size/4)
}

// putBlock keeps a block buffer for another Writer, unless a large record
// made it much larger than blocks are.
func putBlock(b []byte) {
	if cap(b) <= 2*DefaultBlockSize {
		b = b[:0]
		blockBuffers.Put(&b)
	}
}

// compressBuffers hold blocks' compressed copies while they are written:
// shared by every Writer, so that a partition's open segment holds only its
// uncompressed block, not a compressed copy too.
var compressBuffers = sync.Pool{New: func() any { return new([]byte) }}

// NewWriter writes a segment header for partition, starting at position
// start, and returns a Writer for its records. blockSize <= 0 means
// DefaultBlockSize.
func NewWriter(w io.Writer, codec Codec, partition int32, start int64, blockSize int) (*Writer, error) {
	if _, ok := codecNames[codec]; !ok {
		return nil, fmt.Errorf("unknown codec %d", codec)
	}
	if start < 0 {
		return nil, fmt.Errorf("start position %d is negative", start)
	}
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	sw := &Writer{w: w, codec: codec, blockSize: blockSize, block: getBlock(blockSize),
		summary: Summary{Partition: partition, Codec: codec, Start: start, End: start}}
	var h [headerSize]byte
	putHeader(h[:], codec, partition, start)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return sw, nil
}

// Append adds a record. Offsets must increase and not precede the start.
func (sw *Writer) Append(r *Record) error {
	if sw.err != nil {
		return sw.err
	}
	if sw.closed {
		return errors.New("segment writer is closed")
	}
	if r.Offset < sw.summary.Start || (sw.hasRecords && r.Offset <= sw.lastOffset) {
		return fmt.Errorf("record offset %d does not follow %d (segment starts at %d)", r.Offset, sw.lastOffset, sw.summary.Start)
	}
	if sw.blockCount == 0 {
		sw.blockBase = r.Offset
	}
	ts := r.Timestamp.UnixMilli()
	b := sw.block
	b = binary.AppendUvarint(b, uint64(r.Offset-sw.blockBase))
	b = binary.AppendVarint(b, ts)
	b = appendBytes(b, r.Key)
	b = appendBytes(b, r.Value)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = appendBytes(b, h.Value)
	}
	if len(b) > maxBlockBytes {
		return fmt.Errorf("record at offset %d is larger than %d bytes", r.Offset, maxBlockBytes)
	}
	sw.block = b
	sw.blockCount++

	s := &sw.summary
	t := time.UnixMilli(ts)
	if !sw.hasRecords || t.Before(s.MinTimestamp) {
		s.MinTimestamp = t
	}
	if !sw.hasRecords || t.After(s.MaxTimestamp) {
		s.MaxTimestamp = t
	}
	s.Records++
	s.Bytes += r.Size()
	s.End = r.Offset + 1
	sw.lastOffset = r.Offset
	sw.hasRecords = true

	if len(sw.block) >= sw.blockSize {
		return sw.flushBlock()
	}
	return nil
}

// appendBytes writes a length (-1 for nil) and the bytes.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// SetLevel sets how hard the blocks written from now on are compressed.
// The level is not stored: readers need only the codec.
func (sw *Writer) SetLevel(l Level) error {
	if l >= levelCount || (l != LevelDefault && (sw.codec == CodecNone || sw.codec == CodecSnappy)) {
		return fmt.Errorf("%s has no level %s", sw.codec, l)
	}
	sw.level = l
	return nil
}

// Held is the memory the Writer holds between appends: its open block's
// buffer, and for each block not yet written its buffer and room for its
// compressed copy (counted as large as the block: compression that helps
// makes it smaller).
func (sw *Writer) Held() int {
	n := cap(sw.block)
	for _, pb := range sw.pending {
		n += 2 * cap(pb.block)
	}
	return n
}

// Summary is what has been appended so far.
func (sw *Writer) Summary() Summary { return sw.summary }

// flushBlock hands the open block over: written at once uncompressed,
// compressed on a goroutine when a slot is free, here otherwise. Blocks
// already compressed are written, in order.
func (sw *Writer) flushBlock() error {
	if sw.blockCount == 0 {
		return nil
	}
	if sw.codec == CodecNone {
		// An uncompressed block is written as it is, not copied first.
		var h [blockHeaderSize]byte
		putBlockHeader(h[:], sw.block, sw.block, sw.blockCount, sw.blockBase)
		if err := sw.write(h[:], sw.block); err != nil {
			return err
		}
		sw.block = sw.block[:0]
		sw.blockCount = 0
		return nil
	}
	if len(sw.pending) >= maxPending {
		if err := sw.writePending(true); err != nil {
			return err
		}
	}
	pb := &pendingBlock{codec: sw.codec, level: sw.level, block: sw.block, count: sw.blockCount, base: sw.blockBase,
		scratch: compressBuffers.Get().(*[]byte), done: make(chan struct{})}
	sw.pending = append(sw.pending, pb)
	sw.block = getBlock(sw.blockSize)
	sw.blockCount = 0
	select {
	case compressSlots <- struct{}{}:
		go func() {
			defer func() { <-compressSlots }()
			pb.compress()
		}()
	default:
		pb.compress()
	}
	return sw.writePending(false)
}

func (pb *pendingBlock) compress() {
	defer close(pb.done)
	compressed, err := pb.codec.compress((*pb.scratch)[:0], pb.block, pb.level)
	if err != nil {
		pb.err = fmt.Errorf("compress block: %w", err)
		return
	}
	*pb.scratch = compressed
	pb.compressed = compressed
	putBlockHeader(pb.header[:], compressed, pb.block, pb.count, pb.base)
}

// writePending writes the pending blocks that are compressed, oldest
// first, stopping at the first still being compressed; all of them waits
// for every one.
func (sw *Writer) writePending(all bool) error {
	for len(sw.pending) > 0 {
		pb := sw.pending[0]
		if all {
			<-pb.done
		} else {
			select {
			case <-pb.done:
			default:
				return nil
			}
		}
		sw.pending[0] = nil
		sw.pending = sw.pending[1:]
		if pb.err != nil {
			sw.err = pb.err
			return sw.err
		}
		err := sw.write(pb.header[:], pb.compressed)
		putBlock(pb.block)
		compressBuffers.Put(pb.scratch)
		if err != nil {
			return err
		}
	}
	return nil
}

// putBlockHeader fills a block header: compressed and uncompressed lengths,
// record count, base offset and the checksum of the header and payload.
func putBlockHeader(h, compressed, block []byte, count uint32, base int64) {
	binary.BigEndian.PutUint32(h[0:], uint32(len(compressed)))
	binary.BigEndian.PutUint32(h[4:], uint32(len(block)))
	binary.BigEndian.PutUint32(h[8:], count)
	binary.BigEndian.PutUint64(h[12:], uint64(base))
	binary.BigEndian.PutUint32(h[20:], checksum(h[:20], compressed))
}

// write writes a block header and its payload; an error stops the Writer.
func (sw *Writer) write(header, payload []byte) error {
	if _, err := sw.w.Write(header); err != nil {
		sw.err = err
		return err
	}
	if _, err := sw.w.Write(payload); err != nil {
		sw.err = err
		return err
	}
	return nil
}

// Close writes the last block and the trailer. end is the position the
// segment covers up to (exclusive); it must be past the last record.
// Zero means just past the last record.
func (sw *Writer) Close(end int64) (Summary, error) {
	if sw.closed {
		return sw.summary, errors.New("segment writer is closed")
	}
	sw.closed = true
	if sw.err != nil {
		return sw.summary, sw.err // a block is missing: the segment cannot be finished
	}
	if end == 0 {
		end = sw.summary.End
	}
	if end < sw.summary.End {
		return sw.summary, fmt.Errorf("end position %d precedes the last record's offset %d", end, sw.summary.End-1)
	}
	if !sw.hasRecords {
		return sw.summary, errors.New("a segment needs at least one record")
	}
	if err := sw.flushBlock(); err != nil {
		return sw.summary, err
	}
	if err := sw.writePending(true); err != nil {
		return sw.summary, err
	}
	putBlock(sw.block)
	sw.block = nil
	sw.summary.End = end
	var t [trailerSize]byte
	putTrailer(t[:], sw.summary)
	if _, err := sw.w.Write(t[:]); err != nil {
		return sw.summary, err
	}
	return sw.summary, nil
}
