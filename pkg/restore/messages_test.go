package restore

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/segment"
)

// encoded is what a producer message would put on the wire: nil for a
// null key or value, the bytes otherwise.
func encoded(t *testing.T, e sarama.Encoder) []byte {
	t.Helper()
	if e == nil {
		return nil
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if b == nil {
		t.Fatal("a set Encoder encodes to nil: the record would be written with a null field")
	}
	return b
}

func TestMessagesKeepEveryField(t *testing.T) {
	recs := []*segment.Record{
		{Offset: 7, Timestamp: t0, Key: []byte("k"), Value: []byte("v"),
			Headers: []segment.RecordHeader{{Key: "b", Value: []byte("2")}, {Key: "a", Value: nil}, {Key: "b", Value: []byte{}}}},
		{Offset: 8, Timestamp: t0.Add(1), Key: nil, Value: []byte{}},
		{Offset: 9, Timestamp: t0.Add(2), Key: []byte{}, Value: nil},
	}
	for _, legacy := range []string{"", "x-offset"} {
		rr := &restoreRun{restore: &v1alpha.Restore{Spec: v1alpha.RestoreSpec{Config: v1alpha.RestoreConfig{LegacyOffsetHeader: legacy}}}}
		msgs := rr.messages("target", 2, recs)
		if len(msgs) != len(recs) {
			t.Fatalf("legacy %q: %d messages for %d records", legacy, len(msgs), len(recs))
		}
		for i, rec := range recs {
			m := &msgs[i].msg
			if m.Topic != "target" || m.Partition != 2 || !m.Timestamp.Equal(rec.Timestamp) {
				t.Errorf("legacy %q, record %d: topic %q partition %d timestamp %v", legacy, i, m.Topic, m.Partition, m.Timestamp)
			}
			for _, f := range []struct {
				name      string
				got, want []byte
			}{{"key", encoded(t, m.Key), rec.Key}, {"value", encoded(t, m.Value), rec.Value}} {
				if (f.got == nil) != (f.want == nil) || string(f.got) != string(f.want) {
					t.Errorf("legacy %q, record %d: %s %q (null %v), want %q (null %v)", legacy, i, f.name, f.got, f.got == nil, f.want, f.want == nil)
				}
			}
			want := len(rec.Headers)
			if legacy != "" {
				want++
			}
			if len(m.Headers) != want {
				t.Fatalf("legacy %q, record %d: %d headers, want %d", legacy, i, len(m.Headers), want)
			}
			for j, h := range rec.Headers {
				got := m.Headers[j]
				if string(got.Key) != h.Key || (got.Value == nil) != (h.Value == nil) || string(got.Value) != string(h.Value) {
					t.Errorf("legacy %q, record %d header %d: %q=%q (null %v), want %q=%q (null %v)",
						legacy, i, j, got.Key, got.Value, got.Value == nil, h.Key, h.Value, h.Value == nil)
				}
			}
			if legacy != "" {
				if last := m.Headers[want-1]; string(last.Key) != legacy || string(last.Value) != []string{"7", "8", "9"}[i] {
					t.Errorf("record %d: last header %q=%q, want %s=%d", i, last.Key, last.Value, legacy, rec.Offset)
				}
			}
			// The messages share one slab of headers: appending to one
			// record's headers must not write over the next record's.
			if cap(m.Headers) != len(m.Headers) {
				t.Errorf("legacy %q, record %d: headers have room for %d more, which would overwrite the next record's", legacy, i, cap(m.Headers)-len(m.Headers))
			}
		}
	}
}
