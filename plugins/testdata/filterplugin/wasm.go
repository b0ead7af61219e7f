//go:build wasip1

package main

import (
	"github.com/weirstream/weir/plugins/testdata/filterplugin/work"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

var w *work.Work

func init() {
	guest.OnInit(func(config []byte) error {
		var err error
		w, err = work.Parse(config)
		return err
	})
	var out [1]sdk.Record // reused: the SDK copies outputs before the next call
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		if ok, err := w.Keep(r.Value); !ok {
			return nil, err // nil: dropped
		}
		out[0] = r
		return out[:], nil
	})
}
