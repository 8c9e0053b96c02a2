package backup

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
)

// Condition types the controller sets on a Backup.
const (
	// ConditionReferencesResolved: the EventHub, Storage, Credentials and
	// Secrets the Backup names exist and are usable.
	ConditionReferencesResolved = "ReferencesResolved"
	// ConditionStreaming: a worker holds the Backup's Lease.
	ConditionStreaming = "Streaming"
	// ConditionStreamsHealthy: no enabled stream reported a failure.
	ConditionStreamsHealthy = "StreamsHealthy"
)

// Condition reasons.
const (
	ReasonResolved         = "Resolved"
	ReasonWorkerRunning    = "WorkerRunning"
	ReasonWorkerNotRunning = "WorkerNotRunning"
	ReasonPaused           = "Paused"
	ReasonDraft            = "Draft"
	ReasonCannotRun        = "CannotRun"
	ReasonStreamsHealthy   = "AllStreamsHealthy"
	ReasonStreamFailed     = "StreamFailed"
	ReasonStreamRetrying   = "StreamRetrying"
	ReasonInvalidSettings  = "InvalidSettings"
)

// StreamStateFailed is the state a worker reports for a stream it cannot
// back up (topic deleted, recreated, or owned by another Backup).
const StreamStateFailed = v1alpha.StreamFailed

// Observed is what the controller saw while syncing a Backup.
type Observed struct {
	// Problems with the Backup's references, in spec order.
	Problems []refs.Problem
	// WorkerHolder is the identity holding the worker Lease, if it is held.
	WorkerHolder string
	// LeaseHeld is true when a worker holds a fresh Lease.
	LeaseHeld bool
	// When no worker holds it: LastHolder is who held it last ("" once
	// released or never held) and LastRenewed when it was last renewed or
	// released (zero if there is no Lease yet).
	LastHolder  string
	LastRenewed time.Time
	// Now stamps the conditions that change.
	Now time.Time
}

// Status is the part of a Backup's status the controller owns.
type Status struct {
	Phase              v1alpha.Phase
	Message            string
	ObservedGeneration int64
	Conditions         []metav1.Condition
}

// OwnedStatus extracts the controller-owned fields of a Backup's status.
func OwnedStatus(b *v1alpha.Backup) Status {
	return Status{
		Phase:              b.Status.Phase,
		Message:            b.Status.Message,
		ObservedGeneration: b.Status.ObservedGeneration,
		Conditions:         controllerConditions(b.Status.Conditions),
	}
}

// controllerConditionTypes are the conditions the controller owns; the
// worker owns the others (WorkerConnected) and the controller only reads them.
var controllerConditionTypes = map[string]bool{ConditionReferencesResolved: true, ConditionStreaming: true, ConditionStreamsHealthy: true}

func controllerConditions(all []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range all {
		if controllerConditionTypes[c.Type] {
			out = append(out, c)
		}
	}
	return out
}

// WithControllerConditions returns all with the controller's conditions
// replaced by mine, keeping the worker's.
func WithControllerConditions(all, mine []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range all {
		if !controllerConditionTypes[c.Type] {
			out = append(out, c)
		}
	}
	return append(out, mine...)
}

// ComputeStatus applies the Backup status rules of DESIGN §2, in order; the
// first that matches wins:
//
//  1. Draft: no streams.
//  2. Paused: spec.enabled is false, or every stream is disabled.
//  3. Failed: a reference cannot be used, or the worker reported that no
//     enabled stream can run.
//  4. Streaming: the worker holds a fresh Lease.
//  5. Ready: otherwise.
//
// Conditions are computed from the Backup's existing ones, so a condition that
// does not change keeps its lastTransitionTime.
func ComputeStatus(b *v1alpha.Backup, obs Observed) Status {
	gen := b.Generation
	st := Status{ObservedGeneration: gen, Conditions: controllerConditions(b.Status.Conditions)}
	set := func(typ string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
			LastTransitionTime: metav1.NewTime(obs.Now.Truncate(time.Second)), // the API server keeps seconds
		})
	}

	// References are checked whatever the phase: a paused Backup still shows
	// what would stop it from resuming.
	if len(obs.Problems) == 0 {
		set(ConditionReferencesResolved, true, ReasonResolved, "the EventHub, Storage and Credentials exist and are usable")
	} else {
		set(ConditionReferencesResolved, false, obs.Problems[0].Reason, joinProblems(obs.Problems))
	}
	failedStreams, enabledCount := streamFailures(b)
	retryingStreams, _ := streamsIn(b, v1alpha.StreamRetrying)
	switch {
	case len(failedStreams) > 0:
		set(ConditionStreamsHealthy, false, ReasonStreamFailed, fmt.Sprintf("%d of %d streams failing: %s",
			len(failedStreams), enabledCount, phase.Summary(failedStreams, "status.streams")))
	case len(retryingStreams) > 0:
		set(ConditionStreamsHealthy, false, ReasonStreamRetrying, fmt.Sprintf("%d of %d streams retrying failed reads or uploads: %s",
			len(retryingStreams), enabledCount, phase.Summary(retryingStreams, "status.streams")))
	default:
		set(ConditionStreamsHealthy, true, ReasonStreamsHealthy, "no stream reported a problem")
	}

	switch {
	case len(b.Spec.Streams) == 0:
		st.Phase, st.Message = v1alpha.PhaseDraft, phase.Message(v1alpha.PhaseDraft, "add a topic to spec.streams to start backing up")
		set(ConditionStreaming, false, ReasonDraft, "the Backup has no streams")
	case isPaused(b):
		st.Phase, st.Message = v1alpha.PhasePaused, phase.Message(v1alpha.PhasePaused, "")
		set(ConditionStreaming, false, ReasonPaused, pausedWhy(b))
	case len(obs.Problems) > 0:
		msgs := make([]string, len(obs.Problems))
		for i, p := range obs.Problems {
			msgs[i] = p.Message
		}
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, phase.Details(msgs))
		set(ConditionStreaming, false, ReasonCannotRun, "the worker does not run until the references are fixed")
	case workerCannotStart(b) != "":
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, workerCannotStart(b))
		set(ConditionStreaming, false, ReasonCannotRun, "the worker stopped: "+workerCannotStart(b))
	case len(failedStreams) > 0 && len(failedStreams) == enabledCount:
		st.Phase, st.Message = v1alpha.PhaseFailed, phase.Message(v1alpha.PhaseFailed, "no stream can run: "+phase.Details(failedStreams))
		set(ConditionStreaming, false, ReasonStreamFailed, "every enabled stream reported a failure")
	case obs.LeaseHeld:
		detail := ""
		switch {
		case len(failedStreams) > 0:
			detail = fmt.Sprintf("%d of %d streams failing: %s", len(failedStreams), enabledCount, phase.Details(failedStreams))
		case len(retryingStreams) > 0:
			detail = fmt.Sprintf("%d of %d streams retrying: %s", len(retryingStreams), enabledCount, phase.Details(retryingStreams))
		}
		st.Phase, st.Message = v1alpha.PhaseStreaming, phase.Message(v1alpha.PhaseStreaming, detail)
		set(ConditionStreaming, true, ReasonWorkerRunning, fmt.Sprintf("worker %s holds the Lease", obs.WorkerHolder))
	default:
		st.Phase, st.Message = v1alpha.PhaseReady, phase.Message(v1alpha.PhaseReady, "")
		set(ConditionStreaming, false, ReasonWorkerNotRunning, notRunningWhy(b, obs))
	}
	return st
}

