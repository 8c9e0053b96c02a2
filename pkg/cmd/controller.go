package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/pkg/controller"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/endpoints"
	"github.com/kannika/armory/pkg/leader"
)

// controllerOptions are the settings of `armory controller`.
type controllerOptions struct {
	cluster            clusterFlags
	leaderElect        bool
	leaderElectionNS   string
	leaseDuration      time.Duration
	renewDeadline      time.Duration
	retryPeriod        time.Duration
	workerImage        string
	workers            int
	metricsAddress     string
	healthProbeAddress string
}

// leaderElectionLease is the name of the controller's own Lease.
const leaderElectionLease = "armory-controller"

func newControllerCommand() *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the operator: turn Backups into Deployments and Restores into Jobs, and keep their status",
		Long: `Run the Armory operator.

It watches kannika.io resources and, for each Backup, keeps a Deployment
running "armory worker --backup=NAME" (scaled to 0 while paused), and for each
enabled Restore a Job running "armory worker --restore=NAME" (suspended while
disabled), each with a ServiceAccount and Role that let the worker read only
what it needs. It writes each resource's status: phase, message, conditions.
It never reads Kafka or storage data itself.

In a cluster the workers get the controller's own image. Run from a laptop
(outside a pod), it cannot read its pod, so pass the image the workers should
run:

  armory controller --kubeconfig ~/.kube/config --worker-image ghcr.io/kannika/armory:v0.3.0

A second process on the same machine needs other ports: pass
--metrics-bind-address and --health-probe-bind-address another address, or
"0" to turn them off; the addresses bound are logged at start ("Serving").`,
		Example: `  armory controller --kubeconfig ~/.kube/config --namespace team-a --worker-image ghcr.io/kannika/armory:v0.3.0 \
    --metrics-bind-address 0 --health-probe-bind-address 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context())
		},
	}
	o.cluster.addFlags(cmd, "Watch only this namespace. Default: all namespaces.")
	f := cmd.Flags()
	f.BoolVar(&o.leaderElect, "leader-elect", true,
		"Take a Lease before acting, so that only one controller replica writes at a time.")
	f.StringVar(&o.leaderElectionNS, "leader-election-namespace", "",
		"Namespace of the leader-election Lease. Default: $POD_NAMESPACE, else the kubeconfig context's namespace.")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second,
		"How long a standby waits after the leader's last renewal before taking over.")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second,
		"How long the leader keeps trying to renew before it gives up leading (and exits).")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often to try to take or renew the Lease.")
	f.StringVar(&o.workerImage, "worker-image", "",
		"Container image of the worker Deployments and Jobs, e.g. ghcr.io/kannika/armory:v0.3.0. Default: the controller's own image, read from its pod ($POD_NAME, $POD_NAMESPACE); required outside a pod.")
	f.IntVar(&o.workers, "workers", 2, "Objects of each kind synced in parallel.")
	f.StringVar(&o.metricsAddress, "metrics-bind-address", ":8080",
		"Address of the Prometheus /metrics endpoint; \"0\" turns it off.")
	f.StringVar(&o.healthProbeAddress, "health-probe-bind-address", ":8081",
		"Address of the /healthz and /readyz endpoints; \"0\" turns them off.")
	return cmd
}

func (o *controllerOptions) run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	kube, armory, err := o.cluster.clients("armory-controller")
	if err != nil {
		return err
	}
	image, err := o.image(ctx, kube)
	if err != nil {
		return err
	}

	reg := endpoints.NewRegistry()
	controller.RegisterWorkqueueMetrics(reg)
	controller.RegisterRequestMetrics(reg)
	c, err := controller.New(kube, armory, controller.Options{
		Namespace: o.cluster.namespace,
		Backup:    backup.Config{Image: image},
		Resync:    10 * time.Minute,
		Registry:  reg,
	})
	if err != nil {
		return err
	}

	// Informers start at once, leader or not, so a standby takes over with
	// warm caches; only the leader runs workers that write.
	c.Start(ctx)
	watchdog := leaderelection.NewLeaderHealthzAdaptor(o.renewDeadline)
	shutdownEndpoints, err := endpoints.Serve(ctx, endpoints.Config{
		MetricsAddress: o.metricsAddress,
		HealthAddress:  o.healthProbeAddress,
		Gatherer:       reg,
		Healthz:        map[string]endpoints.Check{"leader-election": watchdog.Check},
		Readyz: map[string]endpoints.Check{"informers-synced": func(*http.Request) error {
			if !c.HasSynced() {
				return errors.New("informer caches are not synced yet")
			}
			return nil
		}},
	})
	if err != nil {
		return err
	}

	runErr := o.runLeading(ctx, kube, watchdog, func(ctx context.Context, drain <-chan struct{}) error { return c.Run(ctx, drain, o.workers) })
	logger.Info("Controller stopped")
	return errors.Join(runErr, shutdownEndpoints())
}

// runLeading runs work while this process leads, or at once without leader
// election. On SIGTERM the work drains and stops first; only then is the Lease
// released, so nothing writes after a successor may have started.
func (o *controllerOptions) runLeading(ctx context.Context, kube kubernetes.Interface, watchdog *leaderelection.HealthzAdaptor, work func(ctx context.Context, drain <-chan struct{}) error) error {
	if !o.leaderElect {
		// No one else can take over: SIGTERM drains, nothing stops at once.
		return work(context.WithoutCancel(ctx), ctx.Done())
	}
	ns := o.leaderElectionNS
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		var err error
		if ns, _, err = o.cluster.clientConfig().Namespace(); err != nil {
			return fmt.Errorf("find the leader-election namespace: %w (pass --leader-election-namespace)", err)
		}
	}
	hostname, _ := os.Hostname()
	lease := leader.Config{Kube: kube, Namespace: ns, Name: leaderElectionLease, Identity: hostname + "_" + string(uuid.NewUUID()),
		Timings: leader.Timings{Duration: o.leaseDuration, RenewDeadline: o.renewDeadline, RetryPeriod: o.retryPeriod}, WatchDog: watchdog}
	// The workers drain on SIGTERM and stop the moment leadership is lost.
	return leader.Run(ctx, lease, work)
}

// image returns the worker image: the flag, else the image of the
// controller's own container.
func (o *controllerOptions) image(ctx context.Context, kube kubernetes.Interface) (string, error) {
	if o.workerImage != "" {
		return o.workerImage, nil
	}
	name, ns := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if name == "" || ns == "" {
		return "", errors.New("--worker-image is not set and $POD_NAME/$POD_NAMESPACE do not name the controller's pod; pass --worker-image")
	}
	pod, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read the controller's own pod %s/%s for its image: %w; pass --worker-image", ns, name, err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "controller" {
			return c.Image, nil
		}
	}
	return "", fmt.Errorf("pod %s/%s has no container named controller; pass --worker-image", ns, name)
}
