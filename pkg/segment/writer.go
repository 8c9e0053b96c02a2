package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Writer encodes one segment to an io.Writer: a header, blocks of records as
// they fill, and a trailer on Close. It buffers one block.
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
}

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
// buffer. (A block's compressed copy is held only while it is written.)
func (sw *Writer) Held() int { return cap(sw.block) }

// Summary is what has been appended so far.
func (sw *Writer) Summary() Summary { return sw.summary }

func (sw *Writer) flushBlock() error {
	if sw.blockCount == 0 {
		return nil
	}
	// An uncompressed block is written as it is, not copied first.
	compressed := sw.block
	if sw.codec != CodecNone {
		scratch := compressBuffers.Get().(*[]byte)
		defer compressBuffers.Put(scratch)
		var err error
		if compressed, err = sw.codec.compress((*scratch)[:0], sw.block, sw.level); err != nil {
			sw.err = fmt.Errorf("compress block: %w", err)
			return sw.err
		}
		*scratch = compressed
	}
	var h [blockHeaderSize]byte
	binary.BigEndian.PutUint32(h[0:], uint32(len(compressed)))
	binary.BigEndian.PutUint32(h[4:], uint32(len(sw.block)))
	binary.BigEndian.PutUint32(h[8:], sw.blockCount)
	binary.BigEndian.PutUint64(h[12:], uint64(sw.blockBase))
	binary.BigEndian.PutUint32(h[20:], checksum(h[:20], compressed))
	if _, err := sw.w.Write(h[:]); err != nil {
		sw.err = err
		return err
	}
	if _, err := sw.w.Write(compressed); err != nil {
		sw.err = err
		return err
	}
	sw.block = sw.block[:0]
	sw.blockCount = 0
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
