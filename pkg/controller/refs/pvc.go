package refs

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

// Labels of objects the controller creates for a Storage.
const StorageLabel = "kannika.io/storage"

// PVCName is the name of a volume Storage's PersistentVolumeClaim.
func PVCName(s *v1alpha.Storage) string { return s.Name + "-storage" }

// NewPVC builds the PersistentVolumeClaim of a volume Storage.
//
// The claim is tied to its Storage by a label, not an owner reference: an
// owner reference would let the garbage collector delete the claim, and with
// it (under the usual Delete reclaim policy) the backed-up data, when the
// Storage is deleted. Armory never deletes backed-up data; a user who wants
// the space back deletes the claim.
func NewPVC(s *v1alpha.Storage) *corev1.PersistentVolumeClaim {
	v := s.Spec.Volume
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PVCName(s),
			Namespace: s.Namespace,
			Labels: map[string]string{
				"app.kubernetes.io/name":       "armory",
				"app.kubernetes.io/component":  "storage",
				"app.kubernetes.io/part-of":    "armory",
				"app.kubernetes.io/managed-by": "armory-controller",
				StorageLabel:                   s.Name,
			},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			// ReadWriteOnce works with every storage class; workers sharing a
			// volume Storage are scheduled where the volume is attached.
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: v.StorageClass,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: v.Capacity},
			},
		},
	}
}

// BelongsTo reports whether a claim is the one made for the Storage.
func BelongsTo(pvc *corev1.PersistentVolumeClaim, s *v1alpha.Storage) bool {
	return pvc.Labels[StorageLabel] == s.Name && pvc.Labels["app.kubernetes.io/managed-by"] == "armory-controller"
}
