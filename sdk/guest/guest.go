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

// Func processes one record: zero or more outputs, or an error.
type Func func(r sdk.Record) ([]sdk.Record, error)

var (
	process Func
	config  []byte
	in      []byte // the buffer the host writes into
	out     []byte // the last reply, kept alive until the next call
)

// Register sets the function the module runs on every record.
func Register(f Func) { process = f }

// Config is the stage's config from the pipeline YAML, as JSON ("{}" when
// none was given); valid from init on.
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
	return reply(nil)
}

//go:wasmexport weir_v1_process
func processBatch(ptr, n int32) int64 {
	recs, err := abi.DecodeBatch(in[:n])
	if err != nil {
		return reply(abi.AppendBatchError(out[:0], err.Error()))
	}
	var res sdk.Results
	for i, r := range recs {
		outs, err := call(r)
		if err != nil {
			res.Fail(i, err)
			continue
		}
		for _, o := range outs {
			res.Emit(i, o)
		}
	}
	return reply(abi.AppendResults(out[:0], &res))
}

// call runs the function on one record, turning a panic into its error.
func call(r sdk.Record) (outs []sdk.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			outs, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return process(r)
}
