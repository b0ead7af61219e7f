// Package filter is the logic of the wasm-filter example module, in a
// package of its own so that the same code runs natively in the
// benchmarks that compare a WASM stage with native Go: see the module's
// doc (../main.go) for the config and what passes.
package filter

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/weirstream/weir/sdk/jsonfield"
)

// Filter is a parsed config.
type Filter struct {
	allow map[string]struct{} // the allowed values of the field
	// allowWords is allow as words, when it is short and every value has
	// at most 8 bytes and no NUL: a value's bytes, little-endian, zero
	// above its length (no JSON string holds an unescaped NUL, so values
	// of different lengths pack differently). Searching them costs no call
	// and no hashing, which Go compiled to WASM makes dear.
	allowWords []uint64
	min        []minTest
	// wanted lists the top-level names the scanner looks for: field first
	// (if any), then the min fields; a name appears once.
	wanted  []string
	fieldAt int // index of field in wanted, or -1
	s       *jsonfield.Scanner
}

type minTest struct {
	at  int // index in wanted
	min float64
}

const example = `{"field": "country", "allow": ["NZ"], "min": {"amount": 100}}`

// Parse reads a config (JSON); its errors name the problem.
func Parse(config []byte) (*Filter, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(config, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("filter config: want an object like %s, got %s", example, config)
	}
	var c struct {
		Field *string
		Allow []string
		Min   map[string]float64
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		switch v := raw[k]; k {
		case "field":
			if json.Unmarshal(v, &c.Field) != nil || c.Field == nil {
				return nil, fmt.Errorf(`filter config: "field" is %s, not a string`, v)
			}
		case "allow":
			if json.Unmarshal(v, &c.Allow) != nil || c.Allow == nil {
				return nil, fmt.Errorf(`filter config: "allow" is %s, not a list of strings`, v)
			}
		case "min":
			if json.Unmarshal(v, &c.Min) != nil || c.Min == nil {
				return nil, fmt.Errorf(`filter config: "min" is %s, not an object of field names to numbers`, v)
			}
		default:
			return nil, fmt.Errorf(`filter config: unknown key %q (the keys are "field", "allow" and "min": %s)`, k, example)
		}
	}
	switch {
	case c.Field != nil && *c.Field == "":
		return nil, errors.New(`filter config: "field" is empty`)
	case c.Field != nil && c.Allow == nil:
		return nil, fmt.Errorf(`filter config: "field": %q has no "allow" list of its values`, *c.Field)
	case c.Field == nil && c.Allow != nil:
		return nil, errors.New(`filter config: "allow" without "field" (the field whose values it lists)`)
	case c.Field != nil && len(c.Allow) == 0:
		return nil, fmt.Errorf(`filter config: "allow" is empty: no record of field %q would pass`, *c.Field)
	case c.Field == nil && len(c.Min) == 0:
		return nil, errors.New(`filter config: no test: give "field" and "allow", or "min", or both`)
	}
	flt := &Filter{fieldAt: -1}
	if c.Field != nil {
		flt.fieldAt = 0
		flt.wanted = append(flt.wanted, *c.Field)
		flt.allow = make(map[string]struct{}, len(c.Allow))
		for _, a := range c.Allow {
			flt.allow[a] = struct{}{}
		}
		if len(flt.allow) <= maxAllowWords {
			flt.allowWords = packAll(slices.Collect(maps.Keys(flt.allow)))
		}
	}
	names := make([]string, 0, len(c.Min))
	for name := range c.Min {
		if name == "" {
			return nil, errors.New(`filter config: "min" names an empty field`)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		at := slices.Index(flt.wanted, name)
		if at < 0 {
			at = len(flt.wanted)
			flt.wanted = append(flt.wanted, name)
		}
		flt.min = append(flt.min, minTest{at: at, min: c.Min[name]})
	}
	flt.s = jsonfield.New(flt.wanted...)
	return flt, nil
}

// Names lists the top-level fields the filter reads; KeepFields takes
// their spans in this order.
func (f *Filter) Names() []string { return f.wanted }

// Keep reports whether value passes; err says why a value that is not a
// JSON object fails.
func (f *Filter) Keep(value []byte) (bool, error) {
	if err := f.s.Scan(value); err != nil {
		return false, err
	}
	return f.KeepFields(value, f.s.Spans()), nil
}

// KeepFields reports whether a JSON object passes, given where its fields
// named by Names are (from jsonfield, by the host or by Keep).
func (f *Filter) KeepFields(value []byte, fields []jsonfield.Span) bool {
	if f.fieldAt >= 0 {
		v := fields[f.fieldAt]
		if v.End == 0 {
			return false
		}
		raw := value[v.Start:v.End]
		if raw[0] != '"' {
			return false
		}
		if l := len(raw) - 2; !v.Escaped && f.allowWords != nil {
			if l > 8 {
				return false
			}
			var w uint64
			if v.Start+9 <= len(value) { // 8 bytes from the string's first
				w = binary.LittleEndian.Uint64(value[v.Start+1:]) & (^uint64(0) >> (64 - 8*l))
			} else {
				w = pack(raw[1 : l+1])
			}
			if !slices.Contains(f.allowWords, w) {
				return false
			}
		} else if !v.Escaped {
			if _, ok := f.allow[string(raw[1:len(raw)-1])]; !ok { // no allocation
				return false
			}
		} else {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return false
			}
			if _, ok := f.allow[s]; !ok {
				return false
			}
		}
	}
	for _, m := range f.min {
		v := fields[m.at]
		if v.End == 0 {
			return false
		}
		raw := value[v.Start:v.End]
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return false
		}
		if l := len(raw); l <= 8 && v.Start+8 <= len(value) {
			// An integer of up to 8 digits, converted 8 bytes at once:
			// its bytes shifted up, '0's below them (leading zeros).
			w := binary.LittleEndian.Uint64(value[v.Start:])<<(64-8*l) | zeros>>(8*l)
			if nonDigits(w) == 0 {
				if float64(eightDigits(w)) < m.min {
					return false
				}
				continue
			}
		}
		n, ok := parseNumber(raw)
		if !ok || n < m.min {
			return false
		}
	}
	return true
}

