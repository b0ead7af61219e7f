package filter

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// model is the filter on encoding/json: the reference Keep must agree with.
func model(value []byte) (keep, isObject bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(value, &m) != nil || m == nil {
		return false, false
	}
	var country string
	if json.Unmarshal(m["country"], &country) != nil || (country != "NZ" && country != "AU") {
		return false, true
	}
	raw := bytes.TrimSpace(m["amount"])
	var amount float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || json.Unmarshal(raw, &amount) != nil {
		return false, true
	}
	return amount >= 100, true
}

// FuzzKeep: the one-pass scanner agrees with encoding/json on every value.
func FuzzKeep(f *testing.F) {
	flt, err := Parse([]byte(`{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}`))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"country":"NZ","amount":500}`, `{"country":"N\u005a","amount":1e3}`, `{"amount":100,"country":"AU","x":[1,{"y":null}]}`,
		`{"country":"US","amount":500}`, `{"country":"NZ","amount":"500"}`, `{"country":"NZ","amount":99.5}`, ` {"country":"NZ","amount":-0} `,
		`{"country":"NZ","country":"US","amount":500}`, `[1]`, `null`, `{"a":}`, `{"country":"NZ","amount":500}x`, `"s"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		keep, err := flt.Keep(value)
		wantKeep, isObject := model(value)
		if (err == nil) != isObject {
			t.Fatalf("%q: error %v, but encoding/json says object: %v", value, err, isObject)
		}
		if keep != wantKeep {
			t.Fatalf("%q: keep %v, model %v", value, keep, wantKeep)
		}
	})
}

func TestParseRefuses(t *testing.T) {
	for config, want := range map[string]string{
		`{"feild": "x"}`:              `unknown key "feild"`,
		`{"allow": ["NZ"]}`:           `"allow" without "field"`,
		`{}`:                          `no test`,
		`{"field": "c", "allow": []}`: `"allow" is empty`,
		`[1]`:                         `want an object`,
		`{"min": {"amount": "x"}}`:    `not an object of field names to numbers`,
	} {
		if _, err := Parse([]byte(config)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want an error saying %q", config, err, want)
		}
	}
}

// TestParseNumber: the inline fast path agrees with strconv.ParseFloat.
func TestParseNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "100", "99.5", "-12.25", "0.1", "0.3", "123456789012345", "1234567890123456",
		"9007199254740993", "1.000000000000001", "0.000000000000001", "3.14159265358979", "1e3", "-2.5E-3", "12345678901234567890"} {
		want, werr := strconv.ParseFloat(s, 64)
		got, ok := parseNumber([]byte(s))
		if ok != (werr == nil) || math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("parseNumber(%s) = %v, %v; strconv: %v, %v", s, got, ok, want, werr)
		}
	}
}

// BenchmarkKeep is the filter on one record as the benchmarks' records
// are: scanning it and checking the fields (Keep), and checking fields
// already found (KeepFields). Run it as Go compiled to WASM with
//
//	GOOS=wasip1 GOARCH=wasm go test -exec 'go run github.com/tetratelabs/wazero/cmd/wazero run' -run X -bench . ./examples/wasm-filter/filter
func BenchmarkKeep(b *testing.B) {
	flt, err := Parse([]byte(`{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}`))
	if err != nil {
		b.Fatal(err)
	}
	value := []byte(`{"user_id":"user-000042","country":"NZ","amount":1042,"currency":"NZD","page":"/products/widgets/42","referrer":"https://example.com/search?q=widgets","ts":1700000000042}`)
	b.Run("Keep", func(b *testing.B) {
		for range b.N {
			if ok, err := flt.Keep(value); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("KeepFields", func(b *testing.B) {
		if err := flt.s.Scan(value); err != nil {
			b.Fatal(err)
		}
		fields := flt.s.Spans()
		for range b.N {
			if !flt.KeepFields(value, fields) {
				b.Fatal("dropped")
			}
		}
	})
}

// TestKeepNumbers: the 8-digits-at-once path agrees with the model for
// numbers of every length and kind, with the bytes that follow them.
func TestKeepNumbers(t *testing.T) {
	flt, err := Parse([]byte(`{"min": {"amount": 100}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"0", "5", "-5", "99", "100", "-100", "101", "99.5", "100.0", "1e3", "1E2", "-0", "12345678",
		"99999999", "00000100", "123456789", "0.5", "1000000000000", "-12345678"} {
		for _, after := range []string{"}", `, "a": "b"}`, "   }", `,"x":12345678}`} {
			v := []byte(`{"amount":` + n + after)
			keep, err := flt.Keep(v)
			var m map[string]json.RawMessage
			var want bool
			if json.Unmarshal(v, &m) == nil {
				var a float64
				want = json.Unmarshal(m["amount"], &a) == nil && a >= 100
			}
			if err != nil && json.Valid(v) || keep != want {
				t.Errorf("%s: keep %v (%v), want %v", v, keep, err, want)
			}
		}
	}
}

// TestKeepAllowPaths: the allow list is searched as words (up to 8 values
// of up to 8 bytes) or in its map (longer values, more values, escaped
// strings), with the same answers.
func TestKeepAllowPaths(t *testing.T) {
	for _, allow := range [][]string{
		{"NZ", "AU"},
		{"New Zealand", "AU"},
		{"A", "B", "C", "D", "E", "F", "G", "H", "NZ"},
		{"12345678", "123456789"},
	} {
		cfg, _ := json.Marshal(map[string]any{"field": "c", "allow": allow})
		flt, err := Parse(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"NZ", "AU", "New Zealand", "New Zealan", "N", "", "12345678", "123456789", "1234567", "H", "nz", "NZ "} {
			for _, raw := range []string{strconv.Quote(v), `"` + strings.ReplaceAll(v, "Z", `\u005a`) + `"`} {
				value := []byte(`{"c":` + raw + `}`)
				keep, err := flt.Keep(value)
				want := slices.Contains(allow, v)
				if err != nil || keep != want {
					t.Errorf("allow %q, value %s: keep %v (%v), want %v", allow, value, keep, err, want)
				}
			}
		}
	}
}
