//go:build wasip1

// Command passthrough is a benchmark module that does (almost) no work of
// its own: with config {"keep": true} every record comes out unchanged,
// with {"keep": false} none does, and with {"key_prefix": "P"} the records
// whose key starts with P come out. With {"filter": [NAMES...]} it is a
// guest.RegisterFilter filter of those fields that keeps (or drops) every
// record without looking at them. What it costs is the ABI's: the host
// encoding the batch and copying it in, the guest SDK decoding it and
// encoding the results, and the host decoding those.
package main

import (
	"bytes"
	"encoding/json"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
	"github.com/weirstream/weir/sdk/jsonfield"
)

func main() {}

func init() {
	var c struct {
		Keep      bool
		KeyPrefix *string `json:"key_prefix"`
		Filter    []string
	}
	var prefix []byte
	guest.OnInit(func(config []byte) error {
		if err := json.Unmarshal(config, &c); err != nil {
			return err
		}
		if c.KeyPrefix != nil {
			prefix = []byte(*c.KeyPrefix)
		}
		if c.Filter != nil {
			guest.RegisterFilter(c.Filter, func(*sdk.Record, []jsonfield.Span, error) (bool, error) { return c.Keep, nil })
		}
		return nil
	})
	var out [1]sdk.Record
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		if c.KeyPrefix != nil && !bytes.HasPrefix(r.Key, prefix) || c.KeyPrefix == nil && !c.Keep {
			return nil, nil
		}
		out[0] = r
		return out[:], nil
	})
}
