package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// sampleRecords returns records at offsets base, base+1, ... covering null
// and empty keys/values and headers.
func sampleRecords(base int64) []Record {
	return []Record{
		{Offset: base, Timestamp: 1700000000000, Key: []byte("k0"), Value: []byte("hello")},
		{Offset: base + 1, Timestamp: 1700000000005, Key: nil, Value: []byte("null key")},
		{Offset: base + 2, Timestamp: 1699999999990, Key: []byte("k2"), Value: nil},
		{Offset: base + 3, Timestamp: 1700000000001, Key: []byte{}, Value: []byte{}},
		{Offset: base + 4, Timestamp: 1700000000002, Key: []byte("k4"), Value: bytes.Repeat([]byte("compressible "), 100),
			Headers: []RecordHeader{{Key: "trace", Value: []byte("abc")}, {Key: "null", Value: nil}, {Key: "", Value: []byte{}}}},
	}
}

// normalize makes empty-but-non-nil and nil slices comparable where the
// encoding cannot tell them apart (headers).
func normalize(rs []Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		if len(r.Headers) == 0 {
			r.Headers = nil
		}
		out[i] = r
	}
	return out
}

func mustBuild(t testing.TB, opts BuildOptions, recs []Record) []byte {
	t.Helper()
	b, err := Build(opts, recs)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b
}

// recrc recomputes the CRC of a whole batch in place, so a test can change
// a CRC-covered field and exercise the check after the CRC.
func recrc(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

func producerOpts(c Codec) BuildOptions {
	return BuildOptions{BaseOffset: 0, PartitionLeaderEpoch: -1, Codec: c, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 7}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords(1000)
			opts := producerOpts(c)
			opts.BaseOffset = 1000
			b := mustBuild(t, opts, want)
			h, err := Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Codec() != c || h.NumRecords != 5 || h.LastOffsetDelta != 4 || h.BaseOffset != 1000 ||
				h.ProducerID != 42 || h.ProducerEpoch != 3 || h.BaseSequence != 7 || h.PartitionLeaderEpoch != -1 {
				t.Fatalf("header %+v", h)
			}
			if h.BaseTimestamp != 1699999999990 || h.MaxTimestamp != 1700000000005 {
				t.Fatalf("timestamps %d %d", h.BaseTimestamp, h.MaxTimestamp)
			}
			if h.Size() != len(b) || h.LastOffset() != 1004 {
				t.Fatalf("size %d len %d last %d", h.Size(), len(b), h.LastOffset())
			}
			got, err := Records(b, 1<<20)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Fatalf("records differ:\n got %+v\nwant %+v", got, want)
			}
			// Null vs empty must survive.
			if got[1].Key != nil || got[2].Value != nil || got[3].Key == nil || got[3].Value == nil || got[4].Headers[1].Value != nil {
				t.Fatal("null/empty distinction lost")
			}

			// The broker rewrites offset and epoch in place; CRC stays valid.
			SetBaseOffset(b, 5000)
			SetPartitionLeaderEpoch(b, 9)
			h, err = Validate(b)
			if err != nil {
				t.Fatalf("Validate after rewrite: %v", err)
			}
			if _, err := ValidateStored(b); err != nil {
				t.Fatalf("ValidateStored after rewrite: %v", err)
			}
			if h.BaseOffset != 5000 || h.PartitionLeaderEpoch != 9 || h.LastOffset() != 5004 {
				t.Fatalf("after rewrite %+v", h)
			}
			got, err = Records(b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range got {
				if r.Offset != 5000+int64(i) {
					t.Fatalf("record %d offset %d", i, r.Offset)
				}
			}
		})
	}
}

func TestRecordsLimitExtremes(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, producerOpts(c), sampleRecords(0))
		if _, err := Records(b, math.MaxInt); err != nil {
			t.Errorf("%s: MaxInt limit: %v", c, err)
		}
		for _, limit := range []int{0, -1, math.MinInt} {
			_, err := Records(b, limit)
			if c == CodecNone && err != nil || c != CodecNone && !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s: limit %d: %v", c, limit, err)
			}
		}
	}
}

