package server_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/record"
)

var ackModes = []struct {
	name string
	kgo  kgo.Acks
	n    int16
}{
	{"acks0", kgo.NoAck(), 0},
	{"acks1", kgo.LeaderAck(), 1},
	{"acksall", kgo.AllISRAcks(), -1},
}

// TestKgoProduceAcksCodecs produces with franz-go under every acks mode and
// every codec, then checks that the log holds the batches as sent (the
// producer's codec, idempotence fields) and the records byte for byte,
// both decoded from a raw Fetch and consumed through kgo.
func TestKgoProduceAcksCodecs(t *testing.T) {
	b := startBroker(t)
	adm := newAdmin(t, b.addr())
	for _, am := range ackModes {
		for _, c := range codecs {
			t.Run(am.name+"/"+c.name, func(t *testing.T) {
				topic := "kgo-" + am.name + "-" + c.name
				createTopic(t, b.addr(), topic, 1, nil)
				opts := []kgo.Opt{
					kgo.RequiredAcks(am.kgo), kgo.ProducerBatchCompression(c.kgo),
					kgo.RecordPartitioner(kgo.ManualPartitioner()),
				}
				idempotent := am.n == -1
				if !idempotent {
					opts = append(opts, kgo.DisableIdempotentWrite())
				}
				cl := newClient(t, b.addr(), opts...)
				ctx := testCtx(t, 30*time.Second)
				want := testMessages(topic, 40)
				// Two rounds so that the log has more than one batch.
				for half := range 2 {
					var recs []*kgo.Record
					for _, m := range want[half*20 : half*20+20] {
						recs = append(recs, toKgo(topic, 0, m))
					}
					res := cl.ProduceSync(ctx, recs...)
					if err := res.FirstErr(); err != nil {
						t.Fatalf("produce: %v", err)
					}
					if am.n != 0 {
						for i, r := range recs {
							if want := int64(half*20 + i); r.Offset != want {
								t.Fatalf("record %d acknowledged at offset %d, want %d", half*20+i, r.Offset, want)
							}
						}
					}
				}
				waitHW(t, adm, topic, 0, int64(len(want)))

				batches := readLog(t, cl, topic, 0)
				for _, sb := range batches {
					h := sb.Header
					if h.Codec() != c.codec {
						t.Errorf("batch at %d stored with codec %v, want %v", h.BaseOffset, h.Codec(), c.codec)
					}
					if c.codec == record.CodecSnappy && isXerial(sb) {
						t.Errorf("kgo snappy batch at %d is in xerial framing; kgo sends raw snappy blocks", h.BaseOffset)
					}
					if idempotent != (h.ProducerID >= 0) {
						t.Errorf("batch at %d: producer id %d, idempotent %v", h.BaseOffset, h.ProducerID, idempotent)
					}
				}
				if len(batches) < 2 {
					t.Errorf("%d batches, want at least 2", len(batches))
				}
				checkMessages(t, "raw fetch", want, storedMessages(logRecords(batches)))

				consumer := newClient(t, b.addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
				var got []msg
				for i, r := range pollRecords(t, consumer, len(want)) {
					if r.Offset != int64(i) {
						t.Fatalf("consumed offset %d at position %d", r.Offset, i)
					}
					got = append(got, fromKgo(r))
				}
				checkMessages(t, "kgo consume", want, got)
			})
		}
	}
}

// fetchWatch counts Fetch requests a kgo client has written: once one is
// written, its start offset has been resolved.
type fetchWatch struct{ n atomic.Int64 }

func (w *fetchWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.Fetch.Int16() && err == nil {
		w.n.Add(1)
	}
}

func (w *fetchWatch) wait(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("consumer sent no Fetch")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKgoConsumeStartOffsets consumes with franz-go from every kind of start
// offset: earliest, latest (then only new records), exact, by timestamp,
// and relative to either end.
func TestKgoConsumeStartOffsets(t *testing.T) {
	b := startBroker(t)
	const topic = "starts"
	createTopic(t, b.addr(), topic, 1, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	want := testMessages(topic, 20)
	for i := range want {
		want[i].Timestamp = base + int64(i)*1000 // record i is at base+i s
	}
	prod := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testCtx(t, 30*time.Second)
	for _, m := range want { // one batch per record: timestamps and offsets have batch granularity otherwise
		if err := prod.ProduceSync(ctx, toKgo(topic, 0, m)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	consume := func(t *testing.T, off kgo.Offset, hooks ...kgo.Hook) *kgo.Client {
		opts := []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: off}}), kgo.FetchMaxWait(5 * time.Second)}
		if len(hooks) > 0 {
			opts = append(opts, kgo.WithHooks(hooks...))
		}
		return newClient(t, b.addr(), opts...)
	}
	check := func(t *testing.T, cl *kgo.Client, from int) {
		t.Helper()
		var got []msg
		for i, r := range pollRecords(t, cl, len(want)-from) {
			if r.Offset != int64(from+i) {
				t.Fatalf("record %d has offset %d, want %d", i, r.Offset, from+i)
			}
			got = append(got, fromKgo(r))
		}
		checkMessages(t, "consume", want[from:], got)
	}

	t.Run("earliest", func(t *testing.T) { check(t, consume(t, kgo.NewOffset().AtStart()), 0) })
	t.Run("exact", func(t *testing.T) { check(t, consume(t, kgo.NewOffset().At(7)), 7) })
	t.Run("timestamp", func(t *testing.T) {
		// The first record at or after base+5.5s is record 6.
		check(t, consume(t, kgo.NewOffset().AfterMilli(base+5500)), 6)
		adm := newAdmin(t, b.addr())
		for _, c := range []struct{ ms, off int64 }{{base + 5500, 6}, {base, 0}, {base - 1, 0}, {base + 19000, 19}} {
			lo, err := adm.ListOffsetsAfterMilli(ctx, c.ms, topic)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := lo.Lookup(topic, 0)
			if o.Err != nil || o.Offset != c.off {
				t.Errorf("ListOffsetsAfterMilli(%d): offset %d err %v, want %d", c.ms-base, o.Offset, o.Err, c.off)
			}
			if c.off > 0 && o.Timestamp != base+c.off*1000 {
				t.Errorf("ListOffsetsAfterMilli(%d): timestamp %d, want %d", c.ms-base, o.Timestamp-base, c.off*1000)
			}
		}
		// After the newest record: no offset.
		lo, err := adm.ListOffsetsAfterMilli(ctx, base+60_000, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := lo.Lookup(topic, 0); o.Err != nil || o.Offset != 20 {
			t.Errorf("ListOffsetsAfterMilli(after newest): offset %d err %v, want the end offset (kadm maps Kafka's -1 to it)", o.Offset, o.Err)
		}
		// On the wire the broker answers -1, as Kafka does.
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = base + 60_000
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, prod)
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			t.Errorf("ListOffsets(after newest) = offset %d timestamp %d error %d, want -1 -1 0", p.Offset, p.Timestamp, p.ErrorCode)
		}
	})
	t.Run("relative-end", func(t *testing.T) { check(t, consume(t, kgo.NewOffset().AtEnd().Relative(-4)), 16) })
	t.Run("relative-start", func(t *testing.T) { check(t, consume(t, kgo.NewOffset().AtStart().Relative(3)), 3) })

	// Latest runs last: it appends.
	t.Run("latest", func(t *testing.T) {
		w := &fetchWatch{}
		cl := consume(t, kgo.NewOffset().AtEnd(), w)
		pctx, cancel := context.WithCancel(ctx)
		polled := make(chan kgo.Fetches, 1)
		go func() { polled <- cl.PollFetches(pctx) }()
		w.wait(t) // the consumer has resolved "latest" and is waiting at offset 20
		more := testMessages("late", 3)
		for _, m := range more {
			if err := prod.ProduceSync(ctx, toKgo(topic, 0, m)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		var got []*kgo.Record
		fs := <-polled
		cancel()
		got = append(got, fs.Records()...)
		if len(got) < len(more) {
			got = append(got, pollRecords(t, cl, len(more)-len(got))...)
		}
		if got[0].Offset != 20 {
			t.Fatalf("latest consumer started at offset %d, want 20", got[0].Offset)
		}
		var gm []msg
		for _, r := range got {
			gm = append(gm, fromKgo(r))
		}
		checkMessages(t, "latest", more, gm)
	})
}

// TestLongPollWakesOnAppend parks a Fetch with MaxWait 5s at the end of a
// partition and produces 200ms later: the Fetch must return with the
// record right after the append, not when MaxWait expires.
func TestLongPollWakesOnAppend(t *testing.T) {
	b := startBroker(t)
	const topic = "longpoll"
	createTopic(t, b.addr(), topic, 1, nil)
	cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testCtx(t, 30*time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fetcher := newClient(t, b.addr()) // its own connection: the fetch parks there
	if _, err := fetchRaw(ctx, fetcher, topic, 0, 0, 0); err != nil {
		t.Fatal(err) // connect first so connection setup is not timed
	}

	type result struct {
		p    kmsg.FetchResponseTopicPartition
		err  error
		done time.Time
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		p, err := fetchRaw(ctx, fetcher, topic, 0, 1, 5000)
		ch <- result{p, err, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond) // the scenario: the record arrives 200ms into the wait
	select {
	case r := <-ch:
		t.Fatalf("fetch returned before anything was produced, after %v: %+v %v", r.done.Sub(start), r.p, r.err)
	default:
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("second")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.p.RecordBatches) == 0 {
		t.Fatalf("fetch returned without records after %v", r.done.Sub(start))
	}
	if lag := r.done.Sub(acked); lag > 100*time.Millisecond {
		t.Fatalf("fetch returned %v after the produce was acknowledged (%v after it started); want a wake-up by the append", lag, r.done.Sub(start))
	}
	t.Logf("fetch returned %v after the produce ack, %v after it started", r.done.Sub(acked), r.done.Sub(start))
}

func lookup(offs kadm.ListedOffsets, topic string, p int32) (int64, error) {
	o, ok := offs.Lookup(topic, p)
	if !ok {
		return -1, fmt.Errorf("no offset for %s/%d", topic, p)
	}
	return o.Offset, o.Err
}

// TestStartOffsetsInsideCompressedBatch starts consumers at offsets and
// timestamps that fall inside one compressed batch: the broker returns the
// whole batch, ListOffsets answers the exact record, and both clients skip
// the records before their start.
func TestStartOffsetsInsideCompressedBatch(t *testing.T) {
	b := startBroker(t)
	const topic = "midbatch"
	createTopic(t, b.addr(), topic, 1, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	want := testMessages(topic, 10)
	var recs []*kgo.Record
	for i := range want {
		want[i].Timestamp = base + int64(i)*1000
		recs = append(recs, toKgo(topic, 0, want[i]))
	}
	cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	ctx := testCtx(t, 30*time.Second)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if batches := readLog(t, cl, topic, 0); len(batches) != 1 || batches[0].Header.Codec() != record.CodecZstd {
		t.Fatalf("want one zstd batch, have %d batches", len(batches))
	}

	lo, err := newAdmin(t, b.addr()).ListOffsetsAfterMilli(ctx, base+5500, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup(topic, 0); o.Offset != 6 || o.Timestamp != base+6000 {
		t.Fatalf("ListOffsetsAfterMilli(base+5.5s) = offset %d at %d, want 6 at +6000", o.Offset, o.Timestamp-base)
	}

	for _, c := range []struct {
		name string
		off  kgo.Offset
		from int
	}{{"exact", kgo.NewOffset().At(3), 3}, {"timestamp", kgo.NewOffset().AfterMilli(base + 5500), 6}} {
		t.Run("kgo-"+c.name, func(t *testing.T) {
			consumer := newClient(t, b.addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: c.off}}))
			var got []msg
			for i, r := range pollRecords(t, consumer, len(want)-c.from) {
				if r.Offset != int64(c.from+i) {
					t.Fatalf("record %d at offset %d, want %d", i, r.Offset, c.from+i)
				}
				got = append(got, fromKgo(r))
			}
			checkMessages(t, c.name, want[c.from:], got)
		})
	}
	t.Run("sarama", func(t *testing.T) {
		client, err := sarama.NewClient([]string{b.addr()}, saramaConfig(sarama.V2_8_0_0))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		off, err := client.GetOffset(topic, 0, base+5500)
		if err != nil || off != 6 {
			t.Fatalf("GetOffset(base+5.5s) = %d, %v; want 6", off, err)
		}
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var got []msg
		for i, cm := range consumeSarama(t, pc, len(want)-3) {
			if cm.Offset != int64(3+i) {
				t.Fatalf("message %d at offset %d, want %d", i, cm.Offset, 3+i)
			}
			got = append(got, fromSarama(cm))
		}
		checkMessages(t, "sarama from 3", want[3:], got)
	})
}
