package backup

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
)

var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestComputeStatusRules(t *testing.T) {
	missingEventHub := refs.Problem{Reason: refs.ReasonEventHubNotFound,
		Message: `spec.source: EventHub "my-kafka-cluster" not found in namespace "team-a"; create it or correct the name`}
	failedStream := func(topic string) v1alpha.BackupStreamStatus {
		return v1alpha.BackupStreamStatus{Topic: topic, State: StreamStateFailed, Message: "topic was deleted and recreated"}
	}
	tests := []struct {
		name          string
		mutate        func(*v1alpha.Backup)
		obs           Observed
		phase         v1alpha.Phase
		message       string
		streaming     metav1.ConditionStatus
		streamReason  string
		refsResolved  metav1.ConditionStatus
		streamsHealth metav1.ConditionStatus
	}{
		{name: "no streams is Draft, even with a missing EventHub and a worker",
			mutate: func(b *v1alpha.Backup) { b.Spec.Streams = nil },
			obs:    Observed{Problems: []refs.Problem{missingEventHub}, LeaseHeld: true, WorkerHolder: "pod"},
			phase:  v1alpha.PhaseDraft, message: "📝 Draft: add a topic to spec.streams to start backing up",
			streaming: metav1.ConditionFalse, streamReason: ReasonDraft, refsResolved: metav1.ConditionFalse, streamsHealth: metav1.ConditionTrue},
		{name: "enabled false is Paused",
			mutate: func(b *v1alpha.Backup) { b.Spec.Enabled = ptr.To(false) },
			phase:  v1alpha.PhasePaused, message: "💤 Paused",
			streaming: metav1.ConditionFalse, streamReason: ReasonPaused, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "every stream disabled is Paused",
			mutate: func(b *v1alpha.Backup) {
				b.Spec.Streams[0].Enabled = ptr.To(false)
				b.Spec.Streams[1].Enabled = ptr.To(false)
			},
			phase: v1alpha.PhasePaused, message: "💤 Paused",
			streaming: metav1.ConditionFalse, streamReason: ReasonPaused, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "Paused wins over Failed, and the condition still shows the problem",
			mutate: func(b *v1alpha.Backup) { b.Spec.Enabled = ptr.To(false) },
			obs:    Observed{Problems: []refs.Problem{missingEventHub}},
			phase:  v1alpha.PhasePaused, message: "💤 Paused",
			streaming: metav1.ConditionFalse, streamReason: ReasonPaused, refsResolved: metav1.ConditionFalse, streamsHealth: metav1.ConditionTrue},
		{name: "a missing EventHub is Failed, naming the field and the fix",
			obs:   Observed{Problems: []refs.Problem{missingEventHub}},
			phase: v1alpha.PhaseFailed, message: "💥 Failed: " + missingEventHub.Message,
			streaming: metav1.ConditionFalse, streamReason: ReasonCannotRun, refsResolved: metav1.ConditionFalse, streamsHealth: metav1.ConditionTrue},
		{name: "two problems show the first and a count",
			obs: Observed{Problems: []refs.Problem{missingEventHub,
				{Reason: refs.ReasonStorageNotFound, Message: `spec.sink: Storage "s" not found`}}},
			phase: v1alpha.PhaseFailed, message: "💥 Failed: " + missingEventHub.Message + " (and 1 more: see kubectl describe)",
			streaming: metav1.ConditionFalse, streamReason: ReasonCannotRun, refsResolved: metav1.ConditionFalse, streamsHealth: metav1.ConditionTrue},
		{name: "Failed wins over Streaming",
			obs:   Observed{Problems: []refs.Problem{missingEventHub}, LeaseHeld: true, WorkerHolder: "pod"},
			phase: v1alpha.PhaseFailed, message: "💥 Failed: " + missingEventHub.Message,
			streaming: metav1.ConditionFalse, streamReason: ReasonCannotRun, refsResolved: metav1.ConditionFalse, streamsHealth: metav1.ConditionTrue},
		{name: "a worker that could not start is Failed with what stopped it, and the controller does not own that condition",
			mutate: func(b *v1alpha.Backup) {
				b.Status.Conditions = []metav1.Condition{{Type: v1alpha.BackupWorkerConnected, Status: metav1.ConditionFalse, Reason: "CannotConnect",
					Message: `cannot reach Kafka at kafka-0:9092: no brokers; check spec.kafka.properties[bootstrap.servers] of EventHub "x"`}}
			},
			phase:     v1alpha.PhaseFailed,
			message:   `💥 Failed: cannot reach Kafka at kafka-0:9092: no brokers; check spec.kafka.properties[bootstrap.servers] of EventHub "x"`,
			streaming: metav1.ConditionFalse, streamReason: ReasonCannotRun, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "a worker that connected again clears it",
			mutate: func(b *v1alpha.Backup) {
				b.Status.Conditions = []metav1.Condition{{Type: v1alpha.BackupWorkerConnected, Status: metav1.ConditionTrue, Reason: "Connected"}}
			},
			obs:   Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase: v1alpha.PhaseStreaming, message: "🚀 Streaming",
			streaming: metav1.ConditionTrue, streamReason: ReasonWorkerRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "every enabled stream failed is Failed",
			mutate: func(b *v1alpha.Backup) {
				b.Status.Streams = []v1alpha.BackupStreamStatus{failedStream("magic.events"), failedStream("pixie.dust")}
			},
			obs:       Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase:     v1alpha.PhaseFailed,
			message:   `💥 Failed: no stream can run: stream "magic.events": topic was deleted and recreated (and 1 more: see kubectl describe)`,
			streaming: metav1.ConditionFalse, streamReason: ReasonStreamFailed, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionFalse},
		{name: "one failed stream of two keeps Streaming and says so",
			mutate: func(b *v1alpha.Backup) {
				b.Status.Streams = []v1alpha.BackupStreamStatus{failedStream("pixie.dust"), {Topic: "magic.events", State: "Streaming"}}
			},
			obs:       Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase:     v1alpha.PhaseStreaming,
			message:   `🚀 Streaming: 1 of 2 streams failing: stream "pixie.dust": topic was deleted and recreated`,
			streaming: metav1.ConditionTrue, streamReason: ReasonWorkerRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionFalse},
		{name: "a stream retrying storage faults keeps Streaming and says so",
			mutate: func(b *v1alpha.Backup) {
				b.Status.Streams = []v1alpha.BackupStreamStatus{{Topic: "magic.events", State: "Streaming"},
					{Topic: "pixie.dust", State: v1alpha.StreamRetrying, Message: "partition 0: 3 failures in the last minute, retried; the last at 2026-12-02T10:00:00Z: upload: googleapi: Error 503"}}
			},
			obs:       Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase:     v1alpha.PhaseStreaming,
			message:   `🚀 Streaming: 1 of 2 streams retrying: stream "pixie.dust": partition 0: 3 failures in the last minute, retried; the last at 2026-12-02T10:00:00Z: upload: googleapi: Error 503`,
			streaming: metav1.ConditionTrue, streamReason: ReasonWorkerRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionFalse},
		{name: "a failed stream that is now disabled does not count",
			mutate: func(b *v1alpha.Backup) {
				b.Spec.Streams[1].Enabled = ptr.To(false)
				b.Status.Streams = []v1alpha.BackupStreamStatus{failedStream("pixie.dust")}
			},
			obs:   Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase: v1alpha.PhaseStreaming, message: "🚀 Streaming",
			streaming: metav1.ConditionTrue, streamReason: ReasonWorkerRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "a fresh Lease is Streaming",
			obs:   Observed{LeaseHeld: true, WorkerHolder: "pod"},
			phase: v1alpha.PhaseStreaming, message: "🚀 Streaming",
			streaming: metav1.ConditionTrue, streamReason: ReasonWorkerRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
		{name: "no Lease is Ready",
			phase: v1alpha.PhaseReady, message: "🌈 Ready",
			streaming: metav1.ConditionFalse, streamReason: ReasonWorkerNotRunning, refsResolved: metav1.ConditionTrue, streamsHealth: metav1.ConditionTrue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := testBackup()
			b.Generation = 4
			if tc.mutate != nil {
				tc.mutate(b)
			}
			tc.obs.Now = now
			st := ComputeStatus(b, tc.obs)
			if st.Phase != tc.phase || st.Message != tc.message {
				t.Errorf("status = %s %q\nwant       %s %q", st.Phase, st.Message, tc.phase, tc.message)
			}
			if st.ObservedGeneration != 4 {
				t.Errorf("observedGeneration = %d, want 4", st.ObservedGeneration)
			}
			check := func(typ string, want metav1.ConditionStatus, reason string) {
				c := meta.FindStatusCondition(st.Conditions, typ)
				switch {
				case c == nil:
					t.Errorf("no %s condition", typ)
				case c.Status != want || (reason != "" && c.Reason != reason) || c.ObservedGeneration != 4:
					t.Errorf("%s = %s/%s (generation %d), want %s/%s", typ, c.Status, c.Reason, c.ObservedGeneration, want, reason)
				}
			}
			check(ConditionStreaming, tc.streaming, tc.streamReason)
			check(ConditionReferencesResolved, tc.refsResolved, "")
			check(ConditionStreamsHealthy, tc.streamsHealth, "")
			if meta.FindStatusCondition(st.Conditions, v1alpha.BackupWorkerConnected) != nil {
				t.Error("the controller would write the worker's WorkerConnected condition")
			}
		})
	}
}