func TestBuildAttributes(t *testing.T) {
	recs := []Record{{Offset: 10, Timestamp: 5, Value: []byte("v")}, {Offset: 12, Timestamp: 6, Value: []byte("w")}}
	b := mustBuild(t, BuildOptions{BaseOffset: 10, ProducerID: -1, ProducerEpoch: 4, BaseSequence: 9,
		Transactional: true, Control: true, LogAppendTime: true, MaxTimestamp: new(int64(777))}, recs)
	h, err := ValidateStored(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Transactional() || !h.Control() || !h.LogAppendTime() || h.Codec() != CodecNone {
		t.Fatalf("attributes %#x", h.Attributes)
	}
	if h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 {
		t.Fatalf("producer fields %+v", h)
	}
	if h.LastOffsetDelta != 2 || h.NumRecords != 2 {
		t.Fatalf("deltas %+v", h)
	}
	if _, err := Validate(b); !errors.Is(err, ErrOffsetDelta) && !errors.Is(err, ErrControl) {
		t.Fatalf("Validate of a gapped control batch: %v", err)
	}
	got, err := Records(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// LogAppendTime: every record carries MaxTimestamp; offsets preserved with a gap.
	if got[0].Timestamp != 777 || got[1].Timestamp != 777 || got[0].Offset != 10 || got[1].Offset != 12 {
		t.Fatalf("records %+v", got)
	}
}

func TestBuildEmpty(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, BuildOptions{BaseOffset: 100, ProducerID: -1, Codec: c, LastOffsetDelta: new(int32(4))}, nil)
		h, err := ValidateStored(b)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if h.NumRecords != 0 || h.LastOffset() != 104 || h.BaseTimestamp != -1 {
			t.Fatalf("%s: %+v", c, h)
		}
		if _, err := Validate(b); !errors.Is(err, ErrNoRecords) {
			t.Fatalf("%s: Validate empty: %v", c, err)
		}
		recs, err := Records(b, 1<<20)
		if err != nil || len(recs) != 0 {
			t.Fatalf("%s: Records: %v %v", c, recs, err)
		}
	}
}

