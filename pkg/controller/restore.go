package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
)

// ConditionRestoreValid is the condition a Restore sets: whether its
// references can be used.
const ConditionRestoreValid = "Valid"

// restoreStatus computes the controller-owned status of a Restore. Until the
// restore worker exists, the rules stop at what can be known without it:
//
//  1. Draft: no topics to restore.
//  2. Invalid: a reference cannot be used; the message names it.
//  3. Ready: configured, not enabled.
//  4. Failed: enabled, but this version of Armory cannot run restores yet.
func restoreStatus(r *v1alpha.Restore, resolved refs.Resolved, now time.Time) v1alpha.RestoreStatus {
	st := v1alpha.RestoreStatus{ObservedGeneration: r.Generation}
	if len(r.Status.Conditions) > 0 {
		st.Conditions = append([]metav1.Condition(nil), r.Status.Conditions...)
	}
	valid := metav1.Condition{Type: ConditionRestoreValid, Status: metav1.ConditionTrue, Reason: "Valid",
		Message: "the Storage, EventHub and Credentials exist and are usable", ObservedGeneration: r.Generation,
		LastTransitionTime: metav1.NewTime(now)}
	var msgs []string
	for _, p := range resolved.Problems {
		msgs = append(msgs, p.Message)
	}
	if len(msgs) > 0 {
		valid.Status, valid.Reason, valid.Message = metav1.ConditionFalse, resolved.Problems[0].Reason, phase.Details(msgs)
	}
	meta.SetStatusCondition(&st.Conditions, valid)

	switch {
	case len(r.Spec.Config.Topics) == 0:
		st.Phase, st.Message = v1alpha.PhaseDraft, phase.Message(v1alpha.PhaseDraft, "add a topic to spec.config.topics")
	case len(msgs) > 0:
		st.Phase, st.Message = v1alpha.PhaseInvalid, phase.Message(v1alpha.PhaseInvalid, phase.Details(msgs))
	case r.Spec.Enabled == nil || !*r.Spec.Enabled:
		st.Phase, st.Message = v1alpha.PhaseReady, phase.Message(v1alpha.PhaseReady, "")
	default:
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed,
			"this version of Armory cannot run restores yet; set spec.enabled to false")
	}
	return st
}
