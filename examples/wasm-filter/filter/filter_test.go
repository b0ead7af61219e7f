package filter

import (
	"bytes"
	"encoding/json"
	"math"
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
