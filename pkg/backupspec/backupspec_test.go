package backupspec

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

func backup(size string, streams ...v1alpha.BackupStream) *v1alpha.Backup {
	b := &v1alpha.Backup{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1alpha.BackupSpec{Streams: streams}}
	if size != "" {
		b.Spec.SegmentRolloverTriggers = &v1alpha.SegmentRolloverTriggers{Size: ptr.To(resource.MustParse(size))}
	}
	return b
}

func stream(topic, size string) v1alpha.BackupStream {
	s := v1alpha.BackupStream{Topic: topic}
	if size != "" {
		s.SegmentRolloverTriggers = &v1alpha.SegmentRolloverTriggers{Size: ptr.To(resource.MustParse(size))}
	}
	return s
}

func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *v1alpha.Backup
		want []string
	}{
		{"defaults are fine", backup("", stream("a", "")), nil},
		{"positive sizes are fine", backup("64Mi", stream("a", "1")), nil},
		{"a zero Backup size", backup("0", stream("a", "")),
			[]string{"spec.segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is 0)"}},
		{"a negative Backup size, whatever the streams say", backup("-1Mi", stream("a", "1")),
			[]string{"spec.segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is -1Mi)"}},
		{"a stream's own size", backup("64Mi", stream("a", ""), stream("b", "-5")),
			[]string{`spec.streams[1] (topic "b"): segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is -5)`}},
	} {
		if got := Problems(tc.b); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStreamFoldsTheBackupsSettings(t *testing.T) {
	b := backup("64Mi")
	b.Spec.Compression = &v1alpha.Compression{Algorithm: "lz4"}
	b.Spec.SegmentRolloverTriggers.TimeoutSeconds = ptr.To[int32](30)
	s := stream("a", "1Mi")
	s.Enabled = ptr.To(false)
	got := Stream(b, s)
	if got.Enabled != nil || got.Compression.Algorithm != "lz4" || got.SegmentRolloverTriggers.Size.String() != "1Mi" ||
		*got.SegmentRolloverTriggers.TimeoutSeconds != 30 {
		t.Errorf("resolved %+v", got)
	}
	if b.Spec.SegmentRolloverTriggers.Size.String() != "64Mi" {
		t.Errorf("Stream changed the Backup")
	}
}
