// Package leader runs work only while this process holds a Lease, for the
// controller (one leader among replicas) and for workers (one writer per
// Backup or Restore), with the shutdown order both need.
package leader

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Timings are how the Lease is held.
type Timings struct {
	Duration      time.Duration // a standby takes over this long after the last renewal
	RenewDeadline time.Duration // the holder gives up if it cannot renew for this long
	RetryPeriod   time.Duration
	// DrainTimeout, if set, bounds the drain: work's context ends this long
	// after Run's, so that a drain stuck on, say, a stalled upload ends
	// within the pod's grace period instead of being killed at its end.
	DrainTimeout time.Duration
}

// DefaultTimings are client-go's usual values.
var DefaultTimings = Timings{Duration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}

// ErrLost means the Lease was lost while working: the work was stopped at once.
var ErrLost = errors.New("lost the Lease: stopped")

// Config names the Lease and says how to hold it.
type Config struct {
	Kube      kubernetes.Interface
	Namespace string
	Name      string
	Identity  string
	Labels    map[string]string
	Timings   Timings
	// WatchDog, if set, fails /healthz when the holder stops renewing.
	WatchDog *leaderelection.HealthzAdaptor
	// Held, if set, is told when the Lease is taken and let go.
	Held func(bool)
}

// ErrDrainTimeout: the drain took longer than Timings.DrainTimeout and the
// work was stopped.
var ErrDrainTimeout = errors.New("the drain did not finish in time: stopped")

// Run runs work only while holding the Lease. work gets a context that ends
// the moment the Lease is lost (stop at once), and drain, closed when ctx
// ends (finish gracefully). The Lease is released only after work returns, so
// a successor never overlaps a holder still writing. While another holds the
// Lease, Run waits and logs the holder; if ctx ends first, it returns nil.
func Run(ctx context.Context, c Config, work func(ctx context.Context, drain <-chan struct{}) error) error {
	logger := klog.FromContext(ctx).WithValues("lease", c.Namespace+"/"+c.Name, "identity", c.Identity)
	// The election outlives ctx: on SIGTERM the work drains first, and only
	// then is the Lease released (stopElection).
	electionCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	held := c.Held
	if held == nil {
		held = func(bool) {}
	}
	var (
		workErr  error
		workDone = make(chan struct{})
		led      atomic.Bool
		lost     atomic.Bool
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
			Labels:     c.Labels,
			Client:     c.Kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: c.Identity},
		},
		LeaseDuration:   c.Timings.Duration,
		RenewDeadline:   c.Timings.RenewDeadline,
		RetryPeriod:     c.Timings.RetryPeriod,
		ReleaseOnCancel: true,
		WatchDog:        c.WatchDog,
		Name:            c.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadingCtx context.Context) {
				defer close(workDone)
				led.Store(true)
				held(true)
				logger.Info("Took the Lease: starting")
				workCtx, stopWork := context.WithCancelCause(leadingCtx)
				defer stopWork(nil)
				if c.Timings.DrainTimeout > 0 {
					// Ends with the work (stopWork above).
					go func() {
						select {
						case <-ctx.Done():
						case <-workCtx.Done():
							return
						}
						select {
						case <-time.After(c.Timings.DrainTimeout):
							logger.Info("The drain is taking longer than its timeout: stopping the work", "timeout", c.Timings.DrainTimeout)
							stopWork(ErrDrainTimeout)
						case <-workCtx.Done():
						}
					}()
				}
				workErr = work(workCtx, ctx.Done())
				if errors.Is(context.Cause(workCtx), ErrDrainTimeout) {
					workErr = errors.Join(ErrDrainTimeout, workErr)
				}
				if leadingCtx.Err() != nil && ctx.Err() == nil {
					lost.Store(true)
				}
				held(false)
				stopElection()
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(current string) {
				if current != c.Identity {
					logger.Info("Another holds the Lease: waiting", "holder", current)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	// One that never led has nothing to drain: stop campaigning on SIGTERM.
	stopStandby := context.AfterFunc(ctx, func() {
		if !led.Load() {
			stopElection()
		}
	})
	defer stopStandby()

	elector.Run(electionCtx)
	if !led.Load() {
		return nil
	}
	<-workDone // never return while the work may still write
	if lost.Load() {
		logger.Info("Lost the Lease: stopped")
		return errors.Join(ErrLost, workErr)
	}
	logger.Info("Released the Lease")
	return workErr
}
