package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	applyv1alpha "github.com/kannika/armory/generated/applyconfiguration/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
)

// syncEventHub writes an EventHub's status: Ready, or Failed naming the
// unusable property.
func (c *Controller) syncEventHub(ctx context.Context, namespace, name string) (time.Duration, error) {
	key := cache.ObjectName{Namespace: namespace, Name: name}
	eh, err := c.refs.EventHubs.EventHubs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.eventHubsWritten.Forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	eh = eh.DeepCopy()
	eh.Status = c.eventHubsWritten.Previous(key, eh.Status)
	old, cur := eh.Status, refs.EventHubStatus(eh)
	if sameStatus(old, cur) {
		return 0, nil
	}
	apply := applyv1alpha.EventHub(name, namespace).WithStatus(applyv1alpha.EventHubStatus().
		WithPhase(cur.Phase).WithMessage(cur.Message).WithObservedGeneration(cur.ObservedGeneration).
		WithConditions(conditionsApply(cur.Conditions)...).WithType(cur.Type).WithLocation(cur.Location))
	if _, err := c.armory.KannikaV1alpha().EventHubs(namespace).ApplyStatus(ctx, apply, applyOptions); err != nil {
		return 0, fmt.Errorf("write EventHub status: %w", err)
	}
	c.eventHubsWritten.Record(key, cur)
	c.recordTransition(eh, old.Phase, old.Message, cur.Phase, cur.Message, refs.ReasonInvalidProperties)
	return 0, nil
}

// syncStorage creates a volume Storage's PersistentVolumeClaim and writes the
// Storage's status.
func (c *Controller) syncStorage(ctx context.Context, namespace, name string) (time.Duration, error) {
	key := cache.ObjectName{Namespace: namespace, Name: name}
	s, err := c.refs.Storages.Storages(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.storagesWritten.Forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var pvc *corev1.PersistentVolumeClaim
	var notGrown string
	var requeue time.Duration
	if s.Spec.Volume != nil {
		if pvc, notGrown, err = c.reconcilePVC(ctx, s); err != nil {
			return 0, err
		}
		if notGrown != "" {
			// The StorageClass is not watched: try again now and then, so
			// that allowing expansion grows the claim without an edit.
			requeue = refs.GrowRetry
		}
	}
	s = s.DeepCopy()
	s.Status = c.storagesWritten.Previous(key, s.Status)
	old, cur := s.Status, refs.StorageStatus(s, pvc, notGrown)
	if sameStatus(old, cur) {
		return requeue, nil
	}
	apply := applyv1alpha.Storage(name, namespace).WithStatus(applyv1alpha.StorageStatus().
		WithPhase(cur.Phase).WithMessage(cur.Message).WithObservedGeneration(cur.ObservedGeneration).
		WithConditions(conditionsApply(cur.Conditions)...).WithLocation(cur.Location))
	if _, err := c.armory.KannikaV1alpha().Storages(namespace).ApplyStatus(ctx, apply, applyOptions); err != nil {
		return 0, fmt.Errorf("write Storage status: %w", err)
	}
	c.storagesWritten.Record(key, cur)
	c.recordTransition(s, old.Phase, old.Message, cur.Phase, cur.Message, "StorageFailed")
	if notGrown != "" && cur.Message != old.Message {
		c.recorder.Event(s, corev1.EventTypeWarning, refs.ReasonVolumeNotExpanded, notGrown)
	}
	return requeue, nil
}

// reconcilePVC creates the claim if missing and grows its request when the
// Storage's capacity grows. It returns the claim as it is, or nil when it
// could not be created, and, when the API server refused to grow it (a
// StorageClass without allowVolumeExpansion, a claim not bound yet), why,
// for the Storage's status.
func (c *Controller) reconcilePVC(ctx context.Context, s *v1alpha.Storage) (_ *corev1.PersistentVolumeClaim, notGrown string, _ error) {
	desired := refs.NewPVC(s)
	client := c.kube.CoreV1().PersistentVolumeClaims(s.Namespace)
	// The informer sees only claims labelled part-of=armory, so a clash
	// with a foreign claim shows up as AlreadyExists.
	existing, err := c.pvcLister.PersistentVolumeClaims(s.Namespace).Get(desired.Name)
	if apierrors.IsNotFound(err) {
		created, err := client.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err := client.Get(ctx, desired.Name, metav1.GetOptions{})
			return got, "", err
		}
		if err != nil {
			return nil, "", fmt.Errorf("create PersistentVolumeClaim: %w", err)
		}
		klog.FromContext(ctx).V(2).Info("Created PersistentVolumeClaim", "pvc", klog.KObj(created))
		return created, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if !refs.BelongsTo(existing, s) {
		return existing, "", nil // a name clash: the status says so
	}
	want := desired.Spec.Resources.Requests[corev1.ResourceStorage]
	have := existing.Spec.Resources.Requests[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 {
		return existing, "", nil
	}
	grown := existing.DeepCopy()
	grown.Spec.Resources.Requests[corev1.ResourceStorage] = want
	updated, err := client.Update(ctx, grown, metav1.UpdateOptions{})
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
		// Retrying at once would be refused the same way: the status
		// says it, the volume keeps working at its size.
		return existing, refs.NotGrownMessage(existing.Name, want, have, err), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("grow PersistentVolumeClaim to %s: %w", want.String(), err)
	}
	return updated, "", nil
}

// sameStatus compares statuses as a user sees them. The controller owns
// every field of EventHub and Storage statuses.
func sameStatus[T v1alpha.EventHubStatus | v1alpha.StorageStatus](a, b T) bool {
	return equality.Semantic.DeepEqual(a, b)
}

var applyOptions = metav1.ApplyOptions{FieldManager: backup.FieldManager, Force: true}

var conditionsApply = phase.ConditionsApply

// recordTransition emits a Normal event when the phase changes to a healthy
// one, and a Warning when a failure is new or its cause changed.
func (c *Controller) recordTransition(obj runtime.Object, oldPhase v1alpha.Phase, oldMessage string, phase v1alpha.Phase, message, failReason string) {
	failing := phase == v1alpha.PhaseFailed || phase == v1alpha.PhaseInvalid
	switch {
	case failing && message != oldMessage:
		if failReason == "" {
			failReason = string(phase)
		}
		c.recorder.Event(obj, corev1.EventTypeWarning, failReason, message)
	case !failing && phase != oldPhase:
		c.recorder.Event(obj, corev1.EventTypeNormal, string(phase), message)
	}
}