const zeros = 0x3030303030303030 // eight '0'

// nonDigits sets the high bit of the bytes of w that are not ASCII
// digits; exact for the first of them.
func nonDigits(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	lo := w - zeros              // borrows out of bytes below '0'
	hi := w + ones*(0x80-':')    // carries into the high bit of bytes from ':' up
	return (lo | hi | w) & highs // w: bytes >= 0x80
}

// eightDigits is the number eight ASCII digits spell, the first in the
// lowest byte.
func eightDigits(w uint64) uint64 {
	w -= zeros
	w = (w * (10<<8 + 1)) >> 8 & 0x00ff00ff00ff00ff
	w = (w * (100<<16 + 1)) >> 16 & 0x0000ffff0000ffff
	return (w * (10000<<32 + 1)) >> 32
}

// pack is the word of at most 8 bytes: see allowWords.
func pack(b []byte) uint64 {
	var w uint64
	for i, c := range b {
		w |= uint64(c) << (8 * i)
	}
	return w
}

// packAll packs values, or returns nil if one is too long or has a NUL.
func packAll(values []string) []uint64 {
	var ws []uint64
	for _, v := range values {
		if len(v) > 8 || strings.IndexByte(v, 0) >= 0 {
			return nil
		}
		ws = append(ws, pack([]byte(v)))
	}
	return ws
}

// maxAllowWords is the most allowed values searched as words.
const maxAllowWords = 8

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber is strconv.ParseFloat of a JSON number: its fast path for a
// number with at most 15 significant digits, an integer or a decimal
// fraction, inline (the mantissa and the power of ten are exact, so one
// division rounds correctly), and the call otherwise.
func parseNumber(raw []byte) (float64, bool) {
	i, neg := 0, false
	if len(raw) > 0 && raw[0] == '-' {
		i, neg = 1, true
	}
	var mant uint64
	digits, frac := 0, 0
	for ; i < len(raw); i++ {
		c := raw[i]
		if c-'0' < 10 {
			mant = mant*10 + uint64(c-'0')
			digits++
			if frac > 0 {
				frac++
			}
			continue
		}
		if c == '.' && frac == 0 {
			frac = 1
			continue
		}
		break
	}
	if i == len(raw) && digits <= 15 {
		n := float64(mant)
		if frac > 1 {
			n /= pow10[frac-1]
		}
		if neg {
			n = -n
		}
		return n, true
	}
	n, err := strconv.ParseFloat(string(raw), 64) // no allocation
	return n, err == nil
}
