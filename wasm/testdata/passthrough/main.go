//go:build wasip1

// Command passthrough is a benchmark module that does no work of its own:
// with config {"keep": true} every record comes out unchanged, with
// {"keep": false} none does. What it costs is the ABI's: the host encoding
// the batch and copying it in, the guest SDK decoding it and encoding the
// results, and the host decoding those.
package main

import (
	"encoding/json"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

func init() {
	var c struct{ Keep bool }
	guest.OnInit(func(config []byte) error { return json.Unmarshal(config, &c) })
	var out [1]sdk.Record
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		if !c.Keep {
			return nil, nil
		}
		out[0] = r
		return out[:], nil
	})
}
