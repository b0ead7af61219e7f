package pipelines

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/examples/wasm-filter/filter"
	"github.com/weirstream/weir/plugins/testdata/filterplugin/work"
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
	b.ReportAllocs()
	runBatches(b, s.Stages[0].proc, benchRecords(1000))
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
		res := runBatches(b, p, in)
		if len(res.Out) != want || len(res.Failed) != 0 {
			b.Fatalf("%d kept, %d failed; want %d and 0", len(res.Out), len(res.Failed), want)
		}
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
	// The ABI's own cost, with the pipeline's limits: a module that keeps
	// every record, and one that drops every record, doing nothing else.
	pass := filepath.Join(filepath.Dir(module), "passthrough.wasm")
	goBuild(b, pass, "../wasm/testdata/passthrough", true)
	for _, c := range []struct {
		name   string
		keep   bool
		filter string
	}{{"keep-true", true, ""}, {"keep-false", false, ""}, {"filter-fields-keep-true", true, ", filter: [country, amount]"}, {"filter-fields-keep-false", false, ", filter: [country, amount]"}} {
		keep := c.keep
		b.Run("wasm-abi-only-"+c.name, func(b *testing.B) {
			s, err := Parse(filepath.Join(filepath.Dir(module), "bench.yaml"), []byte(fmt.Sprintf(`
pipeline: b
input: {topics: [clicks]}
stages:
  - wasm: {module: passthrough.wasm, config: {keep: %v%s}}
output: out
`, keep, c.filter)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			res := runBatches(b, s.Stages[0].proc, in)
			if keep && len(res.Out) != len(in) || !keep && len(res.Out) != 0 {
				b.Fatalf("%d kept of %d", len(res.Out), len(in))
			}
		})
	}
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

// runBatches runs p on in b.N times and reports records/s; it returns the
// last results.
func runBatches(b *testing.B, p sdk.Processor, in []sdk.Record) *sdk.Results {
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
	b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
	return &res
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

// BenchmarkStageKindsByBatch runs the filter of BenchmarkFilterKinds as an
// expr stage, as the examples/wasm-filter module (a WASM stage with the
// pipeline's limits: fuel meter, 64 MiB), as a plugin
// (plugins/testdata/filterplugin, one Process over the whole batch, built
// with go build and loaded from YAML as a user would) and natively, in
// batches of 1, 100 and 1000 records. Every op is the same 1000 records
// (1000 batches of 1, 10 of 100, one of 1000), so ns/op compare across
// batch sizes and records/s is 1000/op time, on one calling goroutine
// (a plugin's work runs in its own process, but the call waits for it).
//
// The cpu-heavy sub-benchmarks add work per record that runs natively in a
// plugin and as Go compiled to WASM in a module (filterplugin's work
// package, built both ways; expr cannot express it): the filter 20 times
// per record ("repeat"), and 16 chained SHA-256 of each passing record's
// value ("sha256"; native Go uses the CPU's SHA instructions, WASM cannot).
func BenchmarkStageKindsByBatch(b *testing.B) {
	const total = 1000
	in := benchRecords(total)
	var size int64
	for _, r := range in {
		size += int64(len(r.Value))
	}
	// The plugins' stderr (go-plugin's start-up line) goes to the default
	// logger: keep it out of the benchmark's output.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	dir := b.TempDir()
	goBuild(b, filepath.Join(dir, "filter.wasm"), "../examples/wasm-filter", true)
	goBuild(b, filepath.Join(dir, "work.wasm"), "../plugins/testdata/filterplugin", true)
	goBuild(b, filepath.Join(dir, "filterplugin"), "../plugins/testdata/filterplugin", false)
	load := func(b *testing.B, stage string) sdk.Processor {
		s, err := Parse(filepath.Join(dir, "bench.yaml"), []byte("pipeline: b\ninput: {topics: [clicks]}\nstages:\n  - "+stage+"\noutput: out\n"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		return s.Stages[0].proc
	}
	native := func(config string) (sdk.Processor, int) {
		w, err := work.Parse([]byte(config))
		if err != nil {
			b.Fatal(err)
		}
		want := 0 // every kind must keep what native Go keeps
		for _, r := range in {
			if ok, _ := w.Keep(r.Value); ok {
				want++
			}
		}
		return sdk.ProcessorFunc(func(_ context.Context, in []sdk.Record, res *sdk.Results) error {
			for i, r := range in {
				if ok, err := w.Keep(r.Value); err != nil {
					res.Fail(i, err)
				} else if ok {
					res.Emit(i, r)
				}
			}
			return nil
		}), want
	}
	// run processes the records in batches of n per op.
	run := func(b *testing.B, p sdk.Processor, n, want int) {
		var res sdk.Results
		pass := func() {
			kept, failed := 0, 0
			for start := 0; start < len(in); start += n {
				res.Reset()
				if err := p.Process(context.Background(), in[start:min(start+n, len(in))], &res); err != nil {
					b.Fatal(err)
				}
				kept, failed = kept+len(res.Out), failed+len(res.Failed)
			}
			if kept != want || failed != 0 {
				b.Fatalf("%d kept, %d failed; want %d and 0", kept, failed, want)
			}
		}
		pass() // starts the plugin process or WASM instance
		b.SetBytes(size)
		b.ResetTimer()
		for range b.N {
			pass()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
	}

	const config = `{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}`
	nat, want := native(config)
	kinds := []struct {
		name string
		proc func(b *testing.B) sdk.Processor
	}{
		{"native", func(*testing.B) sdk.Processor { return nat }},
		{"expr", func(b *testing.B) sdk.Processor {
			return load(b, `filter: 'value.country in ["NZ", "AU"] && value.amount >= 100'`)
		}},
		{"wasm", func(b *testing.B) sdk.Processor {
			return load(b, `wasm: {module: filter.wasm, config: `+config+`}`)
		}},
		{"plugin", func(b *testing.B) sdk.Processor {
			return load(b, `plugin: {path: filterplugin, config: `+config+`}`)
		}},
	}
	for _, k := range kinds {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/batch=%d", k.name, n), func(b *testing.B) {
				run(b, k.proc(b), n, want)
			})
		}
	}

	// Work per record that a plugin runs natively and a module as WASM.
	for _, h := range []struct{ name, extra string }{
		{"repeat20", `, "repeat": 20`},
		{"sha256x16", `, "sha256": 16`},
	} {
		config := config[:len(config)-1] + h.extra + "}"
		nat, want := native(config)
		for _, k := range []struct {
			name string
			proc func(b *testing.B) sdk.Processor
		}{
			{"native", func(*testing.B) sdk.Processor { return nat }},
			{"wasm", func(b *testing.B) sdk.Processor { return load(b, `wasm: {module: work.wasm, config: `+config+`}`) }},
			{"plugin", func(b *testing.B) sdk.Processor { return load(b, `plugin: {path: filterplugin, config: `+config+`}`) }},
		} {
			b.Run(fmt.Sprintf("%s/%s/batch=1000", h.name, k.name), func(b *testing.B) {
				run(b, k.proc(b), 1000, want)
			})
		}
	}
}

// goBuild builds the package at pkg (relative to this directory) into
// out, for wasip1 (a WASM module) or the host.
func goBuild(b *testing.B, out, pkg string, wasip1 bool) {
	args := []string{"build", "-o", out}
	if wasip1 {
		args = append(args, "-buildmode=c-shared")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = os.Environ()
	if wasip1 {
		cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
}

// BenchmarkKeyFilterKinds runs a filter that does not read the value,
// "the key starts with user-0001" (a tenth of the records of
// BenchmarkFilterKinds pass), natively, as an expr filter stage, and as a
// WASM stage (wasm/testdata/passthrough with a key_prefix) with the
// pipeline's limits and with none: what a Go guest costs when its own
// work is small, next to BenchmarkFilterKinds's JSON filter.
func BenchmarkKeyFilterKinds(b *testing.B) {
	in := benchRecords(1000)
	prefix := []byte("user-0001")
	want := 0
	for _, r := range in {
		if bytes.HasPrefix(r.Key, prefix) {
			want++
		}
	}
	dir := b.TempDir()
	goBuild(b, filepath.Join(dir, "passthrough.wasm"), "../wasm/testdata/passthrough", true)
	check := func(b *testing.B, res *sdk.Results) {
		if len(res.Out) != want || len(res.Failed) != 0 {
			b.Fatalf("%d kept, %d failed; want %d and 0", len(res.Out), len(res.Failed), want)
		}
	}
	b.Run("native", func(b *testing.B) {
		check(b, runBatches(b, sdk.ProcessorFunc(func(_ context.Context, in []sdk.Record, res *sdk.Results) error {
			for i, r := range in {
				if bytes.HasPrefix(r.Key, prefix) {
					res.Emit(i, r)
				}
			}
			return nil
		}), in))
	})
	stage := func(b *testing.B, yaml string) sdk.Processor {
		s, err := Parse(filepath.Join(dir, "bench.yaml"), []byte("pipeline: b\ninput: {topics: [clicks]}\nstages:\n  - "+yaml+"\noutput: out\n"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		return s.Stages[0].proc
	}
	b.Run("expr", func(b *testing.B) {
		check(b, runBatches(b, stage(b, `filter: 'hasPrefix(key, "user-0001")'`), in))
	})
	b.Run("wasm", func(b *testing.B) {
		check(b, runBatches(b, stage(b, `wasm: {module: passthrough.wasm, config: {key_prefix: user-0001}}`), in))
	})
	b.Run("wasm-no-limits", func(b *testing.B) {
		ctx := context.Background()
		rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: dir, MemoryLimitPages: 65536, Interrupt: wasm.InterruptNone})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		raw, err := os.ReadFile(filepath.Join(dir, "passthrough.wasm"))
		if err != nil {
			b.Fatal(err)
		}
		m, err := rt.Compile(ctx, "passthrough.wasm", raw)
		if err != nil {
			b.Fatal(err)
		}
		st := wasm.NewStage(m, []byte(`{"key_prefix": "user-0001"}`), nil, nil)
		defer st.Close(ctx)
		check(b, runBatches(b, st, in))
	})
}
