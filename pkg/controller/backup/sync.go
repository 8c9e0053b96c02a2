// Package backup reconciles Backups: each becomes a Deployment running
// `armory worker --backup=NAME`, with a ServiceAccount and Role of its own,
// and a status computed by the rules in status.go.
package backup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
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
	"github.com/kannika/armory/pkg/backupspec"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// FieldManager is the controller's server-side apply field manager. It owns
// phase, message, observedGeneration and conditions; the worker owns streams.
const FieldManager = "armory-controller"

// leaseRecheckMargin is added to a Lease's expiry before looking at it again,
// so the check lands after it has expired.
const leaseRecheckMargin = 500 * time.Millisecond

// Reconciler syncs one Backup at a time from informer caches.
type Reconciler struct {
	Kube            kubernetes.Interface
	Armory          versioned.Interface
	Backups         listers.BackupLister
	Refs            refs.Listers
	Deployments     appslisters.DeploymentLister
	ServiceAccounts corelisters.ServiceAccountLister
	Roles           rbaclisters.RoleLister
	RoleBindings    rbaclisters.RoleBindingLister
	Leases          coordlisters.LeaseLister
	Recorder        record.EventRecorder
	Clock           clock.PassiveClock
	Config          Config

	written     *phase.Written[Status]
	writtenOnce sync.Once
}

// Sync brings one Backup's Deployment, RBAC and status in line with its spec.
// requeueAfter > 0 asks to look again then (when a worker's Lease expires).
func (r *Reconciler) Sync(ctx context.Context, namespace, name string) (requeueAfter time.Duration, err error) {
	logger := klog.FromContext(ctx)
	r.writtenOnce.Do(func() { r.written = phase.NewWritten(Status.Equal) })
	key := cache.ObjectName{Namespace: namespace, Name: name}
	cached, err := r.Backups.Backups(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		r.written.Forget(key)
		return 0, nil // deleted: the garbage collector removes what it owned
	}
	if err != nil {
		return 0, err
	}
	b := cached.DeepCopy()

	resolved, err := r.Refs.Backup(b)
	if err != nil {
		return 0, fmt.Errorf("resolve references: %w", err)
	}
	// Settings the worker would refuse: Failed now, and no worker started.
	for _, p := range backupspec.Problems(b) {
		resolved.Problems = append(resolved.Problems, refs.Problem{Reason: ReasonInvalidSettings, Message: p})
	}
	if err := r.reconcileWorker(ctx, b, &resolved); err != nil {
		return 0, err
	}

	now := r.Clock.Now()
	lease, err := r.Leases.Leases(namespace).Get(workerlease.ForBackup(name))
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	held, expires := workerlease.Held(lease, now)
	obs := Observed{Problems: resolved.Problems, LeaseHeld: held, Now: now}
	switch {
	case held:
		obs.WorkerHolder = *lease.Spec.HolderIdentity
		requeueAfter = expires.Sub(now) + leaseRecheckMargin
	case lease != nil && lease.Spec.RenewTime != nil:
		obs.LastHolder = ptr.Deref(lease.Spec.HolderIdentity, "")
		obs.LastRenewed = lease.Spec.RenewTime.Time.Truncate(time.Second)
	}
	if HasClash(resolved.Problems) && (requeueAfter == 0 || requeueAfter > ClashRecheck) {
		// A clashing object the caches do not hold (unlabelled) sends no
		// event when it goes: look again.
		requeueAfter = ClashRecheck
	}

	// Compare with what was last written if the cache lags behind it.
	old := r.written.Previous(key, OwnedStatus(b))
	b.Status.Conditions = WithControllerConditions(b.Status.Conditions, old.Conditions)
	cur := ComputeStatus(b, obs)
	if cur.Equal(old) {
		return requeueAfter, nil
	}
	if err := r.applyStatus(ctx, b, cur); err != nil {
		return 0, fmt.Errorf("write status: %w", err)
	}
	r.written.Record(key, cur)
	logger.V(2).Info("Backup status changed", "backup", klog.KObj(b), "phase", cur.Phase, "message", cur.Message)
	for _, e := range Events(old, cur) {
		eventType := corev1.EventTypeNormal
		if e.Warning {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Event(b, eventType, e.Reason, e.Message)
	}
	return requeueAfter, nil
}

// reconcileWorker makes the worker's Deployment and RBAC match the Backup. A
// Draft has no Deployment. A Backup whose references are broken keeps its
// Deployment, scaled to 0, until they are fixed. A name clash with an object
// the Backup does not own becomes a problem in its status.
func (r *Reconciler) reconcileWorker(ctx context.Context, b *v1alpha.Backup, resolved *refs.Resolved) error {
	existing, err := r.Deployments.Deployments(b.Namespace).Get(DeploymentName(b))
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if existing != nil && !metav1.IsControlledBy(existing, b) {
		resolved.Problems = append(resolved.Problems, clashProblem(&ClashError{Kind: "Deployment", Name: existing.Name, Namespace: existing.Namespace, Owner: "Backup"}))
		return nil
	}

	switch {
	case len(b.Spec.Streams) == 0:
		if existing != nil {
			err := r.Kube.AppsV1().Deployments(b.Namespace).Delete(ctx, existing.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &existing.UID},
			})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete the Deployment of a Backup with no streams: %w", err)
			}
		}
		return nil
	case len(resolved.Problems) > 0:
		if existing != nil && ptr.Deref(existing.Spec.Replicas, 1) != 0 {
			scaled := existing.DeepCopy()
			scaled.Spec.Replicas = ptr.To[int32](0)
			if _, err := r.Kube.AppsV1().Deployments(b.Namespace).Update(ctx, scaled, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("scale the Deployment to 0: %w", err)
			}
		}
		return nil
	}

	if err := r.reconcileRBAC(ctx, b, *resolved); err != nil {
		var clash *ClashError
		if errors.As(err, &clash) {
			resolved.Problems = append(resolved.Problems, clashProblem(clash))
			return nil
		}
		return err
	}
	err = r.reconcileDeployment(ctx, existing, NewDeployment(b, *resolved, r.Config))
	var clash *ClashError
	if errors.As(err, &clash) {
		resolved.Problems = append(resolved.Problems, clashProblem(clash))
		return nil
	}
	return err
}

