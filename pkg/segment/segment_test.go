package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRecords covers what must survive a round trip: null and empty keys and
// values, headers in order with repeated keys and null values, timestamps
// before 1970 and in the future, and offset gaps (compaction, transaction
// markers).
func testRecords() []Record {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)
	return []Record{
		{Offset: 100, Timestamp: ts, Key: []byte("k1"), Value: []byte("v1")},
		{Offset: 101, Timestamp: ts, Key: nil, Value: []byte("null key")},
		{Offset: 102, Timestamp: ts, Key: []byte{}, Value: []byte("empty key")},
		{Offset: 103, Timestamp: ts, Key: []byte("null value"), Value: nil},
		{Offset: 104, Timestamp: ts, Key: []byte("empty value"), Value: []byte{}},
		{Offset: 107, Timestamp: time.UnixMilli(-5000), Key: []byte("gap before me, and 1969"), Value: []byte("x")},
		{Offset: 108, Timestamp: ts.Add(time.Hour), Key: []byte("headers"), Value: []byte("v"), Headers: []RecordHeader{
			{Key: "trace", Value: []byte("abc")},
			{Key: "dup", Value: []byte("1")},
			{Key: "null", Value: nil},
			{Key: "empty", Value: []byte{}},
			{Key: "dup", Value: []byte("2")},
			{Key: "", Value: []byte("empty key")},
		}},
		{Offset: 200, Timestamp: ts.Add(-time.Hour), Key: bytes.Repeat([]byte("K"), 3000), Value: bytes.Repeat([]byte{0, 1, 2, 255}, 10000)},
	}
}

func encode(t testing.TB, codec Codec, recs []Record, start, end int64, blockSize int) ([]byte, Summary) {
	t.Helper()
	return encodeAt(t, codec, LevelDefault, recs, start, end, blockSize)
}

func encodeAt(t testing.TB, codec Codec, level Level, recs []Record, start, end int64, blockSize int) ([]byte, Summary) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, codec, 7, start, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetLevel(level); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := w.Append(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close(end)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

func TestRoundTripEveryCodec(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecGzip, CodecSnappy, CodecLZ4} {
		for _, blockSize := range []int{1, 100, DefaultBlockSize} {
			t.Run(fmt.Sprintf("%s/block%d", codec, blockSize), func(t *testing.T) {
				in := testRecords()
				data, wrote := encode(t, codec, in, 90, 250, blockSize)
				out, read, err := Decode(data, "t/7/00000000000000000090.seg")
				if err != nil {
					t.Fatal(err)
				}
				assertSameRecords(t, in, out)
				if !reflect.DeepEqual(wrote, read) {
					t.Errorf("summary written %+v, read %+v", wrote, read)
				}
				if read.Start != 90 || read.End != 250 || read.Records != int64(len(in)) || read.Partition != 7 || read.Codec != codec {
					t.Errorf("summary = %+v", read)
				}
				if !read.MinTimestamp.Equal(time.UnixMilli(-5000)) || !read.MaxTimestamp.Equal(in[6].Timestamp) {
					t.Errorf("timestamps = %v .. %v", read.MinTimestamp, read.MaxTimestamp)
				}
			})
		}
	}
}

