package commitlog

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/weirstream/weir/core/record"
)

// benchBatch is a batch of 1 KiB records totalling about size bytes.
func benchBatch(b *testing.B, size int) []byte {
	n := max(size/1024, 1)
	recs := make([]record.Record, n)
	val := bytes.Repeat([]byte("weir"), 1000/4)
	for i := range recs {
		recs[i] = record.Record{Offset: int64(i), Timestamp: 1700000000000, Key: []byte(fmt.Sprintf("key-%06d", i)), Value: val}
	}
	batch, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	if err != nil {
		b.Fatal(err)
	}
	return batch
}

var benchSizes = []struct {
	name string
	size int
}{{"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// BenchmarkAppend appends batches of 1 KiB records to a log on the real
// filesystem under each flush policy.
func BenchmarkAppend(b *testing.B) {
	for _, sz := range benchSizes {
		for _, mode := range []FlushMode{FlushNever, FlushInterval, FlushAlways} {
			b.Run(fmt.Sprintf("batch=%s/flush=%s", sz.name, mode), func(b *testing.B) {
				batch := benchBatch(b, sz.size)
				opts := Options{Flush: FlushPolicy{Mode: mode, Batches: 1000}, SegmentBytes: 256 << 20, MaxMessageBytes: 2 << 20}
				l, err := Open(b.TempDir(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := l.Append(batch); err != nil {
						b.Fatal(err)
					}
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkRead reads a log sequentially in 1 MiB fetches.
func BenchmarkRead(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("batch="+sz.name, func(b *testing.B) {
			batch := benchBatch(b, sz.size)
			l, err := Open(b.TempDir(), Options{Flush: FlushPolicy{Mode: FlushNever}, SegmentBytes: 256 << 20, MaxMessageBytes: 2 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			for l.Size() < 64<<20 {
				if _, err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			l.SetHighWatermark(l.LogEndOffset())
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			off := int64(0)
			buf := make([]byte, 0, 2<<20)
			for i := 0; i < b.N; {
				data, err := l.ReadInto(buf, off, 1<<20, l.HighWatermark())
				if err != nil {
					b.Fatal(err)
				}
				for len(data) > 0 && i < b.N {
					h, _, rest, err := record.Next(data)
					if err != nil {
						b.Fatal(err)
					}
					off, data = h.LastOffset()+1, rest
					i++
				}
				if off >= l.HighWatermark() {
					off = 0
				}
			}
		})
	}
}
