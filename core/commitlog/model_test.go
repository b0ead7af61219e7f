package commitlog

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// modelBatch is what the model remembers of an appended batch.
type modelBatch struct {
	base, last int64
	size       int
	values     []string
}

// TestModel runs random sequences of append, read, roll, retention and
// reopen against a log and an in-memory model and compares every answer.
func TestModel(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			runModel(t, seed, 400)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	mem := vfs.NewMem()
	opts := Options{
		FS:                 mem,
		SegmentBytes:       int64(1024 + rng.IntN(4096)),
		IndexIntervalBytes: 64 + rng.IntN(512),
		RetentionBytes:     int64(4096 + rng.IntN(16384)),
		Retention:          -1,
		Flush:              FlushPolicy{Mode: FlushMode(rng.IntN(3)), Batches: 3, Interval: 0},
	}
	open := func() *Log {
		l, err := Open("/log", opts)
		if err != nil {
			t.Fatalf("seed %d: open: %v", seed, err)
		}
		return l
	}
	l := open()
	defer func() { l.Close() }()
	var model []modelBatch
	start := int64(0)
	leo := int64(0)

	checkRead := func(off int64, maxBytes int) {
		b, err := l.Read(off, maxBytes)
		if err != nil {
			t.Fatalf("seed %d: read(%d, %d): %v", seed, off, maxBytes, err)
		}
		i := slices.IndexFunc(model, func(m modelBatch) bool { return m.last >= off })
		if i < 0 {
			if len(b) != 0 {
				t.Fatalf("seed %d: read(%d) at end returned %d bytes", seed, off, len(b))
			}
			return
		}
		segs := l.Segments()
		total := 0
		for n := 0; len(b) > 0; n++ {
			h, batch, rest, err := record.Next(b)
			if err != nil {
				t.Fatalf("seed %d: read(%d) partial batch: %v", seed, off, err)
			}
			m := model[i+n]
			if h.BaseOffset != m.base || h.LastOffset() != m.last || len(batch) != m.size {
				t.Fatalf("seed %d: read(%d) batch %d is %d..%d (%d bytes), model %d..%d (%d bytes)", seed, off, n, h.BaseOffset, h.LastOffset(), len(batch), m.base, m.last, m.size)
			}
			recs, err := record.Records(batch, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range recs {
				if string(r.Value) != m.values[j] || r.Offset != m.base+int64(j) {
					t.Fatalf("seed %d: record %d of batch %d: %q@%d, model %q@%d", seed, j, m.base, r.Value, r.Offset, m.values[j], m.base+int64(j))
				}
			}
			total += len(batch)
			if n > 0 && total > maxBytes {
				t.Fatalf("seed %d: read(%d, %d) returned %d bytes in %d batches", seed, off, maxBytes, total, n+1)
			}
			b = rest
			if len(rest) == 0 {
				// Stopped early: only at the byte budget, a segment end or the end.
				if next := i + n + 1; next < len(model) && total+model[next].size <= maxBytes && !slices.Contains(segs, model[next].base) {
					t.Fatalf("seed %d: read(%d, %d) stopped after %d bytes before batch %d that fits", seed, off, maxBytes, total, model[next].base)
				}
			}
		}
		if total == 0 {
			t.Fatalf("seed %d: read(%d) returned nothing though batch %d is there", seed, off, model[i].base)
		}
	}

	for step := 0; step < steps; step++ {
		switch op := rng.IntN(100); {
		case op < 55:
			n := 1 + rng.IntN(8)
			tag := string(rune('a'+rng.IntN(26))) + string(bytes.Repeat([]byte{'x'}, rng.IntN(300)))
			b := testBatch(t, tag, n, int64(step))
			info, err := l.Append(b)
			if err != nil {
				t.Fatalf("seed %d: append: %v", seed, err)
			}
			if info.BaseOffset != leo || info.LastOffset != leo+int64(n)-1 {
				t.Fatalf("seed %d: append got %+v at leo %d", seed, info, leo)
			}
			vals := make([]string, n)
			recs, _ := record.Records(b, 1<<20)
			for j, r := range recs {
				vals[j] = string(r.Value)
			}
			model = append(model, modelBatch{base: leo, last: leo + int64(n) - 1, size: len(b), values: vals})
			leo += int64(n)
			l.SetHighWatermark(l.LogEndOffset())
		case op < 80:
			if leo > start {
				checkRead(start+rng.Int64N(leo-start+1), rng.IntN(4096))
			}
		case op < 85:
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
		case op < 92:
			if _, err := l.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
			newStart := l.LogStartOffset()
			if newStart < start {
				t.Fatalf("seed %d: log start went back from %d to %d", seed, start, newStart)
			}
			for len(model) > 0 && model[0].base < newStart {
				model = model[1:]
			}
			if len(model) > 0 && model[0].base != newStart {
				t.Fatalf("seed %d: log start %d is not a batch boundary (first batch %d)", seed, newStart, model[0].base)
			}
			start = newStart
			if sz := l.Size(); len(l.Segments()) > 1 {
				first := 0
				for _, m := range model {
					if m.base < l.Segments()[1] {
						first += m.size
					}
				}
				if sz-int64(first) >= opts.RetentionBytes {
					t.Fatalf("seed %d: retention left %d bytes; dropping the first segment (%d) would still leave >= %d", seed, sz, first, opts.RetentionBytes)
				}
			}
		default:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open()
		}
		if l.LogEndOffset() != leo || l.LogStartOffset() != start {
			t.Fatalf("seed %d step %d: offsets [%d, %d), model [%d, %d)", seed, step, l.LogStartOffset(), l.LogEndOffset(), start, leo)
		}
	}
	for off := start; off < leo; off++ {
		checkRead(off, 1+rng.IntN(2048))
	}
}
