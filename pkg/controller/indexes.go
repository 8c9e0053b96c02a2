package controller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// Index names. Each maps "namespace/name" of a referenced object to the
// objects that reference it, so a change finds its dependents without a scan.
const (
	indexEventHub    = "eventhub"
	indexStorage     = "storage"
	indexCredentials = "credentials"
	indexSecret      = "secret"
)

func key(namespace, name string) string { return namespace + "/" + name }

func credentialsNames(froms ...*v1alpha.CredentialsFrom) []string {
	var names []string
	for _, f := range froms {
		if f != nil {
			names = append(names, f.CredentialsRef.Name)
		}
	}
	return names
}

func keys(namespace string, names ...string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, key(namespace, n))
	}
	return out
}

var backupIndexers = cache.Indexers{
	indexEventHub: func(obj any) ([]string, error) {
		b := obj.(*v1alpha.Backup)
		return keys(b.Namespace, b.Spec.Source), nil
	},
	indexStorage: func(obj any) ([]string, error) {
		b := obj.(*v1alpha.Backup)
		return keys(b.Namespace, b.Spec.Sink), nil
	},
	indexCredentials: func(obj any) ([]string, error) {
		b := obj.(*v1alpha.Backup)
		return keys(b.Namespace, credentialsNames(b.Spec.SourceCredentialsFrom, b.Spec.SinkCredentialsFrom)...), nil
	},
}

var restoreIndexers = cache.Indexers{
	indexEventHub: func(obj any) ([]string, error) {
		r := obj.(*v1alpha.Restore)
		return keys(r.Namespace, r.Spec.Sink), nil
	},
	indexStorage: func(obj any) ([]string, error) {
		r := obj.(*v1alpha.Restore)
		return keys(r.Namespace, r.Spec.Source), nil
	},
	indexCredentials: func(obj any) ([]string, error) {
		r := obj.(*v1alpha.Restore)
		return keys(r.Namespace, credentialsNames(r.Spec.SourceCredentialsFrom, r.Spec.SinkCredentialsFrom)...), nil
	},
}

var credentialsIndexers = cache.Indexers{
	indexSecret: func(obj any) ([]string, error) {
		c := obj.(*v1alpha.Credentials)
		return keys(c.Namespace, refs.SecretNames(c)...), nil
	},
}

// dependents finds, through the indexes, what references an object.
type dependents struct {
	backups, restores, credentials cache.Indexer
}

// of returns the Backups and Restores whose index names obj.
func (d *dependents) of(index string, obj any) (backups, restores []cache.ObjectName) {
	o, ok := metaOf(obj)
	if !ok {
		return nil, nil
	}
	return byIndex(d.backups, index, key(o.GetNamespace(), o.GetName())),
		byIndex(d.restores, index, key(o.GetNamespace(), o.GetName()))
}

// ofSecret returns the Backups and Restores whose Credentials read a Secret.
func (d *dependents) ofSecret(obj any) (backups, restores []cache.ObjectName) {
	o, ok := metaOf(obj)
	if !ok {
		return nil, nil
	}
	for _, c := range byIndex(d.credentials, indexSecret, key(o.GetNamespace(), o.GetName())) {
		b, r := byIndex(d.backups, indexCredentials, c.String()), byIndex(d.restores, indexCredentials, c.String())
		backups, restores = append(backups, b...), append(restores, r...)
	}
	return backups, restores
}

func byIndex(indexer cache.Indexer, index, value string) []cache.ObjectName {
	objs, err := indexer.ByIndex(index, value)
	if err != nil {
		return nil // unknown index: a programming error caught by tests
	}
	names := make([]cache.ObjectName, 0, len(objs))
	for _, obj := range objs {
		if o, ok := metaOf(obj); ok {
			names = append(names, cache.ObjectName{Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	return names
}

// metaOf unwraps the tombstones informers hand to delete handlers.
func metaOf(obj any) (metav1.Object, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(metav1.Object)
	return o, ok
}

// enqueueOwner queues the Backup or Restore that controls an owned object.
func (c *Controller) enqueueOwner(obj any) {
	o, ok := metaOf(obj)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(o)
	if ref == nil || ref.APIVersion != v1alpha.SchemeGroupVersion.String() {
		return
	}
	switch ref.Kind {
	case "Backup":
		c.backups.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: ref.Name})
	case "Restore":
		c.restores.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: ref.Name})
	}
}

// enqueueLeaseOwner queues the Backup or Restore whose worker holds a Lease.
func (c *Controller) enqueueLeaseOwner(obj any) {
	if o, ok := metaOf(obj); ok {
		if name := o.GetLabels()[workerlease.BackupLabel]; name != "" {
			c.backups.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: name})
		}
		if name := o.GetLabels()[workerlease.RestoreLabel]; name != "" {
			c.restores.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: name})
		}
	}
}

// enqueueLabelledStorage queues the Storage a PersistentVolumeClaim was made for.
func (c *Controller) enqueueLabelledStorage(obj any) {
	if o, ok := metaOf(obj); ok {
		if name := o.GetLabels()[refs.StorageLabel]; name != "" {
			c.storages.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: name})
		}
	}
}

// filtered is handlerFor, but skips the updates ignore says change nothing
// the sync reads.
func filtered(enqueue func(obj any), ignore func(old, cur any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, cur any) {
			if !ignore(old, cur) {
				enqueue(cur)
			}
		},
		DeleteFunc: enqueue,
	}
}

// handlerFor calls enqueue on every add, update and delete.
func handlerFor(enqueue func(obj any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
}