func TestComputeStatusKeepsTransitionTimes(t *testing.T) {
	b := testBackup()
	first := ComputeStatus(b, Observed{Now: now})
	b.Status.Phase, b.Status.Message, b.Status.Conditions, b.Status.ObservedGeneration =
		first.Phase, first.Message, first.Conditions, first.ObservedGeneration

	again := ComputeStatus(b, Observed{Now: now.Add(time.Hour)})
	if !again.Equal(OwnedStatus(b)) {
		t.Errorf("an unchanged Backup computed a different status an hour later:\n%+v\n%+v", again, OwnedStatus(b))
	}

	streaming := ComputeStatus(b, Observed{Now: now.Add(time.Hour), LeaseHeld: true, WorkerHolder: "pod"})
	c := meta.FindStatusCondition(streaming.Conditions, ConditionStreaming)
	if !c.LastTransitionTime.Time.Equal(now.Add(time.Hour)) {
		t.Errorf("Streaming changed but its transition time is %v", c.LastTransitionTime)
	}
	r := meta.FindStatusCondition(streaming.Conditions, ConditionReferencesResolved)
	if !r.LastTransitionTime.Time.Equal(now) {
		t.Errorf("ReferencesResolved did not change but its transition time moved to %v", r.LastTransitionTime)
	}
}

