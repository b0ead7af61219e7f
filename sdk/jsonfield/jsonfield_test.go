package jsonfield

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var names = []string{"a", "b", "ab", "é", strings.Repeat("n", 70), "c2", "c3"} // c2, c3: two names of one length

// model is what encoding/json says of value: whether it is an object, and
// the raw value of each name (nil: absent).
func model(value []byte) (bool, [][]byte) {
	var m map[string]json.RawMessage
	raws := make([][]byte, len(names))
	if json.Unmarshal(value, &m) != nil || m == nil {
		return false, raws
	}
	for j, n := range names {
		if r, ok := m[n]; ok {
			raws[j] = r
		}
	}
	return true, raws
}

// FuzzScan: Scan agrees with encoding/json on which values are JSON
// objects and on where each named field's value is.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x"}`, ` {"ab" : [1,{"a":2}], "b":null} `, `{"a":1,"a":2}`, `{"\u0061":true}`, `{"\u00e9":"\"q\\"}`,
		`{"` + strings.Repeat("n", 70) + `":{}}`, `{"c2":1,"c3":2}`, `{}`, `[]`, `null`, `"s"`, `{"a":}`, `{"a":1,}`,
		`{"a":1}x`, `{"a":01}`, `{"a":"\x01"}`, `{"a":1e}`, `{"a":-}`, `{"a":tru}`, `{"a":[1,]}`, `{"a":{"b":1,}}`,
		`{"a":"\ud800"}`, `{"a":"\u12"}`, `{"a":[[[[]]]]}`, "{\"a\":\"\xff\"}", `{"a":1.5E+10,"b":-0.0}`,
	} {
		f.Add([]byte(s))
	}
	s := New(names...)
	f.Fuzz(func(t *testing.T, value []byte) {
		err := s.Scan(value)
		isObject, raws := model(value)
		if (err == nil) != isObject {
			t.Fatalf("%q: Scan error %v, but encoding/json says object: %v", value, err, isObject)
		}
		for j, sp := range s.Spans() {
			var raw []byte
			if sp.Present() {
				raw = value[sp.Start:sp.End]
			}
			if !bytes.Equal(raw, raws[j]) {
				t.Fatalf("%q: field %q at %d:%d is %q, encoding/json says %q", value, names[j], sp.Start, sp.End, raw, raws[j])
			}
			if esc := raw != nil && raw[0] == '"' && bytes.IndexByte(raw, '\\') >= 0; sp.Escaped != esc {
				t.Fatalf("%q: field %q escaped %v", value, names[j], sp.Escaped)
			}
		}
	})
}

func TestScanErrors(t *testing.T) {
	s := New("a")
	for value, want := range map[string]string{
		`null`:             "value is not a JSON object", // text; a nil value is null
		`[1]`:              "value is not a JSON object",
		``:                 "value is not a JSON object",
		`{"a":1,}`:         "value is not a valid JSON object: want a field name at byte 7",
		`{"a" 1}`:          "value is not a valid JSON object: want ':' at byte 5",
		`{"a":1} x`:        "value is not a valid JSON object: data after the object at byte 8",
		`{"a":"x`:          "value is not a valid JSON object: unterminated string at byte 5",
		`{"a":[1,{"b":2]}`: "value is not a valid JSON object: want ',' or '}' at byte 14",
		"{\"a\":\"\t\"}":   "value is not a valid JSON object: control character in a string at byte 6",
		`{"a":"\q"}`:       "value is not a valid JSON object: invalid escape at byte 6",
		`{"b":1,"a":nope}`: "value is not a valid JSON object: unexpected 'n' at byte 11",
	} {
		err := s.Scan([]byte(value))
		if err == nil || err.Error() != want {
			t.Errorf("Scan(%s) = %v, want %q", value, err, want)
		}
		if s.Spans()[0].Present() {
			t.Errorf("Scan(%s) failed but left a span: %+v", value, s.Spans())
		}
	}
	if err := s.Scan(nil); err == nil || err.Error() != "value is null, not a JSON object" {
		t.Errorf("Scan(nil) = %v", err)
	}
}

func TestScanSpans(t *testing.T) {
	s := New("country", "amount", "missing")
	value := []byte(`{"country": "N\u005a", "amount" : 12.5 , "nested": {"amount": 1}, "amount": 100}`)
	if err := s.Scan(value); err != nil {
		t.Fatal(err)
	}
	sp := s.Spans()
	if got := string(value[sp[0].Start:sp[0].End]); got != `"N\u005a"` || !sp[0].Escaped {
		t.Errorf("country: %q %+v", got, sp[0])
	}
	if got := string(value[sp[1].Start:sp[1].End]); got != `100` || sp[1].Escaped { // the last of duplicates
		t.Errorf("amount: %q %+v", got, sp[1])
	}
	if sp[2].Present() {
		t.Errorf("missing: %+v", sp[2])
	}
}
