package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime/server"
)

// startBroker runs a real weir broker in-process on 127.0.0.1 port 0 and returns client Options for it.
func startBroker(t *testing.T) Options {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown broker: %v", err)
		}
	})
	return Options{Brokers: []string{srv.KafkaAddr()}, Timeout: 10 * time.Second}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, ctx context.Context, o Options, name string, partitions int32, configs ...KV) {
	t.Helper()
	if err := CreateTopic(ctx, o, name, CreateTopicOptions{Partitions: partitions, ReplicationFactor: 1, Configs: configs}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

func mustProduce(t *testing.T, ctx context.Context, o Options, po ProduceOptions, input string) {
	t.Helper()
	want := int64(strings.Count(input, "\n"))
	if input != "" && !strings.HasSuffix(input, "\n") {
		want++
	}
	n, err := Produce(ctx, o, po, strings.NewReader(input))
	if err != nil {
		t.Fatalf("produce to %s: %v", po.Topic, err)
	}
	if n != want {
		t.Fatalf("produce to %s: %d records acknowledged, want %d", po.Topic, n, want)
	}
}

func consumeString(t *testing.T, ctx context.Context, o Options, co ConsumeOptions, format string) string {
	t.Helper()
	f, err := ParseFormat(format)
	if err != nil {
		t.Fatal(err)
	}
	co.Format = f
	var out bytes.Buffer
	if _, err := Consume(ctx, o, co, &out); err != nil {
		t.Fatalf("consume %s: %v", co.Topic, err)
	}
	return out.String()
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestTopicAdminRoundTrip(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)

	mustCreate(t, ctx, o, "orders", 3, KV{"retention.ms", "3600000"})
	mustCreate(t, ctx, o, "audit", 1)
	if err := CreateTopic(ctx, o, "orders", CreateTopicOptions{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("creating orders twice: %v, want TOPIC_ALREADY_EXISTS", err)
	}

	ts, err := ListTopics(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TopicSummary{}
	for _, s := range ts {
		got[s.Name] = s
	}
	if got["orders"].Partitions != 3 || got["orders"].Replicas != 1 || got["audit"].Partitions != 1 {
		t.Fatalf("list: %+v", ts)
	}
	var buf bytes.Buffer
	if err := PrintTopics(&buf, ts); err != nil || !strings.Contains(buf.String(), "orders") {
		t.Fatalf("PrintTopics: %v\n%s", err, buf.String())
	}

	d, err := DescribeTopic(ctx, o, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Partitions) != 3 {
		t.Fatalf("describe: %d partitions, want 3", len(d.Partitions))
	}
	for i, p := range d.Partitions {
		if p.Partition != int32(i) || p.Leader < 0 || p.LogStart != 0 || p.HighWatermark != 0 || p.Err != nil {
			t.Errorf("describe partition %d: %+v", i, p)
		}
	}
	checkConfig := func(d *TopicDescription, key, value string, overridden bool) {
		t.Helper()
		c, ok := d.Config(key)
		if !ok {
			t.Fatalf("describe %s: no config %s in %+v", d.Name, key, d.Configs)
		}
		if c.Value == nil || *c.Value != value || c.Overridden != overridden {
			v := "<nil>"
			if c.Value != nil {
				v = *c.Value
			}
			t.Fatalf("config %s = %q overridden=%v (source %s), want %q overridden=%v", key, v, c.Overridden, c.Source, value, overridden)
		}
	}
	checkConfig(d, "retention.ms", "3600000", true)
	if c, ok := d.Config("cleanup.policy"); !ok || c.Overridden {
		t.Fatalf("cleanup.policy: %+v, %v; want a default", c, ok)
	}
	buf.Reset()
	if err := d.Print(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"HIGH-WATERMARK", "retention.ms", "3600000", "override (DYNAMIC_TOPIC_CONFIG)", "default ("} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("describe output lacks %q:\n%s", want, buf.String())
		}
	}

	// Produce a few records so describe shows a high watermark.
	mustProduce(t, ctx, o, ProduceOptions{Topic: "orders", Partition: 1}, "a\nb\nc\n")
	d, err = DescribeTopic(ctx, o, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if hw := d.Partitions[1].HighWatermark; hw != 3 {
		t.Fatalf("partition 1 high watermark %d, want 3", hw)
	}

	// Incremental alter: set one, add one, leave the rest.
	if err := AlterTopicConfig(ctx, o, "orders", []KV{{"retention.ms", "1000"}, {"segment.bytes", "1048576"}}, nil); err != nil {
		t.Fatal(err)
	}
	d, err = DescribeTopic(ctx, o, "orders")
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(d, "retention.ms", "1000", true)
	checkConfig(d, "segment.bytes", "1048576", true)
	if err := AlterTopicConfig(ctx, o, "orders", nil, []string{"retention.ms"}); err != nil {
		t.Fatal(err)
	}
	d, err = DescribeTopic(ctx, o, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := d.Config("retention.ms"); c.Overridden {
		t.Fatalf("retention.ms still overridden after delete: %+v", c)
	}
	checkConfig(d, "segment.bytes", "1048576", true)
	if err := AlterTopicConfig(ctx, o, "nope", []KV{{"retention.ms", "1"}}, nil); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("alter unknown topic: %v", err)
	}

	if err := DeleteTopics(ctx, o, "orders", "audit"); err != nil {
		t.Fatal(err)
	}
	ts, err = ListTopics(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ts {
		if s.Name == "orders" || s.Name == "audit" {
			t.Fatalf("%s still listed after delete: %+v", s.Name, ts)
		}
	}
	_, err = DescribeTopic(ctx, o, "orders")
	if !errors.Is(err, ErrUnknownTopic) || err.Error() != "topic orders does not exist" {
		t.Fatalf("describe deleted topic: %v", err)
	}
	err = DeleteTopics(ctx, o, "orders")
	if !errors.Is(err, ErrUnknownTopic) || !strings.Contains(err.Error(), "topic orders does not exist") {
		t.Fatalf("delete deleted topic: %v", err)
	}
}

// payloads are lines whose bytes must come back unchanged: separators inside values, tabs, format tokens,
// multi-byte UTF-8, a carriage return, an empty value, and a long one.
var payloads = []string{
	"k1:plain value",
	"k2:value:with:colons",
	"k3:tab\tinside",
	"k4:percent %v and \\n backslash",
	"k5:ünïcødé ✓",
	"k6:carriage\r",
	"k7:",
	":empty key",
	"no separator at all",
	"k8:" + strings.Repeat("0123456789", 2000),
}

func TestProduceConsumeEveryCompression(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			topic := "bytes-" + codec
			mustCreate(t, ctx, o, topic, 1)
			in := strings.Join(payloads, "\n") + "\n"
			mustProduce(t, ctx, o, ProduceOptions{
				Topic: topic, KeySeparator: ":", Compression: codec, Partition: -1,
				Headers: []KV{{"source", "test"}, {"codec", codec}},
			}, in)

			// Values alone, byte for byte.
			var want strings.Builder
			for _, p := range payloads {
				_, v := SplitKey([]byte(p), ":")
				want.Write(v)
				want.WriteByte('\n')
			}
			// The batches on the broker carry the codec asked for (attributes bits 0-2).
			wantCodec := map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
			codecs := batchCodecs(t, ctx, o, topic)
			if len(codecs) == 0 {
				t.Fatal("fetched no batches")
			}
			for _, c := range codecs {
				if c != wantCodec {
					t.Fatalf("batch codecs %v, want all %d", codecs, wantCodec)
				}
			}

			if got := consumeString(t, ctx, o, ConsumeOptions{Topic: topic, Partition: -1}, DefaultFormat); got != want.String() {
				t.Fatalf("values:\n got %q\nwant %q", got, want.String())
			}

			// Key, value, lengths, headers, offsets, partition, topic: rebuild the input exactly.
			got := consumeString(t, ctx, o, ConsumeOptions{Topic: topic, Partition: -1}, `%K|%k|%S|%v|%h|%o|%p|%t\n`)
			var wantAll strings.Builder
			for i, p := range payloads {
				k, v := SplitKey([]byte(p), ":")
				kl := fmt.Sprint(len(k))
				if k == nil {
					kl = "-1"
				}
				fmt.Fprintf(&wantAll, "%s|%s|%d|%s|source=test,codec=%s|%d|0|%s\n", kl, k, len(v), v, codec, i, topic)
			}
			if got != wantAll.String() {
				t.Fatalf("full format:\n got %q\nwant %q", got, wantAll.String())
			}
		})
	}
}

// batchCodecs fetches partition 0 of topic from offset 0 with a raw Fetch request and returns the compression
// codec of every RecordBatch the broker sent back, as stored.
func batchCodecs(t *testing.T, ctx context.Context, o Options, topic string) []int8 {
	t.Helper()
	cl, err := connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxBytes = 64 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rt.TopicID = tds[topic].ID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = 0
	rp.PartitionMaxBytes = 32 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	var codecs []int8
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			b := rp.RecordBatches
			for len(b) >= 12 {
				n := 12 + int(binary.BigEndian.Uint32(b[8:12]))
				if n > len(b) {
					break // a partial batch at the end of the budget
				}
				var rb kmsg.RecordBatch
				if err := rb.ReadFrom(b[:n]); err != nil {
					t.Fatalf("decode batch: %v", err)
				}
				codecs = append(codecs, int8(rb.Attributes&0x07))
				b = b[n:]
			}
		}
	}
	return codecs
}

