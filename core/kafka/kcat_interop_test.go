//go:build interop

// Interop tests against kcat (librdkafka): go test -tags interop ./core/kafka/
// They fail, never skip, when kcat is missing (Debian package kcat).

package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/core/record"
)

// kcat runs kcat with args against the test broker, feeding stdin, and
// returns its stdout; a non-zero exit or a hang fails the test.
func (tb *testBroker) kcat(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required for the interop tests (apt-get install kcat): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"-b", tb.addr, "-m", "20"}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kcat %s: timed out\nstderr:\n%s", strings.Join(args, " "), stderr.Bytes())
	}
	if err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	if strings.Contains(stderr.String(), "ERROR") || strings.Contains(stderr.String(), "Failed") {
		t.Fatalf("kcat %s reported errors:\n%s", strings.Join(args, " "), stderr.Bytes())
	}
	t.Logf("kcat %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return stdout.Bytes()
}

// kcatMsg is one consumed message, parsed from kcatFormat output.
type kcatMsg struct {
	offset     int64
	key, value []byte // nil: null
	headers    string
}

// kcatFormat prints lengths before keys and values, so any bytes survive.
const kcatFormat = `%o|%K|%S|%k%s|%h\n`

func parseKcat(t *testing.T, out []byte) []kcatMsg {
	t.Helper()
	var msgs []kcatMsg
	field := func() int64 {
		i := bytes.IndexByte(out, '|')
		if i < 0 {
			t.Fatalf("kcat output: no field separator in %q", out[:min(len(out), 64)])
		}
		n, err := strconv.ParseInt(string(out[:i]), 10, 64)
		if err != nil {
			t.Fatalf("kcat output: %v", err)
		}
		out = out[i+1:]
		return n
	}
	bytesOf := func(n int64) []byte {
		if n < 0 {
			return nil
		}
		if int64(len(out)) < n {
			t.Fatalf("kcat output: %d bytes left, need %d", len(out), n)
		}
		b := bytes.Clone(out[:n])
		out = out[n:]
		return b
	}
	for len(out) > 0 {
		var m kcatMsg
		m.offset = field()
		kl, vl := field(), field()
		m.key, m.value = bytesOf(kl), bytesOf(vl)
		if len(out) == 0 || out[0] != '|' {
			t.Fatalf("kcat output: no separator after the value of offset %d", m.offset)
		}
		nl := bytes.IndexByte(out, '\n')
		if nl < 0 {
			t.Fatalf("kcat output: unterminated headers at offset %d", m.offset)
		}
		m.headers, out = string(out[1:nl]), out[nl+1:]
		msgs = append(msgs, m)
	}
	return msgs
}

// consumeArgs are the arguments of a partition-0 consumer that exits at
// the end of the partition.
func consumeArgs(topic, offset, format string) []string {
	return []string{"-C", "-t", topic, "-p", "0", "-o", offset, "-e", "-q", "-f", format}
}

// keyedLines returns n "key:value\n" lines; values repeat a phrase so
// that batches compress well.
func keyedLines(prefix string, n, repeat int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%s-key-%d:%s\n", prefix, i, strings.Repeat(fmt.Sprintf("%s value %04d; ", prefix, i), repeat))
	}
	return b.Bytes()
}

func TestKcatMetadata(t *testing.T) {
	tb := startBroker(t, nil)
	tb.createTopic(t, "list-a", 3)
	tb.createTopic(t, "list-b", 1)
	out := string(tb.kcat(t, nil, "-L"))
	for _, want := range []string{
		"1 brokers:",
		fmt.Sprintf("broker 0 at %s (controller)", tb.addr),
		`topic "list-a" with 3 partitions:`,
		`topic "list-b" with 1 partitions:`,
		"partition 2, leader 0, replicas: 0, isrs: 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kcat -L output lacks %q:\n%s", want, out)
		}
	}
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	js := tb.kcat(t, nil, "-L", "-J", "-t", "list-a")
	if err := json.Unmarshal(js, &md); err != nil {
		t.Fatalf("kcat -L -J: %v\n%s", err, js)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Name != tb.addr || md.Brokers[0].ID != 0 {
		t.Errorf("brokers %+v, want one broker 0 at %s", md.Brokers, tb.addr)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != "list-a" || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("topics %+v, want list-a with 3 partitions", md.Topics)
	}
	for i, p := range md.Topics[0].Partitions {
		if p.Partition != int32(i) || p.Leader != 0 {
			t.Errorf("partition %+v", p)
		}
	}
}