// TestEveryLevelRoundTrips encodes the same JSON-like records at each
// level: every level decodes to the records written, and the levels really
// differ (a level that was ignored would give the default's size).
func TestEveryLevelRoundTrips(t *testing.T) {
	recs, _ := benchRecords()
	recs = recs[:2000]
	for _, codec := range []Codec{CodecZstd, CodecGzip, CodecLZ4} {
		size := map[Level]int{}
		for _, level := range []Level{LevelFastest, LevelDefault, LevelBetter} {
			data, _ := encodeAt(t, codec, level, recs, 0, 2000, DefaultBlockSize)
			out, _, err := Decode(data, "t/7/00000000000000000000.seg")
			if err != nil {
				t.Fatalf("%s %s: %v", codec, level, err)
			}
			assertSameRecords(t, recs, out)
			size[level] = len(data)
		}
		t.Logf("%s: fastest %d, default %d, better %d bytes", codec, size[LevelFastest], size[LevelDefault], size[LevelBetter])
		if size[LevelBetter] >= size[LevelDefault] || size[LevelFastest] < size[LevelDefault] {
			t.Errorf("%s: fastest %d, default %d, better %d bytes: want fastest >= default > better", codec, size[LevelFastest], size[LevelDefault], size[LevelBetter])
		}
		if codec != CodecLZ4 && size[LevelFastest] == size[LevelDefault] { // lz4's default is its fastest
			t.Errorf("%s: fastest and default both give %d bytes", codec, size[LevelDefault])
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		codec      Codec
		name       string
		want       Level
		wantErrHas string
	}{
		{CodecZstd, "", LevelDefault, ""},
		{CodecZstd, "fastest", LevelFastest, ""},
		{CodecGzip, "better", LevelBetter, ""},
		{CodecNone, "default", LevelDefault, ""},
		{CodecNone, "fastest", 0, `none has no level "fastest": leave level out, or use zstd, gzip or lz4`},
		{CodecSnappy, "better", 0, "snappy has no level"},
		{CodecZstd, "max", 0, `unknown level "max": use fastest, default or better`},
	} {
		got, err := ParseLevel(tc.codec, tc.name)
		switch {
		case tc.wantErrHas == "" && (err != nil || got != tc.want):
			t.Errorf("ParseLevel(%s, %q) = %v, %v; want %v", tc.codec, tc.name, got, err, tc.want)
		case tc.wantErrHas != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErrHas)):
			t.Errorf("ParseLevel(%s, %q) error = %v, want one containing %q", tc.codec, tc.name, err, tc.wantErrHas)
		}
	}
	w, _ := NewWriter(&bytes.Buffer{}, CodecSnappy, 0, 0, 0)
	if err := w.SetLevel(LevelBetter); err == nil {
		t.Error("a snappy writer took level better")
	}
}

// assertSameRecords compares field by field, telling null from empty.
func assertSameRecords(t *testing.T, want, got []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Offset != w.Offset || !g.Timestamp.Equal(w.Timestamp) || !sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d = %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func TestWriterRefusesWhatCannotBeStored(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, CodecZstd, 0, 10, 0)
	if err := w.Append(&Record{Offset: 9}); err == nil {
		t.Error("a record before the start was accepted")
	}
	_ = w.Append(&Record{Offset: 10})
	if err := w.Append(&Record{Offset: 10}); err == nil {
		t.Error("a repeated offset was accepted")
	}
	if _, err := w.Close(5); err == nil {
		t.Error("an end before the last record was accepted")
	}
	empty, _ := NewWriter(&bytes.Buffer{}, CodecZstd, 0, 10, 0)
	if _, err := empty.Close(0); err == nil {
		t.Error("an empty segment was accepted")
	}
}

// TestEveryFlippedByteIsFound flips each byte of a small segment in turn:
// decoding must fail (never return other records silently), naming the
// object and a byte position.
func TestEveryFlippedByteIsFound(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecSnappy, CodecGzip, CodecLZ4} {
		data, _ := encode(t, codec, testRecords()[:5], 100, 0, 64)
		for i := range data {
			corrupt := bytes.Clone(data)
			corrupt[i] ^= 0x5a
			_, _, err := Decode(corrupt, "magic.events/0/00000000000000000100.seg")
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: flipping byte %d: err = %v, want a CorruptError", codec, i, err)
			}
			if ce.Offset < 0 || ce.Offset > int64(len(data)) || !strings.Contains(err.Error(), "segment magic.events/0/00000000000000000100.seg is corrupt at byte") {
				t.Fatalf("%s: flipping byte %d: %v", codec, i, err)
			}
		}
	}
}

func TestTruncationIsFound(t *testing.T) {
	data, _ := encode(t, CodecZstd, testRecords(), 100, 0, 100)
	for _, n := range []int{0, 10, headerSize, headerSize + 5, len(data) / 2, len(data) - 1} {
		_, _, err := Decode(data[:n], "x.seg")
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Errorf("truncated to %d bytes: err = %v, want a CorruptError", n, err)
		}
	}
	_, _, err := Decode(append(bytes.Clone(data), 0), "x.seg")
	if err == nil || !strings.Contains(err.Error(), "bytes after the trailer") {
		t.Errorf("a byte appended: err = %v", err)
	}
}

func TestRandomRecordsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	var recs []Record
	off := int64(rng.IntN(1000))
	for range 2000 {
		off += 1 + int64(rng.IntN(3))
		r := Record{Offset: off, Timestamp: time.UnixMilli(rng.Int64N(4e12) - 1e12), Key: randBytes(), Value: randBytes()}
		for range rng.IntN(4) {
			r.Headers = append(r.Headers, RecordHeader{Key: string(randBytes()), Value: randBytes()})
		}
		recs = append(recs, r)
	}
	for _, codec := range []Codec{CodecZstd, CodecLZ4} {
		data, _ := encode(t, codec, recs, recs[0].Offset, 0, 8192)
		out, sum, err := Decode(data, "random.seg")
		if err != nil {
			t.Fatal(err)
		}
		assertSameRecords(t, recs, out)
		if sum.End != off+1 {
			t.Errorf("end = %d, want %d", sum.End, off+1)
		}
	}
}

// TestBlocksCompressedAsideAreWrittenInOrder encodes the same records in
// small blocks, first with every compression slot taken (each block
// compressed by the goroutine that filled it, written at once), then by
// four Writers at once with the slots free (blocks compressed on
// goroutines of their own, finishing in any order): the bytes must be the
// same, every block in its place.
func TestBlocksCompressedAsideAreWrittenInOrder(t *testing.T) {
	recs, _ := benchRecords()
	recs = recs[:500] // about 130 blocks: small, as compressing is slow under -race
	for _, codec := range []Codec{CodecZstd, CodecGzip, CodecSnappy, CodecLZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			release := takeCompressSlots()
			want, _ := encode(t, codec, recs, 0, 0, 4096)
			release()
			const writers = 4
			got := make([][]byte, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() { got[i], _ = encode(t, codec, recs, 0, 0, 4096) })
			}
			wg.Wait()
			for i, data := range got {
				if !bytes.Equal(data, want) {
					t.Fatalf("writer %d: %d bytes differ from the %d written block by block", i, len(data), len(want))
				}
			}
			out, _, err := Decode(got[0], "t/7/00000000000000000000.seg")
			if err != nil {
				t.Fatal(err)
			}
			assertSameRecords(t, recs, out)
		})
	}
}

// takeCompressSlots takes every compression slot, so that each block is
// compressed by the goroutine that filled it, until the returned func gives
// them back.
func takeCompressSlots() (release func()) {
	for range cap(compressSlots) {
		compressSlots <- struct{}{}
	}
	return func() {
		for range cap(compressSlots) {
			<-compressSlots
		}
	}
}

// TestWriterStopsAtAWriteError: a block that could not be written stops the
// Writer, whether it was compressed aside or not, even when the writes
// after it would succeed: a segment missing a block is never finished.
func TestWriterStopsAtAWriteError(t *testing.T) {
	recs, _ := benchRecords()
	for _, codec := range []Codec{CodecNone, CodecLZ4} {
		fw := &failingWriter{failAt: 3} // the segment header, one block, then the second block's header
		w, err := NewWriter(fw, codec, 0, 0, 4096)
		if err != nil {
			t.Fatal(err)
		}
		var appendErr error
		for i := range recs[:500] {
			if appendErr = w.Append(&recs[i]); appendErr != nil {
				break
			}
		}
		_, closeErr := w.Close(0)
		if !errors.Is(closeErr, errWriteFailed) {
			t.Errorf("%s: append error %v, close error %v: want Close to return the write's error", codec, appendErr, closeErr)
		}
	}
}

var errWriteFailed = errors.New("disk on fire")

// failingWriter fails its write number failAt (from 0), once.
type failingWriter struct{ writes, failAt int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.writes++
	if f.writes-1 == f.failAt {
		return 0, errWriteFailed
	}
	return len(p), nil
}
