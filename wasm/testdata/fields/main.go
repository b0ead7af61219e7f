//go:build wasip1

// Command fields is a test module of guest.RegisterFields and
// guest.RegisterFilter. Its config:
//
//	{"names": [...], "form": "fields" | "filter"}
//
// With "fields" every record gives one output whose value reports what the
// module was given: {"spans": [[start, end, escaped], ...], "err": "..."}.
// With "filter" a record passes when its key starts with "k", fails with
// the SDK's error when its value is not a JSON object, a key "panic"
// panics, and a key "kmutate" changes the record and keeps it. Names are passed as given, so a config may name a field twice
// or give an empty name, which the SDK refuses at init.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
	"github.com/weirstream/weir/sdk/jsonfield"
)

func main() {}

type report struct {
	Spans [][3]int `json:"spans"`
	Err   string   `json:"err,omitempty"`
}

func init() {
	guest.OnInit(func(config []byte) error {
		var c struct {
			Names []string
			Form  string
		}
		if err := json.Unmarshal(config, &c); err != nil {
			return err
		}
		switch c.Form {
		case "fields":
			guest.RegisterFields(c.Names, func(r sdk.Record, fields []jsonfield.Span, err error) ([]sdk.Record, error) {
				rep := report{Spans: [][3]int{}}
				for _, f := range fields {
					e := 0
					if f.Escaped {
						e = 1
					}
					rep.Spans = append(rep.Spans, [3]int{f.Start, f.End, e})
				}
				if err != nil {
					rep.Err = err.Error()
				}
				r.Value, _ = json.Marshal(rep)
				return []sdk.Record{r}, nil
			})
		case "filter":
			guest.RegisterFilter(c.Names, func(r *sdk.Record, fields []jsonfield.Span, err error) (bool, error) {
				switch string(r.Key) {
				case "panic":
					panic("asked to")
				case "kmutate": // kept: the change must not show
					r.Key, r.Value = nil, []byte("changed")
					return true, nil
				}
				if err != nil {
					return false, err
				}
				if len(fields) != len(c.Names) {
					return false, fmt.Errorf("%d spans for %d names", len(fields), len(c.Names))
				}
				return bytes.HasPrefix(r.Key, []byte("k")), nil
			})
		default:
			return fmt.Errorf("form %q", c.Form)
		}
		return nil
	})
}
