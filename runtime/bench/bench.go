// Package bench is `weir bench`: a load generator for any Kafka-protocol
// broker (an embedded weir node by default) that reports throughput and
// latency percentiles from an HDR histogram.
//
// Latency is measured open-loop when a target rate is set: record i is due
// at start + i/rate, and its latency runs from when it was due, not from
// when the producer got around to sending it, so a stall shows up in the
// percentiles instead of silently lowering the send rate (coordinated
// omission).
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/runtime/server"
)

// Options describe a workload.
type Options struct {
	// Brokers to connect to; empty starts an embedded weir node in a
	// temporary directory (removed afterwards).
	Brokers []string
	// Topic to use; default weir-bench-RANDOM, created with Partitions.
	Topic      string
	Partitions int32
	// TopicConfigs are set on the topic when it is created (Kafka names,
	// e.g. flush.messages); an existing topic is used as it is.
	TopicConfigs map[string]string
	// Records to send (or consume); with Duration > 0, run for that long instead.
	Records  int64
	Duration time.Duration
	// RecordSize is the value size in bytes.
	RecordSize int
	// Keys: 0 sends records without keys; N > 0 picks keys uniformly from N.
	Keys int
	// Producers is the number of producer clients, each with its own connection.
	Producers int
	// Acks: "all", "1" or "0".
	Acks string
	// Compression: none, gzip, snappy, lz4, zstd.
	Compression string
	// Linger and BatchBytes tune the producer's batching.
	Linger     time.Duration
	BatchBytes int32
	// Sync (produce only) sends one record per Produce request to
	// partition 0 over one plain connection to the first broker, waiting for
	// each response: the broker's own latency, without a client library's
	// batching and goroutine hand-offs.
	Sync bool
	// Rate is the target records per second over all producers; 0 sends as
	// fast as acknowledgements allow (closed loop).
	Rate int64
	// Progress receives a line per second while running; nil for none.
	Progress io.Writer
	// DataDir for the embedded node; default a temporary directory.
	DataDir string
}

// Result is a run's outcome. Latencies are in microseconds.
type Result struct {
	Mode          string        `json:"mode"`
	Brokers       []string      `json:"brokers"`
	Embedded      bool          `json:"embedded"`
	Topic         string        `json:"topic"`
	Records       int64         `json:"records"`
	Bytes         int64         `json:"bytes"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	RecordsPerSec float64       `json:"records_per_sec"`
	MBPerSec      float64       `json:"mb_per_sec"`
	Latency       *Latency      `json:"latency_us,omitempty"`
	Errors        int64         `json:"errors"`
}

// Latency percentiles in microseconds.
type Latency struct {
	P50  int64 `json:"p50"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p99_9"`
	Max  int64 `json:"max"`
}

func (o *Options) defaults() error {
	if o.Records <= 0 && o.Duration <= 0 {
		o.Records = 1_000_000
	}
	if o.RecordSize < 0 {
		return errors.New("bench: negative record size")
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	if o.Producers <= 0 {
		o.Producers = 1
	}
	if o.Acks == "" {
		o.Acks = "1"
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if o.Topic == "" {
		var b [4]byte
		rand.Read(b[:])
		o.Topic = "weir-bench-" + hex.EncodeToString(b[:])
	}
	return nil
}

// env is a connected benchmark environment: brokers, an admin client, and
// the embedded node to stop afterwards.
type env struct {
	brokers  []string
	embedded *server.Server
	tmp      string
	adm      *kadm.Client
	cl       *kgo.Client
}

func setup(ctx context.Context, o *Options) (*env, error) {
	e := &env{brokers: o.Brokers}
	if len(e.brokers) == 0 {
		dir := o.DataDir
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "weir-bench-"); err != nil {
				return nil, err
			}
			e.tmp = dir
		}
		srv, err := server.Start(ctx, server.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "off", GroupInitialRebalanceDelay: -1})
		if err != nil {
			e.close()
			return nil, fmt.Errorf("bench: embedded node: %w", err)
		}
		e.embedded = srv
		e.brokers = []string{srv.KafkaAddr()}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DialTimeout(10*time.Second), kgo.RequestTimeoutOverhead(10*time.Second))
	if err != nil {
		e.close()
		return nil, err
	}
	e.cl, e.adm = cl, kadm.NewClient(cl)
	return e, nil
}

