package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/runtime/server"
)

// dropProxy is a TCP proxy in front of the broker that forwards every
// request but, for every dropEvery-th Produce, throws the broker's
// response away and closes the client's connection: the write happened,
// the client cannot know, and it retries.
type dropProxy struct {
	ln        net.Listener
	target    atomic.Value // string: the broker's address
	dropEvery int64

	produces atomic.Int64
	drops    atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newDropProxy(t *testing.T, dropEvery int64) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, dropEvery: dropEvery, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

func (p *dropProxy) serve(target string) {
	p.target.Store(target)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.handle(c) }()
		}
	}()
}

func (p *dropProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *dropProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// readFrame reads one size-prefixed Kafka frame.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 200<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	buf := make([]byte, 4+n)
	copy(buf, size[:])
	_, err := io.ReadFull(r, buf[4:])
	return buf, err
}

func (p *dropProxy) handle(client net.Conn) {
	if !p.track(client) {
		return
	}
	server, err := net.Dial("tcp", p.target.Load().(string))
	if err != nil {
		client.Close()
		return
	}
	if !p.track(server) {
		client.Close()
		return
	}
	closeBoth := func() { client.Close(); server.Close() }
	var mu sync.Mutex
	drop := map[int32]bool{} // correlation ids whose responses are dropped
	done := make(chan struct{})
	go func() { // client → broker
		defer close(done)
		for {
			f, err := readFrame(client)
			if err != nil {
				closeBoth()
				return
			}
			// After the size: api key int16, version int16, correlation id int32.
			if len(f) >= 12 && int16(binary.BigEndian.Uint16(f[4:])) == kmsg.Produce.Int16() {
				if p.produces.Add(1)%p.dropEvery == 0 {
					mu.Lock()
					drop[int32(binary.BigEndian.Uint32(f[8:]))] = true
					mu.Unlock()
				}
			}
			if _, err := server.Write(f); err != nil {
				closeBoth()
				return
			}
		}
	}()
	for { // broker → client
		f, err := readFrame(server)
		if err != nil {
			closeBoth()
			break
		}
		mu.Lock()
		d := len(f) >= 8 && drop[int32(binary.BigEndian.Uint32(f[4:]))]
		mu.Unlock()
		if d {
			p.drops.Add(1)
			closeBoth() // the produce was written; its response never arrives
			break
		}
		if _, err := client.Write(f); err != nil {
			closeBoth()
			break
		}
	}
	<-done
}

// TestIdempotentProducerRetriesThroughFaults produces through a proxy that
// loses every third Produce response and drops the connection. franz-go
// (idempotent, acks=all) retries the lost batches; the broker must detect
// every retry as a duplicate: each record is in the log exactly once, in
// order per key.
func TestIdempotentProducerRetriesThroughFaults(t *testing.T) {
	proxy := newDropProxy(t, 3)
	b := startBroker(t, func(c *server.Config) { c.AdvertisedAddr = proxy.addr() })
	proxy.serve(b.addr())
	const topic, partitions, keys, n = "idem", 3, 12, 2000
	createTopic(t, b.addr(), topic, partitions, nil)

	cl := newClient(t, proxy.addr(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(500), // many small batches in flight
		kgo.ProducerBatchMaxBytes(1<<10),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		kgo.MetadataMinAge(10*time.Millisecond), // kgo refreshes metadata after a failed produce; do not wait 5s for it
	)
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range n {
		k := i % keys
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "key-%d", k), Value: fmt.Appendf(nil, "key-%d:%d", k, i/keys)}
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d records failed; first: %v", f, firstErr.Load())
	}
	if proxy.drops.Load() == 0 {
		t.Fatalf("the proxy dropped no responses (%d produces): the test injected nothing", proxy.produces.Load())
	}
	t.Logf("%d produce requests through the proxy, %d responses dropped", proxy.produces.Load(), proxy.drops.Load())

	direct := newClient(t, b.addr())
	seen := map[string]int{} // value → times seen
	total := 0
	for p := range int32(partitions) {
		next := map[int]int{} // key → next expected sequence in this partition
		for _, r := range logRecords(readLog(t, direct, topic, p)) {
			total++
			v := string(r.Value)
			seen[v]++
			if seen[v] > 1 {
				t.Fatalf("partition %d offset %d: %q is a duplicate", p, r.Offset, v)
			}
			ks, ss, _ := strings.Cut(strings.TrimPrefix(v, "key-"), ":")
			k, _ := strconv.Atoi(ks)
			s, _ := strconv.Atoi(ss)
			if string(r.Key) != "key-"+ks {
				t.Fatalf("partition %d offset %d: key %q for value %q", p, r.Offset, r.Key, v)
			}
			if want, ok := next[k]; ok && s != want {
				t.Fatalf("partition %d offset %d: key %d sequence %d, want %d (out of order or lost)", p, r.Offset, k, s, want)
			} else if !ok && s != 0 {
				t.Fatalf("partition %d offset %d: key %d starts at sequence %d", p, r.Offset, k, s)
			}
			next[k] = s + 1
		}
	}
	if total != n || len(seen) != n {
		t.Fatalf("log has %d records (%d distinct), want %d", total, len(seen), n)
	}
}

