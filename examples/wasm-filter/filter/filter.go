// Package filter is the logic of the wasm-filter example module, in a
// package of its own so that the same code runs natively in the
// benchmarks that compare a WASM stage with native Go: see the module's
// doc (../main.go) for the config and what passes.
package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Filter is a parsed config.
type Filter struct {
	allow map[string]struct{} // the allowed values of the field
	// allowList is allow as a list when it is short: searching it costs
	// less than hashing in Go compiled to WASM.
	allowList []string
	min       []minTest
	// wanted lists the top-level names the scanner looks for: field first
	// (if any), then the min fields; a name appears once.
	wanted  []string
	fieldAt int // index of field in wanted, or -1
	s       scanner
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
		if len(flt.allow) <= maxAllowList {
			flt.allowList = slices.Sorted(maps.Keys(flt.allow))
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
	flt.s.setWanted(flt.wanted)
	return flt, nil
}

// Keep reports whether value passes; err says why a value that is not a
// JSON object fails.
func (f *Filter) Keep(value []byte) (bool, error) {
	if !f.keep(value) {
		return false, f.s.err
	}
	return true, nil
}

func (f *Filter) keep(value []byte) bool {
	if !f.s.scan(value) {
		return false
	}
	if f.fieldAt >= 0 {
		v := f.s.found[f.fieldAt]
		if v.end == 0 {
			return false
		}
		raw := value[v.start:v.end]
		if raw[0] != '"' {
			return false
		}
		if !v.escaped {
			if !f.allowed(raw[1 : len(raw)-1]) {
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
		v := f.s.found[m.at]
		if v.end == 0 {
			return false
		}
		raw := value[v.start:v.end]
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return false
		}
		n, ok := parseNumber(raw)
		if !ok || n < m.min {
			return false
		}
	}
	return true
}

// maxAllowList is the most allowed values searched as a list.
const maxAllowList = 8

func (f *Filter) allowed(v []byte) bool {
	if f.allowList == nil {
		_, ok := f.allow[string(v)] // no allocation
		return ok
	}
	for _, a := range f.allowList {
		if len(a) == len(v) && a == string(v) {
			return true
		}
	}
	return false
}

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
