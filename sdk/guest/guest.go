//go:build wasip1

// Package guest is the Go side of a weir WASM processor: register a
// function and build with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
//
// The package owns the ABI (package sdk/abi, version 1): it exports the
// functions the host calls, decodes each batch, runs the registered
// function on every record, recovers a panic into that record's error (so
// one bad record fails alone), and encodes the results.
//
//	func main() {}
//
//	func init() {
//		guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
//			if bytes.Contains(r.Value, []byte("secret")) {
//				return nil, nil // filtered
//			}
//			return []sdk.Record{r}, nil
//		})
//	}
package guest

import (
	"fmt"
	"unsafe"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
)

// Func processes one record: zero or more outputs, or an error. The SDK
// copies the outputs before it calls the function again, so the function
// may return the same slice every time.
type Func func(r sdk.Record) ([]sdk.Record, error)

var (
	process Func
	setup   func(config []byte) error
	config  []byte
	in      []byte // the buffer the host writes into
	out     []byte // the last reply, kept alive until the next call
	batch   []sdk.Record
	res     sdk.Results
	kept    abi.KeptWriter
	// features the host offered (abi.ExportFeatures).
	features uint32
)

//go:wasmexport weir_v1_features
func setFeatures(flags uint32) { features = flags }

// Register sets the function the module runs on every record.
func Register(f Func) { process = f }

// OnInit sets a function the module runs once per instance, when the host
// starts it: with the stage's config, before the first batch. An error (or
// a panic) fails the instance with its message, so a stage whose config
// the module rejects is refused when its pipeline is loaded (`weir
// pipeline validate`), not on every record.
func OnInit(f func(config []byte) error) { setup = f }

// Config is the stage's config from the pipeline YAML, as JSON ("{}" when
// none was given); set when the host starts the instance, so valid in the
// OnInit function and after, not yet in a Go init function.
func Config() []byte { return config }

//go:wasmexport weir_v1_alloc
func alloc(size int32) int32 {
	if cap(in) < int(size) {
		in = make([]byte, size)
	}
	in = in[:size]
	if size == 0 {
		return 0
	}
	return int32(uintptr(unsafe.Pointer(&in[0])))
}

func reply(b []byte) int64 {
	out = b
	if len(b) == 0 {
		return 0
	}
	return int64(abi.Pack(uint32(uintptr(unsafe.Pointer(&out[0]))), uint32(len(out))))
}

//go:wasmexport weir_v1_init
func initModule(ptr, n int32) int64 {
	config = append([]byte(nil), in[:n]...)
	if process == nil {
		return reply([]byte("the module registered no function (call guest.Register in init)"))
	}
	if setup != nil {
		if err := runSetup(); err != nil {
			msg := err.Error()
			if msg == "" {
				msg = "the module's init function failed"
			}
			return reply([]byte(msg))
		}
	}
	return reply(nil)
}

// runSetup runs the OnInit function, turning a panic into its error.
func runSetup() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in init: %v", p)
		}
	}()
	return setup(config)
}

//go:wasmexport weir_v1_process
func processBatch(ptr, n int32) int64 {
	// The records of the last batch and its results are reused: garbage
	// is what costs most in a Go guest.
	clear(batch)
	var err error
	batch, err = abi.AppendBatchRecords(batch[:0], in[:n])
	if err != nil {
		return reply(abi.AppendBatchError(out[:0], err.Error()))
	}
	if features&abi.FeatureKept != 0 {
		// Outputs go straight into the reply.
		kept.Reset(out[:0], batch)
		sdk.Each(batch, &kept, process)
		return reply(kept.Bytes())
	}
	res.Reset()
	sdk.Each(batch, &res, process)
	return reply(abi.AppendResults(out[:0], &res))
}
