package pipelines

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/examples/wasm-filter/filter"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/wasm"
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

// BenchmarkFilterKinds runs one filter, "country is NZ or AU and amount is
// at least 100", on the same 1000-record batches of ~200-byte JSON records
// as every stage kind: native Go (examples/wasm-filter/filter compiled for
// the host), an expr filter stage, and the examples/wasm-filter module as
// a WASM stage loaded from YAML (fuel meter and 64 MiB memory cap: the
// limits a pipeline runs with), with no limits (no meter, 4 GiB), and with
// wazero's own close-on-context-done instead of the meter. records/s is
// per goroutine (one core).
func BenchmarkFilterKinds(b *testing.B) {
	in := benchRecords(1000)
	module := buildWasmExample(b, "wasm-filter")
	const config = `{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}`
	f, err := filter.Parse([]byte(config))
	if err != nil {
		b.Fatal(err)
	}
	want := 0 // every kind must keep what native Go keeps
	for _, r := range in {
		if ok, _ := f.Keep(r.Value); ok {
			want++
		}
	}
	run := func(b *testing.B, p sdk.Processor) {
		var size int64
		for _, r := range in {
			size += int64(len(r.Value))
		}
		var res sdk.Results
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			res.Reset()
			if err := p.Process(context.Background(), in, &res); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if len(res.Out) != want || len(res.Failed) != 0 {
			b.Fatalf("%d kept, %d failed; want %d and 0", len(res.Out), len(res.Failed), want)
		}
		b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("native", func(b *testing.B) {
		run(b, sdk.ProcessorFunc(func(_ context.Context, in []sdk.Record, res *sdk.Results) error {
			for i, r := range in {
				if ok, err := f.Keep(r.Value); err != nil {
					res.Fail(i, err)
				} else if ok {
					res.Emit(i, r)
				}
			}
			return nil
		}))
	})
	b.Run("expr", func(b *testing.B) {
		s, err := Parse("bench.yaml", []byte(`
pipeline: b
input: {topics: [clicks]}
stages:
  - filter: 'value.country in ["NZ", "AU"] && value.amount >= 100'
output: out
`))
		if err != nil {
			b.Fatal(err)
		}
		run(b, s.Stages[0].proc)
	})
	b.Run("wasm", func(b *testing.B) {
		s, err := Parse(filepath.Join(filepath.Dir(module), "bench.yaml"), []byte(`
pipeline: b
input: {topics: [clicks]}
stages:
  - wasm: {module: filter.wasm, config: {field: country, allow: [NZ, AU], min: {amount: 100}}}
output: out
`))
		if err != nil {
			b.Fatal(err)
		}
		run(b, s.Stages[0].proc)
	})
	for _, c := range []struct {
		name      string
		interrupt wasm.Interrupt
		pages     uint32
	}{
		{"wasm-no-limits", wasm.InterruptNone, 65536},
		{"wasm-close-on-done", wasm.InterruptClose, 1024},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: filepath.Dir(module), MemoryLimitPages: c.pages, Interrupt: c.interrupt})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			raw, err := os.ReadFile(module)
			if err != nil {
				b.Fatal(err)
			}
			m, err := rt.Compile(ctx, "filter.wasm", raw)
			if err != nil {
				b.Fatal(err)
			}
			st := wasm.NewStage(m, []byte(config), nil, nil)
			defer st.Close(ctx)
			run(b, st)
		})
	}
}

// buildWasmExample builds examples/NAME into a temporary directory.
func buildWasmExample(b *testing.B, name string) string {
	out := filepath.Join(b.TempDir(), strings.TrimPrefix(name, "wasm-")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../examples/"+name)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", name, err, msg)
	}
	return out
}
