//go:build !wasip1

// Command filterplugin is a weir plugin for the benchmarks that compare
// stage kinds (pipelines/bench_test.go, BenchmarkStageKindsByBatch): the
// wasm-filter example's filter (examples/wasm-filter/filter), served as
// one sdk.Processor over the whole batch, not per record, so that what the
// benchmark compares is the boundary crossing. It keeps the records that
// pass and fails those whose value is not a JSON object. The config is
// the filter's, plus "repeat" and "sha256", which add CPU work per record
// (package work).
//
// Built for wasip1 (wasm.go), the same directory is a WASM module doing the
// same work, for the CPU-heavy comparison:
//
//	go build -o filterplugin ./plugins/testdata/filterplugin
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o work.wasm ./plugins/testdata/filterplugin
package main

import (
	"context"

	"github.com/weirstream/weir/plugins/plugin"
	"github.com/weirstream/weir/plugins/testdata/filterplugin/work"
	"github.com/weirstream/weir/sdk"
)

type proc struct{ w *work.Work }

// Configure implements plugin.Configurer.
func (p *proc) Configure(config []byte) error {
	w, err := work.Parse(config)
	if err != nil {
		return err
	}
	p.w = w
	return nil
}

// Process implements sdk.Processor: one loop over the batch.
func (p *proc) Process(_ context.Context, in []sdk.Record, res *sdk.Results) error {
	for i, r := range in {
		if ok, err := p.w.Keep(r.Value); err != nil {
			res.Fail(i, err)
		} else if ok {
			res.Emit(i, r)
		}
	}
	return nil
}

func main() { plugin.Serve(&proc{}) }
