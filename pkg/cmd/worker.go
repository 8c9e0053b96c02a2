package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/pkg/endpoints"
	"github.com/kannika/armory/pkg/leader"
	"github.com/kannika/armory/pkg/restore"
	"github.com/kannika/armory/pkg/worker"
	"github.com/kannika/armory/pkg/workerlease"
)

// workerOptions are the settings of `armory worker`.
type workerOptions struct {
	cluster            clusterFlags
	backup             string
	restore            string
	storagePath        string
	lease              leader.Timings
	statusInterval     time.Duration
	recheckInterval    time.Duration
	metricsAddress     string
	healthProbeAddress string
	txnRecords         int
	txnBytes           int64
	txnInterval        time.Duration
	parallel           int
	memoryBudget       resource.QuantityValue
}

// DefaultDrainTimeout bounds a worker's drain after SIGTERM: below both
// pods' termination grace periods, with room for the last status write.
const DefaultDrainTimeout = 25 * time.Second

func newWorkerCommand() *cobra.Command {
	o := &workerOptions{}
	cmd := &cobra.Command{
		Use:   "worker (--backup=NAME | --restore=NAME)",
		Short: "Run one Backup or one Restore",
		Long: `Run one Backup (continuously) or one Restore (to completion).

This is what each Backup's Deployment and each Restore's Job runs. It reads
its resource, the EventHub, the Storage and the Secrets they reference from
the API server, takes a Lease named after the resource so that only one
worker runs it at a time, and then moves data.

Run it from a laptop against a kubeconfig to debug one Backup:

  armory worker --kubeconfig ~/.kube/config --namespace team-a --backup my-backup

While another worker holds the Lease, it waits and logs who holds it. On
SIGTERM a backup uploads its open segments, then releases the Lease and
exits; a restore commits its open transaction and exits 3.

A restore exits 0 when every selected record is written (or already was),
2 when it cannot go on (a preflight check failed, a corrupt segment: the
Restore's status says which), and 3 when it stopped before the end
(SIGTERM, spec.enabled false, another worker took over): run it again to
resume from what was committed.`,
		Example: `  armory worker --backup=backup-example
  armory worker --backup=backup-example --namespace=team-a -v=2
  armory worker --restore=restore-example --namespace=team-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if o.restore != "" {
				return o.runRestore(cmd.Context())
			}
			return o.runBackup(cmd.Context())
		},
	}
	o.cluster.addFlags(cmd, "Namespace of the Backup or Restore. Default: $POD_NAMESPACE, else the kubeconfig context's.")
	f := cmd.Flags()
	f.StringVar(&o.backup, "backup", "", "Name of the Backup to run.")
	f.StringVar(&o.restore, "restore", "", "Name of the Restore to run.")
	f.StringVar(&o.storagePath, "storage-path", worker.DefaultStoragePath,
		"Where a volume Storage is mounted (set it to a local folder to debug a volume Backup from a laptop).")
	f.DurationVar(&o.lease.Duration, "lease-duration", leader.DefaultTimings.Duration,
		"How long after the holder's last renewal another worker may take the Lease.")
	f.DurationVar(&o.lease.RenewDeadline, "lease-renew-deadline", leader.DefaultTimings.RenewDeadline,
		"How long the holder tries to renew before it stops writing.")
	f.DurationVar(&o.lease.RetryPeriod, "lease-retry-period", leader.DefaultTimings.RetryPeriod,
		"How often to try to take or renew the Lease.")
	f.DurationVar(&o.lease.DrainTimeout, "drain-timeout", DefaultDrainTimeout,
		"After SIGTERM, how long a backup may take to upload its open segments (a restore: to finish its transaction) "+
			"before it stops without them; what was not stored is read again by the next worker. Keep it below the pod's "+
			"termination grace period (60s for a Backup's Deployment, Kubernetes' default 30s for a Restore's Job). 0: no bound.")
	f.DurationVar(&o.statusInterval, "status-interval", 10*time.Second,
		"How often progress is written to the resource's status, when it changed.")
	f.DurationVar(&o.recheckInterval, "recheck-interval", 30*time.Second,
		"How often to look for new partitions and to check a failed stream again.")
	f.IntVar(&o.txnRecords, "transaction-records", restore.DefaultTxnRecords,
		"Restores: commit a transaction at this many records.")
	f.Int64Var(&o.txnBytes, "transaction-bytes", restore.DefaultTxnBytes,
		"Restores: commit a transaction at this many record bytes.")
	f.DurationVar(&o.txnInterval, "transaction-interval", restore.DefaultTxnInterval,
		"Restores: commit a transaction at most this long after it began.")
	f.IntVar(&o.parallel, "parallel-partitions", restore.DefaultParallel,
		"Restores: how many partitions are read at once; each holds up to about 2 MiB.")
	o.memoryBudget.Quantity = *resource.NewQuantity(worker.DefaultMemoryBudget, resource.BinarySI)
	f.Var(&o.memoryBudget, "memory-budget",
		"Backups: the memory the worker's buffers may use (open segments, uploads, Kafka fetches), whatever the number of partitions; segments close early when it is full. The worker grows to about this; its peak RSS stays under this plus 64 MiB (docs/worker.md#memory).")
	f.StringVar(&o.metricsAddress, "metrics-bind-address", ":8080",
		"Address of the Prometheus /metrics endpoint; \"0\" turns it off.")
	f.StringVar(&o.healthProbeAddress, "health-probe-bind-address", ":8081",
		"Address of the /healthz and /readyz endpoints; \"0\" turns them off.")
	return cmd
}

// validate checks that exactly one of --backup and --restore names a valid
// resource.
func (o *workerOptions) validate() error {
	switch {
	case o.backup == "" && o.restore == "":
		return errors.New("pass --backup=NAME to run a Backup or --restore=NAME to run a Restore")
	case o.backup != "" && o.restore != "":
		return errors.New("pass only one of --backup and --restore: a worker runs one Backup or one Restore")
	}
	flagName, name := "--backup", o.backup
	if o.restore != "" {
		flagName, name = "--restore", o.restore
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%s=%q is not a valid resource name: %s", flagName, name, errs[0])
	}
	if b := o.memoryBudget.Value(); b < worker.MinMemoryBudget {
		return fmt.Errorf("--memory-budget=%s is too small: give the worker at least %s (the default is %s)", o.memoryBudget.String(),
			resource.NewQuantity(worker.MinMemoryBudget, resource.BinarySI), resource.NewQuantity(worker.DefaultMemoryBudget, resource.BinarySI))
	}
	return nil
}

// workerEnv is what both kinds of worker start from: clients, namespace,
// identity, and the metrics and health endpoints.
type workerEnv struct {
	kube      kubernetes.Interface
	armory    versioned.Interface
	namespace string
	identity  string
	registry  *prometheus.Registry
	ready     *atomic.Bool
	shutdown  func() error
}

func (o *workerOptions) start(ctx context.Context, kind string) (*workerEnv, error) {
	kube, armory, err := o.cluster.clients("armory-worker")
	if err != nil {
		return nil, err
	}
	ns := o.cluster.namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		if ns, _, err = o.cluster.clientConfig().Namespace(); err != nil {
			return nil, fmt.Errorf("find the %s's namespace: %w (pass --namespace)", kind, err)
		}
	}
	identity := os.Getenv("POD_NAME")
	if identity == "" {
		hostname, _ := os.Hostname()
		identity = hostname + "_" + string(uuid.NewUUID())[:8]
	}
	e := &workerEnv{kube: kube, armory: armory, namespace: ns, identity: identity, registry: endpoints.NewRegistry(), ready: &atomic.Bool{}}
	e.shutdown, err = endpoints.Serve(ctx, endpoints.Config{
		MetricsAddress: o.metricsAddress,
		HealthAddress:  o.healthProbeAddress,
		Gatherer:       e.registry,
		Readyz: map[string]endpoints.Check{"lease": func(*http.Request) error {
			if !e.ready.Load() {
				return fmt.Errorf("not holding the %s's Lease", kind)
			}
			return nil
		}},
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (o *workerOptions) runRestore(ctx context.Context) error {
	e, err := o.start(ctx, "Restore")
	if err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Starting Restore worker", "restore", klog.KRef(e.namespace, o.restore), "identity", e.identity)
	runErr := restore.Run(ctx, restore.Options{
		Kube: e.kube, Armory: e.armory, Namespace: e.namespace, Name: o.restore, Identity: e.identity,
		StoragePath: o.storagePath, Lease: o.lease, StatusInterval: o.statusInterval,
		TxnRecords: o.txnRecords, TxnBytes: o.txnBytes, TxnInterval: o.txnInterval, Parallel: max(o.parallel, 1),
		Registry: e.registry, Ready: e.ready.Store,
	})
	err = errors.Join(runErr, e.shutdown())
	switch {
	case errors.Is(runErr, restore.ErrPermanent):
		return &exitError{code: workerlease.ExitRestorePermanent, err: err}
	case errors.Is(runErr, restore.ErrInterrupted):
		return &exitError{code: workerlease.ExitRestoreInterrupted, err: err}
	}
	return err
}

func (o *workerOptions) runBackup(ctx context.Context) error {
	e, err := o.start(ctx, "Backup")
	if err != nil {
		return err
	}
	budget := o.memoryBudget.Value()
	// The heap is the budget: Go's soft memory limit is set to it and the
	// proportional trigger (GOGC) is off, so the collector runs when the
	// heap reaches the budget, not at twice what happens to be live at its
	// last cycle. The buffers the budget bounds take 5/8 of it at most; the
	// rest is garbage waiting to be collected. So the worker's memory
	// follows the budget alone: not the topic's size, nor how long it has
	// run (with GOGC's trigger a longer run met higher peaks), and the
	// collector runs less often than at GOGC=100. GOMEMLIMIT or GOGC, if
	// set, win.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(budget)
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(-1)
		}
	}
	klog.FromContext(ctx).Info("Starting Backup worker", "backup", klog.KRef(e.namespace, o.backup), "identity", e.identity,
		"memoryBudget", o.memoryBudget.String())
	runErr := worker.RunBackup(ctx, worker.BackupOptions{
		MemoryBudget: budget,
		Kube:         e.kube, Armory: e.armory, Namespace: e.namespace, Name: o.backup, Identity: e.identity,
		StoragePath: o.storagePath, Lease: o.lease, StatusInterval: o.statusInterval, Recheck: o.recheckInterval,
		Registry: e.registry, Ready: e.ready.Store,
	})
	return errors.Join(runErr, e.shutdown())
}

// exitError is an error with the exit code it stands for.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
