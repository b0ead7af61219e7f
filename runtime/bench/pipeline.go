package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/pipelines"
)

// DefaultPipelineSpec is the pipeline `weir bench pipeline` runs without a
// file: one expr filter from the input topic to an output topic.
const DefaultPipelineSpec = `pipeline: bench-filter
input: {topics: [bench-clicks]}
stages:
  - filter: 'value.country == "NZ" && value.amount > 100'
output: bench-clicks-nz
`

// PipelineOptions describe `weir bench pipeline`.
type PipelineOptions struct {
	// Spec is the pipeline; its first input topic is filled with Records
	// JSON records of about 200 bytes (see PipelineRecord).
	Spec       *pipelines.Spec
	Records    int64
	Partitions int32
	// Brokers; empty starts an embedded node in DataDir (or a temporary
	// directory).
	Brokers  []string
	DataDir  string
	Progress io.Writer
	// OverKafka runs an embedded node's pipeline over the Kafka protocol
	// (like weir pipeline run) instead of in process (like weir serve
	// --pipelines).
	OverKafka bool
}

// PipelineResult compares the pipeline's throughput with the raw produce
// throughput of the same records, measured in the same run.
type PipelineResult struct {
	Pipeline        string        `json:"pipeline"`
	Records         int64         `json:"records"`
	Bytes           int64         `json:"bytes"`
	Outputs         int64         `json:"outputs"`
	Filtered        int64         `json:"filtered"`
	Errored         int64         `json:"errored"`
	ProduceElapsed  time.Duration `json:"produce_elapsed_ns"`
	ProduceRate     float64       `json:"produce_records_per_sec"`
	StartupElapsed  time.Duration `json:"startup_elapsed_ns"`
	PipelineElapsed time.Duration `json:"pipeline_elapsed_ns"`
	PipelineRate    float64       `json:"pipeline_records_per_sec"`
	RatioToProduce  float64       `json:"ratio_to_produce"`
	Embedded        bool          `json:"embedded"`
	InProcess       bool          `json:"in_process"`
}

// PipelineRecord is bench record i (the fill repeats the first 4096): a JSON object of about 200 bytes with
// user_id, country (NZ, AU, US, DE in turn), amount (0..1999), currency,
// page, referrer and ts; its key is the user_id.
func PipelineRecord(i int64) (key, value []byte) {
	countries := [...]string{"NZ", "AU", "US", "DE"}
	user := fmt.Sprintf("user-%06d", i%10000)
	value = fmt.Appendf(nil, `{"user_id":%q,"country":%q,"amount":%d,"currency":"NZD","page":"/products/widgets/%d","referrer":"https://example.com/search?q=widgets","ts":%d}`,
		user, countries[i%4], i%2000, i%50, 1700000000000+i)
	return []byte(user), value
}

