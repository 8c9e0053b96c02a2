// Package endpoints serves a process's Prometheus /metrics and its /healthz
// and /readyz probes, and shuts them down with the process.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// Check is a health check: nil means healthy.
type Check func(*http.Request) error

// Config says where to serve what. An address of "0" or "" turns that server off.
type Config struct {
	MetricsAddress string
	HealthAddress  string
	Gatherer       prometheus.Gatherer
	// Healthz fail when the process should be restarted.
	Healthz map[string]Check
	// Readyz fail while the process cannot do its work yet.
	Readyz map[string]Check
}

// NewRegistry is a private registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Serve listens on the configured addresses and serves in the background.
// Listening errors are returned before anything is served, so a taken port
// fails the process at start. The caller calls shutdown when its work ends,
// however it ends (a signal, or a lost Lease): serving stops gracefully and
// shutdown returns once every server has stopped.
func Serve(ctx context.Context, cfg Config) (shutdown func() error, err error) {
	var servers []*http.Server
	var listeners []net.Listener
	add := func(addr string, mux *http.ServeMux) error {
		if addr == "" || addr == "0" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		servers = append(servers, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, l)
		return nil
	}

	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	health := http.NewServeMux()
	health.Handle("/healthz", checksHandler(cfg.Healthz))
	health.Handle("/readyz", checksHandler(cfg.Readyz))
	if cfg.MetricsAddress != "" && cfg.MetricsAddress == cfg.HealthAddress {
		metrics.Handle("/healthz", checksHandler(cfg.Healthz))
		metrics.Handle("/readyz", checksHandler(cfg.Readyz))
		cfg.HealthAddress = ""
	}
	if err := add(cfg.MetricsAddress, metrics); err != nil {
		return nil, err
	}
	if err := add(cfg.HealthAddress, health); err != nil {
		for _, l := range listeners {
			_ = l.Close()
		}
		return nil, err
	}

	errs := make(chan error, len(servers))
	for i, s := range servers {
		klog.FromContext(ctx).Info("Serving", "address", listeners[i].Addr().String())
		go func() {
			if err := s.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	return func() error {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var all []error
		for _, s := range servers {
			all = append(all, s.Shutdown(shutdownCtx))
		}
		for range servers {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}, nil
}

func checksHandler(checks map[string]Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var failed []string
		for name, check := range checks {
			if err := check(r); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", name, err))
			}
		}
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, f := range failed {
				fmt.Fprintln(w, f)
			}
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
