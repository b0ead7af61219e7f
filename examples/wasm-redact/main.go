//go:build wasip1

// Command wasm-redact is a weir WASM processor that masks e-mail addresses
// in record values, keeps the first and last character of the local part,
// and fails records whose value is not valid UTF-8. The stage config
// {"mask": "#"} sets the mask character (default "*").
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o redact.wasm ./examples/wasm-redact
package main

import (
	"encoding/json"
	"errors"
	"regexp"
	"unicode/utf8"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

var email = regexp.MustCompile(`([A-Za-z0-9._%+-])([A-Za-z0-9._%+-]*)([A-Za-z0-9._%+-])@([A-Za-z0-9.-]+\.[A-Za-z]{2,})`)

func init() {
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		mask := "*"
		var cfg struct{ Mask string }
		if json.Unmarshal(guest.Config(), &cfg) == nil && cfg.Mask != "" {
			mask = cfg.Mask
		}
		if !utf8.Valid(r.Value) {
			return nil, errors.New("value is not UTF-8")
		}
		r.Value = email.ReplaceAllFunc(r.Value, func(m []byte) []byte {
			sub := email.FindSubmatch(m)
			masked := make([]byte, 0, len(m))
			masked = append(masked, sub[1]...)
			for range utf8.RuneCount(sub[2]) {
				masked = append(masked, mask...)
			}
			masked = append(masked, sub[3]...)
			masked = append(masked, '@')
			return append(masked, sub[4]...)
		})
		return []sdk.Record{r}, nil
	})
}
