package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

var errTopicExists = kerr.TopicAlreadyExists

func producerOpts(e *env, o *Options) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(o.Topic), kgo.MaxBufferedRecords(1 << 20),
		kgo.ProducerBatchMaxBytes(max(o.BatchBytes, 1<<20)), kgo.ProducerLinger(o.Linger)}
	if o.BatchBytes > 0 {
		opts[2] = kgo.ProducerBatchMaxBytes(o.BatchBytes)
	}
	switch o.Acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("bench: acks %q: want all, 1 or 0", o.Acks)
	}
	var codec kgo.CompressionCodec
	switch o.Compression {
	case "none":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("bench: compression %q: want none, gzip, snappy, lz4 or zstd", o.Compression)
	}
	return append(opts, kgo.ProducerBatchCompression(codec)), nil
}

// benchValue is a value of n bytes that compresses about as well as text.
func benchValue(n int) []byte {
	const words = "the quick brown fox jumps over a lazy dog while weir streams logs "
	v := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		if i%16 == 0 {
			v[i] = byte('a' + rng.IntN(26))
		} else {
			v[i] = words[i%len(words)]
		}
	}
	return v
}

// Produce sends records to the topic and measures throughput and the time
// from each record being due to its acknowledgement.
func Produce(ctx context.Context, o Options) (Result, error) {
	e, err := prepare(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	r := newRecorder()
	stop := make(chan struct{})
	go r.progress(o.Progress, "produce", stop)
	var elapsed time.Duration
	if o.Sync {
		elapsed, err = produceSync(ctx, e, &o, r)
	} else {
		elapsed, err = produceLoad(ctx, e, &o, r, func(*kgo.Record) {})
	}
	close(stop)
	if err != nil {
		return Result{}, err
	}
	return finish("produce", e, &o, r, elapsed), nil
}

// waitUntil returns at t or a little after. Latency counts from t, so
// oversleeping shows up as latency: time.Sleep serves waits above 2 ms and
// nanosleep the rest (about 0.1 ms late here, where time.Sleep below a
// millisecond wakes about 1 ms late: the Go netpoller waits in whole
// milliseconds). It never spins: a goroutine spinning on runtime.Gosched
// keeps the scheduler from polling the network and tripled the latency it
// was meant to measure. At high rates the records that fall due during a
// sleep go out together.
func waitUntil(t time.Time) {
	wait := time.Until(t)
	if wait > 2*time.Millisecond {
		time.Sleep(wait - 1500*time.Microsecond)
		wait = time.Until(t)
	}
	if wait > 0 {
		shortSleep(wait)
	}
}

// produceLoad runs the producers; stamp may set fields of each record before
// it is sent (roundtrip stamps the due time).
func produceLoad(ctx context.Context, e *env, o *Options, r *recorder, stamp func(*kgo.Record)) (time.Duration, error) {
	opts, err := producerOpts(e, o)
	if err != nil {
		return 0, err
	}
	value := benchValue(o.RecordSize)
	keys := make([][]byte, o.Keys)
	for i := range keys {
		keys[i] = []byte("key-" + strconv.Itoa(i))
	}
	clients := make([]*kgo.Client, o.Producers)
	for i := range clients {
		if clients[i], err = kgo.NewClient(opts...); err != nil {
			return 0, err
		}
		defer clients[i].Close()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	// Records are pooled and share one promise, which reads the due time
	// from the record's timestamp: the load generator allocates nothing per
	// record, so it measures the broker rather than its own garbage.
	pool := sync.Pool{New: func() any { return new(kgo.Record) }}
	promise := func(rec *kgo.Record, err error) {
		if err != nil {
			r.errors.Add(1)
		} else {
			r.observe(time.Since(rec.Timestamp))
			r.records.Add(1)
			r.bytes.Add(int64(len(rec.Value)))
		}
		*rec = kgo.Record{}
		pool.Put(rec)
	}
	start := time.Now()
	for p, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if o.Records > 0 && o.Duration <= 0 && i >= o.Records {
					break
				}
				due := time.Now()
				if o.Duration > 0 && due.Sub(start) >= o.Duration {
					break
				}
				if o.Rate > 0 {
					due = start.Add(time.Duration(i * int64(time.Second) / o.Rate))
					waitUntil(due)
				}
				rec := pool.Get().(*kgo.Record)
				rec.Value = value
				if len(keys) > 0 {
					rec.Key = keys[rng.IntN(len(keys))]
				}
				rec.Timestamp = due
				stamp(rec)
				cl.Produce(ctx, rec, promise)
			}
			cl.Flush(ctx)
		}()
	}
	wg.Wait()
	return time.Since(start), ctx.Err()
}
