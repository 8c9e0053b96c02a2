package workerlease

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestHeld(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	lease := func(holder string, renewedAgo time.Duration, durationSeconds int32) *coordinationv1.Lease {
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(holder),
			RenewTime:            &metav1.MicroTime{Time: now.Add(-renewedAgo)},
			LeaseDurationSeconds: ptr.To(durationSeconds),
		}}
	}
	tests := []struct {
		name        string
		lease       *coordinationv1.Lease
		wantHeld    bool
		wantExpires time.Time
	}{
		{"no lease", nil, false, time.Time{}},
		{"renewed just now", lease("pod-a", 0, 15), true, now.Add(15 * time.Second)},
		{"renewed 14s ago of 15s", lease("pod-a", 14*time.Second, 15), true, now.Add(time.Second)},
		{"renewed 15s ago of 15s", lease("pod-a", 15*time.Second, 15), false, now},
		{"renewed long ago", lease("pod-a", time.Hour, 15), false, now.Add(-time.Hour + 15*time.Second)},
		{"released (no holder)", lease("", 0, 1), false, time.Time{}},
		{"never renewed", &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod-a")}}, false, time.Time{}},
	}
	for _, tc := range tests {
		held, expires := Held(tc.lease, now)
		if held != tc.wantHeld || !expires.Equal(tc.wantExpires) {
			t.Errorf("%s: Held = %v, %v; want %v, %v", tc.name, held, expires, tc.wantHeld, tc.wantExpires)
		}
	}
}
