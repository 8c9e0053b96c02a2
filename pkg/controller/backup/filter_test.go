package backup

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

func TestProgressOnly(t *testing.T) {
	base := testBackup()
	base.Status = v1alpha.BackupStatus{Phase: v1alpha.PhaseStreaming, Message: "🚀 Streaming", StreamsReady: "2/2", Lag: ptr.To[int64](5),
		Streams: []v1alpha.BackupStreamStatus{{Topic: "magic.events", State: v1alpha.StreamStreaming, RecordsStored: 10, Lag: 5,
			Partitions: []v1alpha.PartitionProgress{{Partition: 0, NextOffset: 10}}}}}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha.Backup)
		want   bool
	}{
		{"records, lag and offsets", func(b *v1alpha.Backup) {
			b.Status.Lag = ptr.To[int64](0)
			b.Status.LastUploadTime = &metav1.Time{}
			b.Status.Streams[0].RecordsStored, b.Status.Streams[0].Lag = 20, 0
			b.Status.Streams[0].Partitions[0].NextOffset = 20
		}, true},
		{"a stream's state", func(b *v1alpha.Backup) { b.Status.Streams[0].State = v1alpha.StreamFailed }, false},
		{"a stream's message", func(b *v1alpha.Backup) { b.Status.Streams[0].Message = "partition 0: upload: 503 (retrying)" }, false},
		{"the worker's condition", func(b *v1alpha.Backup) {
			b.Status.Conditions = []metav1.Condition{{Type: v1alpha.BackupWorkerConnected, Status: metav1.ConditionFalse}}
		}, false},
		{"the phase (someone else's write)", func(b *v1alpha.Backup) { b.Status.Message = "🌈 Ready" }, false},
		{"the spec", func(b *v1alpha.Backup) { b.Generation++ }, false},
		{"a new stream", func(b *v1alpha.Backup) {
			b.Status.Streams = append(b.Status.Streams, v1alpha.BackupStreamStatus{Topic: "pixie.dust", State: v1alpha.StreamStreaming})
		}, false},
	} {
		cur := base.DeepCopy()
		tc.change(cur)
		if got := ProgressOnly(base, cur); got != tc.want {
			t.Errorf("%s: ProgressOnly = %v, want %v", tc.name, got, tc.want)
		}
	}
}
