// Package controller runs Armory's operator loop: shared informers over the
// generated and core clients, one rate-limited workqueue per kind, and sync
// handlers for Backups, EventHubs, Storages and Restores.
package controller

import (
	"context"

	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/generated/clientset/versioned/scheme"
	armoryinformers "github.com/kannika/armory/generated/informers/externalversions"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/controller/phase"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/controller/restore"
	"github.com/kannika/armory/pkg/secretlog"
	"github.com/kannika/armory/pkg/workerlease"
)

// Options configure a Controller.
type Options struct {
	// Namespace limits the controller to one namespace; empty watches all.
	Namespace string
	// Backup shapes the worker Deployments.
	Backup backup.Config
	// Resync is how often informers replay their caches; 0 turns it off.
	Resync time.Duration
	// Clock is injected by tests; nil means the real clock.
	Clock clock.Clock
	// Registry receives the controller's metrics; nil means a private one.
	Registry prometheus.Registerer
}

// Controller watches Armory's resources and what it owns, and reconciles them.
type Controller struct {
	kube   kubernetes.Interface
	armory versioned.Interface
	clock  clock.Clock

	armoryInformers  armoryinformers.SharedInformerFactory
	ownedInformers   kubeinformers.SharedInformerFactory
	secretsInformers kubeinformers.SharedInformerFactory
	synced           []cache.InformerSynced

	backups   *queue
	eventHubs *queue
	storages  *queue
	restores  *queue

	backupReconciler  *backup.Reconciler
	restoreReconciler *restore.Reconciler
	refs              refs.Listers
	eventHubsWritten  *phase.Written[v1alpha.EventHubStatus]
	storagesWritten   *phase.Written[v1alpha.StorageStatus]
	pvcLister         corelisters.PersistentVolumeClaimLister
	recorder          record.EventRecorder
	broadcaster       record.EventBroadcaster
}

