//go:build wasip1

// Command wasm-filter is a weir WASM processor that keeps the records whose
// JSON value passes the tests of its stage config and drops the others.
// The config
//
//	{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}
//
// keeps a record when its top-level field "country" is a string in the
// allow list and its top-level field "amount" is a number of at least 100,
// like the expr stage
//
//	filter: 'value.country in ["NZ", "AU"] && value.amount >= 100'
//
// (which fails a record whose amount is not a number, where this module
// drops it).
//
// "field" and "allow" go together; "min" may name several fields; every
// test given must pass, and at least one must be given. A record missing a
// field, or with one of another type, is dropped. A record whose value is
// not a JSON object (or is null) fails, to the pipeline's error policy. A
// config the module cannot use (an unknown key, "allow" without "field",
// no test at all) fails the stage's init, so its pipeline is refused when
// it is loaded. Each value is checked and searched in one pass without
// decoding it (filter/scan.go).
//
//	weir plugin build examples/wasm-filter -o examples/wasm-filter/filter.wasm
package main

import (
	"github.com/weirstream/weir/examples/wasm-filter/filter"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

var f *filter.Filter

func init() {
	guest.OnInit(func(config []byte) error {
		var err error
		f, err = filter.Parse(config)
		return err
	})
	var out [1]sdk.Record // reused: the SDK copies outputs before the next call
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		if ok, err := f.Keep(r.Value); !ok {
			return nil, err // nil: dropped
		}
		out[0] = r
		return out[:], nil
	})
}