// Pipeline fills the pipeline's input topic (timing that as the raw
// produce reference), then runs the pipeline over it from the start and
// times it until every input record is processed and committed.
func Pipeline(ctx context.Context, o PipelineOptions) (*PipelineResult, error) {
	if o.Spec == nil || len(o.Spec.Input.Topics) == 0 {
		return nil, errors.New("bench: no pipeline")
	}
	if o.Records <= 0 {
		o.Records = 1_000_000
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	e, err := setup(ctx, &Options{Brokers: o.Brokers, DataDir: o.DataDir})
	if err != nil {
		return nil, err
	}
	defer e.close()
	topic := o.Spec.Input.Topics[0]
	if err := e.ensureTopic(ctx, topic, o.Partitions, nil); err != nil {
		return nil, err
	}
	res := &PipelineResult{Pipeline: o.Spec.Name, Records: o.Records, Embedded: e.embedded != nil}

	// The reference: the same records produced as fast as the bench
	// producer goes (franz-go, acks=1, 1 MiB batches).
	const distinct = 4096
	keys, values := make([][]byte, distinct), make([][]byte, distinct)
	for i := range int64(distinct) {
		keys[i], values[i] = PipelineRecord(i)
	}
	for i := range o.Records {
		res.Bytes += int64(len(values[i%distinct]))
	}
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "pipeline bench: "+format+"\n", args...)
		}
	}
	progress("producing %d records (%.1f MB) to %s", o.Records, float64(res.Bytes)/1e6, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(1<<20),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	pool := sync.Pool{New: func() any { return new(kgo.Record) }}
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			once.Do(func() { firstErr = err })
		}
		*r = kgo.Record{}
		pool.Put(r)
	}
	start := time.Now()
	for i := range o.Records {
		r := pool.Get().(*kgo.Record)
		r.Key, r.Value = keys[i%distinct], values[i%distinct]
		cl.Produce(ctx, r, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	res.ProduceElapsed = time.Since(start)
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("bench: %d of %d records not acknowledged: %w", n, o.Records, firstErr)
	}
	res.ProduceRate = perSec(o.Records, res.ProduceElapsed)
	progress("produced at %.0f records/s; running pipeline %s from the start", res.ProduceRate, o.Spec.Name)

	// The pipeline, replayed from the start of the filled topic.
	st := new(pipelines.Stats)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	earliest := pipelines.Start{Kind: pipelines.StartEarliest}
	done := make(chan error, 1)
	start = time.Now()
	ro := pipelines.RunOptions{Brokers: e.brokers, Replay: &earliest, Stats: st}
	if e.embedded != nil && !o.OverKafka {
		ro.Local = e.embedded.LocalBroker() // as weir serve --pipelines runs it
	}
	go func() {
		done <- pipelines.Run(runCtx, o.Spec, ro)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	// The rate counts from the first record read: joining the group and
	// finding the start offsets (StartupElapsed) is not throughput.
	var first time.Time
	for st.Committed.Load() < o.Records {
		if first.IsZero() && st.In.Load() > 0 {
			first = time.Now()
		}
		select {
		case err := <-done:
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("bench: pipeline stopped after %d of %d records: %v", st.Committed.Load(), o.Records, err)
		case <-tick.C:
			progress("%s: %d of %d records processed, %d out", time.Since(start).Round(time.Second), st.Committed.Load(), o.Records, st.Out.Load())
		case <-poll.C:
		}
	}
	if first.IsZero() {
		first = start
	}
	res.StartupElapsed = first.Sub(start)
	res.PipelineElapsed = time.Since(first)
	stop()
	if err := <-done; err != nil {
		return nil, err
	}
	res.PipelineRate = perSec(o.Records, res.PipelineElapsed)
	res.InProcess = ro.Local != nil
	res.Outputs, res.Filtered, res.Errored = st.Out.Load(), st.Filtered.Load(), st.Failed.Load()
	if res.ProduceRate > 0 {
		res.RatioToProduce = res.PipelineRate / res.ProduceRate
	}
	return res, nil
}

// Format prints the result for people.
func (r *PipelineResult) Format(w io.Writer) {
	fmt.Fprintf(w, "pipeline %s over %d records (%.1f MB of ~200-byte JSON)\n", r.Pipeline, r.Records, float64(r.Bytes)/1e6)
	fmt.Fprintf(w, "  raw produce (franz-go, acks=1): %10.0f records/s  (%v)\n", r.ProduceRate, r.ProduceElapsed.Round(time.Millisecond))
	how := "over the Kafka protocol"
	if r.InProcess {
		how = "in process, as weir serve --pipelines runs it"
	}
	fmt.Fprintf(w, "  pipeline %s (read, stages, write outputs acks=all, commit): %10.0f records/s  (%v)\n", how, r.PipelineRate, r.PipelineElapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  ratio pipeline / raw produce: %.2f (the pipeline timed from its first record; %v to join its group and start before that)\n", r.RatioToProduce, r.StartupElapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  records out %d, filtered %d, errored %d\n", r.Outputs, r.Filtered, r.Errored)
}
