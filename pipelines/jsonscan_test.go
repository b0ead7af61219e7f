package pipelines

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzScan checks the single-pass scanner against encoding/json: it
// accepts exactly the valid JSON objects, and the fields it picks out
// decode to what a whole decode holds.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":1} `, `{"a":"x","b":[1,2,{"c":null}],"d":true}`, `{"a":1,}`, `{"a" 1}`, `[1]`, `"s"`, `{"a":"\u00e9\n"}`,
		`{"a\u0062":2,"b":3}`, `{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x01"}`, `{"a":tru}`, `{"a":{"a":{"a":{}}}}`,
		`{"a":1}{}`, `{"a":1e400}`, `{"a":"ok","a":"dup"}`, "{\"a\":\"\xff\"}", `{"a":[]}`, `{"":0}`,
	} {
		f.Add([]byte(s), "a")
	}
	f.Fuzz(func(t *testing.T, raw []byte, name string) {
		sc := &scanner{wanted: []string{name, "b"}}
		got := sc.scanTop(raw)
		trimmed := bytes.TrimLeft(raw, " \t\r\n")
		want := json.Valid(raw) && len(trimmed) > 0 && trimmed[0] == '{'
		if got && !want {
			t.Fatalf("scanner accepts %q, encoding/json does not", raw)
		}
		if !got && want && depth(raw) <= maxScanDepth {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				t.Fatalf("scanner rejects valid %q", raw)
			}
			// Valid JSON encoding/json cannot decode (a number beyond
			// float64): rejected, so it is decoded whole, like without
			// laziness.
		}
		if !got {
			return
		}
		var whole map[string]any
		if err := json.Unmarshal(raw, &whole); err != nil {
			t.Fatalf("%q: scanner accepts, encoding/json fails: %v", raw, err)
		}
		for w, n := range sc.wanted {
			sp := sc.found[w]
			wv, present := whole[n]
			if (sp.end != 0) != present {
				t.Fatalf("%q: field %q found=%v, present=%v", raw, n, sp.end != 0, present)
			}
			if !present {
				continue
			}
			gv, ok := decodeSpan(raw[sp.start:sp.end])
			if !ok {
				// A nested value encoding/json rejects would have failed
				// the whole decode above.
				t.Fatalf("%q: field %q: decodeSpan failed", raw, n)
			}
			if !reflect.DeepEqual(gv, wv) {
				t.Fatalf("%q: field %q: lazy %#v, whole %#v", raw, n, gv, wv)
			}
		}
	})
}

// depth is the nesting depth of raw's brackets outside strings.
func depth(raw []byte) int {
	d, m, inStr, esc := 0, 0, false, false
	for _, c := range raw {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			d++
			m = max(m, d)
		case !inStr && (c == '}' || c == ']'):
			d--
		}
	}
	return m
}
