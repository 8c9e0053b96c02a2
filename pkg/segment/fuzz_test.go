package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder: it must never panic, never
// allocate without bound, and either fail with a CorruptError or return
// records that re-encode to a segment that decodes to the same records.
// `make test` runs the seed corpus; `go test -fuzz=FuzzDecode ./pkg/segment`
// explores.
func FuzzDecode(f *testing.F) {
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecGzip, CodecSnappy, CodecLZ4} {
		data, _ := encode(f, codec, testRecords(), 50, 0, 256)
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte("ARMSEG"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, sum, err := Decode(data, "fuzz.seg")
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error is not a CorruptError: %v", err)
			}
			return
		}
		again, _ := encode(t, sum.Codec, recs, sum.Start, sum.End, DefaultBlockSize)
		recs2, sum2, err := Decode(again, "again.seg")
		if err != nil {
			t.Fatalf("re-encoded segment does not decode: %v", err)
		}
		assertSameRecords(t, recs, recs2)
		if sum2 != sum {
			t.Fatalf("summary changed on re-encoding: %+v → %+v", sum, sum2)
		}
	})
}

// benchRecords are 10,000 records of 1 KiB JSON-like values, each different,
// with a key and a header, as a typical event topic holds.
func benchRecords() ([]Record, int64) {
	var recs []Record
	var size int64
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("user order page view click cart checkout product search session device region price amount currency status")
	for i := range 10_000 {
		var v strings.Builder
		for v.Len() < 1000 {
			fmt.Fprintf(&v, `"%s":%d,`, words[rng.IntN(len(words))], rng.IntN(100000))
		}
		value := []byte(v.String()[:1000])
		r := Record{Offset: int64(i), Key: fmt.Appendf(nil, "user-%d", rng.IntN(1e6)), Value: value,
			Headers: []RecordHeader{{Key: "trace-id", Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}}}
		recs = append(recs, r)
		size += r.Size()
	}
	return recs, size
}

// BenchmarkEncode encodes one segment, as one partition does. Without a
// suffix its blocks are compressed aside, on up to one goroutine per core;
// -inline takes every compression slot first, so each block is compressed
// by the goroutine appending the records: the codec's speed on one core.
func BenchmarkEncode(b *testing.B) {
	recs, size := benchRecords()
	for _, c := range []struct {
		codec Codec
		level Level
	}{{CodecNone, LevelDefault}, {CodecZstd, LevelDefault}, {CodecZstd, LevelFastest}, {CodecZstd, LevelBetter},
		{CodecGzip, LevelDefault}, {CodecSnappy, LevelDefault}, {CodecLZ4, LevelDefault}} {
		name := c.codec.String()
		if c.level != LevelDefault {
			name += "-" + c.level.String()
		}
		for _, inline := range []bool{false, true} {
			if inline && c.codec == CodecNone {
				continue // nothing to compress
			}
			name := name
			if inline {
				name += "-inline"
			}
			b.Run(name, func(b *testing.B) {
				if inline {
					defer takeCompressSlots()()
				}
				b.SetBytes(size)
				b.ReportAllocs()
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					w, _ := NewWriter(&buf, c.codec, 0, 0, 0)
					if err := w.SetLevel(c.level); err != nil {
						b.Fatal(err)
					}
					for i := range recs {
						if err := w.Append(&recs[i]); err != nil {
							b.Fatal(err)
						}
					}
					if _, err := w.Close(0); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size)/float64(buf.Len()), "ratio")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	recs, size := benchRecords()
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecGzip, CodecSnappy, CodecLZ4} {
		b.Run(codec.String(), func(b *testing.B) {
			data, _ := encode(b, codec, recs, 0, 0, DefaultBlockSize)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				sr, err := NewReader(bytes.NewReader(data), "bench.seg")
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := sr.Next(); err != nil {
						if errors.Is(err, io.EOF) {
							break
						}
						b.Fatal(err)
					}
				}
			}
		})
	}
}
