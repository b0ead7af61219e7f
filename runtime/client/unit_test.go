package client

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// javaMurmur2 is Kafka's org.apache.kafka.common.utils.Utils.murmur2, transcribed with Java's int arithmetic
// (int32, >>> as an unsigned shift) so that it is independent of franz-go's uint32 implementation.
func javaMurmur2(data []byte) int32 {
	length := int32(len(data))
	const seed = int32(-1756908916) // 0x9747b28c
	const m = int32(0x5bd1e995)
	const r = 24
	urs := func(x int32, n uint) int32 { return int32(uint32(x) >> n) } // x >>> n
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4+0]) + int32(data[i4+1])<<8 + int32(data[i4+2])<<16 + int32(data[i4+3])<<24
		k *= m
		k ^= urs(k, r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length & ^3)+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length & ^3)+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[length & ^3])
		h *= m
	}
	h ^= urs(h, 13)
	h *= m
	h ^= urs(h, 15)
	return h
}

// javaPartition is the Java producer's placement of a keyed record: Utils.toPositive(murmur2(key)) % n.
func javaPartition(key []byte, n int) int {
	return int(javaMurmur2(key)&0x7fffffff) % n
}

func TestJavaMurmur2Vectors(t *testing.T) {
	// From Kafka's UtilsTest.testMurmur2: proves the transcription above is Java's function.
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := javaMurmur2([]byte(in)); got != want {
			t.Errorf("javaMurmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestKeyPlacementMatchesJava(t *testing.T) {
	keys := []string{"", "a", "ab", "abc", "abcd", "abcde", "21", "foobar", "user-1", "user-2", "user-42",
		"order:00017", "\x00\xff\x80", "a-little-bit-longer-string", strings.Repeat("k", 1000)}
	for i := range 200 {
		keys = append(keys, "key-"+string(rune('a'+i%26))+strings.Repeat("x", i%7)+string(rune('0'+i%10)))
	}
	// Hand-checked against the Kafka vectors: murmur2("21") = -973932308, & 0x7fffffff = 1173551340.
	if got := javaPartition([]byte("21"), 7); got != 1173551340%7 {
		t.Fatalf("javaPartition(21, 7) = %d, want %d", got, 1173551340%7)
	}
	for _, n := range []int{1, 2, 3, 4, 6, 7, 10, 12, 16, 31, 64, 100} {
		p := Partitioner(-1).ForTopic("t")
		for _, k := range keys {
			rec := &kgo.Record{Key: []byte(k)}
			if got, want := p.Partition(rec, n), javaPartition([]byte(k), n); got != want {
				t.Errorf("key %q over %d partitions: weir places it at %d, Java at %d", k, n, got, want)
			}
		}
	}
}

func TestSplitKey(t *testing.T) {
	for _, c := range []struct {
		line, sep  string
		key, value string
		nullKey    bool
	}{
		{"k:v", ":", "k", "v", false},
		{"k:v:w", ":", "k", "v:w", false},
		{":v", ":", "", "v", false},
		{"k:", ":", "k", "", false},
		{"no-sep", ":", "", "no-sep", true},
		{"k:v", "", "", "k:v", true},
		{"k::v", "::", "k", "v", false},
		{"k\tv", "\t", "k", "v", false},
		{"", ":", "", "", true},
	} {
		k, v := SplitKey([]byte(c.line), c.sep)
		if (k == nil) != c.nullKey || string(k) != c.key || string(v) != c.value {
			t.Errorf("SplitKey(%q, %q) = (%q nil=%v, %q), want (%q nil=%v, %q)",
				c.line, c.sep, k, k == nil, v, c.key, c.nullKey, c.value)
		}
	}
	// The key must not alias the value's capacity: appending to it must not overwrite the value.
	k, v := SplitKey([]byte("k:v"), ":")
	_ = append(k, 'X')
	if string(v) != "v" {
		t.Errorf("key aliases value: %q", v)
	}
}

func TestParseKV(t *testing.T) {
	kv, err := ParseKV("retention.ms=1000")
	if err != nil || kv != (KV{"retention.ms", "1000"}) {
		t.Fatalf("ParseKV = %v, %v", kv, err)
	}
	kv, err = ParseKV("a=b=c")
	if err != nil || kv != (KV{"a", "b=c"}) {
		t.Fatalf("ParseKV(a=b=c) = %v, %v", kv, err)
	}
	kv, err = ParseKV("empty=")
	if err != nil || kv != (KV{"empty", ""}) {
		t.Fatalf("ParseKV(empty=) = %v, %v", kv, err)
	}
	for _, bad := range []string{"novalue", "=v", ""} {
		if _, err := ParseKV(bad); err == nil {
			t.Errorf("ParseKV(%q): no error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`\t`: "\t", `a\nb`: "a\nb", `\\`: `\`, `\0`: "\x00", `::`: "::", `\r`: "\r"} {
		if got, err := Unescape(in); err != nil || got != want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `\q`} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q): no error", bad)
		}
	}
}

func TestParseAcksAndCompression(t *testing.T) {
	for _, c := range []struct {
		in   string
		acks kgo.Acks
		idem bool
	}{
		{"all", kgo.AllISRAcks(), true}, {"-1", kgo.AllISRAcks(), true}, {"", kgo.AllISRAcks(), true},
		{"1", kgo.LeaderAck(), false}, {"0", kgo.NoAck(), false},
	} {
		acks, idem, err := ParseAcks(c.in)
		if err != nil || acks != c.acks || idem != c.idem {
			t.Errorf("ParseAcks(%q) = %v, %v, %v", c.in, acks, idem, err)
		}
	}
	if _, _, err := ParseAcks("2"); err == nil {
		t.Error("ParseAcks(2): no error")
	}
	for _, s := range []string{"none", "gzip", "snappy", "lz4", "zstd", "ZSTD", ""} {
		if _, err := ParseCompression(s); err != nil {
			t.Errorf("ParseCompression(%q): %v", s, err)
		}
	}
	if _, err := ParseCompression("brotli"); err == nil {
		t.Error("ParseCompression(brotli): no error")
	}
}

func TestParseOffset(t *testing.T) {
	for _, c := range []struct {
		in   string
		want OffsetSpec
	}{
		{"beginning", OffsetSpec{Kind: OffsetBeginning}},
		{"start", OffsetSpec{Kind: OffsetBeginning}},
		{"end", OffsetSpec{Kind: OffsetEnd}},
		{"0", OffsetSpec{Kind: OffsetExact}},
		{"42", OffsetSpec{Kind: OffsetExact, Value: 42}},
		{"-5", OffsetSpec{Kind: OffsetFromEnd, Value: 5}},
		{"-0", OffsetSpec{Kind: OffsetFromEnd}},
		{"@1700000000000", OffsetSpec{Kind: OffsetTimestamp, Value: 1700000000000}},
		{"s@1700000000000", OffsetSpec{Kind: OffsetTimestamp, Value: 1700000000000}},
	} {
		got, err := ParseOffset(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseOffset(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if err == nil && c.in != "start" && c.in != "-0" && c.in != "s@1700000000000" && got.String() != c.in {
			t.Errorf("ParseOffset(%q).String() = %q", c.in, got.String())
		}
	}
	for _, bad := range []string{"", "x", "@", "@x", "@-1", "s@", "e@5", "1.5", "--1"} {
		if got, err := ParseOffset(bad); err == nil {
			t.Errorf("ParseOffset(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestOffsetResolve(t *testing.T) {
	// A partition whose log holds [10, 20).
	const ls, hw = 10, 20
	for _, c := range []struct {
		spec   string
		atTime int64
		want   int64
	}{
		{"beginning", -1, 10}, {"end", -1, 20},
		{"15", -1, 15}, {"0", -1, 10}, {"99", -1, 20}, {"10", -1, 10}, {"20", -1, 20},
		{"-3", -1, 17}, {"-0", -1, 20}, {"-10", -1, 10}, {"-50", -1, 10},
		{"@5", 12, 12}, {"@5", -1, 20}, {"@5", 25, 20}, {"@5", 3, 10},
	} {
		o, err := ParseOffset(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.resolve(ls, hw, c.atTime); got != c.want {
			t.Errorf("%s (listed %d) over [%d,%d): start %d, want %d", c.spec, c.atTime, ls, hw, got, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	rec := &kgo.Record{
		Topic: "orders", Partition: 3, Offset: 1234,
		Key: []byte("k1"), Value: []byte("hello world"),
		Timestamp: time.UnixMilli(1700000000123),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("")}},
	}
	nulls := &kgo.Record{Topic: "t", Timestamp: time.UnixMilli(0)}
	for _, c := range []struct {
		format string
		rec    *kgo.Record
		want   string
	}{
		{DefaultFormat, rec, "hello world\n"},
		{`%k=%v`, rec, "k1=hello world"},
		{`%t/%p@%o %T\t%h\n`, rec, "orders/3@1234 1700000000123\ta=1,b=\n"},
		{`%K %S`, rec, "2 11"},
		{`%K %S [%k] [%v] [%h]`, nulls, "-1 -1 [] [] []"},
		{`100%% %v`, rec, "100% hello world"},
		{`\\n is \n, \r\0`, rec, "\\n is \n, \r\x00"},
		{`plain`, rec, "plain"},
		{``, rec, ""},
	} {
		f, err := ParseFormat(c.format)
		if err != nil {
			t.Fatalf("ParseFormat(%q): %v", c.format, err)
		}
		if got := string(f.Append(nil, c.rec)); got != c.want {
			t.Errorf("format %q: %q, want %q", c.format, got, c.want)
		}
	}
	for _, bad := range []string{`%`, `%x`, `\`, `\q`, `%v%`} {
		if _, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q): no error", bad)
		}
	}
}

func TestParseBrokers(t *testing.T) {
	got := ParseBrokers(" a:1, b:2,,")
	if len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("ParseBrokers = %q", got)
	}
}
