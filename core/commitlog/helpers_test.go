package commitlog

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/core/record"
)

// testBatch builds a producer batch of n records whose values identify it
// (tag) and whose timestamps are ts.
func testBatch(t testing.TB, tag string, n int, ts int64) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Offset:    int64(i),
			Timestamp: ts,
			Key:       []byte(fmt.Sprintf("k%d", i)),
			Value:     []byte(fmt.Sprintf("%s-%d", tag, i)),
		}
	}
	b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyedBatch builds a one-record batch with the given key and value (nil
// value: a tombstone).
func keyedBatch(t testing.TB, key string, value []byte, ts int64) []byte {
	t.Helper()
	b, err := record.Build(record.BuildOptions{ProducerID: -1}, []record.Record{{Timestamp: ts, Key: []byte(key), Value: value}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads every batch from offset from up to the high watermark.
func readAll(t testing.TB, l *Log, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	off := from
	for off < l.HighWatermark() {
		b, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			h, batch, rest, err := record.Next(b)
			if err != nil {
				t.Fatalf("read at %d returned a partial batch: %v", off, err)
			}
			if _, err := record.ValidateStored(batch); err != nil {
				t.Fatalf("batch at %d: %v", h.BaseOffset, err)
			}
			out = append(out, bytes.Clone(batch))
			off = h.LastOffset() + 1
			b = rest
		}
	}
	return out
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
