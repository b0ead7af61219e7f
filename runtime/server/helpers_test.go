package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/runtime/server"
)

// testBroker is a real weir server on 127.0.0.1 port 0 whose data directory
// outlives restarts.
type testBroker struct {
	t   *testing.T
	cfg server.Config
	srv *server.Server
}

// startBroker starts a broker on a fresh t.TempDir(); edit adjusts the
// config before the first start.
func startBroker(t *testing.T, edit ...func(*server.Config)) *testBroker {
	t.Helper()
	cfg := server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	for _, e := range edit {
		e(&cfg)
	}
	b := &testBroker{t: t, cfg: cfg}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *testBroker) start() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, b.cfg)
	if err != nil {
		b.t.Fatalf("start broker on %s: %v", b.cfg.DataDir, err)
	}
	b.srv = srv
}

func (b *testBroker) stop() {
	b.t.Helper()
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown broker: %v", err)
	}
	b.srv = nil
}

// restart shuts the broker down cleanly and starts it again on the same
// data directory (on a new port).
func (b *testBroker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

func (b *testBroker) addr() string { return b.srv.KafkaAddr() }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a kgo client for addr, closed at the end of the test.
func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RetryTimeout(20 * time.Second)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T, addr string) *kadm.Client {
	return kadm.NewClient(newClient(t, addr))
}