// TestKcatProduceCodecs produces keyed, compressible messages with each
// codec, checks that every stored batch carries that codec (the broker
// stores producer batches as sent), and reads them back with kcat and kgo.
func TestKcatProduceCodecs(t *testing.T) {
	tb := startBroker(t, nil)
	codecs := map[string]record.Codec{"none": record.CodecNone, "gzip": record.CodecGzip, "snappy": record.CodecSnappy, "lz4": record.CodecLZ4, "zstd": record.CodecZstd}
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			tb.createTopic(t, topic, 1)
			const n = 300
			in := keyedLines(name, n, 30)
			tb.kcat(t, in, "-P", "-t", topic, "-p", "0", "-K:", "-z", name, "-X", "linger.ms=20", "-X", "batch.num.messages=64")

			hs := tb.batchHeaders(t, topic, 0)
			records := 0
			for _, h := range hs {
				if h.Codec() != codecs[name] {
					t.Fatalf("batch at offset %d stored with codec %v, want %s", h.BaseOffset, h.Codec(), name)
				}
				records += int(h.NumRecords)
			}
			if records != n {
				t.Fatalf("%d records in %d batches, want %d", records, len(hs), n)
			}
			t.Logf("%d records in %d %s batches", records, len(hs), name)

			// kcat reads back exactly what it was given.
			if out := tb.kcat(t, nil, consumeArgs(topic, "beginning", `%k:%s\n`)...); !bytes.Equal(out, in) {
				t.Fatalf("kcat -C -f output differs from the input (%d vs %d bytes)", len(out), len(in))
			}
			// The consumer's own key/message delimiters give the same bytes.
			if out := tb.kcat(t, nil, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-K:", "-D", `\n`); !bytes.Equal(out, in) {
				t.Fatalf("kcat -C -K: -D output differs from the input (%d vs %d bytes)", len(out), len(in))
			}
			// And kgo decompresses the same records.
			lines := bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n"))
			for i, r := range consumeKgo(t, tb.addr, topic, 0, n) {
				k, v, _ := bytes.Cut(lines[i], []byte(":"))
				if r.Offset != int64(i) || !bytes.Equal(r.Key, k) || !bytes.Equal(r.Value, v) {
					t.Fatalf("kgo record %d: offset %d key %q", i, r.Offset, r.Key)
				}
			}
		})
	}
}

