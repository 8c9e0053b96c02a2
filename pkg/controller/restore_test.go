package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
)

func TestRestoreStatusRules(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	topics := []v1alpha.RestoreTopic{{Source: "magic.events", Target: "magic.events.restored"}}
	missing := refs.Resolved{Problems: []refs.Problem{{Reason: refs.ReasonStorageNotFound,
		Message: `spec.source: Storage "my-storage" not found in namespace "team-a"; create it or correct the name`}}}
	tests := []struct {
		name     string
		spec     v1alpha.RestoreSpec
		resolved refs.Resolved
		phase    v1alpha.Phase
		message  string
		valid    metav1.ConditionStatus
	}{
		{"no topics is Draft", v1alpha.RestoreSpec{Enabled: ptr.To(true)}, missing,
			v1alpha.PhaseDraft, "📝 Draft: add a topic to spec.config.topics", metav1.ConditionFalse},
		{"a missing Storage is Invalid", v1alpha.RestoreSpec{Config: v1alpha.RestoreConfig{Topics: topics}}, missing,
			v1alpha.PhaseInvalid, "🚫 Invalid: " + missing.Problems[0].Message, metav1.ConditionFalse},
		{"not enabled is Ready", v1alpha.RestoreSpec{Enabled: ptr.To(false), Config: v1alpha.RestoreConfig{Topics: topics}}, refs.Resolved{},
			v1alpha.PhaseReady, "🌈 Ready", metav1.ConditionTrue},
		{"enabled says restores are not built", v1alpha.RestoreSpec{Enabled: ptr.To(true), Config: v1alpha.RestoreConfig{Topics: topics}}, refs.Resolved{},
			v1alpha.PhaseFailed, "💥 Failed: this version of Armory cannot run restores yet; set spec.enabled to false", metav1.ConditionTrue},
	}
	for _, tc := range tests {
		r := &v1alpha.Restore{ObjectMeta: metav1.ObjectMeta{Name: "restore-example", Generation: 2}, Spec: tc.spec}
		st := restoreStatus(r, tc.resolved, now)
		if st.Phase != tc.phase || st.Message != tc.message || st.ObservedGeneration != 2 {
			t.Errorf("%s: %s %q (generation %d), want %s %q", tc.name, st.Phase, st.Message, st.ObservedGeneration, tc.phase, tc.message)
		}
		if len(st.Conditions) != 1 || st.Conditions[0].Status != tc.valid {
			t.Errorf("%s: conditions = %+v, want Valid=%s", tc.name, st.Conditions, tc.valid)
		}
	}
}
