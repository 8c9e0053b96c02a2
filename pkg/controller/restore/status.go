package restore

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
)

// Observed is what the controller saw while syncing a Restore.
type Observed struct {
	// Problems with the Restore's references, in spec order.
	Problems []refs.Problem
	// Job is the Restore's Job, if it has one.
	Job *batchv1.Job
	// LeaseHeld is true when a worker holds a fresh Lease; WorkerHolder names it.
	LeaseHeld    bool
	WorkerHolder string
	Now          time.Time
}

// Status is the part of a Restore's status the controller owns.
type Status struct {
	Phase              v1alpha.Phase
	Message            string
	ObservedGeneration int64
	Conditions         []metav1.Condition
}

// controllerConditions are the condition types the controller owns; the
// worker owns the others and the controller only reads them.
var controllerConditions = []string{v1alpha.RestoreValid, v1alpha.RestoreWorkerRunning}

// OwnedStatus extracts the controller-owned fields of a Restore's status.
func OwnedStatus(r *v1alpha.Restore) Status {
	st := Status{Phase: r.Status.Phase, Message: r.Status.Message, ObservedGeneration: r.Status.ObservedGeneration}
	for _, t := range controllerConditions {
		if c := meta.FindStatusCondition(r.Status.Conditions, t); c != nil {
			st.Conditions = append(st.Conditions, *c)
		}
	}
	return st
}

// worker returns a condition the worker reported for the current generation.
func worker(r *v1alpha.Restore, typ string) *metav1.Condition {
	c := meta.FindStatusCondition(r.Status.Conditions, typ)
	if c == nil || c.ObservedGeneration != r.Generation {
		return nil
	}
	return c
}

// jobFailed returns why the Job failed, if it did.
func jobFailed(job *batchv1.Job) (string, bool) {
	if job == nil {
		return "", false
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return fmt.Sprintf("the Job %s failed (%s: %s); see kubectl logs job/%s", job.Name, c.Reason, c.Message, job.Name), true
		}
	}
	return "", false
}

// ComputeStatus applies the Restore status rules in order; the first that
// matches wins:
//
//  1. Draft: no topics to restore.
//  2. Done: the worker reported every selected record written (a finished
//     Restore stays Done, even if its spec is edited afterwards).
//  3. Invalid: a reference cannot be used, or the worker's preflight checks
//     failed for this generation of the spec.
//  4. Failed: the worker stopped on an error it cannot retry past, for this
//     generation, or the Job failed.
//  5. Ready: not enabled (a started Restore says how far it got).
//  6. Restoring: a worker holds the Restore's Lease.
//  7. Initializing: enabled, waiting for the Job's worker.
func ComputeStatus(r *v1alpha.Restore, obs Observed) Status {
	gen := r.Generation
	st := OwnedStatus(r)
	st.ObservedGeneration = gen
	set := func(typ string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason,
			Message: msg, ObservedGeneration: gen, LastTransitionTime: metav1.NewTime(obs.Now.Truncate(time.Second))})
	}
	msgs := make([]string, len(obs.Problems))
	for i, p := range obs.Problems {
		msgs[i] = p.Message
	}
	if len(msgs) == 0 {
		set(v1alpha.RestoreValid, true, "Valid", "the Storage, EventHub and Credentials exist and are usable")
	} else {
		set(v1alpha.RestoreValid, false, obs.Problems[0].Reason, joinAll(msgs))
	}
	if obs.LeaseHeld {
		set(v1alpha.RestoreWorkerRunning, true, "WorkerRunning", fmt.Sprintf("worker %s holds the Lease", obs.WorkerHolder))
	} else {
		set(v1alpha.RestoreWorkerRunning, false, "WorkerNotRunning", "no worker holds the Lease")
	}

	progress := ""
	if r.Status.Records != "" {
		progress = fmt.Sprintf("%s (%s records)", r.Status.Progress, r.Status.Records)
	}
	complete := meta.FindStatusCondition(r.Status.Conditions, v1alpha.RestoreComplete)
	jobWhy, jobDidFail := jobFailed(obs.Job)
	switch {
	case len(r.Spec.Config.Topics) == 0:
		st.Phase, st.Message = v1alpha.PhaseDraft, phase.Message(v1alpha.PhaseDraft, "add a topic to spec.config.topics")
	case complete != nil && complete.Status == metav1.ConditionTrue:
		detail := complete.Message
		if complete.ObservedGeneration != gen {
			detail += "; the spec changed after the restore finished and a Restore runs once: create a new Restore to restore again"
		}
		st.Phase, st.Message = v1alpha.PhaseDone, phase.Message(v1alpha.PhaseDone, detail)
	case len(msgs) > 0:
		st.Phase, st.Message = v1alpha.PhaseInvalid, phase.Message(v1alpha.PhaseInvalid, phase.Details(msgs))
	case isFalse(worker(r, v1alpha.RestorePreflight)):
		st.Phase, st.Message = v1alpha.PhaseInvalid, phase.Message(v1alpha.PhaseInvalid, worker(r, v1alpha.RestorePreflight).Message)
	case isTrue(worker(r, v1alpha.RestoreFailed)):
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, worker(r, v1alpha.RestoreFailed).Message)
	case jobDidFail && !obs.LeaseHeld:
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, jobWhy)
	case !Enabled(r):
		detail := ""
		if r.Status.StartTime != nil {
			detail = fmt.Sprintf("paused at %s; set spec.enabled to true to resume", progress)
		}
		st.Phase, st.Message = v1alpha.PhaseReady, phase.Message(v1alpha.PhaseReady, detail)
	case obs.LeaseHeld:
		detail := progress
		if c := worker(r, v1alpha.RestoreRetrying); isTrue(c) {
			detail += "; retrying: " + c.Message
		}
		st.Phase, st.Message = v1alpha.PhaseRestoring, phase.Message(v1alpha.PhaseRestoring, detail)
	default:
		detail := "waiting for the Job's worker to start"
		if progress != "" {
			detail = "resuming at " + progress + ", " + detail
		}
		st.Phase, st.Message = v1alpha.PhaseInitializing, phase.Message(v1alpha.PhaseInitializing, detail)
	}
	st.Message = v1alpha.TruncateMessage(st.Message)
	return st
}

func isTrue(c *metav1.Condition) bool  { return c != nil && c.Status == metav1.ConditionTrue }
func isFalse(c *metav1.Condition) bool { return c != nil && c.Status == metav1.ConditionFalse }

// joinAll keeps every problem, for the condition that lists them in full.
func joinAll(msgs []string) string {
	out := ""
	for i, m := range msgs {
		if i > 0 {
			out += "; "
		}
		out += m
	}
	return v1alpha.TruncateMessage(out)
}

// Equal reports whether two statuses show the same to a user; transition
// times are compared at the second, the precision the API server keeps.
func (s Status) Equal(o Status) bool {
	if s.Phase != o.Phase || s.Message != o.Message || s.ObservedGeneration != o.ObservedGeneration || len(s.Conditions) != len(o.Conditions) {
		return false
	}
	for _, c := range s.Conditions {
		oc := meta.FindStatusCondition(o.Conditions, c.Type)
		if oc == nil || oc.Status != c.Status || oc.Reason != c.Reason || oc.Message != c.Message ||
			oc.ObservedGeneration != c.ObservedGeneration || oc.LastTransitionTime.Unix() != c.LastTransitionTime.Unix() {
			return false
		}
	}
	return true
}
