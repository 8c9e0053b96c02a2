package refs

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/kafka/properties"
)

// ConditionReady is the condition an EventHub or Storage sets: whether
// Backups and Restores can use it.
const ConditionReady = "Ready"

// Reasons of the Ready condition.
const (
	ReasonValid             = "Valid"
	ReasonInvalidProperties = "InvalidProperties"
	ReasonVolumeProvisioned = "VolumeClaimCreated"
	ReasonVolumeLost        = "VolumeClaimLost"
	ReasonVolumeConflict    = "VolumeClaimConflict"
	ReasonVolumeNotExpanded = "VolumeNotExpanded"
)

// KafkaType is the status.type of an EventHub.
const KafkaType = "Kafka"

// EventHubProblems lists what is wrong with an EventHub's properties.
func EventHubProblems(eh *v1alpha.EventHub) field.ErrorList {
	return properties.Validate(field.NewPath("spec", "kafka", "properties"), eh.Spec.Kafka.Properties)
}

// EventHubStatus computes an EventHub's status: Ready when its properties
// are usable, Failed naming the property and the fix otherwise.
func EventHubStatus(eh *v1alpha.EventHub) v1alpha.EventHubStatus {
	st := v1alpha.EventHubStatus{
		ObservedGeneration: eh.Generation,
		Conditions:         copyConditions(eh.Status.Conditions),
		Type:               KafkaType,
		Location:           eh.Spec.Kafka.Properties["bootstrap.servers"],
	}
	errs := EventHubProblems(eh)
	if len(errs) == 0 {
		st.Phase, st.Message = v1alpha.PhaseReady, phase.Message(v1alpha.PhaseReady, "")
		setCondition(&st.Conditions, eh.Generation, metav1.ConditionTrue, ReasonValid, "the Kafka properties are valid")
		return st
	}
	messages := make([]string, len(errs))
	for i, e := range errs {
		messages[i] = e.Error()
	}
	st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, phase.Details(messages))
	setCondition(&st.Conditions, eh.Generation, metav1.ConditionFalse, ReasonInvalidProperties, strings.Join(messages, "; "))
	return st
}

// StorageStatus computes a Storage's status. pvc is the Storage's
// PersistentVolumeClaim as found after creating it (volume Storages only).
//
// notGrown, when not empty, says why the claim keeps a smaller size than
// spec.volume.capacity: the Storage stays Ready (its volume works at the
// size it has) and its message says what was not applied.
func StorageStatus(s *v1alpha.Storage, pvc *corev1.PersistentVolumeClaim, notGrown string) v1alpha.StorageStatus {
	st := v1alpha.StorageStatus{
		ObservedGeneration: s.Generation,
		Conditions:         copyConditions(s.Status.Conditions),
	}
	ready := func(reason, msg string) v1alpha.StorageStatus {
		st.Phase, st.Message = v1alpha.PhaseReady, phase.Message(v1alpha.PhaseReady, "")
		setCondition(&st.Conditions, s.Generation, metav1.ConditionTrue, reason, msg)
		return st
	}
	failed := func(reason, msg string) v1alpha.StorageStatus {
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, msg)
		setCondition(&st.Conditions, s.Generation, metav1.ConditionFalse, reason, msg)
		return st
	}

	if b := s.Spec.GCSBucket; b != nil {
		st.Location = GCSLocation(b)
		return ready(ReasonValid, "the bucket is configured; the worker checks access when it writes")
	}
	name := PVCName(s)
	st.Location = "pvc/" + name
	switch {
	case pvc == nil:
		return failed(ReasonVolumeConflict, fmt.Sprintf("spec.volume: PersistentVolumeClaim %q could not be created; see the Storage's events", name))
	case !BelongsTo(pvc, s):
		return failed(ReasonVolumeConflict, fmt.Sprintf("spec.volume: PersistentVolumeClaim %q already exists and does not belong to this Storage; delete or rename it", name))
	case pvc.Status.Phase == corev1.ClaimLost:
		return failed(ReasonVolumeLost, fmt.Sprintf("spec.volume: PersistentVolumeClaim %q lost its volume; restore the PersistentVolume, or create a new Storage", name))
	}
	if notGrown != "" {
		st = ready(ReasonVolumeNotExpanded, notGrown)
		st.Message = phase.Message(v1alpha.PhaseReady, notGrown)
		return st
	}
	return ready(ReasonVolumeProvisioned, fmt.Sprintf("PersistentVolumeClaim %q is %s", name, pvcPhase(pvc)))
}

// NotGrownMessage says that a claim was not grown to the Storage's capacity,
// why (the API server's refusal), and what lets it grow.
func NotGrownMessage(claim string, want, have resource.Quantity, refusal error) string {
	return fmt.Sprintf("spec.volume.capacity %s is not applied: PersistentVolumeClaim %q stays at %s (the API server refused to grow it: %v); "+
		"allow volume expansion in its StorageClass (allowVolumeExpansion: true) and the controller grows it (it tries again every %s)",
		want.String(), claim, have.String(), refusal, GrowRetry)
}

// GrowRetry is how often the controller tries again to grow a claim that the
// API server would not grow: the StorageClass is not watched.
const GrowRetry = 5 * time.Minute

func pvcPhase(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Status.Phase == "" {
		return string(corev1.ClaimPending)
	}
	return string(pvc.Status.Phase)
}

// GCSLocation is gs://bucket/prefix.
func GCSLocation(b *v1alpha.GCSBucket) string {
	loc := "gs://" + b.Bucket
	if p := strings.Trim(b.Prefix, "/"); p != "" {
		loc += "/" + p
	}
	return loc
}

func copyConditions(in []metav1.Condition) []metav1.Condition {
	if in == nil {
		return nil
	}
	return append([]metav1.Condition(nil), in...)
}

// setCondition sets a condition, keeping its transition time when only the
// message changes.
func setCondition(conds *[]metav1.Condition, generation int64, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: ConditionReady, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
		// At the precision the API server stores, so that what was written
		// compares equal to what comes back.
		LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second)),
	})
}