// rawProducer sends hand-built idempotent batches with raw kmsg requests.
type rawProducer struct {
	t     *testing.T
	cl    *kgo.Client
	topic string
}

func (rp *rawProducer) batch(pid int64, epoch int16, seq int32, values ...string) []byte {
	rp.t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Offset: int64(i), Timestamp: time.Now().UnixMilli(), Value: []byte(v)}
	}
	b, err := record.Build(record.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs)
	if err != nil {
		rp.t.Fatal(err)
	}
	return b
}

// produce sends one batch and returns the partition's error code and base
// offset.
func (rp *rawProducer) produce(batch []byte) (int16, int64) {
	rp.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = rp.topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = 0
	p.Records = append([]byte(nil), batch...) // the broker rewrites baseOffset in place on its copy; keep ours pristine
	rt.Partitions = append(rt.Partitions, p)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, rp.cl)
	if err != nil {
		rp.t.Fatalf("produce: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		rp.t.Fatalf("produce response: %+v", resp)
	}
	pr := resp.Topics[0].Partitions[0]
	return pr.ErrorCode, pr.BaseOffset
}

func (rp *rawProducer) expect(what string, batch []byte, wantCode int16, wantOffset int64) {
	rp.t.Helper()
	code, off := rp.produce(batch)
	if code != wantCode || (wantCode == 0 && off != wantOffset) {
		rp.t.Fatalf("%s: error %v offset %d, want error %v offset %d", what, kerr.ErrorForCode(code), off, kerr.ErrorForCode(wantCode), wantOffset)
	}
}

func initProducerID(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerID: %v", err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func logValues(t *testing.T, cl *kgo.Client, topic string) []string {
	t.Helper()
	var out []string
	for _, r := range logRecords(readLog(t, cl, topic, 0)) {
		out = append(out, string(r.Value))
	}
	return out
}

