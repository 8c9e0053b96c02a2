package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Reader decodes a segment record by record, verifying every checksum,
// length and count. Any damage is a *CorruptError naming the object and the
// byte where it was found; a record is never returned from a block that did
// not verify.
type Reader struct {
	r    io.Reader
	name string
	pos  int64 // bytes consumed from r

	codec     Codec
	partition int32
	start     int64

	block      []byte // decompressed records of the current block
	blockPos   int64  // where the current block started in the object
	blockBase  int64
	blockLeft  uint32
	scratch    []byte
	computed   Summary
	lastOffset int64
	any        bool
	done       bool
	summary    Summary
}

// NewReader reads and checks a segment's header. name is used in errors.
func NewReader(r io.Reader, name string) (*Reader, error) {
	sr := &Reader{r: r, name: name}
	var h [headerSize]byte
	if err := sr.readFull(h[:], "header"); err != nil {
		return nil, err
	}
	switch {
	case !bytes.Equal(h[0:6], headerMagic[:]):
		return nil, sr.corrupt(0, "not an Armory segment (bad magic)")
	case checksum(h[:28]) != binary.BigEndian.Uint32(h[28:]):
		return nil, sr.corrupt(0, "header checksum mismatch")
	case h[6] != Version:
		return nil, sr.corrupt(6, fmt.Sprintf("format version %d; this Armory reads version %d", h[6], Version))
	}
	sr.codec = Codec(h[7])
	if _, ok := codecNames[sr.codec]; !ok {
		return nil, sr.corrupt(7, fmt.Sprintf("unknown codec %d", h[7]))
	}
	sr.partition = int32(binary.BigEndian.Uint32(h[8:]))
	sr.start = int64(binary.BigEndian.Uint64(h[12:]))
	sr.computed = Summary{Partition: sr.partition, Codec: sr.codec, Start: sr.start}
	return sr, nil
}

func (sr *Reader) corrupt(at int64, reason string) error {
	return &CorruptError{Object: sr.name, Offset: at, Reason: reason}
}

// readFull reads exactly len(b) bytes; running out is corruption (truncation).
func (sr *Reader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(sr.r, b)
	sr.pos += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sr.corrupt(sr.pos, "truncated in the "+what)
	}
	return err
}

// Next returns the next record, or io.EOF after the trailer verified. The
// record's byte slices stay valid after later calls.
func (sr *Reader) Next() (*Record, error) {
	for sr.blockLeft == 0 {
		if sr.done {
			return nil, io.EOF
		}
		if err := sr.nextBlock(); err != nil {
			return nil, err
		}
	}
	rec, err := sr.decodeRecord()
	if err != nil {
		return nil, err
	}
	sr.blockLeft--
	if sr.blockLeft == 0 && len(sr.block) != 0 {
		return nil, sr.corrupt(sr.blockPos, fmt.Sprintf("block has %d bytes after its last record", len(sr.block)))
	}
	return rec, nil
}

func (sr *Reader) nextBlock() error {
	at := sr.pos
	var h [blockHeaderSize]byte
	if err := sr.readFull(h[:4], "block header"); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(h[:4]) == trailerMarker {
		return sr.readTrailer(at)
	}
	if err := sr.readFull(h[4:], "block header"); err != nil {
		return err
	}
	clen := binary.BigEndian.Uint32(h[0:])
	ulen := binary.BigEndian.Uint32(h[4:])
	count := binary.BigEndian.Uint32(h[8:])
	base := int64(binary.BigEndian.Uint64(h[12:]))
	switch {
	case clen == 0 || clen > maxBlockBytes || ulen == 0 || ulen > maxBlockBytes:
		return sr.corrupt(at, fmt.Sprintf("block lengths %d/%d out of range", clen, ulen))
	case count == 0:
		return sr.corrupt(at, "block with no records")
	case sr.codec == CodecNone && clen != ulen:
		return sr.corrupt(at, fmt.Sprintf("uncompressed block of %d bytes says it holds %d", clen, ulen))
	}
	payload := grow(sr.scratch, int(clen))
	sr.scratch = payload
	if err := sr.readFull(payload, "block payload"); err != nil {
		return err
	}
	if checksum(h[:20], payload) != binary.BigEndian.Uint32(h[20:]) {
		return sr.corrupt(at, "block checksum mismatch")
	}
	// A fresh buffer per block, as returned records point into it; grown
	// by the decompressor rather than sized from the (checked, but not yet
	// decompressed) header.
	block, err := sr.codec.decompress(nil, payload, int(ulen))
	if err != nil {
		return sr.corrupt(at, err.Error())
	}
	if base < sr.start || (sr.any && base <= sr.lastOffset) {
		return sr.corrupt(at+12, fmt.Sprintf("block base offset %d does not follow offset %d", base, max(sr.lastOffset, sr.start-1)))
	}
	sr.block, sr.blockPos, sr.blockBase, sr.blockLeft = block, at, base, count
	return nil
}

