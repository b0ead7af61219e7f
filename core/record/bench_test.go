package record

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchRecords returns records with semi-random 100-byte values (so that
// compression has work to do but still gains) totalling about size bytes.
func benchRecords(size int) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"alpha", "beta", "gamma", "delta", "user", "order", "click", "view", "2024", "ok"}
	var recs []Record
	for total := 0; total < size; {
		v := make([]byte, 0, 100)
		for len(v) < 100 {
			v = append(v, words[rng.IntN(len(words))]...)
			v = append(v, ' ')
		}
		v = v[:100]
		recs = append(recs, Record{Offset: int64(len(recs)), Timestamp: 1700000000000 + int64(len(recs)),
			Key: fmt.Appendf(nil, "key-%d", rng.IntN(1000)), Value: v})
		total += 100 + 16
	}
	return recs
}

func BenchmarkValidate(b *testing.B) {
	for _, size := range []int{16 << 10, 1 << 20} {
		batch, err := Build(BuildOptions{ProducerID: 1}, benchRecords(size))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Reference measured in the same run: copying the same bytes.
		b.Run(fmt.Sprintf("size=%dKiB/ref=memcopy", size>>10), func(b *testing.B) {
			dst := make([]byte, len(batch))
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				copy(dst, batch)
			}
		})
	}
}

func BenchmarkRecords(b *testing.B) {
	recs := benchRecords(256 << 10)
	for _, c := range allCodecs {
		batch, err := Build(BuildOptions{ProducerID: -1, Codec: c}, recs)
		if err != nil {
			b.Fatal(err)
		}
		raw := len(recordsSection(recs))
		b.Run("codec="+c.String(), func(b *testing.B) {
			b.SetBytes(int64(raw)) // uncompressed records bytes decoded per op
			b.ReportAllocs()
			b.ReportMetric(float64(len(batch)-HeaderSize)/float64(raw), "ratio")
			for b.Loop() {
				if _, err := Records(batch, 64<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	recs := benchRecords(256 << 10)
	raw := len(recordsSection(recs))
	for _, c := range allCodecs {
		b.Run("codec="+c.String(), func(b *testing.B) {
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(BuildOptions{ProducerID: -1, Codec: c}, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
