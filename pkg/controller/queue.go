package controller

import (
	"context"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// syncFunc reconciles one object. requeueAfter > 0 asks to look again later
// even on success (e.g. when a worker's Lease will expire).
type syncFunc func(ctx context.Context, namespace, name string) (requeueAfter time.Duration, err error)

// queue is a named, rate-limited workqueue of object names. Its name labels
// the workqueue metrics.
type queue struct {
	workqueue.TypedRateLimitingInterface[cache.ObjectName]
	name    string
	metrics *metrics
}

func newQueue(name string, m *metrics) *queue {
	return &queue{
		name:    name,
		metrics: m,
		TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: name},
		),
	}
}

func (q *queue) addObject(obj any) {
	if o, ok := metaOf(obj); ok {
		q.Add(cache.ObjectName{Namespace: o.GetNamespace(), Name: o.GetName()})
	}
}

// work processes items until the queue shuts down. It is the one place that
// logs and retries errors: a failed sync is requeued with backoff, a
// successful one forgets its backoff.
func (q *queue) work(ctx context.Context, sync syncFunc) {
	for q.processNext(ctx, sync) {
	}
}

func (q *queue) processNext(ctx context.Context, sync syncFunc) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)

	logger := klog.LoggerWithValues(klog.FromContext(ctx), "queue", q.name, "object", key.String())
	ctx = klog.NewContext(ctx, logger)
	start := time.Now()
	requeueAfter, err := sync(ctx, key.Namespace, key.Name)
	q.metrics.syncDuration.WithLabelValues(q.name).Observe(time.Since(start).Seconds())
	if err != nil {
		q.metrics.syncErrors.WithLabelValues(q.name).Inc()
		utilruntime.HandleErrorWithContext(ctx, err, "Sync failed; will retry", "queue", q.name, "object", key.String())
		q.AddRateLimited(key)
		return true
	}
	q.Forget(key)
	if requeueAfter > 0 {
		q.AddAfter(key, requeueAfter)
	}
	logger.V(4).Info("Synced", "duration", time.Since(start))
	return true
}