// notRunningWhy says what is known of the worker when none holds the
// Lease: never started, released it, or stopped renewing it.
func notRunningWhy(b *v1alpha.Backup, obs Observed) string {
	deployment := fmt.Sprintf("the Deployment %s is scaled to %d", DeploymentName(b), DesiredReplicas(b, refs.Resolved{Problems: obs.Problems}))
	at := obs.LastRenewed.UTC().Format(time.RFC3339)
	switch {
	case obs.LastRenewed.IsZero():
		return "no worker has held the Lease yet; " + deployment
	case obs.LastHolder == "":
		return fmt.Sprintf("the worker stopped and released the Lease at %s; %s", at, deployment)
	}
	return fmt.Sprintf("worker %s stopped renewing the Lease at %s (killed, or cut off from the API server); %s", obs.LastHolder, at, deployment)
}

// workerCannotStart is what the worker last reported stopped it when it
// started (WorkerConnected False), or "". A worker that connects sets it
// True again, so fixing the cause (an EventHub, a Secret) clears it with the
// next worker start.
func workerCannotStart(b *v1alpha.Backup) string {
	c := meta.FindStatusCondition(b.Status.Conditions, v1alpha.BackupWorkerConnected)
	if c == nil || c.Status != metav1.ConditionFalse {
		return ""
	}
	return c.Message
}

func pausedWhy(b *v1alpha.Backup) string {
	if b.Spec.Enabled != nil && !*b.Spec.Enabled {
		return "spec.enabled is false; set it to true or remove it to resume"
	}
	return "every stream is disabled; enable a stream to resume"
}

func joinProblems(ps []refs.Problem) string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Message
	}
	return strings.Join(msgs, "; ")
}

// streamFailures lists the enabled streams the worker reported as Failed, as
// "stream "topic": message", and counts the enabled streams.
func streamFailures(b *v1alpha.Backup) (failed []string, enabled int) {
	return streamsIn(b, StreamStateFailed)
}

// streamsIn lists the enabled streams the worker reports in a state, with
// their messages, and counts the enabled streams.
func streamsIn(b *v1alpha.Backup, state v1alpha.StreamState) (found []string, enabled int) {
	reported := map[string]v1alpha.BackupStreamStatus{}
	for _, s := range b.Status.Streams {
		reported[s.Topic] = s
	}
	for _, s := range EnabledStreams(b) {
		enabled++
		if r, ok := reported[s.Topic]; ok && r.State == state {
			found = append(found, fmt.Sprintf("stream %q: %s", s.Topic, r.Message))
		}
	}
	return found, enabled
}

// Equal reports whether two statuses would show the same to a user: phase,
// message, observed generation and conditions (transition times included, at
// the second: the precision the API server stores, so that a status written
// compares equal to the same status read back).
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

// Event is an event to record for a status change.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Events lists the events a status change deserves: one Normal event per
// phase transition, one Warning per new failure cause. An unchanged status
// deserves none, so resyncs and controller restarts are silent.
func Events(old, cur Status) []Event {
	var events []Event
	for _, typ := range []string{ConditionReferencesResolved, ConditionStreamsHealthy} {
		c := meta.FindStatusCondition(cur.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionFalse {
			continue
		}
		if o := meta.FindStatusCondition(old.Conditions, typ); o != nil && o.Status == c.Status && o.Message == c.Message {
			continue
		}
		events = append(events, Event{Warning: true, Reason: c.Reason, Message: c.Message})
	}
	if old.Phase != cur.Phase && cur.Phase != v1alpha.PhaseFailed {
		events = append(events, Event{Reason: string(cur.Phase), Message: cur.Message})
	}
	if old.Phase != cur.Phase && cur.Phase == v1alpha.PhaseFailed && len(events) == 0 {
		events = append(events, Event{Warning: true, Reason: string(cur.Phase), Message: cur.Message})
	}
	return events
}
