package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dueHeader carries a record's due time (Unix nanoseconds, big-endian) from
// the producer to the consumer: the record timestamp has only millisecond
// precision, too coarse for end-to-end latencies of a few milliseconds.
const dueHeader = "weir-bench-due"

// Roundtrip produces at the target rate while a consumer reads the same
// topic, and measures each record's time from being due at the producer to
// being read by the consumer (end-to-end latency, open-loop).
func Roundtrip(ctx context.Context, o Options) (Result, error) {
	e, err := prepare(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	// The consumer starts at each partition's current end, resolved
	// before anything is produced (a reset to "the end" resolved later
	// could skip records produced meanwhile).
	ends, err := e.adm.ListEndOffsets(ctx, o.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return Result{}, fmt.Errorf("bench: end offsets of %s: %w", o.Topic, err)
	}
	start := map[string]map[int32]kgo.Offset{o.Topic: {}}
	ends.Each(func(l kadm.ListedOffset) { start[o.Topic][l.Partition] = kgo.NewOffset().At(l.Offset) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumePartitions(start), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	r := newRecorder()
	stop := make(chan struct{})
	go r.progress(o.Progress, "roundtrip", stop)
	defer close(stop)
	var wg sync.WaitGroup
	consumeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	produced := newRecorder() // acknowledgements, not reported
	wg.Add(1)
	go func() {
		defer wg.Done()
		for consumeCtx.Err() == nil {
			fetches := cl.PollFetches(consumeCtx)
			now := time.Now()
			fetches.EachError(func(_ string, _ int32, err error) {
				if consumeCtx.Err() == nil {
					r.errors.Add(1)
				}
			})
			fetches.EachRecord(func(rec *kgo.Record) {
				due := rec.Timestamp
				for _, h := range rec.Headers {
					if h.Key == dueHeader && len(h.Value) == 8 {
						due = time.Unix(0, int64(binary.BigEndian.Uint64(h.Value)))
					}
				}
				r.observe(now.Sub(due))
				r.records.Add(1)
				r.bytes.Add(int64(len(rec.Value)))
			})
		}
	}()
	// The stamps are cut from slabs: one allocation per 8192 records.
	var slab []byte
	var slabMu sync.Mutex
	stamp := func(rec *kgo.Record) {
		slabMu.Lock()
		if len(slab) < 8 {
			slab = make([]byte, 8<<13)
		}
		b := slab[:8:8]
		slab = slab[8:]
		slabMu.Unlock()
		binary.BigEndian.PutUint64(b, uint64(rec.Timestamp.UnixNano()))
		rec.Headers = append(rec.Headers[:0], kgo.RecordHeader{Key: dueHeader, Value: b})
	}
	began := time.Now()
	if _, err := produceLoad(ctx, e, &o, produced, stamp); err != nil {
		return Result{}, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.records.Load() < produced.records.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(began)
	cancel()
	wg.Wait()
	r.errors.Add(produced.errors.Load())
	return finish("roundtrip", e, &o, r, elapsed), nil
}
