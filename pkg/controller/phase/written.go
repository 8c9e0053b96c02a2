package phase

import (
	"sync"

	"k8s.io/client-go/tools/cache"
)

// Written remembers the last status the controller wrote for each object
// until its informer cache shows it. Without it, a sync that runs before the
// write comes back through the watch would compare against the stale cached
// status, write the same status again and record its events twice.
type Written[T any] struct {
	mu    sync.Mutex
	byKey map[cache.ObjectName]T
	equal func(a, b T) bool
}

// NewWritten makes a Written that compares statuses with equal.
func NewWritten[T any](equal func(a, b T) bool) *Written[T] {
	return &Written[T]{byKey: map[cache.ObjectName]T{}, equal: equal}
}

// Previous returns the status the object has as far as the controller knows:
// the last one it wrote while the cache has not caught up, else the cached one.
func (w *Written[T]) Previous(key cache.ObjectName, cached T) T {
	w.mu.Lock()
	defer w.mu.Unlock()
	written, ok := w.byKey[key]
	if !ok {
		return cached
	}
	if w.equal(written, cached) {
		delete(w.byKey, key) // the cache caught up
		return cached
	}
	return written
}

// Record notes a status just written.
func (w *Written[T]) Record(key cache.ObjectName, st T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byKey[key] = st
}

// Forget drops an object that no longer exists.
func (w *Written[T]) Forget(key cache.ObjectName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.byKey, key)
}
