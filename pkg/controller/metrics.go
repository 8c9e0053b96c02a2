package controller

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	clientmetrics "k8s.io/client-go/tools/metrics"
	"k8s.io/client-go/util/workqueue"
)

// metrics are the controller's own Prometheus metrics.
type metrics struct {
	syncDuration *prometheus.HistogramVec
	syncErrors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "armory_controller_sync_duration_seconds",
			Help:    "Time to sync one object, by queue (backups, eventhubs, storages, restores).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"queue"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_controller_sync_errors_total",
			Help: "Syncs that failed and were retried, by queue.",
		}, []string{"queue"}),
	}
	reg.MustRegister(m.syncDuration, m.syncErrors)
	return m
}

var registerWorkqueueMetrics sync.Once

// RegisterWorkqueueMetrics exposes client-go's workqueue metrics (depth,
// latency, retries, ...) for every named queue, in reg. client-go takes one
// provider per process, so only the first call counts.
func RegisterWorkqueueMetrics(reg prometheus.Registerer) {
	registerWorkqueueMetrics.Do(func() {
		workqueue.SetProvider(&workqueueMetrics{reg: reg})
	})
}

type workqueueMetrics struct{ reg prometheus.Registerer }

func (p *workqueueMetrics) gauge(name, help, queue string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "armory_workqueue_" + name, Help: help, ConstLabels: prometheus.Labels{"name": queue},
	})
	p.reg.MustRegister(g)
	return g
}

func (p *workqueueMetrics) counter(name, help, queue string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "armory_workqueue_" + name, Help: help, ConstLabels: prometheus.Labels{"name": queue},
	})
	p.reg.MustRegister(c)
	return c
}

func (p *workqueueMetrics) histogram(name, help, queue string) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "armory_workqueue_" + name, Help: help, ConstLabels: prometheus.Labels{"name": queue},
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	p.reg.MustRegister(h)
	return h
}

func (p *workqueueMetrics) NewDepthMetric(q string) workqueue.GaugeMetric {
	return p.gauge("depth", "Current depth of the workqueue.", q)
}

func (p *workqueueMetrics) NewAddsMetric(q string) workqueue.CounterMetric {
	return p.counter("adds_total", "Items added to the workqueue.", q)
}

func (p *workqueueMetrics) NewLatencyMetric(q string) workqueue.HistogramMetric {
	return p.histogram("queue_duration_seconds", "How long an item waits in the workqueue before being processed.", q)
}

func (p *workqueueMetrics) NewWorkDurationMetric(q string) workqueue.HistogramMetric {
	return p.histogram("work_duration_seconds", "How long processing an item takes.", q)
}

func (p *workqueueMetrics) NewUnfinishedWorkSecondsMetric(q string) workqueue.SettableGaugeMetric {
	return p.gauge("unfinished_work_seconds", "Seconds of work in progress not yet observed by work_duration.", q)
}

func (p *workqueueMetrics) NewLongestRunningProcessorSecondsMetric(q string) workqueue.SettableGaugeMetric {
	return p.gauge("longest_running_processor_seconds", "Seconds the longest-running processor has been running.", q)
}

func (p *workqueueMetrics) NewRetriesMetric(q string) workqueue.CounterMetric {
	return p.counter("retries_total", "Items requeued after a failed sync.", q)
}

var registerRequestMetrics sync.Once

// RegisterRequestMetrics counts client-go's requests to the API server in
// reg, as armory_kube_api_requests_total{method, code}: what the controller
// costs the API server, which must be near zero writes while nothing
// changes. client-go takes one such metric per process: the first call
// counts.
func RegisterRequestMetrics(reg prometheus.Registerer) {
	registerRequestMetrics.Do(func() {
		requests := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_kube_api_requests_total",
			Help: "Requests to the Kubernetes API server, by HTTP method and status code.",
		}, []string{"method", "code"})
		reg.MustRegister(requests)
		clientmetrics.Register(clientmetrics.RegisterOpts{RequestResult: requestResult{requests}})
	})
}

type requestResult struct{ requests *prometheus.CounterVec }

func (r requestResult) Increment(_ context.Context, code, method, _ string) {
	r.requests.WithLabelValues(method, code).Inc()
}