func TestBuildCompactionKeepsRange(t *testing.T) {
	// Records 0..9 compacted down to offsets 3 and 7; the range stays 0..9.
	recs := []Record{{Offset: 3, Key: []byte("a"), Value: []byte("1")}, {Offset: 7, Key: []byte("b"), Value: []byte("2")}}
	b := mustBuild(t, BuildOptions{BaseOffset: 0, ProducerID: -1, Codec: CodecZstd, LastOffsetDelta: new(int32(9))}, recs)
	h, err := ValidateStored(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffset() != 9 || h.NumRecords != 2 {
		t.Fatalf("%+v", h)
	}
	got, err := Records(b, 1<<20)
	if err != nil || got[0].Offset != 3 || got[1].Offset != 7 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name string
		opts BuildOptions
		recs []Record
		want error
	}{
		{"unknown codec", BuildOptions{Codec: 5}, sampleRecords(0), ErrCodec},
		{"offset below base", BuildOptions{BaseOffset: 10}, sampleRecords(9), ErrOffsetDelta},
		{"offsets not increasing", BuildOptions{}, []Record{{Offset: 1}, {Offset: 1}}, ErrOffsetDelta},
		{"delta overflows int32", BuildOptions{}, []Record{{Offset: 1 << 31}}, ErrOffsetDelta},
		{"last delta below records", BuildOptions{LastOffsetDelta: new(int32(3))}, sampleRecords(0), ErrOffsetDelta},
	}
	for _, tc := range cases {
		if _, err := Build(tc.opts, tc.recs); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	valid := mustBuild(t, producerOpts(CodecNone), sampleRecords(0))
	if _, err := Validate(valid); err != nil {
		t.Fatal(err)
	}
	type fn func([]byte) (Header, error)
	parse := func(b []byte) (Header, error) { return ParseHeader(b) }

	cases := []struct {
		name   string
		mutate func([]byte) []byte
		// expected error per function; nil means accepted.
		parse, validate, stored error
	}{
		{"valid", func(b []byte) []byte { return b }, nil, nil, nil},
		{"short input", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrTruncated, ErrTruncated, ErrTruncated},
		{"empty input", func(b []byte) []byte { return nil }, ErrTruncated, ErrTruncated, ErrTruncated},
		{"partial batch", func(b []byte) []byte { return b[:len(b)-1] }, nil, ErrTruncated, ErrTruncated},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, nil, ErrLength, ErrLength},
		{"wrong magic", func(b []byte) []byte { b[offMagic] = 1; return b }, ErrMagic, ErrMagic, ErrMagic},
		{"bad crc", func(b []byte) []byte { b[30] ^= 0x40; return b }, nil, ErrCRC, ErrCRC},
		{"bad crc in records", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, nil, ErrCRC, ErrCRC},
		{"crc field", func(b []byte) []byte { b[offCRC] ^= 1; return b }, nil, ErrCRC, ErrCRC},
		{"length too small", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBatchLength:], minBatchLength-1)
			return b
		}, ErrLength, ErrLength, ErrLength},
		{"negative length", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBatchLength:], 0xffffffff)
			return b
		}, ErrLength, ErrLength, ErrLength},
		{"length too big", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)))
			return b
		}, nil, ErrTruncated, ErrTruncated},
		{"last offset delta above count-1", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 5)
			recrc(b)
			return b
		}, nil, ErrOffsetDelta, nil},
		{"last offset delta below count-1", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 3)
			recrc(b)
			return b
		}, nil, ErrOffsetDelta, ErrOffsetDelta},
		{"zero records", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 0)
			recrc(b)
			return b
		}, nil, ErrNoRecords, nil},
		{"negative records", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offNumRecords:], 0xffffffff)
			recrc(b)
			return b
		}, nil, ErrNoRecords, ErrNoRecords},
		{"control bit", func(b []byte) []byte {
			b[offAttributes+1] |= attrControl
			recrc(b)
			return b
		}, nil, ErrControl, nil},
		{"unknown codec", func(b []byte) []byte {
			b[offAttributes+1] = b[offAttributes+1]&^attrCodecMask | 5
			recrc(b)
			return b
		}, nil, ErrCodec, ErrCodec},
		{"negative sequence for idempotent batch", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[offBaseSequence:], 0xffffffff)
			recrc(b)
			return b
		}, nil, ErrSequence, nil},
		{"negative sequence without producer id", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offProducerID:], 0xffffffffffffffff)
			binary.BigEndian.PutUint32(b[offBaseSequence:], 0xffffffff)
			recrc(b)
			return b
		}, nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []struct {
				name string
				f    fn
				want error
			}{{"ParseHeader", parse, tc.parse}, {"Validate", Validate, tc.validate}, {"ValidateStored", ValidateStored, tc.stored}} {
				b := tc.mutate(bytes.Clone(valid))
				_, err := f.f(b)
				if want := f.want; want == nil && err != nil || want != nil && !errors.Is(err, want) {
					t.Errorf("%s: got %v, want %v", f.name, err, f.want)
				}
				if err != nil && !strings.HasPrefix(err.Error(), "record: ") {
					t.Errorf("%s: error %q lacks the package prefix", f.name, err)
				}
			}
		})
	}
}

