package backup

import (
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

// ProgressOnly reports whether a Backup update changed nothing but its
// worker's progress counters (records, bytes, lag, upload times, offsets).
// A worker writes those every few seconds and they never change the phase,
// so the controller does not sync for them; everything else (the spec,
// labels, stream states and messages, conditions, the phase) it does.
func ProgressOnly(old, cur *v1alpha.Backup) bool {
	if old.Generation != cur.Generation || !old.DeletionTimestamp.Equal(cur.DeletionTimestamp) ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Annotations, cur.Annotations) {
		return false
	}
	return equality.Semantic.DeepEqual(withoutProgress(old.Status), withoutProgress(cur.Status))
}

func withoutProgress(s v1alpha.BackupStatus) v1alpha.BackupStatus {
	s = *s.DeepCopy()
	s.StreamsReady, s.Lag, s.LastUploadTime = "", nil, nil
	for i := range s.Streams {
		st := &s.Streams[i]
		st.RecordsStored, st.BytesStored, st.Lag, st.LastUploadTime, st.Partitions = 0, 0, 0, nil, nil
	}
	return s
}
