package restore

import "github.com/prometheus/client_golang/prometheus"

// metrics are the restore worker's Prometheus metrics.
type metrics struct {
	recordsRestored *prometheus.CounterVec
	bytesRestored   *prometheus.CounterVec
	txnCommitted    prometheus.Counter
	txnAborted      prometheus.Counter
	commitDuration  prometheus.Histogram
	errors          *prometheus.CounterVec
	leaseHeld       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recordsRestored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_restore_records_restored_total", Help: "Records written and committed, by source topic.",
		}, []string{"topic"}),
		bytesRestored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_restore_bytes_restored_total", Help: "Record bytes (keys, values, headers) written and committed, by source topic.",
		}, []string{"topic"}),
		txnCommitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "armory_restore_transactions_committed_total", Help: "Kafka transactions committed (records with the progress they cover).",
		}),
		txnAborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "armory_restore_transactions_aborted_total", Help: "Kafka transactions that failed to commit; their records are invisible to read_committed consumers and are written again.",
		}),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "armory_restore_transaction_duration_seconds", Help: "Time from a transaction's begin to its acknowledged commit: produce latency of its records.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_restore_errors_total", Help: "Restore attempts that failed and were retried, by kind (kafka, other).",
		}, []string{"kind"}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "armory_worker_lease_held", Help: "1 while this worker holds its resource's Lease.",
		}),
	}
	reg.MustRegister(m.recordsRestored, m.bytesRestored, m.txnCommitted, m.txnAborted, m.commitDuration, m.errors, m.leaseHeld)
	return m
}