// clashProblem is a name clash as the status shows it.
func clashProblem(e *ClashError) refs.Problem {
	return refs.Problem{Reason: ReasonNameConflict, Message: e.Error()}
}

func (r *Reconciler) reconcileDeployment(ctx context.Context, existing, desired *appsv1.Deployment) error {
	client := r.Kube.AppsV1().Deployments(desired.Namespace)
	if existing == nil {
		_, err := client.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// The cache holds labelled Deployments only, and may lag: read it.
			if existing, err = client.Get(ctx, desired.Name, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("read Deployment: %w", err)
			}
			if err := checkOwned("Deployment", existing, desired); err != nil {
				return err
			}
		} else if err != nil {
			return fmt.Errorf("create Deployment: %w", err)
		} else {
			klog.FromContext(ctx).V(2).Info("Created worker Deployment", "deployment", klog.KObj(desired))
			return nil
		}
	}
	if !deploymentNeedsUpdate(existing, desired) {
		return nil
	}
	updated := existing.DeepCopy()
	updated.Labels = desired.Labels
	updated.OwnerReferences = desired.OwnerReferences
	updated.Spec = desired.Spec
	if _, err := client.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update Deployment: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Updated worker Deployment", "deployment", klog.KObj(desired),
		"replicas", *desired.Spec.Replicas, "inputsHash", desired.Spec.Template.Annotations[InputsHashAnnotation])
	return nil
}

// deploymentNeedsUpdate compares what the controller sets: the inputs hash
// stands for the whole pod template, so defaults the API server fills in never
// cause an update.
func deploymentNeedsUpdate(existing, desired *appsv1.Deployment) bool {
	return existing.Spec.Template.Annotations[InputsHashAnnotation] != desired.Spec.Template.Annotations[InputsHashAnnotation] ||
		ptr.Deref(existing.Spec.Replicas, 1) != *desired.Spec.Replicas ||
		existing.Spec.Strategy.Type != desired.Spec.Strategy.Type ||
		!equality.Semantic.DeepEqual(existing.Labels, desired.Labels) ||
		!equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences)
}