func TestNext(t *testing.T) {
	var buf []byte
	var sizes []int
	for i, c := range allCodecs {
		opts := producerOpts(c)
		opts.BaseOffset = int64(i * 10)
		b := mustBuild(t, opts, sampleRecords(opts.BaseOffset))
		sizes = append(sizes, len(b))
		buf = append(buf, b...)
	}
	full := len(buf)
	buf = append(buf, buf[:HeaderSize+3]...) // a torn tail
	rest := buf
	at := 0
	for i := range allCodecs {
		h, batch, r, err := Next(rest)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if len(batch) != sizes[i] || cap(batch) != sizes[i] || &batch[0] != &buf[at] {
			t.Fatalf("batch %d: not a clipped sub-slice", i)
		}
		if h.BaseOffset != int64(i*10) {
			t.Fatalf("batch %d: base %d", i, h.BaseOffset)
		}
		if _, err := ValidateStored(batch); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		at += len(batch)
		rest = r
	}
	if at != full {
		t.Fatalf("consumed %d of %d", at, full)
	}
	if _, _, r, err := Next(rest); !errors.Is(err, ErrTruncated) || len(r) != len(rest) {
		t.Fatalf("torn tail: %v", err)
	}
	if _, _, _, err := Next(rest[:10]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short tail: %v", err)
	}
	if _, _, _, err := Next(nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty: %v", err)
	}
}

func TestParseCodec(t *testing.T) {
	for _, c := range allCodecs {
		got, err := ParseCodec(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCodec(%q) = %v, %v", c.String(), got, err)
		}
	}
	if c, err := ParseCodec("ZSTD"); err != nil || c != CodecZstd {
		t.Errorf("ParseCodec(ZSTD) = %v, %v", c, err)
	}
	for _, s := range []string{"", "brotli", "uncompressed", "producer"} {
		if _, err := ParseCodec(s); !errors.Is(err, ErrCodec) {
			t.Errorf("ParseCodec(%q): %v", s, err)
		}
	}
	if s := Codec(5).String(); s != "codec(5)" {
		t.Errorf("Codec(5).String() = %q", s)
	}
}

// rawBatch wraps a records section in a header with a valid CRC.
func rawBatch(c Codec, n int32, payload []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	b = append(b, payload...)
	be := binary.BigEndian
	be.PutUint32(b[offBatchLength:], uint32(len(b)-lengthOverhead))
	b[offMagic] = magicV2
	be.PutUint16(b[offAttributes:], uint16(c))
	be.PutUint32(b[offLastOffsetDelta:], uint32(n-1))
	be.PutUint64(b[offProducerID:], 0xffffffffffffffff)
	be.PutUint16(b[offProducerEpoch:], 0xffff)
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offNumRecords:], uint32(n))
	recrc(b)
	return b
}

// recordsSection returns the uncompressed records section of recs.
func recordsSection(recs []Record) []byte {
	return appendRecords(nil, recs, 0, 0) // rawBatch's bases are 0
}

func manyRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Offset: int64(i), Timestamp: 1000, Key: []byte{byte(i)}, Value: bytes.Repeat([]byte{byte(i), 'x'}, 200)}
	}
	return recs
}

func TestSnappyXerial(t *testing.T) {
	recs := manyRecords(300) // ~120 KiB: several chunks
	raw := recordsSection(recs)
	// Frame by hand as snappy-java's SnappyOutputStream does, with raw
	// blocks from a different snappy implementation (golang/snappy).
	framed := append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}, 0, 0, 0, 1, 0, 0, 0, 1)
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 32<<10)
		blk := snappy.Encode(nil, rest[:n])
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(blk)))
		framed = append(framed, blk...)
		rest = rest[n:]
	}
	b := rawBatch(CodecSnappy, int32(len(recs)), framed)
	if _, err := Validate(b); err != nil {
		t.Fatal(err)
	}
	got, err := Records(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(recs)) {
		t.Fatal("xerial records differ")
	}
	// The cap applies to the sum of the chunks.
	if _, err := Records(b, len(raw)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("xerial over cap: %v", err)
	}
	// A torn chunk is corrupt.
	torn := rawBatch(CodecSnappy, int32(len(recs)), framed[:len(framed)-5])
	if _, err := Records(torn, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn xerial: %v", err)
	}
	// A raw block from golang/snappy (librdkafka style) decodes as well.
	b = rawBatch(CodecSnappy, int32(len(recs)), snappy.Encode(nil, raw))
	got, err = Records(b, 1<<20)
	if err != nil || len(got) != len(recs) {
		t.Fatalf("raw snappy: %d records, %v", len(got), err)
	}
}

func TestDecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	// A valid records section of ~8 MiB, highly compressible.
	recs := make([]Record, 4)
	for i := range recs {
		recs[i] = Record{Offset: int64(i), Value: make([]byte, 2<<20)}
	}
	raw := recordsSection(recs)
	var zstdStream bytes.Buffer
	zw, _ := zstd.NewWriter(&zstdStream)
	zw.Write(raw)
	zw.Close()
	payloads := map[string][]byte{"zstd stream": zstdStream.Bytes()}
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		p, err := compress(c, nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		payloads[c.String()] = p
	}
	for name, p := range payloads {
		c, _ := ParseCodec(strings.Fields(name)[0])
		if len(p) > 1<<20 {
			t.Fatalf("%s: payload %d bytes is not a bomb", name, len(p))
		}
		b := rawBatch(c, int32(len(recs)), p)
		if _, err := Validate(b); err != nil {
			t.Fatal(err)
		}
		if _, err := Records(b, limit); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s (%d bytes): got %v, want ErrTooLarge", name, len(p), err)
		}
		// Refusing is not enough: the bomb must not be inflated first.
		checkRecordsAllocs(t, b)
		// Under a cap large enough, the same batch decodes.
		if got, err := Records(b, len(raw)); err != nil || len(got) != len(recs) {
			t.Errorf("%s: with a sufficient cap: %v", name, err)
		}
	}
}

func TestRecordsCorrupt(t *testing.T) {
	recs := sampleRecords(0)
	raw := recordsSection(recs)
	cases := []struct {
		name    string
		n       int32
		payload []byte
	}{
		{"count beyond bytes", 1 << 30, raw},
		{"count above records", int32(len(recs)) + 1, raw},
		{"count below records", int32(len(recs)) - 1, raw},
		{"truncated section", int32(len(recs)), raw[:len(raw)-1]},
		{"record length beyond section", 1, []byte{0x7e, 0, 0, 0, 1, 1, 0}},
		{"negative record length", 1, []byte{0x01, 0, 0, 0, 1, 1, 0}},
		{"key length beyond record", 1, []byte{0x0c, 0, 0, 0, 0x10, 1, 0}},
		{"key length < -1", 1, []byte{0x0c, 0, 0, 0, 0x03, 1, 0}},
		{"header count beyond record", 1, []byte{0x0c, 0, 0, 0, 1, 1, 0x7e}},
		{"huge header count", 1, []byte{0x12, 0, 0, 0, 1, 1, 0x80, 0x80, 0x80, 0x01}},
		{"negative header count", 1, []byte{0x0c, 0, 0, 0, 1, 1, 0x01}},
		{"null header key", 1, []byte{0x10, 0, 0, 0, 1, 1, 0x02, 0x01, 0x01}},
		{"bytes left in record", 1, []byte{0x0e, 0, 0, 0, 1, 1, 0, 0}},
		{"bad varint", 1, []byte{0x12, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"offset delta overflows int32", 1, []byte{0x14, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 1, 0}},
	}
	for _, tc := range cases {
		b := rawBatch(CodecNone, tc.n, tc.payload)
		if _, err := Records(b, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", tc.name, err)
		}
		checkRecordsAllocs(t, b)
	}
	// Garbage where compressed data should be.
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		b := rawBatch(c, 1, []byte("this is not compressed data at all"))
		if _, err := Records(b, 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s garbage: got %v, want ErrCorrupt", c, err)
		}
	}
	// The minimal valid record decodes (guards the cases above against
	// failing for the wrong reason).
	b := rawBatch(CodecNone, 1, []byte{0x0c, 0, 0, 0, 1, 1, 0})
	if got, err := Records(b, 1<<20); err != nil || len(got) != 1 || got[0].Key != nil || got[0].Value != nil {
		t.Fatalf("minimal record: %+v %v", got, err)
	}
}