// TestKcatConsumeOffsets consumes from the beginning, an absolute offset,
// an offset relative to the end and a timestamp.
func TestKcatConsumeOffsets(t *testing.T) {
	tb := startBroker(t, nil)
	const topic = "offsets"
	tb.createTopic(t, topic, 1)
	first := keyedLines("early", 30, 2)
	tb.kcat(t, first, "-P", "-t", topic, "-p", "0", "-K:")
	// Every later message has a timestamp >= ts, every earlier one < ts.
	ts := time.Now().UnixMilli() + 1
	for time.Now().UnixMilli() <= ts {
		time.Sleep(time.Millisecond)
	}
	second := keyedLines("late", 20, 2)
	tb.kcat(t, second, "-P", "-t", topic, "-p", "0", "-z", "lz4", "-K:")

	all := append(bytes.Split(bytes.TrimSuffix(first, []byte("\n")), []byte("\n")), bytes.Split(bytes.TrimSuffix(second, []byte("\n")), []byte("\n"))...)
	want := func(from int) []byte {
		var b bytes.Buffer
		for i := from; i < len(all); i++ {
			fmt.Fprintf(&b, "%d %s\n", i, all[i])
		}
		return b.Bytes()
	}
	for _, tc := range []struct {
		offset string
		from   int
	}{
		{"beginning", 0},
		{"0", 0},
		{"17", 17},
		{"30", 30},
		{"49", 49},
		{"-5", 45},
		{"-50", 0},
		{"-21", 29},
		{fmt.Sprintf("s@%d", ts), 30},
		{fmt.Sprintf("s@%d", ts-1<<40), 0},
	} {
		t.Run(tc.offset, func(t *testing.T) {
			out := tb.kcat(t, nil, consumeArgs(topic, tc.offset, `%o %k:%s\n`)...)
			if w := want(tc.from); !bytes.Equal(out, w) {
				t.Fatalf("-o %s: got\n%s\nwant\n%s", tc.offset, out, w)
			}
		})
	}
	// The end: nothing.
	if out := tb.kcat(t, nil, consumeArgs(topic, "end", `%o %k:%s\n`)...); len(out) != 0 {
		t.Fatalf("-o end: got %q", out)
	}
}

// binaryValues are values no delimiter could carry.
func binaryValues() [][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return [][]byte{
		all,
		[]byte("line one\nline two\r\n\x00\x00tail|%s%k|"),
		bytes.Repeat([]byte{0xff, 0x00, '\n', ':'}, 5000),
		{0},
	}
}