func createTopic(t *testing.T, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	resp, err := newAdmin(t, addr).CreateTopics(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp[topic].Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// storedBatch is one batch as the broker returns it from its log.
type storedBatch struct {
	Header  record.Header
	Records []record.Record
	Raw     []byte // the whole batch as fetched
}

// xerialMagic starts a snappy records section in xerial framing (what
// sarama and the Java client send) rather than a raw snappy block (kgo).
const xerialMagic = "\x82SNAPPY\x00"

func isXerial(b storedBatch) bool {
	return len(b.Raw) >= record.HeaderSize+len(xerialMagic) && string(b.Raw[record.HeaderSize:record.HeaderSize+len(xerialMagic)]) == xerialMagic
}

// fetchRaw sends one raw kmsg Fetch for a partition and returns the
// partition's response.
func fetchRaw(ctx context.Context, cl *kgo.Client, topic string, part int32, offset int64, maxWait int32) (kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = maxWait
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = part
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = 32 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kmsg.FetchResponseTopicPartition{}, fmt.Errorf("fetch response has %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	return p, kerr.ErrorForCode(p.ErrorCode)
}

// readLog reads every batch of a partition below its high watermark with
// raw Fetch requests, checks each stored batch (CRC and all) and decodes
// its records.
func readLog(t *testing.T, cl *kgo.Client, topic string, part int32) []storedBatch {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	var out []storedBatch
	for off := int64(0); ; {
		p, err := fetchRaw(ctx, cl, topic, part, off, 0)
		if err != nil {
			t.Fatalf("fetch %s/%d@%d: %v", topic, part, off, err)
		}
		data := p.RecordBatches
		if len(data) == 0 {
			if off < p.HighWatermark {
				t.Fatalf("fetch %s/%d@%d: no data below high watermark %d", topic, part, off, p.HighWatermark)
			}
			return out
		}
		for len(data) > 0 {
			_, batch, rest, err := record.Next(data)
			if err != nil {
				t.Fatalf("fetch %s/%d@%d: %v", topic, part, off, err)
			}
			h, err := record.ValidateStored(batch)
			if err != nil {
				t.Fatalf("stored batch at %d: %v", off, err)
			}
			recs, err := record.Records(batch, 64<<20)
			if err != nil {
				t.Fatalf("decode stored batch at %d (codec %v): %v", h.BaseOffset, h.Codec(), err)
			}
			out = append(out, storedBatch{Header: h, Records: recs, Raw: batch})
			off, data = h.LastOffset()+1, rest
		}
	}
}

func logRecords(batches []storedBatch) []record.Record {
	var out []record.Record
	for _, b := range batches {
		out = append(out, b.Records...)
	}
	return out
}

// waitHW polls until a partition's high watermark reaches want.
func waitHW(t *testing.T, adm *kadm.Client, topic string, part int32, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		offs, err := adm.ListEndOffsets(ctx, topic)
		cancel()
		var got int64 = -1
		if err == nil {
			if o, ok := offs.Lookup(topic, part); ok && o.Err == nil {
				got = o.Offset
			}
		}
		if got >= want {
			if got > want {
				t.Fatalf("%s/%d: high watermark %d, want %d", topic, part, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%d: high watermark %d (err %v), want %d", topic, part, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// msg is a client-independent record for byte-for-byte comparison: nil
// Key/Value mean null, distinct from empty.
type msg struct {
	Key, Value []byte
	Headers    []hdr
	Timestamp  int64 // 0: do not compare
}

type hdr struct {
	Key   string
	Value []byte
}

// testMessages returns n records covering null and empty keys and values,
// headers (including empty values and none) and values compressible
// enough (about 1 KiB of repeated text) that every codec really
// compresses.
func testMessages(prefix string, n int) []msg {
	out := make([]msg, n)
	for i := range out {
		m := msg{
			Key:   fmt.Appendf(nil, "%s-key-%d", prefix, i%5),
			Value: []byte(strings.Repeat(fmt.Sprintf("%s value %d, compressible text; ", prefix, i), 30)),
		}
		switch {
		case i%7 == 3:
			m.Key = nil
		case i%7 == 5:
			m.Key = []byte{}
		}
		switch {
		case i%9 == 4:
			m.Value = nil
		case i%9 == 6:
			m.Value = []byte{}
		}
		if i%3 != 0 {
			m.Headers = []hdr{{"h1", fmt.Appendf(nil, "v%d", i)}, {"empty", []byte{}}, {"bin", []byte{0, 1, 2, 255}}, {"null", nil}, {"h1", []byte("repeated key")}}
		}
		out[i] = m
	}
	return out
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func (m msg) String() string {
	show := func(b []byte) string {
		if b == nil {
			return "<null>"
		}
		if len(b) > 40 {
			return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	var hs []string
	for _, h := range m.Headers {
		hs = append(hs, h.Key+"="+show(h.Value))
	}
	return fmt.Sprintf("{key %s value %s headers [%s] ts %d}", show(m.Key), show(m.Value), strings.Join(hs, " "), m.Timestamp)
}

func sameMsg(want, got msg) bool {
	if !sameBytes(want.Key, got.Key) || !sameBytes(want.Value, got.Value) || len(want.Headers) != len(got.Headers) {
		return false
	}
	if want.Timestamp != 0 && want.Timestamp != got.Timestamp {
		return false
	}
	for i := range want.Headers {
		if want.Headers[i].Key != got.Headers[i].Key || !sameBytes(want.Headers[i].Value, got.Headers[i].Value) {
			return false
		}
	}
	return true
}

// checkMessages compares records byte for byte, nulls included.
func checkMessages(t *testing.T, what string, want, got []msg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !sameMsg(want[i], got[i]) {
			t.Fatalf("%s: record %d differs:\n got %v\nwant %v", what, i, got[i], want[i])
		}
	}
}

func fromStored(r record.Record) msg {
	m := msg{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, hdr{h.Key, h.Value})
	}
	return m
}

func storedMessages(recs []record.Record) []msg {
	out := make([]msg, len(recs))
	for i, r := range recs {
		out[i] = fromStored(r)
	}
	return out
}

func toKgo(topic string, part int32, m msg) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: part, Key: m.Key, Value: m.Value}
	if m.Timestamp != 0 {
		r.Timestamp = time.UnixMilli(m.Timestamp)
	}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r
}

func fromKgo(r *kgo.Record) msg {
	m := msg{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UnixMilli()}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, hdr{h.Key, h.Value})
	}
	return m
}

// pollRecords polls a consumer until it has n records, failing on errors
// or after the deadline.
func pollRecords(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("polled %d records of %d before the deadline", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

var codecs = []struct {
	name  string
	kgo   kgo.CompressionCodec
	codec record.Codec
}{
	{"none", kgo.NoCompression(), record.CodecNone},
	{"gzip", kgo.GzipCompression(), record.CodecGzip},
	{"snappy", kgo.SnappyCompression(), record.CodecSnappy},
	{"lz4", kgo.Lz4Compression(), record.CodecLZ4},
	{"zstd", kgo.ZstdCompression(), record.CodecZstd},
}

// cfgValue is a config's value, "<null>" when it has none.
func cfgValue(c kadm.Config) string {
	if c.Value == nil {
		return "<null>"
	}
	return *c.Value
}