func TestKeyedRecordsLandWhereJavaPutsThem(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	const parts = 5
	mustCreate(t, ctx, o, "keyed", parts)
	var in strings.Builder
	want := map[string]int{}
	for i := range 60 {
		k := fmt.Sprintf("user-%d", i)
		want[k] = javaPartition([]byte(k), parts)
		fmt.Fprintf(&in, "%s\tv%d\n", k, i)
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "keyed", KeySeparator: "\t", Partition: -1}, in.String())
	got := lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "keyed", Partition: -1}, `%p %k\n`))
	if len(got) != 60 {
		t.Fatalf("consumed %d records, want 60", len(got))
	}
	used := map[int]bool{}
	for _, l := range got {
		var p int
		var k string
		if _, err := fmt.Sscanf(l, "%d %s", &p, &k); err != nil {
			t.Fatal(err)
		}
		if p != want[k] {
			t.Errorf("key %s in partition %d, Java puts it in %d", k, p, want[k])
		}
		used[p] = true
	}
	if len(used) < 3 {
		t.Errorf("60 keys used only partitions %v", used)
	}

	// -p on consume reads one partition: exactly the keys Java hashes there, in produce order.
	got = lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "keyed", Partition: 2}, `%k\n`))
	var wantP2 []string
	for i := range 60 {
		if k := fmt.Sprintf("user-%d", i); want[k] == 2 {
			wantP2 = append(wantP2, k)
		}
	}
	if !slices.Equal(got, wantP2) {
		t.Fatalf("partition 2: %v, want %v", got, wantP2)
	}

	// -p on produce pins every record to one partition whatever its key.
	mustProduce(t, ctx, o, ProduceOptions{Topic: "keyed", KeySeparator: "\t", Partition: 4}, "user-1\tpinned\nuser-2\tpinned\n")
	got = lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "keyed", Partition: 4, Offset: OffsetSpec{Kind: OffsetFromEnd, Value: 2}}, `%k %v\n`))
	if !slices.Equal(got, []string{"user-1 pinned", "user-2 pinned"}) {
		t.Fatalf("pinned records: %q", got)
	}

	// A partition that does not exist fails the produce and says so.
	_, err := Produce(ctx, o, ProduceOptions{Topic: "keyed", Partition: 99}, strings.NewReader("x\n"))
	if err == nil {
		t.Fatal("produce to partition 99 of a 5-partition topic succeeded")
	}
	if _, err := Consume(ctx, o, ConsumeOptions{Topic: "keyed", Partition: 99}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no partition 99") {
		t.Fatalf("consume partition 99: %v", err)
	}
}