// New wires informers, indexers, event handlers and queues. Call Start, then Run.
func New(kube kubernetes.Interface, armory versioned.Interface, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	c := &Controller{kube: kube, armory: armory, clock: opts.Clock}

	c.armoryInformers = armoryinformers.NewSharedInformerFactoryWithOptions(armory, opts.Resync,
		armoryinformers.WithNamespace(opts.Namespace))
	// What the controller creates carries part-of=armory: watch only that.
	c.ownedInformers = kubeinformers.NewSharedInformerFactoryWithOptions(kube, opts.Resync,
		kubeinformers.WithNamespace(opts.Namespace),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = workerlease.PartOfLabel + "=" + workerlease.PartOfValue
		}))
	// Secrets are watched to notice a key appearing or a rotation; their
	// values are dropped before they reach the cache: the controller never
	// holds a secret value.
	c.secretsInformers = kubeinformers.NewSharedInformerFactoryWithOptions(kube, opts.Resync,
		kubeinformers.WithNamespace(opts.Namespace),
		kubeinformers.WithTransform(stripSecretValues))

	ai := c.armoryInformers.Kannika().V1alpha()
	backups, eventHubs, storages, credentials, restores :=
		ai.Backups(), ai.EventHubs(), ai.Storages(), ai.Credentials(), ai.Restores()
	deployments := c.ownedInformers.Apps().V1().Deployments()
	jobs := c.ownedInformers.Batch().V1().Jobs()
	serviceAccounts := c.ownedInformers.Core().V1().ServiceAccounts()
	roles := c.ownedInformers.Rbac().V1().Roles()
	roleBindings := c.ownedInformers.Rbac().V1().RoleBindings()
	pvcs := c.ownedInformers.Core().V1().PersistentVolumeClaims()
	leases := c.ownedInformers.Coordination().V1().Leases()
	secrets := c.secretsInformers.Core().V1().Secrets()

	if err := backups.Informer().AddIndexers(backupIndexers); err != nil {
		return nil, err
	}
	if err := restores.Informer().AddIndexers(restoreIndexers); err != nil {
		return nil, err
	}
	if err := credentials.Informer().AddIndexers(credentialsIndexers); err != nil {
		return nil, err
	}

	c.broadcaster = record.NewBroadcaster(record.WithContext(context.Background()))
	c.recorder = c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "armory-controller"})

	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	m := newMetrics(opts.Registry)
	c.backups = newQueue("backups", m)
	c.eventHubs = newQueue("eventhubs", m)
	c.storages = newQueue("storages", m)
	c.restores = newQueue("restores", m)

	c.refs = refs.Listers{
		EventHubs:   eventHubs.Lister(),
		Storages:    storages.Lister(),
		Credentials: credentials.Lister(),
		Secrets:     secrets.Lister(),
	}
	c.eventHubsWritten = phase.NewWritten(sameStatus[v1alpha.EventHubStatus])
	c.storagesWritten = phase.NewWritten(sameStatus[v1alpha.StorageStatus])
	c.pvcLister = pvcs.Lister()
	c.backupReconciler = &backup.Reconciler{
		Kube:            kube,
		Armory:          armory,
		Backups:         backups.Lister(),
		Refs:            c.refs,
		Deployments:     deployments.Lister(),
		ServiceAccounts: serviceAccounts.Lister(),
		Roles:           roles.Lister(),
		RoleBindings:    roleBindings.Lister(),
		Leases:          leases.Lister(),
		Recorder:        c.recorder,
		Clock:           opts.Clock,
		Config:          opts.Backup,
	}

	c.restoreReconciler = &restore.Reconciler{
		Kube:            kube,
		Armory:          armory,
		Restores:        restores.Lister(),
		Refs:            c.refs,
		Jobs:            jobs.Lister(),
		ServiceAccounts: serviceAccounts.Lister(),
		Roles:           roles.Lister(),
		RoleBindings:    roleBindings.Lister(),
		Leases:          leases.Lister(),
		Recorder:        c.recorder,
		Clock:           opts.Clock,
		Config:          opts.Backup,
	}

	dependents := &dependents{
		backups:     backups.Informer().GetIndexer(),
		restores:    restores.Informer().GetIndexer(),
		credentials: credentials.Informer().GetIndexer(),
	}
	handlers := []struct {
		informer cache.SharedIndexInformer
		enqueue  func(obj any)
		ignore   func(old, cur any) bool // updates not to enqueue; nil: every one
	}{
		// A worker's progress writes (every few seconds) change no phase.
		{backups.Informer(), c.backups.addObject, backupProgressOnly},
		{restores.Informer(), c.restores.addObject, nil},
		{eventHubs.Informer(), func(obj any) {
			c.eventHubs.addObject(obj)
			c.enqueueDependents(dependents.of(indexEventHub, obj))
		}, nil},
		{storages.Informer(), func(obj any) {
			c.storages.addObject(obj)
			c.enqueueDependents(dependents.of(indexStorage, obj))
		}, nil},
		{credentials.Informer(), func(obj any) { c.enqueueDependents(dependents.of(indexCredentials, obj)) }, nil},
		{secrets.Informer(), func(obj any) { c.enqueueDependents(dependents.ofSecret(obj)) }, nil},
		{deployments.Informer(), c.enqueueOwner, nil},
		{jobs.Informer(), c.enqueueOwner, nil},
		{serviceAccounts.Informer(), c.enqueueOwner, nil},
		{roles.Informer(), c.enqueueOwner, nil},
		{roleBindings.Informer(), c.enqueueOwner, nil},
		// A renewal changes only renewTime, and the sync requeues at the
		// Lease's expiry already: only a change of holder matters.
		{leases.Informer(), c.enqueueLeaseOwner, sameHolder},
		{pvcs.Informer(), c.enqueueLabelledStorage, nil},
	}
	for _, h := range handlers {
		handler := handlerFor(h.enqueue)
		if h.ignore != nil {
			handler = filtered(h.enqueue, h.ignore)
		}
		if _, err := h.informer.AddEventHandler(handler); err != nil {
			return nil, err
		}
		c.synced = append(c.synced, h.informer.HasSynced)
	}
	return c, nil
}

