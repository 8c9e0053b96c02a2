package restore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	listers "github.com/kannika/armory/generated/listers/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// Reconciler syncs one Restore at a time from informer caches.
type Reconciler struct {
	Kube            kubernetes.Interface
	Armory          versioned.Interface
	Restores        listers.RestoreLister
	Refs            refs.Listers
	Jobs            batchlisters.JobLister
	ServiceAccounts corelisters.ServiceAccountLister
	Roles           rbaclisters.RoleLister
	RoleBindings    rbaclisters.RoleBindingLister
	Leases          coordlisters.LeaseLister
	Recorder        record.EventRecorder
	Clock           clock.PassiveClock
	Config          backup.Config

	written     *phase.Written[Status]
	writtenOnce sync.Once
}

// leaseRecheckMargin is added to a Lease's expiry before looking again.
const leaseRecheckMargin = 500 * time.Millisecond

// Sync brings one Restore's Job, RBAC and status in line with its spec.
func (r *Reconciler) Sync(ctx context.Context, namespace, name string) (requeueAfter time.Duration, err error) {
	r.writtenOnce.Do(func() { r.written = phase.NewWritten(Status.Equal) })
	key := cache.ObjectName{Namespace: namespace, Name: name}
	cached, err := r.Restores.Restores(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		r.written.Forget(key)
		return 0, nil // deleted: the garbage collector removes its Job
	}
	if err != nil {
		return 0, err
	}
	rs := cached.DeepCopy()
	resolved, err := r.Refs.Restore(rs)
	if err != nil {
		return 0, fmt.Errorf("resolve references: %w", err)
	}
	job, err := r.reconcileJob(ctx, rs, &resolved)
	if err != nil {
		return 0, err
	}

	now := r.Clock.Now()
	lease, err := r.Leases.Leases(namespace).Get(workerlease.ForRestore(name))
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	held, expires := workerlease.Held(lease, now)
	obs := Observed{Problems: resolved.Problems, Job: job, LeaseHeld: held, Now: now}
	if held {
		obs.WorkerHolder = *lease.Spec.HolderIdentity
		requeueAfter = expires.Sub(now) + leaseRecheckMargin
	}
	if backup.HasClash(resolved.Problems) && (requeueAfter == 0 || requeueAfter > backup.ClashRecheck) {
		requeueAfter = backup.ClashRecheck // the clashing Job may send no event when it goes
	}

	old := r.written.Previous(key, OwnedStatus(rs))
	rs.Status.Conditions = mergeConditions(rs.Status.Conditions, old.Conditions)
	rs.Status.Phase, rs.Status.Message = old.Phase, old.Message
	cur := ComputeStatus(rs, obs)
	if cur.Equal(old) {
		return requeueAfter, nil
	}
	apply := applyv1alpha.Restore(name, namespace).WithStatus(applyv1alpha.RestoreStatus().
		WithPhase(cur.Phase).WithMessage(cur.Message).WithObservedGeneration(cur.ObservedGeneration).
		WithConditions(phase.ConditionsApply(cur.Conditions)...))
	if _, err := r.Armory.KannikaV1alpha().Restores(namespace).ApplyStatus(ctx, apply,
		metav1.ApplyOptions{FieldManager: backup.FieldManager, Force: true}); err != nil {
		return 0, fmt.Errorf("write Restore status: %w", err)
	}
	r.written.Record(key, cur)
	klog.FromContext(ctx).V(2).Info("Restore status changed", "restore", klog.KObj(rs), "phase", cur.Phase, "message", cur.Message)
	failing := cur.Phase == v1alpha.PhaseFailed || cur.Phase == v1alpha.PhaseInvalid
	switch {
	case failing && (cur.Message != old.Message || cur.Phase != old.Phase):
		reason := string(cur.Phase)
		if len(resolved.Problems) > 0 {
			reason = resolved.Problems[0].Reason
		}
		r.Recorder.Event(rs, corev1.EventTypeWarning, reason, cur.Message)
	case !failing && cur.Phase != old.Phase:
		reason := string(cur.Phase)
		if cur.Phase == v1alpha.PhaseDone {
			reason = "Completed"
		}
		r.Recorder.Event(rs, corev1.EventTypeNormal, reason, cur.Message)
	}
	return requeueAfter, nil
}