func TestConsumeOffsets(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "log", 1)
	var first strings.Builder
	for i := range 10 {
		fmt.Fprintf(&first, "m%d\n", i)
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "log", Partition: -1}, first.String())

	// A boundary strictly after every record so far, and records strictly after it.
	boundary := time.Now().UnixMilli() + 1
	for time.Now().UnixMilli() <= boundary {
		time.Sleep(time.Millisecond) // waiting out the clock, not for the broker
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "log", Partition: -1}, "n0\nn1\nn2\n")

	seq := func(prefix string, from, to int) []string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprintf("%s%d", prefix, i))
		}
		return s
	}
	all := append(seq("m", 0, 10), seq("n", 0, 3)...)
	for _, c := range []struct {
		offset string
		count  int64
		want   []string
	}{
		{"beginning", 0, all},
		{"end", 0, nil},
		{"0", 0, all},
		{"5", 0, all[5:]},
		{"12", 0, all[12:]},
		{"13", 0, nil},
		{"1000", 0, nil},
		{"-3", 0, all[10:]},
		{"-1", 0, all[12:]},
		{"-100", 0, all},
		{fmt.Sprintf("@%d", boundary), 0, all[10:]},
		{fmt.Sprintf("s@%d", boundary), 0, all[10:]},
		{"@0", 0, all},
		{fmt.Sprintf("@%d", time.Now().Add(time.Hour).UnixMilli()), 0, nil},
		{"beginning", 4, all[:4]},
		{"-5", 2, all[8:10]},
	} {
		spec, err := ParseOffset(c.offset)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got := lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "log", Partition: -1, Offset: spec, Count: c.count}, `%v\n`))
		if !slices.Equal(got, c.want) {
			t.Errorf("-o %s -n %d: %q, want %q", c.offset, c.count, got, c.want)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("-o %s took %v to finish without --follow", c.offset, el)
		}
	}

	// %o and %T agree with what was asked.
	got := lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "log", Partition: -1, Offset: OffsetSpec{Kind: OffsetExact, Value: 10}, Count: 1}, `%o %T\n`))
	var off, ts int64
	if len(got) != 1 {
		t.Fatalf("got %q", got)
	}
	if _, err := fmt.Sscanf(got[0], "%d %d", &off, &ts); err != nil || off != 10 || ts < boundary || ts > time.Now().UnixMilli() {
		t.Fatalf("offset 10: %q (boundary %d)", got[0], boundary)
	}
}

