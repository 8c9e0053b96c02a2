package leader

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// TestDrainTimeoutStopsAStuckDrain: work that does not return when drained
// (an upload stalled by its storage) has its context ended DrainTimeout
// after SIGTERM, and Run says so, instead of outliving the pod's grace
// period. A drain that finishes in time is not cut.
func TestDrainTimeoutStopsAStuckDrain(t *testing.T) {
	for _, stuck := range []bool{true, false} {
		ctx, sigterm := context.WithCancel(context.Background())
		c := Config{Kube: fake.NewClientset(), Namespace: "ns", Name: "b-backup", Identity: "w1",
			Timings: Timings{Duration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
				DrainTimeout: 300 * time.Millisecond}}
		started := make(chan struct{})
		var workCtxErr error
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, c, func(ctx context.Context, drain <-chan struct{}) error {
				close(started)
				<-drain
				if stuck {
					<-ctx.Done() // ignores the drain, like a stalled upload
					workCtxErr = ctx.Err()
					return ctx.Err()
				}
				return nil
			})
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("the work did not start within 30s")
		}
		sigterm()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("stuck=%v: Run did not return within 30s of SIGTERM", stuck)
		}
		switch {
		case stuck && (!errors.Is(err, ErrDrainTimeout) || !errors.Is(workCtxErr, context.Canceled)):
			t.Errorf("a stuck drain: Run returned %v (work's context %v); want ErrDrainTimeout and a cancelled context", err, workCtxErr)
		case !stuck && err != nil:
			t.Errorf("a drain that finished: Run returned %v", err)
		}
	}
}
