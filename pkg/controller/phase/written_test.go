package phase

import (
	"testing"

	"k8s.io/client-go/tools/cache"
)

func TestWritten(t *testing.T) {
	w := NewWritten(func(a, b string) bool { return a == b })
	key := cache.ObjectName{Namespace: "ns", Name: "b"}
	if got := w.Previous(key, "Failed"); got != "Failed" {
		t.Errorf("nothing written: Previous = %q, want the cached status", got)
	}
	w.Record(key, "Ready")
	if got := w.Previous(key, "Failed"); got != "Ready" {
		t.Errorf("stale cache: Previous = %q, want the written status", got)
	}
	if got := w.Previous(key, "Ready"); got != "Ready" {
		t.Errorf("caught-up cache: Previous = %q", got)
	}
	// Once caught up, the cache is the truth again, even if it later differs.
	if got := w.Previous(key, "Streaming"); got != "Streaming" {
		t.Errorf("after catching up: Previous = %q, want the cached status", got)
	}
}
