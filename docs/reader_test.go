package docs

// A reader of Armory's storage written from docs/storage-format.md alone:
// it imports nothing of Armory's to decode (pkg/segment and pkg/storage only
// write the objects it reads, as the backup worker does). If the page and
// the code part ways, this test fails.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	gcstorage "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"google.golang.org/api/option"

	"github.com/kannika/armory/pkg/layout"
	"github.com/kannika/armory/pkg/segment"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/storage/volume"
)

// docRecord is a record as the page describes it; nil key, value or header
// value is null.
type docRecord struct {
	Offset    int64
	Timestamp int64 // ms
	Key       []byte
	Value     []byte
	Headers   []docHeader
}

type docHeader struct {
	Key   string
	Value []byte
}

// docTrailer is the page's trailer table.
type docTrailer struct {
	Records             uint64
	Start, End          int64
	MinTimestamp, MaxTs int64
	Bytes               uint64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readSegment decodes a segment by the page's tables: header, blocks,
// records, trailer, with every check the "Reading" section lists.
func readSegment(data []byte) (partition int32, start int64, recs []docRecord, tr docTrailer, err error) {
	be := binary.BigEndian
	if len(data) < 32 || string(data[0:6]) != "ARMSEG" || data[6] != 1 {
		return 0, 0, nil, tr, errors.New("header: bad magic or version")
	}
	if crc32.Checksum(data[0:28], castagnoli) != be.Uint32(data[28:32]) {
		return 0, 0, nil, tr, errors.New("header checksum")
	}
	codec := data[7]
	partition, start = int32(be.Uint32(data[8:12])), int64(be.Uint64(data[12:20]))
	pos := 32
	for {
		if len(data) < pos+4 {
			return 0, 0, nil, tr, errors.New("truncated")
		}
		if be.Uint32(data[pos:]) == 0xFFFFFFFF {
			t := data[pos:]
			if len(t) != 62 || string(t[56:62]) != "ARMEND" || crc32.Checksum(t[0:52], castagnoli) != be.Uint32(t[52:56]) {
				return 0, 0, nil, tr, fmt.Errorf("trailer at byte %d", pos)
			}
			tr = docTrailer{Records: be.Uint64(t[4:12]), Start: int64(be.Uint64(t[12:20])), End: int64(be.Uint64(t[20:28])),
				MinTimestamp: int64(be.Uint64(t[28:36])), MaxTs: int64(be.Uint64(t[36:44])), Bytes: be.Uint64(t[44:52])}
			return partition, start, recs, tr, nil
		}
		h := data[pos : pos+24]
		plen, ulen, count, base := int(be.Uint32(h[0:4])), int(be.Uint32(h[4:8])), int(be.Uint32(h[8:12])), int64(be.Uint64(h[12:20]))
		payload := data[pos+24 : pos+24+plen]
		crc := crc32.Update(crc32.Checksum(h[0:20], castagnoli), castagnoli, payload)
		if crc != be.Uint32(h[20:24]) {
			return 0, 0, nil, tr, fmt.Errorf("block at byte %d: checksum", pos)
		}
		raw, err := decompress(codec, payload)
		if err != nil || len(raw) != ulen {
			return 0, 0, nil, tr, fmt.Errorf("block at byte %d: %d bytes decompressed, header says %d: %v", pos, len(raw), ulen, err)
		}
		r := bytes.NewReader(raw)
		for range count {
			rec, err := readRecord(r, base)
			if err != nil {
				return 0, 0, nil, tr, fmt.Errorf("block at byte %d: %w", pos, err)
			}
			recs = append(recs, rec)
		}
		if r.Len() != 0 {
			return 0, 0, nil, tr, fmt.Errorf("block at byte %d: %d bytes after its records", pos, r.Len())
		}
		pos += 24 + plen
	}
}

func decompress(codec byte, p []byte) ([]byte, error) {
	switch codec {
	case 0:
		return p, nil
	case 1:
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(p, nil)
	case 2:
		z, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(z)
	case 3:
		return snappy.Decode(nil, p) // the block format, no framing
	case 4:
		return io.ReadAll(lz4.NewReader(bytes.NewReader(p)))
	}
	return nil, fmt.Errorf("codec %d", codec)
}

func readRecord(r *bytes.Reader, base int64) (docRecord, error) {
	var rec docRecord
	delta, err := binary.ReadUvarint(r)
	if err != nil {
		return rec, err
	}
	rec.Offset = base + int64(delta)
	if rec.Timestamp, err = binary.ReadVarint(r); err != nil {
		return rec, err
	}
	if rec.Key, err = nullable(r); err != nil {
		return rec, err
	}
	if rec.Value, err = nullable(r); err != nil {
		return rec, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return rec, err
	}
	for range n {
		klen, err := binary.ReadUvarint(r)
		if err != nil {
			return rec, err
		}
		key := make([]byte, klen)
		if _, err := io.ReadFull(r, key); err != nil {
			return rec, err
		}
		v, err := nullable(r)
		if err != nil {
			return rec, err
		}
		rec.Headers = append(rec.Headers, docHeader{Key: string(key), Value: v})
	}
	return rec, nil
}

// nullable reads a varint length (−1: null) and that many bytes.
func nullable(r *bytes.Reader) ([]byte, error) {
	n, err := binary.ReadVarint(r)
	if err != nil || n == -1 {
		return nil, err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// readVolumeFile splits a volume file into its metadata and object bytes,
// by the page's envelope table.
func readVolumeFile(data []byte) (map[string]string, []byte, error) {
	if string(data[:8]) != "ARMOBJ1\n" {
		return nil, nil, errors.New("no ARMOBJ1 envelope")
	}
	n, used := binary.Uvarint(data[8:])
	if used <= 0 {
		return nil, nil, errors.New("bad metadata length")
	}
	metaEnd := 8 + used + int(n)
	var meta map[string]string
	if err := json.Unmarshal(data[8+used:metaEnd], &meta); err != nil {
		return nil, nil, err
	}
	return meta, data[metaEnd:], nil
}

// TestADocOnlyReaderDecodesWhatTheWorkerStores: segments of every codec,
// stored on a volume and on GCS as the backup worker stores them, read back
// by the reader above: every record, field by field, and the metadata.
func TestADocOnlyReaderDecodesWhatTheWorkerStores(t *testing.T) {
	ctx := context.Background()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", Port: 0, Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "doc-reader"})
	gcsBucket, err := gcs.New(ctx, gcs.Config{Bucket: "doc-reader", Prefix: "prod", Endpoint: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer gcsBucket.Close()
	root := t.TempDir()
	volBucket, err := volume.New(root)
	if err != nil {
		t.Fatal(err)
	}
	// JSON reads: fake-gcs-server does not serve the XML API.
	client, err := gcstorage.NewClient(ctx, option.WithEndpoint(srv.URL()+"/storage/v1/"), option.WithoutAuthentication(), gcstorage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Records of every shape the page distinguishes, over 1 MiB so that a
	// segment has several blocks, with an offset that skips (compaction).
	var want []docRecord
	var in []segment.Record
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	offset := int64(1000)
	for i := range 2500 {
		r := segment.Record{Offset: offset, Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
		d := docRecord{Offset: offset, Timestamp: r.Timestamp.UnixMilli()}
		switch i % 3 {
		case 0: // null key
		case 1:
			r.Key, d.Key = []byte{}, []byte{}
		case 2:
			r.Key, d.Key = []byte(fmt.Sprintf("key-%d", i)), []byte(fmt.Sprintf("key-%d", i))
		}
		if i%7 != 0 { // i%7 == 0: a null value
			v := bytes.Repeat([]byte{byte(i)}, 600)
			r.Value, d.Value = v, v
		}
		if i%4 == 0 {
			r.Headers = []segment.RecordHeader{{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: nil}, {Key: "e", Value: []byte{}}}
			d.Headers = []docHeader{{"dup", []byte("1")}, {"dup", nil}, {"e", []byte{}}}
		}
		in, want = append(in, r), append(want, d)
		offset += 1 + int64(i%2) // every other offset skips one
	}
	end := offset + 5 // positions past the last record (e.g. a transaction marker)

	for _, codec := range []segment.Codec{segment.CodecNone, segment.CodecZstd, segment.CodecGzip, segment.CodecSnappy, segment.CodecLZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := segment.NewWriter(&buf, codec, 2, 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				if err := w.Append(&in[i]); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := w.Close(end)
			if err != nil {
				t.Fatal(err)
			}
			topic := "doc." + codec.String()
			name := layout.SegmentName(topic, 2, sum.Start)
			for _, b := range []storage.Bucket{volBucket, gcsBucket} {
				if err := b.Create(ctx, name, bytes.NewReader(buf.Bytes()), layout.SegmentMetadata(sum)); err != nil {
					t.Fatal(err)
				}
			}

			// The page's layout: <topic>/<partition>/<start, 20 digits>.seg.
			path := topic + "/2/00000000000000001000.seg"
			file, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
			if err != nil {
				t.Fatalf("the volume file the page names: %v", err)
			}
			volMeta, volData, err := readVolumeFile(file)
			if err != nil {
				t.Fatal(err)
			}
			obj := client.Bucket("doc-reader").Object("prod/" + path)
			attrs, err := obj.Attrs(ctx)
			if err != nil {
				t.Fatalf("the GCS object the page names: %v", err)
			}
			rd, err := obj.NewReader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			gcsData, err := io.ReadAll(rd)
			rd.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(volData, gcsData) {
				t.Errorf("the volume file's object bytes differ from the GCS object's")
			}

			for where, stored := range map[string]struct {
				data []byte
				meta map[string]string
			}{"volume": {volData, volMeta}, "gcs": {gcsData, attrs.Metadata}} {
				partition, start, recs, tr, err := readSegment(stored.data)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				blocks := countBlocks(stored.data)
				if partition != 2 || start != 1000 || blocks < 2 {
					t.Errorf("%s: partition %d, start %d, %d blocks; want 2, 1000, several", where, partition, start, blocks)
				}
				if !reflect.DeepEqual(recs, want) {
					t.Errorf("%s: the records read differ from those written (%d read, %d written)", where, len(recs), len(want))
				}
				var byteCount uint64
				for _, r := range want {
					byteCount += uint64(len(r.Key) + len(r.Value))
					for _, h := range r.Headers {
						byteCount += uint64(len(h.Key) + len(h.Value))
					}
				}
				wantTr := docTrailer{Records: 2500, Start: 1000, End: end, MinTimestamp: want[0].Timestamp, MaxTs: want[len(want)-1].Timestamp, Bytes: byteCount}
				if tr != wantTr {
					t.Errorf("%s: trailer %+v, want %+v", where, tr, wantTr)
				}
				for key, v := range map[string]string{"armory-format": "segment-v1-" + codec.String(), "armory-end": strconv.FormatInt(end, 10),
					"armory-records": "2500", "armory-bytes": strconv.FormatUint(byteCount, 10),
					"armory-min-timestamp-ms": strconv.FormatInt(wantTr.MinTimestamp, 10), "armory-max-timestamp-ms": strconv.FormatInt(wantTr.MaxTs, 10)} {
					if stored.meta[key] != v {
						t.Errorf("%s: metadata %s = %q, want %q", where, key, stored.meta[key], v)
					}
				}
			}
		})
	}
}

func countBlocks(data []byte) int {
	n, pos := 0, 32
	for binary.BigEndian.Uint32(data[pos:]) != 0xFFFFFFFF {
		pos += 24 + int(binary.BigEndian.Uint32(data[pos:]))
		n++
	}
	return n
}

// TestTheWorkedExampleDecodes: the page's hex example is a segment the
// page's reader reads, and the code writes exactly those bytes.
func TestTheWorkedExampleDecodes(t *testing.T) {
	doc := page(t, "storage-format.md")
	i := strings.Index(doc, "### A worked example")
	block := doc[i:]
	block = block[strings.Index(block, "```\n")+4:]
	block = block[:strings.Index(block, "```")]
	var data []byte
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		// "00000000  41 52 ... |ascii|": the hex between the offset and the ascii.
		hexPart := line[10:strings.Index(line, "|")]
		b, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		data = append(data, b...)
	}
	partition, start, recs, tr, err := readSegment(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []docRecord{{Offset: 42, Timestamp: 1763596800000, Key: []byte("k"), Value: []byte("hi"), Headers: []docHeader{{"h", nil}}}}
	if partition != 0 || start != 41 || tr.End != 43 || tr.Bytes != 4 || !reflect.DeepEqual(recs, want) {
		t.Errorf("the example reads as partition %d, start %d, trailer %+v, records %+v", partition, start, tr, recs)
	}
	var buf bytes.Buffer
	w, err := segment.NewWriter(&buf, segment.CodecNone, 0, 41, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := segment.Record{Offset: 42, Timestamp: time.UnixMilli(1763596800000), Key: []byte("k"), Value: []byte("hi"),
		Headers: []segment.RecordHeader{{Key: "h", Value: nil}}}
	if err := w.Append(&r); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(43); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("the code writes other bytes for the example's record:\n%s", hex.Dump(buf.Bytes()))
	}
}
