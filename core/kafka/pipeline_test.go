package kafka

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// A response must not wait behind a later pipelined request that parks: a
// client that sends a request and then a long-polling Fetch on the same
// connection (librdkafka does, with its heartbeats and fetches to one
// broker) gets the first answer at once, not after the fetch's MaxWait.
func TestPipelinedResponseNotHeldByLongPoll(t *testing.T) {
	tb := startBroker(t, nil)
	tb.createTopic(t, "idle", 1)
	c := dialRaw(t, tb.addr)

	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(0)
	f := kmsg.NewPtrFetchRequest()
	f.SetVersion(11)
	f.ReplicaID, f.MaxWaitMillis, f.MinBytes, f.MaxBytes = -1, 3000, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "idle"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)

	// Both requests in one write, so the broker sees the fetch buffered
	// behind the ApiVersions.
	c.write(append(encodeRequest(av, 1), encodeRequest(f, 2)...))
	start := time.Now()
	b, err := c.readFrame()
	if err != nil {
		t.Fatalf("reading ApiVersions response: %v", err)
	}
	if _, err := decodeResponse(b, av, 0, 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ApiVersions response took %v: held back until the pipelined fetch's long poll ended", d)
	}
	if b, err = c.readFrame(); err != nil {
		t.Fatalf("reading Fetch response: %v", err)
	}
	if _, err := decodeResponse(b, f, 11, 2); err != nil {
		t.Fatal(err)
	}
}

// A Fetch's size is capped by the broker (Kafka's fetch.max.bytes), not
// only by what the client asks for: a client asking for a gigabyte must not
// make the broker read and hold that much for one response.
func TestFetchResponseCappedByBroker(t *testing.T) {
	tb := startBroker(t, func(_ *broker.Config, k *Config) { k.MaxFetchBytes = 64 << 10 })
	tb.createTopic(t, "big", 2)
	c := dialRaw(t, tb.addr)
	value := bytes.Repeat([]byte("x"), 10<<10)
	for p := int32(0); p < 2; p++ {
		for i := range 20 {
			recs := []record.Record{{Timestamp: time.Now().UnixMilli(), Value: value, Key: fmt.Appendf(nil, "%d", i)}}
			b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
			if err != nil {
				t.Fatal(err)
			}
			resp := c.roundTrip(produceRequest(9, "big", p, b)).(*kmsg.ProduceResponse)
			if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatalf("produce: %v", kerr.ErrorForCode(code))
			}
		}
	}
	for _, maxBytes := range []int32{1 << 30, 0} { // 0: v3+ clients may send it meaning "no limit"
		f := kmsg.NewPtrFetchRequest()
		f.SetVersion(11)
		f.ReplicaID, f.MaxBytes = -1, maxBytes
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "big"
		for p := int32(0); p < 2; p++ {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = p, 1<<30, -1
			ft.Partitions = append(ft.Partitions, fp)
		}
		f.Topics = append(f.Topics, ft)
		resp := c.roundTrip(f).(*kmsg.FetchResponse)
		total := 0
		for _, rp := range resp.Topics[0].Partitions {
			if rp.ErrorCode != 0 {
				t.Fatalf("fetch: %v", kerr.ErrorForCode(rp.ErrorCode))
			}
			total += len(rp.RecordBatches)
		}
		if total == 0 || total > 64<<10 {
			t.Fatalf("fetch with MaxBytes %d returned %d bytes; the broker caps a response at 64 KiB", maxBytes, total)
		}
	}
}

// gateFS blocks every File.Sync while the gate is closed.
type gateFS struct {
	vfs.FS
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (g *gateFS) wait() {
	g.mu.Lock()
	ch := g.gate
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (g *gateFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return gateFile{f, g}, nil
}
func (g *gateFS) Create(name string) (vfs.File, error)     { return g.wrap(g.FS.Create(name)) }
func (g *gateFS) OpenAppend(name string) (vfs.File, error) { return g.wrap(g.FS.OpenAppend(name)) }

type gateFile struct {
	vfs.File
	g *gateFS
}

func (f gateFile) Sync() error { f.g.wait(); return f.File.Sync() }

// One Produce request naming many partitions must not start a goroutine per
// partition: the count comes from the client (a 100 MiB request can name
// millions), so the work per request is bounded.
func TestProduceWorkersBounded(t *testing.T) {
	gfs := &gateFS{FS: vfs.OS}
	tb := startBroker(t, func(b *broker.Config, _ *Config) { b.FS = gfs })
	const parts = 64
	tb.createTopic(t, "wide", parts)
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "wide"
	for p := int32(0); p < parts; p++ {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, testBatch(t, record.CodecNone, 1, fmt.Sprint(p))
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)

	gate := make(chan struct{})
	gfs.mu.Lock()
	gfs.gate = gate
	gfs.mu.Unlock()
	c := dialRaw(t, tb.addr)
	c.corr++
	c.write(encodeRequest(req, c.corr))
	// Wait until the fsyncs pile up, then count the request's goroutines.
	var n int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if n = goroutinesIn("gateFS).wait"); n >= produceWorkers || n >= parts {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let any further workers pile up too
	n = goroutinesIn("gateFS).wait")
	gfs.mu.Lock()
	gfs.gate = nil
	gfs.mu.Unlock()
	close(gate)
	b, err := c.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := decodeResponse(b, req, 9, c.corr)
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range resp.(*kmsg.ProduceResponse).Topics[0].Partitions {
		if rp.ErrorCode != 0 {
			t.Fatalf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
		}
	}
	if n > produceWorkers {
		t.Fatalf("%d goroutines of one produce request waited at once for an fsync; want at most %d", n, produceWorkers)
	}
}
