package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/record"
)

// testBroker is a broker and a Kafka server on a loopback port, built from
// core packages only (core may not import runtime).
type testBroker struct {
	dir  string
	b    *broker.Broker
	srv  *Server
	addr string
}

// testLogger discards logs unless WEIR_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("WEIR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker starts a broker on t.TempDir(); edit may adjust the configs.
func startBroker(t testing.TB, edit func(*broker.Config, *Config)) *testBroker {
	t.Helper()
	dir := t.TempDir()
	bcfg := broker.Config{DataDir: dir, Logger: testLogger()}
	kcfg := Config{Logger: bcfg.Logger}
	if edit != nil {
		edit(&bcfg, &kcfg)
	}
	b, err := broker.Open(bcfg)
	if err != nil {
		t.Fatalf("broker.Open: %v", err)
	}
	kcfg.Broker = b
	srv := NewServer(kcfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		t.Fatalf("listen: %v", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		select {
		case err := <-serveErr:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-ctx.Done():
			t.Errorf("Serve did not return after Shutdown")
		}
		if err := b.Close(); err != nil {
			t.Errorf("broker close: %v", err)
		}
	})
	return &testBroker{dir: dir, b: b, srv: srv, addr: ln.Addr().String()}
}

// createTopic creates a topic with n partitions directly on the broker.
func (tb *testBroker) createTopic(t testing.TB, name string, n int32) {
	t.Helper()
	if _, err := tb.b.CreateTopic(name, n, nil, false); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// logBytes returns every stored batch of a partition, as the log holds them.
func (tb *testBroker) logBytes(t testing.TB, topic string, part int32) []byte {
	t.Helper()
	res, err := tb.b.Fetch(topic, part, 0, 1<<30, true)
	if err != nil {
		t.Fatalf("fetch %s/%d: %v", topic, part, err)
	}
	return bytes.Clone(res.Records)
}

// batchHeaders parses the headers of every batch in a partition's log.
func (tb *testBroker) batchHeaders(t testing.TB, topic string, part int32) []record.Header {
	t.Helper()
	var hs []record.Header
	for rest := tb.logBytes(t, topic, part); len(rest) > 0; {
		h, _, r, err := record.Next(rest)
		if err != nil {
			t.Fatalf("%s/%d: stored batch: %v", topic, part, err)
		}
		if _, err := record.ValidateStored(rest[:h.Size()]); err != nil {
			t.Fatalf("%s/%d: stored batch at offset %d: %v", topic, part, h.BaseOffset, err)
		}
		hs = append(hs, h)
		rest = r
	}
	return hs
}

// newClient returns a kgo client for the test broker, closed at cleanup.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceKgo produces recs to topic/0 with acks=all and waits for them.
func produceKgo(t testing.TB, addr, topic string, recs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	cl := newClient(t, addr, opts...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range recs {
		r.Topic = topic
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("kgo produce to %s: %v", topic, err)
	}
}

// consumeKgo reads n records of topic/0 from offset with a kgo consumer.
func consumeKgo(t testing.TB, addr, topic string, offset int64, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(offset)}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kgo consume %s from %d: got %d of %d records before the deadline", topic, offset, len(out), n)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("kgo consume %s: %v", topic, e.Err)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) > n {
		t.Fatalf("kgo consume %s from %d: got %d records, want %d", topic, offset, len(out), n)
	}
	return out
}

var healthSeq atomic.Int64

// checkHealthy proves the broker still serves new connections: a fresh kgo
// client produces one record and reads it back; then it checks that the
// baseline topic's log is byte-for-byte what it was.
func (tb *testBroker) checkHealthy(t testing.TB, baseline []byte) {
	t.Helper()
	v := fmt.Appendf(nil, "health-%d", healthSeq.Add(1))
	if _, err := tb.b.Topic("health", true); err != nil {
		t.Fatalf("create health topic: %v", err)
	}
	cl := newClient(t, tb.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: "health", Value: v})
	r, err := res.First()
	if err != nil {
		t.Fatalf("broker unhealthy: produce: %v", err)
	}
	cl.Close()
	got := consumeKgo(t, tb.addr, "health", r.Offset, 1)
	if !bytes.Equal(got[0].Value, v) {
		t.Fatalf("broker unhealthy: read back %q, want %q", got[0].Value, v)
	}
	if baseline != nil {
		if now := tb.logBytes(t, "baseline", 0); !bytes.Equal(now, baseline) {
			t.Fatalf("baseline log changed: %d bytes, was %d", len(now), len(baseline))
		}
	}
}

// rawConn is a hand-driven Kafka connection.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame returns body with its int32 size prefix.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// encodeRequest returns the framed request (size prefix included) with
// client id "weir-test" and the given correlation id.
func encodeRequest(req kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("weir-test")).AppendRequest(nil, req, corr)
}

// readFrame reads one response frame (without its size prefix).
func (c *rawConn) readFrame() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(c.nc, sz[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(sz[:])
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response size %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.nc, b); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeResponse checks the correlation id and decodes a response body for
// req (the header tag byte is skipped for flexible versions, except for
// ApiVersions, whose response header is always v0).
func decodeResponse(b []byte, req kmsg.Request, version int16, corr int32) (kmsg.Response, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("response of %d bytes", len(b))
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	b = b[4:]
	resp := req.ResponseKind()
	resp.SetVersion(version)
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		if len(b) == 0 || b[0] != 0 {
			return nil, errors.New("missing or non-empty response header tags")
		}
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("decoding %s v%d response: %w", kmsg.NameForKey(req.Key()), version, err)
	}
	return resp, nil
}

// roundTrip sends req on the connection and decodes the answer.
func (c *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	c.corr++
	c.write(encodeRequest(req, c.corr))
	b, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("%s v%d: reading response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	resp, err := decodeResponse(b, req, req.GetVersion(), c.corr)
	if err != nil {
		c.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

// expectClosed asserts that the broker closes the connection (EOF or
// reset) without answering, within a deadline.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [1]byte
	n, err := c.nc.Read(buf[:])
	switch {
	case n > 0:
		c.t.Fatalf("broker answered instead of closing the connection")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	default:
		c.t.Fatalf("broker did not close the connection: %v", err)
	}
}

// testBatch builds a valid, non-idempotent batch of n records.
func testBatch(t testing.TB, codec record.Codec, n int, prefix string) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	ts := time.Now().UnixMilli()
	for i := range recs {
		recs[i] = record.Record{Offset: int64(i), Timestamp: ts, Key: fmt.Appendf(nil, "%s-k%d", prefix, i), Value: fmt.Appendf(nil, "%s-v%d", prefix, i)}
	}
	b, err := record.Build(record.BuildOptions{ProducerID: -1, Codec: codec}, recs)
	if err != nil {
		t.Fatalf("record.Build: %v", err)
	}
	return b
}

// produceRequest is a Produce request for one topic/partition.
func produceRequest(version int16, topic string, part int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}
