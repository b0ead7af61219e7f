package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Consume reads Records records (or for Duration) from the start of the
// topic and measures throughput. When the topic holds fewer records it is
// filled first with a produce run that is not measured.
func Consume(ctx context.Context, o Options) (Result, error) {
	e, err := prepare(ctx, &o)
	if err != nil {
		return Result{}, err
	}
	defer e.close()
	have, err := e.records(ctx, o.Topic)
	if err != nil {
		return Result{}, err
	}
	want := o.Records
	if o.Duration > 0 && want <= 0 {
		want = have
	}
	if have < want {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "consume: filling %s with %d records first (not measured)\n", o.Topic, want-have)
		}
		fill := o
		fill.Records, fill.Duration, fill.Rate, fill.Acks = want-have, 0, 0, "1"
		if _, err := produceLoad(ctx, e, &fill, newRecorder(), func(*kgo.Record) {}); err != nil {
			return Result{}, err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	r := newRecorder()
	stop := make(chan struct{})
	go r.progress(o.Progress, "consume", stop)
	defer close(stop)
	start := time.Now()
	for r.records.Load() < want {
		if o.Duration > 0 && time.Since(start) >= o.Duration {
			break
		}
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		fetches.EachError(func(string, int32, error) { r.errors.Add(1) })
		fetches.EachRecord(func(rec *kgo.Record) {
			r.records.Add(1)
			r.bytes.Add(int64(len(rec.Value)))
		})
	}
	return finish("consume", e, &o, r, time.Since(start)), nil
}

// records is the number of records in the topic (sum of high watermarks
// minus log starts).
func (e *env) records(ctx context.Context, topic string) (int64, error) {
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	starts, err := e.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(lo kadm.ListedOffset) {
		if s, ok := starts.Lookup(lo.Topic, lo.Partition); ok {
			n += lo.Offset - s.Offset
		}
	})
	return n, nil
}