func TestConsumeFollow(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "live", 3)
	mustProduce(t, ctx, o, ProduceOptions{Topic: "live", KeySeparator: "=", Partition: -1}, "old=1\nold=2\n")

	type result struct {
		out string
		n   int64
		err error
	}
	follow := func(offset OffsetSpec, count int64) (<-chan struct{}, <-chan result) {
		started := make(chan struct{})
		done := make(chan result, 1)
		go func() {
			var out bytes.Buffer
			f, _ := ParseFormat(`%k=%v\n`)
			n, err := Consume(ctx, o, ConsumeOptions{
				Topic: "live", Partition: -1, Offset: offset, Count: count, Follow: true, Format: f,
				OnStart: func([]PartitionRange) { close(started) },
			}, &out)
			done <- result{out.String(), n, err}
		}()
		return started, done
	}
	wait := func(started <-chan struct{}, done <-chan result) {
		t.Helper()
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("consumer ended before starting: %+v", r)
		case <-ctx.Done():
			t.Fatal("consumer never started")
		}
	}

	// From the end: only records produced after the consumer started.
	started, done := follow(OffsetSpec{Kind: OffsetEnd}, 6)
	wait(started, done)
	var in strings.Builder
	for i := range 6 {
		fmt.Fprintf(&in, "new%d=%d\n", i, i)
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "live", KeySeparator: "=", Partition: -1}, in.String())
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("follow consumer did not see 6 new records")
	}
	if r.err != nil || r.n != 6 {
		t.Fatalf("follow from end: n=%d err=%v", r.n, r.err)
	}
	got := lines(r.out)
	sort.Strings(got)
	want := lines(in.String())
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("follow from end: %q, want %q", got, want)
	}

	// From the beginning, following past the end: old records, then one produced later.
	started, done = follow(OffsetSpec{Kind: OffsetBeginning}, 9)
	wait(started, done)
	mustProduce(t, ctx, o, ProduceOptions{Topic: "live", KeySeparator: "=", Partition: -1}, "late=x\n")
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("follow consumer did not see the late record")
	}
	if r.err != nil || r.n != 9 || !strings.Contains(r.out, "late=x\n") || !strings.Contains(r.out, "old=1\n") {
		t.Fatalf("follow from beginning: n=%d err=%v out=%q", r.n, r.err, r.out)
	}

	// Cancelling a follow consumer ends it promptly with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	started2 := make(chan struct{})
	done2 := make(chan error, 1)
	go func() {
		_, err := Consume(cctx, o, ConsumeOptions{Topic: "live", Partition: -1, Offset: OffsetSpec{Kind: OffsetEnd}, Follow: true,
			OnStart: func([]PartitionRange) { close(started2) }}, &bytes.Buffer{})
		done2 <- err
	}()
	<-started2
	cancel()
	select {
	case err := <-done2:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled follow: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled follow consumer did not return")
	}
}

