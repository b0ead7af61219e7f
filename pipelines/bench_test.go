package pipelines

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
)

// benchRecords are n JSON records of about 200 bytes.
func benchRecords(n int) []sdk.Record {
	recs := make([]sdk.Record, n)
	countries := []string{"NZ", "AU", "US", "DE"}
	for i := range recs {
		v := fmt.Sprintf(`{"user_id":"user-%06d","country":%q,"amount":%d,"currency":"NZD","page":"/products/widgets/%d","referrer":"https://example.com/search?q=widgets","ts":%d}`,
			i%10000, countries[i%4], i%2000, i%50, 1700000000000+i)
		recs[i] = sdk.Record{Key: []byte(fmt.Sprintf("user-%06d", i%10000)), Value: []byte(v), Topic: "clicks", Offset: int64(i), Timestamp: time.UnixMilli(1700000000000)}
	}
	return recs
}

func benchStage(b *testing.B, spec string) {
	s, err := Parse("bench.yaml", []byte(spec))
	if err != nil {
		b.Fatal(err)
	}
	in := benchRecords(1000)
	var size int64
	for _, r := range in {
		size += int64(len(r.Value))
	}
	var res sdk.Results
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		res.Reset()
		if err := s.Stages[0].proc.Process(context.Background(), in, &res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFilter is the expr filter stage alone on ~200-byte JSON
// records (1000 per batch): records/s on one goroutine.
func BenchmarkFilter(b *testing.B) {
	benchStage(b, `
pipeline: b
input: {topics: [clicks]}
stages:
  - filter: 'value.country == "NZ" && value.amount > 100'
output: out
`)
}

// BenchmarkFilterKeyOnly needs no value: nothing is decoded.
func BenchmarkFilterKeyOnly(b *testing.B) {
	benchStage(b, `
pipeline: b
input: {topics: [clicks]}
stages:
  - filter: 'key > "user-005000"'
output: out
`)
}

// BenchmarkMap builds a new JSON value per record.
func BenchmarkMap(b *testing.B) {
	benchStage(b, `
pipeline: b
input: {topics: [clicks]}
stages:
  - map: '{"user": key, "amount": value.amount, "big": value.amount > 1000}'
output: out
`)
}

// BenchmarkDecodeWhole is the reference for BenchmarkFilter: decoding the
// same records whole with encoding/json, as the filter did before lazy
// decoding.
func BenchmarkDecodeWhole(b *testing.B) {
	in := benchRecords(1000)
	var size int64
	for _, r := range in {
		size += int64(len(r.Value))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range in {
			if decodeValue(in[i].Value) == nil {
				b.Fatal("not decoded")
			}
		}
	}
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
}