func TestEvents(t *testing.T) {
	ready := ComputeStatus(testBackup(), Observed{Now: now})
	streaming := ComputeStatus(testBackup(), Observed{Now: now, LeaseHeld: true, WorkerHolder: "p"})
	problem := refs.Problem{Reason: refs.ReasonStorageNotFound, Message: `spec.sink: Storage "s" not found`}
	failed := ComputeStatus(testBackup(), Observed{Now: now, Problems: []refs.Problem{problem}})
	other := refs.Problem{Reason: refs.ReasonSecretKeyNotFound, Message: `spec.sourceCredentialsFrom...: no key "password"`}
	failedOther := ComputeStatus(testBackup(), Observed{Now: now, Problems: []refs.Problem{other}})
	paused := testBackup()
	paused.Spec.Enabled = ptr.To(false)
	pausedWithProblem := ComputeStatus(paused, Observed{Now: now, Problems: []refs.Problem{problem}})

	tests := []struct {
		name     string
		old, cur Status
		want     []string // "Type/Reason"
	}{
		{"unchanged", ready, ready, nil},
		{"first status", Status{}, ready, []string{"Normal/Ready"}},
		{"Ready → Streaming", ready, streaming, []string{"Normal/Streaming"}},
		{"Streaming → Ready", streaming, ready, []string{"Normal/Ready"}},
		{"Ready → Failed", ready, failed, []string{"Warning/StorageNotFound"}},
		{"Failed again, same cause", failed, failed, nil},
		{"Failed, new cause", failed, failedOther, []string{"Warning/SecretKeyNotFound"}},
		{"Failed → Ready", failed, ready, []string{"Normal/Ready"}},
		{"Paused with a new problem", ready, pausedWithProblem, []string{"Warning/StorageNotFound", "Normal/Paused"}},
	}
	for _, tc := range tests {
		var got []string
		for _, e := range Events(tc.old, tc.cur) {
			kind := "Normal"
			if e.Warning {
				kind = "Warning"
			}
			got = append(got, kind+"/"+e.Reason)
			if e.Message == "" {
				t.Errorf("%s: event %s has no message", tc.name, e.Reason)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: events = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReadySaysWhatHappenedToTheWorker: with no worker holding the Lease,
// the Streaming condition says whether one ever ran, released the Lease, or
// stopped renewing it, and what the Deployment is scaled to.
func TestReadySaysWhatHappenedToTheWorker(t *testing.T) {
	stoppedAt := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		obs  Observed
		want string
	}{
		{Observed{}, "no worker has held the Lease yet; the Deployment backup-example-backup is scaled to 1"},
		{Observed{LastRenewed: stoppedAt}, "the worker stopped and released the Lease at 2026-11-25T09:30:00Z; the Deployment backup-example-backup is scaled to 1"},
		{Observed{LastHolder: "pod-a", LastRenewed: stoppedAt},
			"worker pod-a stopped renewing the Lease at 2026-11-25T09:30:00Z (killed, or cut off from the API server); the Deployment backup-example-backup is scaled to 1"},
	}
	for _, tc := range tests {
		tc.obs.Now = now
		st := ComputeStatus(testBackup(), tc.obs)
		c := meta.FindStatusCondition(st.Conditions, ConditionStreaming)
		if st.Phase != v1alpha.PhaseReady || c == nil || c.Message != tc.want {
			t.Errorf("%s, Streaming %+v; want message %q", st.Phase, c, tc.want)
		}
	}
}
