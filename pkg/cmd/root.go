// Package cmd holds the armory commands: flags → configuration → run.
package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kannika/armory/generated/clientset/versioned"
)

// Execute runs the armory command line and returns the process exit code.
func Execute() int {
	ctx, stop := signalContext()
	defer stop()
	err := NewRootCommand().ExecuteContext(ctx)
	stopProfiles()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		var exit *exitError
		if errors.As(err, &exit) {
			return exit.code
		}
		return 1
	}
	return 0
}

// NewRootCommand builds the `armory` command and its subcommands.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "armory",
		Short: "Continuous backup and restore of Apache Kafka topics, driven by Kubernetes resources",
		Long: `Armory backs up Apache Kafka topics to object storage and restores them.
Users describe what to back up with kannika.io resources (EventHub, Storage,
Credentials, Backup, Restore). The controller turns each Backup into a
Deployment and each Restore into a Job; both run "armory worker".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	// klog's verbosity flags, so -v=4 works on every command.
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	for _, name := range []string{"v", "vmodule"} {
		root.PersistentFlags().AddGoFlag(klogFlags.Lookup(name))
	}
	addProfileFlags(root)
	root.AddCommand(newControllerCommand(), newWorkerCommand(), newVersionCommand())
	return root
}

// clusterFlags are the flags every command uses to reach the API server.
type clusterFlags struct {
	kubeconfig string
	namespace  string
	qps        float32
	burst      int
}

func (f *clusterFlags) addFlags(cmd *cobra.Command, namespaceHelp string) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "",
		"Path to a kubeconfig file. Default: in-cluster configuration, else $KUBECONFIG or ~/.kube/config.")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", namespaceHelp)
	// client-go's own defaults (5 and 10) hold a controller of a few
	// hundred Backups for minutes: each Backup's sync takes several requests.
	cmd.Flags().Float32Var(&f.qps, "kube-api-qps", 50, "Requests per second to the API server, sustained.")
	cmd.Flags().IntVar(&f.burst, "kube-api-burst", 100, "Requests to the API server allowed in a burst above --kube-api-qps.")
}

// clientConfig loads the kubeconfig the way kubectl does, preferring the
// in-cluster configuration when no kubeconfig is named.
func (f *clusterFlags) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{}
	if f.namespace != "" {
		overrides.Context.Namespace = f.namespace
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// restConfig returns the API server connection settings.
func (f *clusterFlags) restConfig() (*rest.Config, error) {
	if f.kubeconfig == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		} else if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, fmt.Errorf("in-cluster configuration: %w", err)
		}
	}
	cfg, err := f.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig, or run inside a cluster)", err)
	}
	return cfg, nil
}

// clients returns clients of the core API and of the kannika.io API.
func (f *clusterFlags) clients(userAgent string) (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := f.restConfig()
	if err != nil {
		return nil, nil, err
	}
	cfg.UserAgent = userAgent
	cfg.QPS, cfg.Burst = f.qps, f.burst
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	armory, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return kube, armory, nil
}

// signalContext is cancelled on the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-signals:
			cancel()
		case <-ctx.Done():
			return
		}
		<-signals
		os.Exit(1)
	}()
	return ctx, func() {
		signal.Stop(signals)
		cancel()
	}
}