func (sr *Reader) decodeRecord() (*Record, error) {
	bad := func(what string) error {
		return sr.corrupt(sr.blockPos, "undecodable record in block: "+what)
	}
	b := sr.block
	delta, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, bad("offset")
	}
	b = b[n:]
	ts, n := binary.Varint(b)
	if n <= 0 {
		return nil, bad("timestamp")
	}
	b = b[n:]
	rec := &Record{Offset: sr.blockBase + int64(delta), Timestamp: time.UnixMilli(ts)}
	var ok bool
	if rec.Key, b, ok = readBytes(b); !ok {
		return nil, bad("key")
	}
	if rec.Value, b, ok = readBytes(b); !ok {
		return nil, bad("value")
	}
	nh, n := binary.Uvarint(b)
	if n <= 0 || nh > uint64(len(b)) {
		return nil, bad("header count")
	}
	b = b[n:]
	if nh > 0 {
		rec.Headers = make([]RecordHeader, nh)
		for i := range rec.Headers {
			kl, n := binary.Uvarint(b)
			if n <= 0 || kl > uint64(len(b)-n) {
				return nil, bad("header key")
			}
			rec.Headers[i].Key = string(b[n : n+int(kl)])
			b = b[n+int(kl):]
			if rec.Headers[i].Value, b, ok = readBytes(b); !ok {
				return nil, bad("header value")
			}
		}
	}
	if (sr.any && rec.Offset <= sr.lastOffset) || rec.Offset < sr.start {
		return nil, sr.corrupt(sr.blockPos, fmt.Sprintf("record offset %d does not follow %d", rec.Offset, sr.lastOffset))
	}
	sr.block = b
	c := &sr.computed
	if !sr.any || rec.Timestamp.Before(c.MinTimestamp) {
		c.MinTimestamp = rec.Timestamp
	}
	if !sr.any || rec.Timestamp.After(c.MaxTimestamp) {
		c.MaxTimestamp = rec.Timestamp
	}
	c.Records++
	c.Bytes += rec.Size()
	sr.lastOffset, sr.any = rec.Offset, true
	return rec, nil
}

// readBytes reads a length (-1 for null) and that many bytes. The returned
// slice is capped so appending to it cannot overwrite the next field.
func readBytes(b []byte) (v, rest []byte, ok bool) {
	l, n := binary.Varint(b)
	switch {
	case n <= 0 || l < -1 || l > int64(len(b)-n):
		return nil, nil, false
	case l == -1:
		return nil, b[n:], true
	}
	end := n + int(l)
	return b[n:end:end], b[end:], true
}

func (sr *Reader) readTrailer(at int64) error {
	var t [trailerSize]byte
	binary.BigEndian.PutUint32(t[:4], trailerMarker)
	if err := sr.readFull(t[4:], "trailer"); err != nil {
		return err
	}
	if !bytes.Equal(t[56:62], trailerMagic[:]) || checksum(t[:52]) != binary.BigEndian.Uint32(t[52:]) {
		return sr.corrupt(at, "trailer checksum mismatch")
	}
	s := Summary{
		Partition:    sr.partition,
		Codec:        sr.codec,
		Records:      int64(binary.BigEndian.Uint64(t[4:])),
		Start:        int64(binary.BigEndian.Uint64(t[12:])),
		End:          int64(binary.BigEndian.Uint64(t[20:])),
		MinTimestamp: time.UnixMilli(int64(binary.BigEndian.Uint64(t[28:]))),
		MaxTimestamp: time.UnixMilli(int64(binary.BigEndian.Uint64(t[36:]))),
		Bytes:        int64(binary.BigEndian.Uint64(t[44:])),
	}
	c := sr.computed
	switch {
	case !sr.any:
		return sr.corrupt(at, "segment has no records")
	case s.Start != sr.start:
		return sr.corrupt(at+12, fmt.Sprintf("trailer start %d differs from header start %d", s.Start, sr.start))
	case s.Records != c.Records || s.Bytes != c.Bytes:
		return sr.corrupt(at+4, fmt.Sprintf("trailer counts %d records of %d bytes, blocks hold %d of %d", s.Records, s.Bytes, c.Records, c.Bytes))
	case s.End <= sr.lastOffset:
		return sr.corrupt(at+20, fmt.Sprintf("end position %d does not pass the last record's offset %d", s.End, sr.lastOffset))
	case !s.MinTimestamp.Equal(c.MinTimestamp) || !s.MaxTimestamp.Equal(c.MaxTimestamp):
		return sr.corrupt(at+28, "trailer timestamps differ from the records'")
	}
	var extra [1]byte
	if n, _ := sr.r.Read(extra[:]); n > 0 {
		return sr.corrupt(sr.pos, "bytes after the trailer")
	}
	sr.summary, sr.done = s, true
	return nil
}

// Summary is the verified trailer; valid once Next returned io.EOF.
func (sr *Reader) Summary() Summary { return sr.summary }

// Decode reads a whole segment held in memory.
func Decode(data []byte, name string) ([]Record, Summary, error) {
	sr, err := NewReader(bytes.NewReader(data), name)
	if err != nil {
		return nil, Summary{}, err
	}
	var recs []Record
	for {
		rec, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return recs, sr.Summary(), nil
		}
		if err != nil {
			return recs, Summary{}, err
		}
		recs = append(recs, *rec)
	}
}
