package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
)

// metrics implements kafka.Observer with Prometheus collectors, and exports
// partition offsets and sizes read from the broker at scrape time.
type metrics struct {
	requests    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	connections prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, b *broker.Broker) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_requests_total", Help: "Kafka requests handled, by API.",
		}, []string{"api"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_request_errors_total", Help: "Kafka requests that closed their connection (malformed, unsupported), by API.",
		}, []string{"api"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weir_kafka_request_duration_seconds", Help: "Time to handle a Kafka request, including long-poll waits, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"api"}),
		bytesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_kafka_bytes_in_total", Help: "Request bytes read."}),
		bytesOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_kafka_bytes_out_total", Help: "Response bytes written."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "weir_kafka_connections", Help: "Open Kafka connections."}),
	}
	reg.MustRegister(m.requests, m.errors, m.latency, m.bytesIn, m.bytesOut, m.connections, &partitionCollector{b: b},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return "Unknown" + strconv.Itoa(int(key))
}

func (m *metrics) Request(key int16, d time.Duration, failed bool) {
	name := apiName(key)
	if failed {
		m.errors.WithLabelValues(name).Inc()
		return
	}
	m.requests.WithLabelValues(name).Inc()
	m.latency.WithLabelValues(name).Observe(d.Seconds())
}

func (m *metrics) Bytes(in, out int) {
	if in > 0 {
		m.bytesIn.Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.Add(float64(out))
	}
}

func (m *metrics) Connections(delta int) { m.connections.Add(float64(delta)) }

// partitionCollector reports per-partition offsets and sizes.
type partitionCollector struct{ b *broker.Broker }

var (
	descLEO   = prometheus.NewDesc("weir_partition_log_end_offset", "Log end offset.", []string{"topic", "partition"}, nil)
	descHW    = prometheus.NewDesc("weir_partition_high_watermark", "High watermark.", []string{"topic", "partition"}, nil)
	descStart = prometheus.NewDesc("weir_partition_log_start_offset", "Log start offset.", []string{"topic", "partition"}, nil)
	descSize  = prometheus.NewDesc("weir_partition_log_size_bytes", "Bytes in the partition's segments.", []string{"topic", "partition"}, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLEO
	ch <- descHW
	ch <- descStart
	ch <- descSize
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.b.Stats() {
		part := strconv.Itoa(int(p.Partition))
		ch <- prometheus.MustNewConstMetric(descLEO, prometheus.GaugeValue, float64(p.LogEnd), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(descHW, prometheus.GaugeValue, float64(p.HW), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(p.LogStart), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(p.SizeBytes), p.Topic, part)
	}
}