func TestProduceAcks(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	for _, acks := range []string{"all", "1", "0"} {
		t.Run("acks="+acks, func(t *testing.T) {
			topic := "acks-" + acks
			mustCreate(t, ctx, o, topic, 2)
			var in strings.Builder
			for i := range 200 {
				fmt.Fprintf(&in, "k%d:%d\n", i, i)
			}
			mustProduce(t, ctx, o, ProduceOptions{Topic: topic, KeySeparator: ":", Acks: acks, Partition: -1}, in.String())
			// acks=0 returns before the broker has appended: poll until all 200 are readable.
			deadline := time.Now().Add(20 * time.Second)
			for {
				got := lines(consumeString(t, ctx, o, ConsumeOptions{Topic: topic, Partition: -1}, `%k:%v\n`))
				if len(got) == 200 {
					sort.Strings(got)
					want := lines(in.String())
					sort.Strings(want)
					if !slices.Equal(got, want) {
						t.Fatalf("records differ")
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of 200 records readable", len(got))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	o := Options{Brokers: []string{addr}, Timeout: 2 * time.Second}
	ctx := testCtx(t)
	check := func(what string, err error, el time.Duration) {
		t.Helper()
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: error %v, want one that names %s", what, err, addr)
		}
		if el > 6*time.Second {
			t.Errorf("%s took %v with a 2s timeout", what, el)
		}
	}
	start := time.Now()
	_, err = ListTopics(ctx, o, false)
	check("list", err, time.Since(start))
	start = time.Now()
	_, err = Produce(ctx, o, ProduceOptions{Topic: "t", Partition: -1}, strings.NewReader("x\n"))
	check("produce", err, time.Since(start))
	start = time.Now()
	_, err = Consume(ctx, o, ConsumeOptions{Topic: "t", Partition: -1}, &bytes.Buffer{})
	check("consume", err, time.Since(start))
	start = time.Now()
	err = CreateTopic(ctx, o, "t", CreateTopicOptions{Partitions: 1, ReplicationFactor: 1})
	check("create", err, time.Since(start))

	// A listener that accepts but never answers: the timeout still ends the wait.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o = Options{Brokers: []string{ln.Addr().String()}, Timeout: time.Second}
	addr = ln.Addr().String()
	start = time.Now()
	_, err = DescribeTopic(ctx, o, "t")
	check("describe against a silent listener", err, time.Since(start))
}

func TestUnknownTopic(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	_, err := Consume(ctx, o, ConsumeOptions{Topic: "nope", Partition: -1}, &bytes.Buffer{})
	if !errors.Is(err, ErrUnknownTopic) || err.Error() != "topic nope does not exist" {
		t.Fatalf("consume unknown topic: %v", err)
	}
	_, err = Consume(ctx, o, ConsumeOptions{Topic: "nope", Partition: -1, Follow: true}, &bytes.Buffer{})
	if !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("consume --follow unknown topic: %v", err)
	}
	_, err = DescribeTopic(ctx, o, "nope")
	if !errors.Is(err, ErrUnknownTopic) || err.Error() != "topic nope does not exist" {
		t.Fatalf("describe unknown topic: %v", err)
	}
	// Neither consume nor describe created it.
	ts, err := ListTopics(ctx, o, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ts {
		if s.Name == "nope" {
			t.Fatal("consuming an unknown topic created it")
		}
	}
	// Producing does create it (the broker auto-creates by default), like Kafka.
	mustProduce(t, ctx, o, ProduceOptions{Topic: "auto", Partition: -1}, "hello\n")
	if got := consumeString(t, ctx, o, ConsumeOptions{Topic: "auto", Partition: -1}, DefaultFormat); got != "hello\n" {
		t.Fatalf("auto-created topic holds %q", got)
	}
}