// mergeConditions replaces the controller's conditions in all by those it
// last wrote, keeping the worker's.
func mergeConditions(all, controller []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range all {
		if c.Type != v1alpha.RestoreValid && c.Type != v1alpha.RestoreWorkerRunning {
			out = append(out, c)
		}
	}
	return append(out, controller...)
}

// reconcileJob makes the Restore's Job match it: none for a Draft, an
// Invalid Restore or one whose references are broken; created when enabled;
// suspended when disabled; replaced when its inputs changed before it
// finished (the new worker resumes from what was committed). A Done
// Restore's Job is left as it is.
func (r *Reconciler) reconcileJob(ctx context.Context, rs *v1alpha.Restore, resolved *refs.Resolved) (*batchv1.Job, error) {
	existing, err := r.Jobs.Jobs(rs.Namespace).Get(JobName(rs))
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if existing != nil && !metav1.IsControlledBy(existing, rs) {
		resolved.Problems = append(resolved.Problems, jobClash(existing))
		return nil, nil
	}
	if meta.IsStatusConditionTrue(rs.Status.Conditions, v1alpha.RestoreComplete) {
		return existing, nil
	}
	if len(rs.Spec.Config.Topics) == 0 || len(resolved.Problems) > 0 {
		return nil, r.deleteJob(ctx, existing)
	}
	desired := NewJob(rs, *resolved, r.Config)
	client := r.Kube.BatchV1().Jobs(rs.Namespace)
	switch {
	case existing == nil && !Enabled(rs) && rs.Status.StartTime == nil:
		return nil, nil // Ready: nothing runs until enabled
	case existing == nil:
		if err := r.reconcileRBAC(ctx, rs, *resolved); err != nil {
			var clash *backup.ClashError
			if errors.As(err, &clash) {
				resolved.Problems = append(resolved.Problems, refs.Problem{Reason: backup.ReasonNameConflict, Message: clash.Error()})
				return nil, nil
			}
			return nil, err
		}
		created, err := client.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// The cache holds labelled Jobs only, and may lag: read it.
			found, err := client.Get(ctx, desired.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("read Job: %w", err)
			}
			if !metav1.IsControlledBy(found, rs) {
				resolved.Problems = append(resolved.Problems, jobClash(found))
				return nil, nil
			}
			return found, nil
		}
		if err != nil {
			return nil, fmt.Errorf("create Job: %w", err)
		}
		klog.FromContext(ctx).V(2).Info("Created restore Job", "job", klog.KObj(created), "suspended", *desired.Spec.Suspend)
		return created, nil
	case existing.Spec.Template.Annotations[backup.InputsHashAnnotation] != desired.Spec.Template.Annotations[backup.InputsHashAnnotation]:
		// A Job's pod template cannot change: replace it.
		klog.FromContext(ctx).V(2).Info("Restore inputs changed: replacing its Job", "job", klog.KObj(existing))
		return nil, r.deleteJob(ctx, existing)
	case ptr.Deref(existing.Spec.Suspend, false) != *desired.Spec.Suspend ||
		!equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences):
		updated := existing.DeepCopy()
		updated.Spec.Suspend = desired.Spec.Suspend
		updated.OwnerReferences = desired.OwnerReferences
		job, err := client.Update(ctx, updated, metav1.UpdateOptions{})
		if err != nil {
			return nil, fmt.Errorf("update Job: %w", err)
		}
		return job, nil
	}
	return existing, nil
}

func jobClash(j *batchv1.Job) refs.Problem {
	return refs.Problem{Reason: backup.ReasonNameConflict, Message: (&backup.ClashError{
		Kind: "Job", Name: j.Name, Namespace: j.Namespace, Owner: "Restore"}).Error()}
}

func (r *Reconciler) deleteJob(ctx context.Context, job *batchv1.Job) error {
	if job == nil {
		return nil
	}
	err := r.Kube.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Job: %w", err)
	}
	return nil
}

func (r *Reconciler) reconcileRBAC(ctx context.Context, rs *v1alpha.Restore, resolved refs.Resolved) error {
	return backup.WorkerRBAC{Kube: r.Kube, ServiceAccounts: r.ServiceAccounts, Roles: r.Roles, RoleBindings: r.RoleBindings}.
		Reconcile(ctx, NewServiceAccount(rs), NewRole(rs, resolved), NewRoleBinding(rs))
}
