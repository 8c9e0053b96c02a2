package worker

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

// LeaseTimings are how the worker holds its resource's Lease.
type LeaseTimings struct {
	Duration      time.Duration // a standby takes over this long after the last renewal
	RenewDeadline time.Duration // the holder gives up if it cannot renew for this long
	RetryPeriod   time.Duration
}

// DefaultLeaseTimings are client-go's usual values.
var DefaultLeaseTimings = LeaseTimings{Duration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}

// errLeaseLost: the Lease was lost while working; the work stopped at once.
var errLeaseLost = errors.New("lost the Lease: stopped writing")

// withLease runs work only while holding the Lease name in namespace. work
// gets a context that ends the moment the Lease is lost (stop at once), and
// drain, closed when ctx ends (finish gracefully). The Lease is released only
// after work returns, so a successor never overlaps a worker still writing.
// While another worker holds the Lease, it waits and logs the holder.
func withLease(ctx context.Context, kube kubernetes.Interface, namespace, name, identity string, labels map[string]string,
	t LeaseTimings, held func(bool), work func(ctx context.Context, drain <-chan struct{}) error) error {
	logger := klog.FromContext(ctx).WithValues("lease", namespace+"/"+name, "identity", identity)
	electionCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	var (
		workErr  error
		workDone = make(chan struct{})
		led      atomic.Bool
		lost     atomic.Bool
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: namespace},
			Labels:     labels,
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
		},
		LeaseDuration:   t.Duration,
		RenewDeadline:   t.RenewDeadline,
		RetryPeriod:     t.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadingCtx context.Context) {
				defer close(workDone)
				led.Store(true)
				held(true)
				logger.Info("Took the Lease: starting")
				workErr = work(leadingCtx, ctx.Done())
				if leadingCtx.Err() != nil && ctx.Err() == nil {
					lost.Store(true)
				}
				held(false)
				stopElection()
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(current string) {
				if current != identity {
					logger.Info("Another worker holds the Lease: waiting", "holder", current)
				}
			},
		},
	})
	if err != nil {
		return err
	}
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
	<-workDone
	if lost.Load() {
		return errors.Join(errLeaseLost, workErr)
	}
	return workErr
}