// prepare fills o's defaults, connects (starting the embedded node when no
// brokers are given) and creates the topic; the caller closes the env.
func prepare(ctx context.Context, o *Options) (*env, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	e, err := setup(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := e.ensureTopic(ctx, o.Topic, o.Partitions, o.TopicConfigs); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// ensureTopic creates the topic unless it exists.
func (e *env) ensureTopic(ctx context.Context, topic string, partitions int32, configs map[string]string) error {
	var cfg map[string]*string
	for k, v := range configs {
		if cfg == nil {
			cfg = make(map[string]*string)
		}
		cfg[k] = &v
	}
	resp, err := e.adm.CreateTopic(ctx, partitions, 1, cfg, topic)
	if err != nil {
		return fmt.Errorf("bench: create topic %s: %w", topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, errTopicExists) {
		return fmt.Errorf("bench: create topic %s: %w", topic, resp.Err)
	}
	return nil
}

func (e *env) close() {
	if e.cl != nil {
		e.cl.Close()
	}
	if e.embedded != nil {
		e.embedded.Shutdown(context.Background())
	}
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
	}
}

// recorder collects latencies from many goroutines and reports progress.
type recorder struct {
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram
	records atomic.Int64
	bytes   atomic.Int64
	errors  atomic.Int64
}

func newRecorder() *recorder {
	return &recorder{hist: hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)}
}

func (r *recorder) observe(d time.Duration) {
	us := max(d.Microseconds(), 1)
	r.mu.Lock()
	r.hist.RecordValue(min(us, r.hist.HighestTrackableValue()))
	r.mu.Unlock()
}

func (r *recorder) latency() *Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hist.TotalCount() == 0 {
		return nil
	}
	return &Latency{P50: r.hist.ValueAtQuantile(50), P99: r.hist.ValueAtQuantile(99), P999: r.hist.ValueAtQuantile(99.9), Max: r.hist.Max()}
}

// progress prints a line per second until stop is closed.
func (r *recorder) progress(w io.Writer, mode string, stop <-chan struct{}) {
	if w == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	var lastRecs, lastBytes int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			recs, bytes := r.records.Load(), r.bytes.Load()
			dt := now.Sub(last).Seconds()
			line := fmt.Sprintf("%s %5.1fs: %d records, %.0f records/s, %.1f MB/s", mode, now.Sub(start).Seconds(), recs,
				float64(recs-lastRecs)/dt, float64(bytes-lastBytes)/dt/1e6)
			if l := r.latency(); l != nil {
				line += fmt.Sprintf(", p50 %s p99 %s", us(l.P50), us(l.P99))
			}
			if e := r.errors.Load(); e > 0 {
				line += fmt.Sprintf(", %d errors", e)
			}
			fmt.Fprintln(w, line)
			lastRecs, lastBytes, last = recs, bytes, now
		}
	}
}

func us(v int64) string { return (time.Duration(v) * time.Microsecond).String() }

func finish(mode string, e *env, o *Options, r *recorder, elapsed time.Duration) Result {
	res := Result{Mode: mode, Brokers: e.brokers, Embedded: e.embedded != nil, Topic: o.Topic,
		Records: r.records.Load(), Bytes: r.bytes.Load(), Elapsed: elapsed, Errors: r.errors.Load(), Latency: r.latency()}
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsPerSec = float64(res.Records) / s
		res.MBPerSec = float64(res.Bytes) / s / 1e6
	}
	return res
}

// Format prints a result for people.
func (r Result) Format(w io.Writer) {
	where := fmt.Sprint(r.Brokers)
	if r.Embedded {
		where = "embedded weir node " + where
	}
	fmt.Fprintf(w, "%s: %d records (%.1f MB) in %v on %s, topic %s\n", r.Mode, r.Records, float64(r.Bytes)/1e6, r.Elapsed.Round(time.Millisecond), where, r.Topic)
	fmt.Fprintf(w, "  throughput: %.0f records/s, %.1f MB/s\n", r.RecordsPerSec, r.MBPerSec)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  latency:    p50 %s  p99 %s  p99.9 %s  max %s\n", us(l.P50), us(l.P99), us(l.P999), us(l.Max))
	}
	if r.Errors > 0 {
		fmt.Fprintf(w, "  errors:     %d\n", r.Errors)
	}
}