// TestKcatBinaryFiles sends whole files as messages (kcat's binary-safe
// path) and reads them back with length-prefixed output.
func TestKcatBinaryFiles(t *testing.T) {
	tb := startBroker(t, nil)
	const topic = "binary"
	tb.createTopic(t, topic, 1)
	dir := t.TempDir()
	var files []string
	vals := binaryValues()
	for i, v := range vals {
		f := filepath.Join(dir, fmt.Sprintf("msg%d", i))
		if err := os.WriteFile(f, v, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	tb.kcat(t, nil, append([]string{"-P", "-t", topic, "-p", "0", "-k", "bin\x01key", "-z", "gzip"}, files...)...)
	msgs := parseKcat(t, tb.kcat(t, nil, consumeArgs(topic, "beginning", kcatFormat)...))
	if len(msgs) != len(vals) {
		t.Fatalf("%d messages, want %d", len(msgs), len(vals))
	}
	for i, m := range msgs {
		if m.offset != int64(i) || string(m.key) != "bin\x01key" || !bytes.Equal(m.value, vals[i]) {
			t.Fatalf("message %d: offset %d key %q value %d bytes, want %d bytes", i, m.offset, m.key, len(m.value), len(vals[i]))
		}
	}

	// -l: one file split on a multi-byte delimiter.
	const split = "split"
	tb.createTopic(t, split, 1)
	parts := [][]byte{[]byte("a\nb\x00c"), {0xfe, 0xff}, []byte("last\n")}
	f := filepath.Join(dir, "delimited")
	if err := os.WriteFile(f, bytes.Join(parts, []byte("#END#")), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.kcat(t, nil, "-P", "-t", split, "-p", "0", "-D", "#END#", "-l", f)
	msgs = parseKcat(t, tb.kcat(t, nil, consumeArgs(split, "beginning", kcatFormat)...))
	if len(msgs) != len(parts) {
		t.Fatalf("-l: %d messages, want %d: %+v", len(msgs), len(parts), msgs)
	}
	for i, m := range msgs {
		if !bytes.Equal(m.value, parts[i]) || m.key != nil {
			t.Fatalf("-l message %d: key %q value %q, want null key, %q", i, m.key, m.value, parts[i])
		}
	}
}

// TestKcatHeaders produces with -H and reads the headers back with %h and
// with kgo.
func TestKcatHeaders(t *testing.T) {
	tb := startBroker(t, nil)
	const topic = "headers"
	tb.createTopic(t, topic, 1)
	in := keyedLines("hdr", 5, 1)
	tb.kcat(t, in, "-P", "-t", topic, "-p", "0", "-K:", "-H", "trace=abc123", "-H", "source=kcat test", "-H", "trace=second")
	msgs := parseKcat(t, tb.kcat(t, nil, consumeArgs(topic, "beginning", kcatFormat)...))
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	for _, m := range msgs {
		if m.headers != "trace=abc123,source=kcat test,trace=second" {
			t.Fatalf("offset %d headers %q", m.offset, m.headers)
		}
	}
	for _, r := range consumeKgo(t, tb.addr, topic, 0, 5) {
		want := []kgo.RecordHeader{{Key: "trace", Value: []byte("abc123")}, {Key: "source", Value: []byte("kcat test")}, {Key: "trace", Value: []byte("second")}}
		if fmt.Sprint(r.Headers) != fmt.Sprint(want) {
			t.Fatalf("kgo offset %d headers %v, want %v", r.Offset, r.Headers, want)
		}
	}
}

// TestKcatToFranz: kcat produces (keys, headers, lz4), kgo consumes.
func TestKcatToFranz(t *testing.T) {
	tb := startBroker(t, nil)
	const topic = "kcat-to-kgo"
	tb.createTopic(t, topic, 1)
	in := keyedLines("k2f", 200, 10)
	tb.kcat(t, in, "-P", "-t", topic, "-p", "0", "-K:", "-z", "lz4", "-H", "h=v")
	lines := bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n"))
	for i, r := range consumeKgo(t, tb.addr, topic, 0, len(lines)) {
		k, v, _ := bytes.Cut(lines[i], []byte(":"))
		if r.Offset != int64(i) || !bytes.Equal(r.Key, k) || !bytes.Equal(r.Value, v) {
			t.Fatalf("record %d: offset %d key %q value %q", i, r.Offset, r.Key, r.Value)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "v" {
			t.Fatalf("record %d headers %v", i, r.Headers)
		}
	}
}

// TestFranzToKcat: kgo produces binary keys and values, null keys, empty
// values and headers with each codec; kcat reads them byte for byte.
func TestFranzToKcat(t *testing.T) {
	tb := startBroker(t, nil)
	for _, c := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
		t.Run(c.name, func(t *testing.T) {
			topic := "kgo-to-kcat-" + c.name
			tb.createTopic(t, topic, 1)
			var recs []*kgo.Record
			for i, v := range append(binaryValues(), []byte{}, bytes.Repeat([]byte("compress me "), 500)) {
				r := &kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}}}
				if i%2 == 0 {
					r.Key = append([]byte{0, byte(i), '\n'}, "key"...)
				}
				recs = append(recs, r)
			}
			produceKgo(t, tb.addr, topic, recs, kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(50*time.Millisecond))
			msgs := parseKcat(t, tb.kcat(t, nil, consumeArgs(topic, "beginning", kcatFormat)...))
			if len(msgs) != len(recs) {
				t.Fatalf("%d messages, want %d", len(msgs), len(recs))
			}
			for i, m := range msgs {
				r := recs[i]
				if m.offset != int64(i) || !bytes.Equal(m.key, r.Key) || (m.key == nil) != (r.Key == nil) || !bytes.Equal(m.value, r.Value) {
					t.Fatalf("message %d: offset %d key %q (null %v) value %d bytes; want key %q value %d bytes", i, m.offset, m.key, m.key == nil, len(m.value), r.Key, len(r.Value))
				}
				if m.headers != "i="+strconv.Itoa(i) {
					t.Fatalf("message %d headers %q", i, m.headers)
				}
			}
			if c.name != "none" {
				compressed := false
				for _, h := range tb.batchHeaders(t, topic, 0) {
					compressed = compressed || h.Codec() != record.CodecNone
				}
				if !compressed {
					t.Fatalf("no %s batch stored", c.name)
				}
			}
		})
	}
}