// TestIdempotenceRaw checks the broker's idempotence rules with hand-built
// batches: an exact retry gets the original offset and is stored once, a
// sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER, a stale epoch is
// INVALID_PRODUCER_EPOCH, and the state survives a restart (from the
// shutdown snapshot, and rebuilt from the log without it).
func TestIdempotenceRaw(t *testing.T) {
	b := startBroker(t)
	const topic = "idem-raw"
	createTopic(t, b.addr(), topic, 1, nil)
	cl := newClient(t, b.addr())
	rp := &rawProducer{t: t, cl: cl, topic: topic}
	pid, epoch := initProducerID(t, cl)
	if pid2, _ := initProducerID(t, cl); pid2 == pid {
		t.Fatalf("InitProducerID handed out %d twice", pid)
	}

	// A non-idempotent batch first, so offsets are not trivially 0.
	rp.expect("plain batch", rp.batch(-1, -1, -1, "plain"), 0, 0)
	b0 := rp.batch(pid, epoch, 0, "a0", "a1")
	rp.expect("first batch", b0, 0, 1)
	rp.expect("retry of the first batch", b0, 0, 1)
	b1 := rp.batch(pid, epoch, 2, "a2")
	rp.expect("second batch", b1, 0, 3)
	rp.expect("retry of the first batch after the second", b0, 0, 1)
	rp.expect("retry of the second batch", b1, 0, 3)
	rp.expect("sequence gap", rp.batch(pid, epoch, 5, "gap"), kerr.OutOfOrderSequenceNumber.Code, 0)
	rp.expect("sequence already passed, not a known batch", rp.batch(pid, epoch, 1, "overlap"), kerr.OutOfOrderSequenceNumber.Code, 0)
	rp.expect("new producer not at sequence 0", rp.batch(pid+1000, 0, 7, "late"), kerr.OutOfOrderSequenceNumber.Code, 0)
	if got, want := strings.Join(logValues(t, cl, topic), ","), "plain,a0,a1,a2"; got != want {
		t.Fatalf("log %s, want %s", got, want)
	}

	// Bump the epoch: the new epoch starts at sequence 0; the old one is fenced.
	e1 := rp.batch(pid, epoch+1, 0, "b0")
	rp.expect("epoch+1 at sequence 0", e1, 0, 4)
	rp.expect("stale epoch", rp.batch(pid, epoch, 3, "stale"), kerr.InvalidProducerEpoch.Code, 0)
	rp.expect("stale epoch retrying an old batch", b1, kerr.InvalidProducerEpoch.Code, 0)
	rp.expect("epoch+2 not at sequence 0", rp.batch(pid, epoch+2, 4, "x"), kerr.OutOfOrderSequenceNumber.Code, 0)
	e2 := rp.batch(pid, epoch+1, 1, "b1")
	rp.expect("epoch+1 sequence 1", e2, 0, 5)

	// Restart: the snapshot written at shutdown carries the state.
	b.restart()
	cl = newClient(t, b.addr())
	rp.cl = cl
	rp.expect("retry after restart", e2, 0, 5)
	rp.expect("earlier retry after restart", e1, 0, 4)
	rp.expect("stale epoch after restart", b1, kerr.InvalidProducerEpoch.Code, 0)
	rp.expect("gap after restart", rp.batch(pid, epoch+1, 9, "gap"), kerr.OutOfOrderSequenceNumber.Code, 0)
	e3 := rp.batch(pid, epoch+1, 2, "b2")
	rp.expect("next batch after restart", e3, 0, 6)
	if pid3, _ := initProducerID(t, cl); pid3 == pid {
		t.Fatalf("InitProducerID after restart handed out %d again", pid)
	}

	// Restart without the snapshot: the state is rebuilt from the log.
	b.stop()
	snaps, _ := filepath.Glob(filepath.Join(b.cfg.DataDir, "topics", topic, "*", "producers.json"))
	if len(snaps) != 1 {
		t.Fatalf("producer snapshots: %v", snaps)
	}
	if err := os.Remove(snaps[0]); err != nil {
		t.Fatal(err)
	}
	b.start()
	cl = newClient(t, b.addr())
	rp.cl = cl
	rp.expect("retry after rebuild", e3, 0, 6)
	rp.expect("stale epoch after rebuild", b0, kerr.InvalidProducerEpoch.Code, 0)
	rp.expect("next batch after rebuild", rp.batch(pid, epoch+1, 3, "b3"), 0, 7)
	if got, want := strings.Join(logValues(t, cl, topic), ","), "plain,a0,a1,a2,b0,b1,b2,b3"; got != want {
		t.Fatalf("log %s, want %s", got, want)
	}
}

// TestBatchStoredAsSent produces hand-built batches in every codec and
// checks that Fetch returns the very bytes sent: only baseOffset and
// partitionLeaderEpoch (outside the CRC) differ.
func TestBatchStoredAsSent(t *testing.T) {
	b := startBroker(t)
	const topic = "as-sent"
	createTopic(t, b.addr(), topic, 1, nil)
	cl := newClient(t, b.addr())
	rp := &rawProducer{t: t, cl: cl, topic: topic}
	var sent [][]byte
	for i, c := range codecs {
		var recs []record.Record
		for j, m := range testMessages(c.name, 8) {
			r := record.Record{Offset: int64(j), Timestamp: int64(1_700_000_000_000 + j), Key: m.Key, Value: m.Value}
			for _, h := range m.Headers {
				r.Headers = append(r.Headers, record.RecordHeader{Key: h.Key, Value: h.Value})
			}
			recs = append(recs, r)
		}
		batch, err := record.Build(record.BuildOptions{Codec: c.codec, ProducerID: -1}, recs)
		if err != nil {
			t.Fatal(err)
		}
		rp.expect(c.name, batch, 0, int64(i*8))
		sent = append(sent, batch)
	}
	ctx := testCtx(t, 10*time.Second)
	p, err := fetchRaw(ctx, cl, topic, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := p.RecordBatches
	for i, want := range sent {
		_, got, rest, err := record.Next(data)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if len(got) != len(want) || string(got[8:12]) != string(want[8:12]) || string(got[16:]) != string(want[16:]) {
			t.Fatalf("batch %d (%s) is not stored as sent: %d bytes, sent %d", i, codecs[i].name, len(got), len(want))
		}
		if off := int64(binary.BigEndian.Uint64(got)); off != int64(i*8) {
			t.Fatalf("batch %d has base offset %d, want %d", i, off, i*8)
		}
		data = rest
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes after the last batch", len(data))
	}
}
