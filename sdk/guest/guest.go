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
//
// A function that reads top-level fields of JSON values registers with
// RegisterFields, naming them, and gets where they are in each value:
// weir's host finds them natively with the batch (abi.FeatureFields), which
// costs a fraction of scanning the JSON in the module, since Go compiled to
// WASM runs such a scan ~10x slower than native Go. A filter registers with
// RegisterFilter, which also spares it returning records: a kept record
// goes back to the host as a reference to its input.
//
//	guest.RegisterFilter([]string{"country"}, func(r *sdk.Record, f []jsonfield.Span, err error) (bool, error) {
//		if err != nil {
//			return false, err // not a JSON object
//		}
//		return f[0].Present() && string(r.Value[f[0].Start:f[0].End]) == `"NZ"`, nil
//	})
package guest

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
	"github.com/weirstream/weir/sdk/jsonfield"
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

	// RegisterFields: the names, the function, and where each record's
	// spans come from: the batch (the host scanned, fields) or scan.
	fieldNames []string
	fieldsFunc FieldsFunc
	hostScans  bool
	fields     abi.Fields
	scan       *jsonfield.Scanner
	next       int // the index in batch of the record process runs on next
)

//go:wasmexport weir_v1_features
func setFeatures(flags uint32) { features = flags }

// Register sets the function the module runs on every record; call it
// from a Go init function or from the OnInit function.
func Register(f Func) { setFunc(f, nil, nil, nil) }

// FieldsFunc processes one record whose value was scanned for the fields
// given to RegisterFields: fields[j] is where names[j]'s value is in
// r.Value (r.Value[fields[j].Start:fields[j].End] is its raw JSON, End 0
// when the value has no such field). err is non-nil, and fields all
// absent, when the value is not a JSON object; the function decides what
// that means (return err to fail the record). fields is valid during the
// call only, and the function must not write to it.
type FieldsFunc func(r sdk.Record, fields []jsonfield.Span, err error) ([]sdk.Record, error)

// RegisterFields sets the function the module runs on every record, with
// the values of the top-level JSON fields names located in each record's
// value. weir's host finds them natively, with the batch, so the module
// does not scan its JSON itself (Go compiled to WASM scans ~10x slower);
// under a host without that feature the SDK scans in the module, with the
// same results (package jsonfield). At most abi.MaxFields names, none
// empty or repeated. Call it from a Go init function or from the OnInit
// function (where the config may say which fields to read).
func RegisterFields(names []string, f FieldsFunc) { setFunc(processFields, f, nil, names) }

// FilterFunc decides whether a record passes a filter: true keeps it,
// unchanged, false drops it, and an error fails it. fields and err are
// those of a FieldsFunc (with no names, fields is empty and err nil).
// Changes to *r are ignored: a kept record is its input as it came.
type FilterFunc func(r *sdk.Record, fields []jsonfield.Span, err error) (bool, error)

// RegisterFilter sets a filter as the module's function, with the fields
// names located as for RegisterFields (names may be empty). A kept record
// goes back to the host as a reference to its input, so a filter costs
// less per record than a Func returning its input. Call it from a Go init
// function or from the OnInit function.
func RegisterFilter(names []string, f FilterFunc) { setFunc(nil, nil, f, names) }

var filterFunc FilterFunc

func setFunc(p Func, fields FieldsFunc, filter FilterFunc, names []string) {
	process, fieldsFunc, filterFunc = p, fields, filter
	fieldNames = append([]string(nil), names...)
	scan = nil
	if len(names) > 0 {
		scan = jsonfield.New(fieldNames...)
	}
}

// spans returns where record k of the batch has the fields named, and
// whether its value is a JSON object: the host's spans where they lie in
// the batch, or spansOther for the rest (a value that is not an object,
// the SDK scanning).
func spans(k int, value []byte) ([]jsonfield.Span, error) {
	if hostScans {
		if f, ok := fields.Spans(k); ok {
			return f, nil
		}
	}
	return spansOther(k, value)
}

func spansOther(k int, value []byte) ([]jsonfield.Span, error) {
	switch {
	case hostScans:
		f, msg := fields.Record(k)
		if msg != "" {
			return f, errors.New(msg)
		}
		return f, nil
	case scan != nil:
		err := scan.Scan(value)
		return scan.Spans(), err
	}
	return nil, nil
}

// processFields runs fieldsFunc on the record next of the batch, which
// sdk.Each runs in order; next moves on before fieldsFunc runs, so a
// record whose call panics (sdk.Each goes on with the one after it)
// leaves it in step.
func processFields(r sdk.Record) ([]sdk.Record, error) {
	k := next
	next++
	f, err := spans(k, r.Value)
	return fieldsFunc(r, f, err)
}

// filterFrom runs filterFunc from record i of the batch on, into kept (or
// res when the host did not offer abi.FeatureKept), and returns where to
// go on: the end, or after a record whose call panicked. One deferred
// recover per batch, as in sdk.Each.
func filterFrom(i int) (resume int) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("panic: %v", p)
			if features&abi.FeatureKept != 0 {
				kept.Fail(i, err)
			} else {
				res.Fail(i, err)
			}
			resume = i + 1
		}
	}()
	byRef := features&abi.FeatureKept != 0
	var saved sdk.Record // the input, when a kept record goes back whole
	for ; i < len(batch); i++ {
		r := &batch[i]
		if !byRef {
			saved = *r
		}
		// spans' first case, inline: reaching the spans with no call per
		// record took the filter benchmark from ~1.2 M to ~1.5 M records/s
		// (README, WASM stages).
		var f []jsonfield.Span
		var err error
		inPlace := false
		if hostScans {
			f, inPlace = fields.Spans(i)
		}
		if !inPlace {
			f, err = spansOther(i, r.Value)
		}
		ok, err := filterFunc(r, f, err)
		switch {
		case err != nil && byRef:
			kept.Fail(i, err)
		case err != nil:
			res.Fail(i, err)
		case ok && byRef:
			kept.Keep(i)
		case ok:
			res.Emit(i, saved)
		}
	}
	return i
}

//go:wasmexport weir_v1_fields
func exportFields() int64 {
	if scan == nil || features&abi.FeatureFields == 0 {
		return reply(nil)
	}
	hostScans = true
	fields.N = len(fieldNames)
	return reply(abi.AppendNames(out[:0], fieldNames))
}

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
	if setup != nil {
		if err := runSetup(); err != nil {
			msg := err.Error()
			if msg == "" {
				msg = "the module's init function failed"
			}
			return reply([]byte(msg))
		}
	}
	if process == nil && filterFunc == nil {
		return reply([]byte("the module registered no function (call guest.Register in init or OnInit)"))
	}
	if err := abi.CheckNames(fieldNames); err != nil {
		return reply([]byte(err.Error()))
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
	if hostScans {
		batch, err = abi.AppendBatchRecordsFields(batch[:0], &fields, in[:n])
	} else {
		batch, err = abi.AppendBatchRecords(batch[:0], in[:n])
	}
	next = 0
	if err != nil {
		return reply(abi.AppendBatchError(out[:0], err.Error()))
	}
	if filterFunc != nil {
		if features&abi.FeatureKept != 0 {
			kept.Reset(out[:0], batch)
			for i := 0; i < len(batch); {
				i = filterFrom(i)
			}
			return reply(kept.Bytes())
		}
		res.Reset()
		for i := 0; i < len(batch); {
			i = filterFrom(i)
		}
		return reply(abi.AppendResults(out[:0], &res))
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
