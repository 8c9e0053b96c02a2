package restore

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/controller/refs"
)

func TestRestoreStatusRules(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	topics := []v1alpha.RestoreTopic{{Source: "magic.events", Target: "magic.events.restored"}}
	cond := func(typ string, ok bool, gen int64, msg string) metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return metav1.Condition{Type: typ, Status: s, ObservedGeneration: gen, Message: msg, Reason: "R"}
	}
	missing := []refs.Problem{{Reason: refs.ReasonStorageNotFound, Message: `spec.source: Storage "my-storage" not found`}}
	failedJob := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "r-restore"}, Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}}}
	tests := []struct {
		name    string
		enabled bool
		topics  []v1alpha.RestoreTopic
		status  v1alpha.RestoreStatus
		obs     Observed
		phase   v1alpha.Phase
		message string
	}{
		{"no topics", true, nil, v1alpha.RestoreStatus{}, Observed{}, v1alpha.PhaseDraft, "📝 Draft: add a topic to spec.config.topics"},
		{"done stays done", true, topics, v1alpha.RestoreStatus{Conditions: []metav1.Condition{cond(v1alpha.RestoreComplete, true, 2, "100 records restored")}},
			Observed{Problems: missing}, v1alpha.PhaseDone, "✅ Done: 100 records restored"},
		{"done, then edited", true, topics, v1alpha.RestoreStatus{Conditions: []metav1.Condition{cond(v1alpha.RestoreComplete, true, 1, "100 records restored")}},
			Observed{}, v1alpha.PhaseDone, "✅ Done: 100 records restored; the spec changed after the restore finished and a Restore runs once: create a new Restore to restore again"},
		{"missing Storage", true, topics, v1alpha.RestoreStatus{}, Observed{Problems: missing}, v1alpha.PhaseInvalid, "🚫 Invalid: " + missing[0].Message},
		{"preflight failed", true, topics, v1alpha.RestoreStatus{Conditions: []metav1.Condition{cond(v1alpha.RestorePreflight, false, 2, "target not empty")}},
			Observed{}, v1alpha.PhaseInvalid, "🚫 Invalid: target not empty"},
		{"preflight failed for an older spec", true, topics, v1alpha.RestoreStatus{Conditions: []metav1.Condition{cond(v1alpha.RestorePreflight, false, 1, "target not empty")}},
			Observed{}, v1alpha.PhaseInitializing, "⏳ Initializing: waiting for the Job's worker to start"},
		{"worker failed", true, topics, v1alpha.RestoreStatus{Conditions: []metav1.Condition{cond(v1alpha.RestoreFailed, true, 2, "segment x is corrupt at byte 9")}},
			Observed{}, v1alpha.PhaseFailed, "💥 Failed: segment x is corrupt at byte 9"},
		{"job failed", true, topics, v1alpha.RestoreStatus{}, Observed{Job: failedJob}, v1alpha.PhaseFailed,
			"💥 Failed: the Job r-restore failed (BackoffLimitExceeded: Job has reached the specified backoff limit); see kubectl logs job/r-restore"},
		{"not enabled", false, topics, v1alpha.RestoreStatus{}, Observed{}, v1alpha.PhaseReady, "🌈 Ready"},
		{"paused", false, topics, v1alpha.RestoreStatus{StartTime: &metav1.Time{Time: now}, Progress: "41%", Records: "41/100"}, Observed{},
			v1alpha.PhaseReady, "🌈 Ready: paused at 41% (41/100 records); set spec.enabled to true to resume"},
		{"restoring", true, topics, v1alpha.RestoreStatus{Progress: "41%", Records: "41/100"}, Observed{LeaseHeld: true, WorkerHolder: "pod"},
			v1alpha.PhaseRestoring, "🚀 Restoring: 41% (41/100 records)"},
		{"restoring, retrying", true, topics, v1alpha.RestoreStatus{Progress: "41%", Records: "41/100",
			Conditions: []metav1.Condition{cond(v1alpha.RestoreRetrying, true, 2, "cannot reach Kafka")}}, Observed{LeaseHeld: true},
			v1alpha.PhaseRestoring, "🚀 Restoring: 41% (41/100 records); retrying: cannot reach Kafka"},
		{"waiting", true, topics, v1alpha.RestoreStatus{}, Observed{}, v1alpha.PhaseInitializing, "⏳ Initializing: waiting for the Job's worker to start"},
	}
	for _, tc := range tests {
		r := &v1alpha.Restore{ObjectMeta: metav1.ObjectMeta{Name: "r", Generation: 2},
			Spec: v1alpha.RestoreSpec{Enabled: ptr.To(tc.enabled), Config: v1alpha.RestoreConfig{Topics: tc.topics}}, Status: tc.status}
		tc.obs.Now = now
		st := ComputeStatus(r, tc.obs)
		if st.Phase != tc.phase || st.Message != tc.message || st.ObservedGeneration != 2 {
			t.Errorf("%s: %s %q, want %s %q", tc.name, st.Phase, st.Message, tc.phase, tc.message)
		}
		for _, c := range st.Conditions {
			if c.Type != v1alpha.RestoreValid && c.Type != v1alpha.RestoreWorkerRunning {
				t.Errorf("%s: the controller would write the worker's condition %s", tc.name, c.Type)
			}
		}
	}
}

func TestNewJob(t *testing.T) {
	r := &v1alpha.Restore{ObjectMeta: metav1.ObjectMeta{Name: "restore-example", Namespace: "team-a", UID: "u"},
		Spec: v1alpha.RestoreSpec{Enabled: ptr.To(false), Config: v1alpha.RestoreConfig{Topics: []v1alpha.RestoreTopic{{Source: "a", Target: "b"}}}}}
	job := NewJob(r, refs.Resolved{}, backup.Config{Image: "armory:1"})
	c := job.Spec.Template.Spec.Containers[0]
	switch {
	case job.Name != "restore-example-restore", !*job.Spec.Suspend, *job.Spec.BackoffLimit != backoffLimit, job.Spec.TTLSecondsAfterFinished != nil:
		t.Errorf("job spec: %+v", job.Spec)
	case len(c.Command) != 3 || c.Command[2] != "--restore=restore-example" || len(c.Args) != 0:
		t.Errorf("command %q args %q", c.Command, c.Args)
	case job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever, job.Spec.Template.Spec.ServiceAccountName != "restore-example-restore":
		t.Errorf("pod: %+v", job.Spec.Template.Spec)
	case !metav1.IsControlledBy(job, r):
		t.Error("no controller reference")
	}
	for _, e := range c.Env {
		if e.Value != "" {
			t.Errorf("env literal %s", e.Name)
		}
	}
	enabled := r.DeepCopy()
	enabled.Spec.Enabled = ptr.To(true)
	if a, b := job.Spec.Template.Annotations[backup.InputsHashAnnotation], NewJob(enabled, refs.Resolved{}, backup.Config{Image: "armory:1"}).Spec.Template.Annotations[backup.InputsHashAnnotation]; a != b {
		t.Error("enabling a Restore changes its inputs hash: it would replace the Job instead of resuming it")
	}
}