func (r *Reconciler) reconcileRBAC(ctx context.Context, b *v1alpha.Backup, resolved refs.Resolved) error {
	return WorkerRBAC{Kube: r.Kube, ServiceAccounts: r.ServiceAccounts, Roles: r.Roles, RoleBindings: r.RoleBindings}.
		Reconcile(ctx, NewServiceAccount(b), NewRole(b, resolved), NewRoleBinding(b))
}

// WorkerRBAC creates and updates a worker's ServiceAccount, Role and
// RoleBinding, for Backups and Restores alike.
type WorkerRBAC struct {
	Kube            kubernetes.Interface
	ServiceAccounts corelisters.ServiceAccountLister
	Roles           rbaclisters.RoleLister
	RoleBindings    rbaclisters.RoleBindingLister
}

// Reconcile makes the three objects match what was built. An object of one
// of their names that the owner does not control is a *ClashError: it is
// never updated, and the Role is never bound to a ServiceAccount that is
// not the owner's. The caches hold only labelled objects and may lag: a
// create that finds the name taken reads the object from the API server.
func (w WorkerRBAC) Reconcile(ctx context.Context, sa *corev1.ServiceAccount, role *rbacv1.Role, binding *rbacv1.RoleBinding) error {
	ns := sa.Namespace
	accounts, roles, bindings := w.Kube.CoreV1().ServiceAccounts(ns), w.Kube.RbacV1().Roles(ns), w.Kube.RbacV1().RoleBindings(ns)

	existingSA, err := w.ServiceAccounts.ServiceAccounts(ns).Get(sa.Name)
	if apierrors.IsNotFound(err) {
		if _, err = accounts.Create(ctx, sa, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			existingSA, err = accounts.Get(ctx, sa.Name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("worker ServiceAccount: %w", err)
	}
	if existingSA != nil {
		if err := checkOwned("ServiceAccount", existingSA, sa); err != nil {
			return err
		}
	}

	existingRole, err := w.Roles.Roles(ns).Get(role.Name)
	if apierrors.IsNotFound(err) {
		if _, err = roles.Create(ctx, role, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			existingRole, err = roles.Get(ctx, role.Name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("worker Role: %w", err)
	}
	if existingRole != nil {
		if err := checkOwned("Role", existingRole, role); err != nil {
			return err
		}
		if !equality.Semantic.DeepEqual(existingRole.Rules, role.Rules) || !equality.Semantic.DeepEqual(existingRole.Labels, role.Labels) {
			updated := existingRole.DeepCopy()
			updated.Rules, updated.Labels = role.Rules, role.Labels
			if _, err := roles.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update worker Role: %w", err)
			}
		}
	}

	existingBinding, err := w.RoleBindings.RoleBindings(ns).Get(binding.Name)
	if apierrors.IsNotFound(err) {
		if _, err = bindings.Create(ctx, binding, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			existingBinding, err = bindings.Get(ctx, binding.Name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("worker RoleBinding: %w", err)
	}
	if existingBinding != nil {
		if err := checkOwned("RoleBinding", existingBinding, binding); err != nil {
			return err
		}
		if !equality.Semantic.DeepEqual(existingBinding.Subjects, binding.Subjects) || existingBinding.RoleRef != binding.RoleRef {
			// roleRef is immutable: replace the binding (ours: checked above).
			if err := bindings.Delete(ctx, binding.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &existingBinding.UID}}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("replace worker RoleBinding: %w", err)
			}
			if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("replace worker RoleBinding: %w", err)
			}
		}
	}
	return nil
}

// applyStatus writes the controller-owned status fields with server-side
// apply, leaving the worker's fields (streams, lag, ...) alone.
func (r *Reconciler) applyStatus(ctx context.Context, b *v1alpha.Backup, st Status) error {
	apply := applyv1alpha.Backup(b.Name, b.Namespace).WithStatus(applyv1alpha.BackupStatus().
		WithPhase(st.Phase).
		WithMessage(st.Message).
		WithObservedGeneration(st.ObservedGeneration).
		WithConditions(phase.ConditionsApply(st.Conditions)...))
	_, err := r.Armory.KannikaV1alpha().Backups(b.Namespace).ApplyStatus(ctx, apply, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	return err
}
