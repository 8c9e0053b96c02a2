// Package segment encodes and decodes Armory's segment files: the records of
// one Kafka partition from a start position to an end position, in
// compressed, checksummed blocks. docs/storage-format.md describes the format
// byte by byte. The package is pure: bytes in, records out.
package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// Version is the format version this package writes and reads.
const Version = 1

// Layout constants; see docs/storage-format.md.
const (
	headerSize      = 32
	blockHeaderSize = 24
	trailerSize     = 62
	trailerMarker   = 0xFFFFFFFF

	// DefaultBlockSize is the uncompressed size at which a block is closed.
	DefaultBlockSize = 1 << 20
	// maxBlockBytes bounds what a decoder allocates for one block, so that
	// a corrupt length cannot exhaust memory. A single record larger than
	// this cannot be stored (Kafka's own limits are far lower by default).
	maxBlockBytes = 256 << 20
)

var (
	headerMagic  = [6]byte{'A', 'R', 'M', 'S', 'E', 'G'}
	trailerMagic = [6]byte{'A', 'R', 'M', 'E', 'N', 'D'}
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
)

// RecordHeader is a Kafka record header. Value nil is a null value; an empty
// non-nil slice is an empty one.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is a Kafka record as backed up. Key and Value nil are null; empty
// non-nil slices are empty. Timestamp has millisecond precision, as in Kafka.
type Record struct {
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// Size is the record's uncompressed bytes as counted for rollover and
// progress: key, value, header keys and values.
func (r *Record) Size() int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// Summary describes a finished segment; it is also stored as the object's
// metadata so a restore can plan from a listing alone.
type Summary struct {
	Partition int32
	Codec     Codec
	// Start and End are the positions the segment covers: [Start, End).
	Start, End int64
	Records    int64
	// Bytes is the uncompressed size of the records' keys, values and headers.
	Bytes int64
	// MinTimestamp and MaxTimestamp bound the records' timestamps.
	MinTimestamp, MaxTimestamp time.Time
}

// CorruptError says where a segment is damaged.
type CorruptError struct {
	Object string // the object's name
	Offset int64  // byte position in the object
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("segment %s is corrupt at byte %d: %s", e.Object, e.Offset, e.Reason)
}

func checksum(parts ...[]byte) uint32 {
	var crc uint32
	for _, p := range parts {
		crc = crc32.Update(crc, crcTable, p)
	}
	return crc
}

func putHeader(b []byte, codec Codec, partition int32, start int64) {
	copy(b[0:6], headerMagic[:])
	b[6] = Version
	b[7] = byte(codec)
	binary.BigEndian.PutUint32(b[8:], uint32(partition))
	binary.BigEndian.PutUint64(b[12:], uint64(start))
	binary.BigEndian.PutUint64(b[20:], 0) // reserved
	binary.BigEndian.PutUint32(b[28:], checksum(b[:28]))
}

func putTrailer(b []byte, s Summary) {
	binary.BigEndian.PutUint32(b[0:], trailerMarker)
	binary.BigEndian.PutUint64(b[4:], uint64(s.Records))
	binary.BigEndian.PutUint64(b[12:], uint64(s.Start))
	binary.BigEndian.PutUint64(b[20:], uint64(s.End))
	binary.BigEndian.PutUint64(b[28:], uint64(s.MinTimestamp.UnixMilli()))
	binary.BigEndian.PutUint64(b[36:], uint64(s.MaxTimestamp.UnixMilli()))
	binary.BigEndian.PutUint64(b[44:], uint64(s.Bytes))
	binary.BigEndian.PutUint32(b[52:], checksum(b[:52]))
	copy(b[56:62], trailerMagic[:])
}
