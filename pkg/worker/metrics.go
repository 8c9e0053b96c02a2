package worker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the worker's Prometheus metrics.
type metrics struct {
	recordsRead      *prometheus.CounterVec
	recordsStored    *prometheus.CounterVec
	bytesStored      *prometheus.CounterVec
	segmentsUploaded *prometheus.CounterVec
	uploadDuration   *prometheus.HistogramVec
	lag              *prometheus.GaugeVec
	openRecords      *prometheus.GaugeVec
	earlyCloses      *prometheus.CounterVec
	gaps             *prometheus.CounterVec
	errors           *prometheus.CounterVec
	leaseHeld        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_records_read_total", Help: "Records read from Kafka into segments, by topic; a record read again after a failed upload or a restart counts again.",
		}, []string{"topic"}),
		recordsStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_records_stored_total", Help: "Records stored in uploaded segments, by topic.",
		}, []string{"topic"}),
		bytesStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_bytes_stored_total", Help: "Uncompressed record bytes (keys, values, headers) stored, by topic.",
		}, []string{"topic"}),
		segmentsUploaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_segments_uploaded_total", Help: "Segments uploaded, by topic.",
		}, []string{"topic"}),
		uploadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "armory_worker_upload_duration_seconds", Help: "Time to upload one segment, by topic.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "armory_worker_lag_records", Help: "Records in Kafka not yet in storage, by topic and partition.",
		}, []string{"topic", "partition"}),
		openRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "armory_worker_open_segment_records", Help: "Records read into the open segment, not yet uploaded (what a crash would re-read), by topic and partition.",
		}, []string{"topic", "partition"}),
		earlyCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_segments_closed_early_total", Help: "Segments closed before their rollover triggers because the worker's memory budget was full, by topic.",
		}, []string{"topic"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_gaps_total", Help: "Gap markers written because Kafka's retention removed records before the backup reached them.",
		}, []string{"topic"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armory_worker_errors_total", Help: "Errors by topic and kind (kafka, storage, conflict, stream); each is retried.",
		}, []string{"topic", "kind"}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "armory_worker_lease_held", Help: "1 while this worker holds its resource's Lease.",
		}),
	}
	reg.MustRegister(m.recordsRead, m.recordsStored, m.bytesStored, m.segmentsUploaded, m.uploadDuration, m.lag, m.openRecords, m.earlyCloses, m.gaps, m.errors, m.leaseHeld)
	return m
}
