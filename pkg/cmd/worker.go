package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
)

// workerOptions are the settings of `armory worker`.
type workerOptions struct {
	cluster            clusterFlags
	backup             string
	restore            string
	metricsAddress     string
	healthProbeAddress string
}

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

While another worker holds the Lease, it waits and logs who holds it.`,
		Example: `  armory worker --backup=backup-example
  armory worker --restore=restore-example --namespace=team-a -v=2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			mode := "--backup"
			if o.restore != "" {
				mode = "--restore"
			}
			return fmt.Errorf("armory worker %s: %w", mode, errNotImplemented)
		},
	}
	o.cluster.addFlags(cmd, "Namespace of the Backup or Restore. Default: the pod's namespace, else the kubeconfig context's.")
	f := cmd.Flags()
	f.StringVar(&o.backup, "backup", "", "Name of the Backup to run.")
	f.StringVar(&o.restore, "restore", "", "Name of the Restore to run.")
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
	return nil
}
