package restore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	applymetav1 "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
)

// FieldManager is the restore worker's server-side apply field manager. It
// owns startTime, completionTime, progress, records, topics and the
// Preflight, Retrying, Complete and Failed conditions; the controller owns
// phase, message and its own conditions.
const FieldManager = "armory-restore-worker"

// workerConditions are the condition types the worker owns.
var workerConditions = []string{v1alpha.RestorePreflight, v1alpha.RestoreRetrying, v1alpha.RestoreComplete, v1alpha.RestoreFailed}

// status is what the worker reports of one Restore: the plan's totals, what
// Kafka acknowledged as committed, and how the run is going.
type status struct {
	mu         sync.Mutex
	generation int64
	conditions []metav1.Condition
	start      *metav1.Time
	completion *metav1.Time
	plan       *Plan
	committed  map[partitionKey]committed
}

// newStatus starts from the Restore's current status, so that conditions
// that do not change keep their transition times.
func newStatus(r *v1alpha.Restore) *status {
	s := &status{generation: r.Generation, start: r.Status.StartTime, committed: map[partitionKey]committed{}}
	for _, c := range r.Status.Conditions {
		for _, t := range workerConditions {
			if c.Type == t {
				s.conditions = append(s.conditions, c)
			}
		}
	}
	return s
}

func (s *status) set(typ string, ok bool, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&s.conditions, metav1.Condition{Type: typ, Status: st, Reason: reason,
		Message: v1alpha.TruncateMessage(message), ObservedGeneration: s.generation, LastTransitionTime: metav1.Now()})
}

func (s *status) setPlan(p *Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plan = p
}

func (s *status) started() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.start == nil {
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		s.start = &now
	}
}

func (s *status) completed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	s.completion = &now
}

// commit records progress Kafka acknowledged as committed.
func (s *status) commit(progress map[partitionKey]committed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range progress {
		s.committed[k] = c
	}
}

// totals are the records restored and selected, over every topic.
func (s *status) totals() (restored, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plan == nil {
		return 0, 0
	}
	for _, t := range s.plan.Topics {
		total += t.Records
		for _, p := range t.Partitions {
			restored += s.committed[partitionKey{t.Target, p.Partition}].records
		}
	}
	return restored, total
}

// apply builds the worker's part of the Restore's status.
func (s *status) apply(name, namespace string) *applyv1alpha.RestoreApplyConfiguration {
	restored, total := s.totals()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := applyv1alpha.RestoreStatus()
	for _, c := range s.conditions {
		st.WithConditions(applymetav1.Condition().WithType(c.Type).WithStatus(c.Status).WithReason(c.Reason).
			WithMessage(c.Message).WithObservedGeneration(c.ObservedGeneration).WithLastTransitionTime(c.LastTransitionTime))
	}
	if s.start != nil {
		st.WithStartTime(*s.start)
	}
	if s.completion != nil {
		st.WithCompletionTime(*s.completion)
	}
	if s.plan != nil {
		st.WithProgress(Percent(restored, total)).WithRecords(fmt.Sprintf("%d/%d", restored, total))
		for _, t := range s.plan.Topics {
			ts := applyv1alpha.RestoreTopicStatus().WithSource(t.Source).WithTarget(t.Target).
				WithRecordsTotal(t.Records).WithBytesTotal(t.Bytes).WithGapPositions(t.GapPositions)
			var records, bytes int64
			for _, p := range t.Partitions {
				c := s.committed[partitionKey{t.Target, p.Partition}]
				records += c.records
				bytes += c.bytes
			}
			ts.WithRecordsRestored(records).WithBytesRestored(bytes)
			for _, g := range t.Gaps {
				ts.WithGaps(applyv1alpha.RestoreGap().WithPartition(g.Partition).WithStart(g.Start).WithEnd(g.End))
			}
			st.WithTopics(ts)
		}
	}
	return applyv1alpha.Restore(name, namespace).WithStatus(st)
}

// Percent is restored/total as a whole percentage, rounded down so that
// 100% means every record; an empty selection is 100%.
func Percent(restored, total int64) string {
	if total == 0 {
		return "100%"
	}
	return fmt.Sprintf("%d%%", restored*100/total)
}

// writer writes the status when it changed: every interval, and when asked.
type writer struct {
	client          versioned.Interface
	name, namespace string
	status          *status
	mu              sync.Mutex
	last            *applyv1alpha.RestoreApplyConfiguration
}

// write applies the status if it changed since the last write.
func (w *writer) write(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.status.apply(w.name, w.namespace)
	if w.last != nil && equality.Semantic.DeepEqual(cur, w.last) {
		return nil
	}
	_, err := w.client.KannikaV1alpha().Restores(w.namespace).ApplyStatus(ctx, cur, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("write the Restore's status: %w", err)
	}
	w.last = cur
	return nil
}

// every writes the status each interval until ctx ends.
func (w *writer) every(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := w.write(ctx); err != nil && ctx.Err() == nil {
				klog.FromContext(ctx).Error(err, "Could not report progress; will retry")
			}
		}
	}
}
