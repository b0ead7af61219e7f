package record

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests prove wire compatibility with franz-go: batches encoded by
// kmsg (and compressed by kgo's own compressor, what kgo producers send)
// parse here, and batches built here parse with kmsg and decompress with
// kgo's decompressor (what kgo consumers do).

// kmsgRecords encodes recs with kmsg.Record.AppendTo, relative to base
// offset/timestamp, as a kgo producer lays out a records section.
func kmsgRecords(recs []Record, baseOffset, baseTS int64) []byte {
	var out []byte
	for _, r := range recs {
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.Timestamp - baseTS,
			OffsetDelta:      int32(r.Offset - baseOffset),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// Length is the size of everything after it: encode once with
		// Length 0 (a one-byte varint) to measure, then for real.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		out = kr.AppendTo(out)
	}
	return out
}

func kgoCompressor(t *testing.T, c Codec) kgo.Compressor {
	t.Helper()
	codecs := map[Codec]kgo.CompressionCodec{
		CodecGzip: kgo.GzipCompression(), CodecSnappy: kgo.SnappyCompression(),
		CodecLZ4: kgo.Lz4Compression(), CodecZstd: kgo.ZstdCompression(),
	}
	comp, err := kgo.DefaultCompressor(codecs[c])
	if err != nil {
		t.Fatal(err)
	}
	return comp
}

func TestInteropFromFranzGo(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords(0)
			raw := kmsgRecords(want, 0, 1699999999990)
			payload, used := raw, kgo.CodecNone
			if c != CodecNone { // kgo has no compressor for "none"
				payload, used = kgoCompressor(t, c).Compress(new(bytes.Buffer), raw)
			}
			if Codec(used) != c {
				t.Fatalf("kgo compressed with %v", used)
			}
			rb := kmsg.RecordBatch{
				FirstOffset:          0,
				Length:               int32(HeaderSize - 12 + len(payload)),
				PartitionLeaderEpoch: -1,
				Magic:                2,
				Attributes:           int16(used),
				LastOffsetDelta:      int32(len(want) - 1),
				FirstTimestamp:       1699999999990,
				MaxTimestamp:         1700000000005,
				ProducerID:           42,
				ProducerEpoch:        3,
				FirstSequence:        7,
				NumRecords:           int32(len(want)),
				Records:              payload,
			}
			b := rb.AppendTo(nil)
			rb.CRC = int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
			b = rb.AppendTo(nil)

			h, err := Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.ProducerID != 42 || h.BaseSequence != 7 || h.Codec() != c || h.MaxTimestamp != 1700000000005 {
				t.Fatalf("header %+v", h)
			}
			got, err := Records(b, 1<<20)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Fatalf("records differ:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestInteropToFranzGo(t *testing.T) {
	dec := kgo.DefaultDecompressor()
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			want := sampleRecords(500)
			opts := producerOpts(c)
			opts.BaseOffset = 500
			b := mustBuild(t, opts, want)

			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg ReadFrom: %v", err)
			}
			if rb.FirstOffset != 500 || rb.Magic != 2 || int(rb.Length) != len(b)-12 || rb.NumRecords != 5 ||
				rb.LastOffsetDelta != 4 || rb.ProducerID != 42 || rb.FirstSequence != 7 || rb.Attributes&7 != int16(c) {
				t.Fatalf("kmsg batch %+v", rb)
			}
			if uint32(rb.CRC) != crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)) {
				t.Fatal("crc")
			}
			raw, err := dec.Decompress(rb.Records, kgo.CompressionCodecType(c))
			if err != nil {
				t.Fatalf("kgo Decompress: %v", err)
			}
			for i, w := range want {
				l, n := binary.Varint(raw)
				if n <= 0 || int(l)+n > len(raw) {
					t.Fatalf("record %d: bad length", i)
				}
				var kr kmsg.Record
				if err := kr.ReadFrom(raw[:n+int(l)]); err != nil {
					t.Fatalf("record %d: kmsg ReadFrom: %v", i, err)
				}
				raw = raw[n+int(l):]
				if rb.FirstOffset+int64(kr.OffsetDelta) != w.Offset || rb.FirstTimestamp+kr.TimestampDelta64 != w.Timestamp ||
					!bytes.Equal(kr.Key, w.Key) || (kr.Key == nil) != (w.Key == nil) ||
					!bytes.Equal(kr.Value, w.Value) || (kr.Value == nil) != (w.Value == nil) || len(kr.Headers) != len(w.Headers) {
					t.Fatalf("record %d: kmsg %+v, want %+v", i, kr, w)
				}
				for j, h := range w.Headers {
					if kr.Headers[j].Key != h.Key || !bytes.Equal(kr.Headers[j].Value, h.Value) || (kr.Headers[j].Value == nil) != (h.Value == nil) {
						t.Fatalf("record %d header %d: %+v want %+v", i, j, kr.Headers[j], h)
					}
				}
			}
			if len(raw) != 0 {
				t.Fatalf("%d trailing bytes", len(raw))
			}
		})
	}
}
