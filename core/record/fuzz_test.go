package record

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

const fuzzLimit = 1 << 20

func FuzzParse(f *testing.F) {
	// Seeds: a valid batch of every codec (kept small: the fuzzer minimizes
	// every new input, which costs time per byte), an empty compacted batch,
	// two concatenated batches for Next, and a zero header.
	small := []Record{
		{Offset: 0, Timestamp: 10, Key: []byte("k"), Value: []byte("value value value"),
			Headers: []RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Offset: 1, Timestamp: 9, Key: nil, Value: []byte{}},
	}
	for _, c := range allCodecs {
		f.Add(mustBuild(f, producerOpts(c), small))
		f.Add(mustBuild(f, BuildOptions{ProducerID: -1, Codec: c, LastOffsetDelta: new(int32(3))}, nil))
	}
	two := mustBuild(f, producerOpts(CodecNone), small)
	f.Add(append(two, mustBuild(f, producerOpts(CodecZstd), small)...))
	f.Add(make([]byte, HeaderSize))

	f.Fuzz(func(t *testing.T, b []byte) {
		// The fuzzer has no per-input timeout: crash the worker on a hang so
		// that the input is kept as a crasher.
		hang := time.AfterFunc(30*time.Second, func() { panic(fmt.Sprintf("hang on %d-byte input", len(b))) })
		defer hang.Stop()
		// None of these may panic, whatever b is.
		ParseHeader(b)
		Validate(b)
		ValidateStored(b)
		for rest := b; ; {
			_, batch, r, err := Next(rest)
			if err != nil {
				break
			}
			ValidateStored(batch)
			Records(batch, fuzzLimit)
			rest = r
		}
		Records(b, fuzzLimit)

		if len(b) < HeaderSize {
			return
		}
		// Make b one whole batch with a valid CRC so that the checks past
		// the length and the CRC, and the records decoder, see it.
		c := append([]byte(nil), b...)
		binary.BigEndian.PutUint32(c[offBatchLength:], uint32(len(c)-lengthOverhead))
		c[offMagic] = magicV2
		recrc(c)
		ValidateStored(c)
		if h, err := Validate(c); err == nil {
			if _, err := ValidateStored(c); err != nil {
				t.Fatalf("Validate accepts but ValidateStored rejects: %v", err)
			}
			if h.Size() != len(c) {
				t.Fatalf("size %d != %d", h.Size(), len(c))
			}
		}
		checkRecordsAllocs(t, c)
	})
}

// checkRecordsAllocs asserts that Records allocates no more than a linear
// function of the input and the decompressed size (itself capped by
// fuzzLimit): a length or count read from the input must never size an
// allocation by itself.
func checkRecordsAllocs(t *testing.T, b []byte) {
	h, err := whole(b)
	if err != nil || !h.Codec().known() {
		return
	}
	decoded := len(b) - HeaderSize
	if h.Codec() != CodecNone {
		out, err := decompress(h.Codec(), b[HeaderSize:], fuzzLimit)
		decoded = len(out) // 0 on error: Records stops there
		_ = err
	}
	Records(b, fuzzLimit) // warm the codecs' pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	recs, err := Records(b, fuzzLimit)
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	// Decoded records cost at most ~20 bytes per decoded byte (a 96-byte
	// Record per >= 7 bytes, a 40-byte header per >= 2 bytes plus its key);
	// decompression at most a few times the input and the limit.
	bound := uint64(24*decoded + 8*len(b) + 3*fuzzLimit + 512<<10)
	if got > bound {
		t.Fatalf("Records allocated %d bytes for %d input bytes (%d decoded, %d records, err %v), bound %d",
			got, len(b), decoded, len(recs), err, bound)
	}
}
