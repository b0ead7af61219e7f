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
// it is loaded. The module names the fields it reads
// (guest.RegisterFilter), so weir finds them in each value, checking that
// it is a JSON object, natively and without decoding it (sdk/jsonfield);
// the module checks their values.
//
//	weir plugin build examples/wasm-filter -o examples/wasm-filter/filter.wasm
package main

import (
	"github.com/weirstream/weir/examples/wasm-filter/filter"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
	"github.com/weirstream/weir/sdk/jsonfield"
)

func main() {}

func init() {
	guest.OnInit(func(config []byte) error {
		f, err := filter.Parse(config)
		if err != nil {
			return err
		}
		guest.RegisterFilter(f.Names(), func(r *sdk.Record, fields []jsonfield.Span, err error) (bool, error) {
			if err != nil {
				return false, err // not a JSON object: fails
			}
			return f.KeepFields(r.Value, fields), nil
		})
		return nil
	})
}
