package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

// controllerOptions are the settings of `armory controller`.
type controllerOptions struct {
	cluster            clusterFlags
	leaderElect        bool
	leaderElectionNS   string
	workerImage        string
	metricsAddress     string
	healthProbeAddress string
}

func newControllerCommand() *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the operator: turn Backups into Deployments and Restores into Jobs, and keep their status",
		Long: `Run the Armory operator.

It watches kannika.io resources and, for each Backup, keeps a Deployment
running "armory worker --backup=NAME" (scaled to 0 while paused), and for each
Restore a Job running "armory worker --restore=NAME". It writes each
resource's status: phase, message, conditions. It never reads Kafka or
storage data itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("armory controller: %w", errNotImplemented)
		},
	}
	o.cluster.addFlags(cmd, "Watch only this namespace. Default: all namespaces.")
	f := cmd.Flags()
	f.BoolVar(&o.leaderElect, "leader-elect", true,
		"Take a Lease before acting, so that only one controller replica writes at a time.")
	f.StringVar(&o.leaderElectionNS, "leader-election-namespace", "",
		"Namespace of the leader-election Lease. Default: the controller's own namespace.")
	f.StringVar(&o.workerImage, "worker-image", "",
		"Container image of the worker Deployments and Jobs. Default: the controller's own image.")
	f.StringVar(&o.metricsAddress, "metrics-bind-address", ":8080",
		"Address of the Prometheus /metrics endpoint; \"0\" turns it off.")
	f.StringVar(&o.healthProbeAddress, "health-probe-bind-address", ":8081",
		"Address of the /healthz and /readyz endpoints; \"0\" turns them off.")
	return cmd
}
