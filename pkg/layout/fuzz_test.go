package layout

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kannika/armory/pkg/storage"
)

// FuzzParseObject: any object name under a partition's prefix, with any
// metadata, is read as a segment or gap marker only under the one name the
// writer gives that position, with an end past its start and counts that
// are not negative; else it is skipped (not Armory's) or an error that
// names the object and the metadata key.
func FuzzParseObject(f *testing.F) {
	f.Add("00000000000000000000.seg", "10", "10", "100", "1764662400000", "1764662400009")
	f.Add("00000000000000000005.gap", "9", "0", "0", "", "")
	f.Add("-0000000000000000001.seg", "3", "4", "40", "", "")
	f.Add("+0000000000000000001.seg", "3", "2", "20", "", "")
	f.Add(".tmp-00000000000000000000.seg-123", "", "", "", "", "")
	f.Add("00000000000000000000.seg", "-1", "x", "", "", "")
	f.Add("00000000000000000000.seg", "5", "-3", "-9", "a", "b")
	f.Add("0000000000000000000x.gap", "5", "0", "0", "", "")
	f.Add("topic.json", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, base, end, records, bytes, minTs, maxTs string) {
		const prefix = "t/0/"
		name := prefix + base
		meta := map[string]string{MetaEnd: end, MetaRecords: records, MetaBytes: bytes, MetaMinTimestamp: minTs, MetaMaxTimestamp: maxTs}
		o, err := parseObject(prefix, storage.ObjectAttrs{Name: name, Metadata: meta})
		if err != nil {
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "armory-") {
				t.Errorf("error %q names neither the object %q nor the metadata key", err, name)
			}
			return
		}
		if o.Name == "" {
			return // not a segment or gap marker: skipped
		}
		canonical := SegmentName("t", 0, o.Start)
		if o.Gap {
			canonical = GapName("t", 0, o.Start)
		}
		switch {
		case o.Name != canonical:
			t.Errorf("%q was read as the object at position %d, which is named %q", name, o.Start, canonical)
		case o.Start < 0 || o.End <= o.Start:
			t.Errorf("%q was read as positions [%d, %d)", name, o.Start, o.End)
		case o.Records < 0 || o.Bytes < 0:
			t.Errorf("%q was read with %d records, %d bytes", name, o.Records, o.Bytes)
		}
	})
}

// listing is a bucket whose List returns fixed objects.
type listing []storage.ObjectAttrs

func (l listing) List(_ context.Context, prefix string, fn func(storage.ObjectAttrs) error) error {
	for _, a := range l {
		if strings.HasPrefix(a.Name, prefix) {
			if err := fn(a); err != nil {
				return err
			}
		}
	}
	return nil
}
func (listing) Create(context.Context, string, io.Reader, map[string]string) error {
	return errors.ErrUnsupported
}
func (listing) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.ErrUnsupported
}
func (listing) Attributes(context.Context, string) (storage.ObjectAttrs, error) {
	return storage.ObjectAttrs{}, errors.ErrUnsupported
}
func (listing) Location() string { return "test" }
func (listing) Close() error     { return nil }

// FuzzListPartition: a listing of segments and gap markers at any
// positions either tiles the partition from 0 with no hole and no overlap
// (and the state adds them up), or is an error that says where it breaks.
func FuzzListPartition(f *testing.F) {
	f.Add([]byte{0, 10, 10, 20, 20, 30})
	f.Add([]byte{0, 10, 5, 20})
	f.Add([]byte{0, 10, 11, 20})
	f.Add([]byte{3, 10})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, spans []byte) {
		var objs listing
		var sum int64
		for i := 0; i+1 < len(spans) && len(objs) < 50; i += 2 {
			start, end := int64(spans[i]), int64(spans[i])+int64(spans[i+1])%32+1
			name := SegmentName("t", 0, start)
			if spans[i+1]&0x80 != 0 {
				name = GapName("t", 0, start)
			}
			if slices.ContainsFunc(objs, func(a storage.ObjectAttrs) bool { return a.Name == name }) {
				continue // a bucket holds one object of a name
			}
			records := end - start
			objs = append(objs, storage.ObjectAttrs{Name: name, Metadata: map[string]string{
				MetaEnd: strconv.FormatInt(end, 10), MetaRecords: strconv.FormatInt(records, 10), MetaBytes: "1"}})
			sum += records
		}
		st, err := ListPartition(context.Background(), objs, "t", 0)
		if err != nil {
			if !strings.Contains(err.Error(), "t/0/") {
				t.Errorf("error %q does not name the object where the listing breaks", err)
			}
			return
		}
		var next int64
		for _, o := range st.Objects {
			if o.Start != next {
				t.Fatalf("accepted a listing that does not tile: %s starts at %d, the previous ends at %d", o.Name, o.Start, next)
			}
			next = o.End
		}
		if st.Next != next || st.Records != sum || len(st.Objects) != len(objs) {
			t.Fatalf("state (next %d, %d records, %d objects) does not add up the %d objects listed (%d records)",
				st.Next, st.Records, len(st.Objects), len(objs), sum)
		}
	})
}

// topicFile is a bucket holding one topic.json.
type topicFile struct {
	listing
	data []byte
}

func (b topicFile) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if name != TopicMetaName("t") {
		return nil, storage.ErrNotExist
	}
	return io.NopCloser(strings.NewReader(string(b.data))), nil
}

// FuzzReadTopicMeta: any topic.json either reads or is an error naming the
// file; what reads is written back the same.
func FuzzReadTopicMeta(f *testing.F) {
	f.Add([]byte(`{"formatVersion":1,"topic":"t","owner":"prod/b","clusterId":"c","topicId":"x","partitions":3,"createdAt":"2026-12-02T09:00:00Z"}`))
	f.Add([]byte(`{"partitions":-1,"configs":{"a":"b"}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, ok, err := ReadTopicMeta(context.Background(), topicFile{data: data}, "t")
		if err != nil {
			if !strings.Contains(err.Error(), "t/topic.json is damaged") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if !ok {
			t.Fatal("a topic.json that exists was reported missing")
		}
		w := &captured{}
		meta.Topic = "t"
		if err := WriteTopicMeta(context.Background(), w, meta); err != nil {
			t.Fatal(err)
		}
		again, _, err := ReadTopicMeta(context.Background(), topicFile{data: w.data}, "t")
		if err != nil || !sameMeta(again, meta) {
			t.Fatalf("written back and read again: %+v, %v; want %+v", again, err, meta)
		}
	})
}

type captured struct {
	listing
	data []byte
}

func (c *captured) Create(_ context.Context, _ string, r io.Reader, _ map[string]string) error {
	var err error
	c.data, err = io.ReadAll(r)
	return err
}

func sameMeta(a, b TopicMeta) bool {
	return a.FormatVersion == b.FormatVersion && a.Topic == b.Topic && a.Owner == b.Owner && a.ClusterID == b.ClusterID &&
		a.TopicID == b.TopicID && a.Partitions == b.Partitions && a.CreatedAt.Equal(b.CreatedAt) && maps.Equal(a.Configs, b.Configs)
}