// Start starts the informers and the event sink. Caches fill in the
// background; Run waits for them.
func (c *Controller) Start(ctx context.Context) {
	c.broadcaster.StartStructuredLogging(4)
	c.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.kube.CoreV1().Events("")})
	c.armoryInformers.Start(ctx.Done())
	c.ownedInformers.Start(ctx.Done())
	// Lists and watches of Secrets carry their values: keep them out of
	// client-go's request dumps at high -v.
	c.secretsInformers.StartWithContext(secretlog.Context(ctx))
}

// HasSynced reports whether every informer cache is filled: /readyz.
func (c *Controller) HasSynced() bool {
	for _, synced := range c.synced {
		if !synced() {
			return false
		}
	}
	return true
}

// backupProgressOnly: a Backup update that changed only its worker's
// progress counters.
func backupProgressOnly(old, cur any) bool {
	o, ok1 := old.(*v1alpha.Backup)
	n, ok2 := cur.(*v1alpha.Backup)
	return ok1 && ok2 && backup.ProgressOnly(o, n)
}

// sameHolder: a Lease update that changed neither its holder nor its duration.
func sameHolder(old, cur any) bool {
	o, ok1 := old.(*coordinationv1.Lease)
	n, ok2 := cur.(*coordinationv1.Lease)
	return ok1 && ok2 && ptr.Deref(o.Spec.HolderIdentity, "") == ptr.Deref(n.Spec.HolderIdentity, "") &&
		ptr.Deref(o.Spec.LeaseDurationSeconds, 0) == ptr.Deref(n.Spec.LeaseDurationSeconds, 0)
}

// drainTimeout bounds how long a shutting-down controller goes on syncing
// what is queued.
const drainTimeout = 10 * time.Second

// Run waits for the caches and runs the workers. When drain closes
// (SIGTERM) the queues take nothing new and the workers finish what is
// queued with a context still live, for at most drainTimeout; when ctx ends
// (leadership lost) every sync stops at once, since a successor may already
// be writing.
func (c *Controller) Run(ctx context.Context, drain <-chan struct{}, workers int) error {
	defer utilruntime.HandleCrashWithContext(ctx)
	logger := klog.FromContext(ctx)
	logger.Info("Waiting for informer caches to sync")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("informer caches did not sync")
	}
	queues := []struct {
		q    *queue
		sync syncFunc
	}{
		{c.backups, c.backupReconciler.Sync},
		{c.eventHubs, c.syncEventHub},
		{c.storages, c.syncStorage},
		{c.restores, c.restoreReconciler.Sync},
	}
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	for _, q := range queues {
		for range workers {
			wg.Go(func() { q.q.work(workCtx, q.sync) }) // until the queue shuts down
		}
	}
	logger.Info("Started workers", "perQueue", workers)
	select {
	case <-ctx.Done():
		logger.Info("Leadership lost: stopping every sync at once")
		stopWork()
		for _, q := range queues {
			q.q.ShutDown()
		}
	case <-drain:
		logger.Info("Shutting down: draining the work queues", "within", drainTimeout)
		deadline := time.AfterFunc(drainTimeout, stopWork)
		defer deadline.Stop()
		var drained sync.WaitGroup
		for _, q := range queues {
			drained.Go(q.q.ShutDownWithDrain)
		}
		drained.Wait()
	}
	wg.Wait()
	c.broadcaster.Shutdown()
	return nil
}

// enqueueDependents queues the Backups and Restores that reference a changed
// object, so that a fix (an EventHub created, a Secret key added) recovers them
// with no edit.
func (c *Controller) enqueueDependents(backups, restores []cache.ObjectName) {
	for _, k := range backups {
		c.backups.Add(k)
	}
	for _, k := range restores {
		c.restores.Add(k)
	}
}

func stripSecretValues(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	keys := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k := range s.Data {
		keys[k] = nil
	}
	for k := range s.StringData {
		keys[k] = nil
	}
	stripped := &corev1.Secret{ObjectMeta: s.ObjectMeta, Type: s.Type, Data: keys}
	stripped.ManagedFields = nil
	stripped.Annotations = nil // kubectl's last-applied annotation can hold the values
	return stripped, nil
}
