package pipelines

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipelines' Prometheus metrics, labelled by pipeline (and
// stage). One Metrics serves every pipeline of a process.
type Metrics struct {
	in       *prometheus.CounterVec   // pipeline
	out      *prometheus.CounterVec   // pipeline, output
	filtered *prometheus.CounterVec   // pipeline
	failed   *prometheus.CounterVec   // pipeline, stage, policy
	stageIn  *prometheus.CounterVec   // pipeline, stage
	stageOut *prometheus.CounterVec   // pipeline, stage
	batch    *prometheus.HistogramVec // pipeline
	lag      *prometheus.GaugeVec     // pipeline, topic, partition
}

// NewMetrics registers the pipeline metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_records_in_total",
			Help: "Input records read by the pipeline."}, []string{"pipeline"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_records_out_total",
			Help: "Records written to an output topic (acknowledged)."}, []string{"pipeline", "output"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_records_filtered_total",
			Help: "Input records that produced no output and no error."}, []string{"pipeline"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_records_errored_total",
			Help: "Input records a stage failed on, by the policy applied (dead_letter, skip, halt; retries not counted)."}, []string{"pipeline", "stage", "policy"}),
		stageIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_stage_records_in_total",
			Help: "Records into a stage."}, []string{"pipeline", "stage"}),
		stageOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_pipeline_stage_records_out_total",
			Help: "Records out of a stage."}, []string{"pipeline", "stage"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weir_pipeline_batch_seconds",
			Help:    "Time from a batch being read to its outputs acknowledged and its offsets committed.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"pipeline"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "weir_pipeline_consumer_lag",
			Help: "Records between the pipeline's position and the partition's high watermark."}, []string{"pipeline", "topic", "partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.in, m.out, m.filtered, m.failed, m.stageIn, m.stageOut, m.batch, m.lag)
	}
	return m
}

// Forget drops a pipeline's series (when it is removed).
func (m *Metrics) Forget(pipeline string) {
	for _, v := range []*prometheus.CounterVec{m.in, m.out, m.filtered, m.failed, m.stageIn, m.stageOut} {
		v.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
	}
	m.batch.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
	m.lag.DeletePartialMatch(prometheus.Labels{"pipeline": pipeline})
}
