package pipelines

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
)

// specWith parses head plus a stages list (and an output block replacing
// head's when output is not empty).
func specWith(t *testing.T, output, stages string) *Spec {
	t.Helper()
	src := head
	if output != "" {
		src = "pipeline: p\ninput: {topics: [in]}\noutput: " + output + "\n"
	}
	src += "stages:\n" + stages
	s, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, numbered(src))
	}
	return s
}

// stage is the only stage of a spec with the given stage line.
func stage(t *testing.T, line string) *Stage {
	t.Helper()
	s := specWith(t, "", "  - "+line+"\n")
	if len(s.Stages) != 1 {
		t.Fatalf("%d stages", len(s.Stages))
	}
	return s.Stages[0]
}

var ts0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// rec is a record with value v (nil: null) at offset off.
func rec(off int64, key, value []byte, hs ...string) sdk.Record {
	r := sdk.Record{Key: key, Value: value, Topic: "in", Partition: 3, Offset: off, Timestamp: ts0.Add(time.Duration(off) * time.Second)}
	for i := 0; i+1 < len(hs); i += 2 {
		r.Headers = append(r.Headers, sdk.Header{Key: hs[i], Value: []byte(hs[i+1])})
	}
	return r
}

func jrec(off int64, value string) sdk.Record { return rec(off, nil, []byte(value)) }

// outcome is what happened to one input: "out" (with the records), "drop"
// or "fail".
type outcome struct {
	kind string
	recs []sdk.Record
	err  error
}

// run processes in with st's processor, checks the contract and returns
// each input's outcome.
func run(t *testing.T, st *Stage, in ...sdk.Record) []outcome {
	t.Helper()
	var res sdk.Results
	if err := st.proc.Process(context.Background(), in, &res); err != nil {
		t.Fatalf("Process: %v", err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	outs := make([]outcome, len(in))
	for i := range outs {
		outs[i].kind = "drop"
	}
	for _, o := range res.Out {
		outs[o.Source].kind = "out"
		outs[o.Source].recs = append(outs[o.Source].recs, o.Record)
	}
	for _, f := range res.Failed {
		outs[f.Source] = outcome{kind: "fail", err: f.Err}
		if strings.Contains(f.Err.Error(), "\n") {
			t.Errorf("input %d: error has a newline: %q", f.Source, f.Err)
		}
	}
	return outs
}

// kinds is a compact view of outcomes: "out drop fail ...".
func kinds(outs []outcome) string {
	var ks []string
	for _, o := range outs {
		ks = append(ks, o.kind)
	}
	return strings.Join(ks, " ")
}

func TestFilterJSON(t *testing.T) {
	st := stage(t, `filter: 'value.country == "NZ" && value.amount > 100'`)
	outs := run(t, st,
		jrec(0, `{"country": "NZ", "amount": 500}`),
		jrec(1, `{"country": "NZ", "amount": 50}`),
		jrec(2, `{"country": "AU", "amount": 500}`),
		jrec(3, `{"country": "NZ", "amount": 100.5, "extra": [1, {"a": null}]}`),
		jrec(4, `  {"amount": 500, "country": "NZ"}  `),
		jrec(5, `{"country": "NZ", "amount": "500"}`), // a string: > 100 does not apply
		jrec(6, `{"country": "NZ"}`),                  // no amount: nil > 100
		jrec(7, `{"country": "NZ", "amount": 1e3}`),
		jrec(8, `{"country":"NZ","amount":500,"country":"AU"}`), // duplicate key: the last wins (encoding/json)
	)
	if got, want := kinds(outs), "out drop drop out out fail fail out drop"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	if got := outs[0].recs[0]; string(got.Value) != `{"country": "NZ", "amount": 500}` || got.Offset != 0 || got.Topic != "in" {
		t.Errorf("kept record changed: %+v", got)
	}
	if !strings.Contains(outs[5].err.Error(), "filter value.country") {
		t.Errorf("error %q does not name the stage's expression", outs[5].err)
	}
}

func TestFilterNested(t *testing.T) {
	st := stage(t, `filter: 'value.user.address.city == "Wellington" && len(value.tags) > 1'`)
	outs := run(t, st,
		jrec(0, `{"user": {"address": {"city": "Wellington"}}, "tags": ["a", "b"]}`),
		jrec(1, `{"user": {"address": {"city": "Auckland"}}, "tags": ["a", "b"]}`),
		jrec(2, `{"user": {"address": {"city": "Wellington"}}, "tags": ["a"]}`),
		jrec(3, `{"user": {"address": null}, "tags": []}`),
		jrec(4, `{"user": "someone", "tags": []}`),
	)
	if got, want := kinds(outs), "out drop drop fail fail"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
}

func TestFilterNonJSON(t *testing.T) {
	// A value that is not JSON is a string; JSON strings and numbers
	// decode to strings and float64s.
	st := stage(t, `filter: 'value == "hello" || value == 42'`)
	outs := run(t, st,
		jrec(0, `hello`),
		jrec(1, `"hello"`),
		jrec(2, `hello world`),
		jrec(3, `42`),
		jrec(4, `{"hello": 1}`),
		jrec(5, `{not json`),
		rec(6, nil, []byte{}),
	)
	if got, want := kinds(outs), "out out drop out drop drop drop"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	st = stage(t, `filter: 'value startsWith "{not" && len(value) == 9'`)
	if got, want := kinds(run(t, st, jrec(0, `{not json`), jrec(1, `{not json, longer`))), "out drop"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	// A field of a string value is a per-record failure.
	st = stage(t, `filter: 'value.x == 1'`)
	if got, want := kinds(run(t, st, jrec(0, `{"x": 1}`), jrec(1, `x=1`), jrec(2, `{"x": 2}`))), "out fail drop"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
}

func TestFilterNull(t *testing.T) {
	st := stage(t, `filter: 'value == nil'`)
	outs := run(t, st, rec(0, nil, nil), rec(1, nil, []byte{}), jrec(2, `null`), jrec(3, `{}`))
	// null (the Kafka tombstone) and the JSON null are both nil; an empty
	// value is "".
	if got, want := kinds(outs), "out drop out drop"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	if outs[0].recs[0].Value != nil {
		t.Errorf("null value became %q", outs[0].recs[0].Value)
	}
	st = stage(t, `filter: 'value.x == 1'`)
	if got, want := kinds(run(t, st, rec(0, nil, nil), jrec(1, `{"x": 1}`))), "fail out"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
}

func TestFilterRecordFields(t *testing.T) {
	v := []byte(`{}`)
	in := []sdk.Record{
		rec(0, []byte("k1"), v, "h", "v", "other", "x"),
		rec(1, []byte("k2"), v, "h", "old", "h", "v"), // the last of a repeated header
		rec(2, nil, v),
		rec(3, []byte("k1"), v, "h", "w"),
	}
	in[3].Topic, in[3].Partition = "other", 7
	cases := []struct{ expr, want string }{
		{`key == "k1"`, "out drop drop out"},
		{`key == ""`, "drop drop out drop"}, // a null key is ""
		{`headers.h == "v"`, "out out drop drop"},
		{`headers["other"] == "x"`, "out drop drop drop"},
		{`"h" in headers`, "out out drop out"},
		{`headers.absent == ""`, "out out out out"}, // a missing header reads as ""
		{`topic == "in"`, "out out out drop"},
		{`partition == 3`, "out out out drop"},
		{`offset >= 2`, "drop drop out out"},
		{`offset % 2 == 1`, "drop out drop out"},
		{`timestamp >= date("2026-11-28T09:00:02Z")`, "drop drop out out"},
		{`timestamp.UnixMilli() == 1795856401000`, "drop out drop drop"},
		{`timestamp.Year() == 2026`, "out out out out"},
		{`$env.key == "k2"`, "drop out drop drop"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			st := stage(t, "filter: '"+strings.ReplaceAll(c.expr, "'", "''")+"'")
			if got := kinds(run(t, st, in...)); got != c.want {
				t.Errorf("outcomes %s, want %s", got, c.want)
			}
		})
	}
	if ts0.Add(time.Second).UnixMilli() != 1795856401000 {
		t.Fatal("timestamp constant")
	}
}

// $env reaches the same fields as their names; the value it reads must be
// decoded like value's.
func TestFilterEnv(t *testing.T) {
	for _, e := range []string{
		`$env.value.amount > 100`,
		`$env["value"].amount > 100`,
		`$env.value.amount > 100 && value.country == "NZ"`,
		`value.country == "NZ" && get($env, "value").amount > 100`,
	} {
		t.Run(e, func(t *testing.T) {
			st := stage(t, "filter: '"+e+"'")
			outs := run(t, st, jrec(0, `{"amount": 500, "country": "NZ"}`), jrec(1, `{"amount": 5, "country": "NZ"}`))
			if got, want := kinds(outs), "out drop"; got != want {
				t.Fatalf("outcomes %s, want %s (%v)", got, want, outs[0].err)
			}
		})
	}
}

func TestFilterNotBooleanAtRunTime(t *testing.T) {
	// value's type is only known at run time: a filter on it that gives
	// a non-boolean fails the record.
	// A missing field (nil) counts as false.
	for _, e := range []string{`value.flag`, `$env.value.flag`} {
		st := stage(t, "filter: '"+e+"'")
		outs := run(t, st, jrec(0, `{"flag": true}`), jrec(1, `{"flag": false}`), jrec(2, `{"flag": "yes"}`), jrec(3, `{}`), jrec(4, `{"flag": 1}`))
		if got, want := kinds(outs), "out drop fail drop fail"; got != want {
			t.Errorf("%s: outcomes %s, want %s", e, got, want)
		}
	}
}

func TestMapScalar(t *testing.T) {
	cases := []struct {
		expr  string
		value string // "<nil>" for null
		json  bool   // compare as JSON
	}{
		{`{"user": key, "amount": value.amount * 2, "big": value.amount > 100}`, `{"user":"k","amount":1000,"big":true}`, true},
		{`value`, `{"amount":500,"note":"a"}`, true},
		{`value.note`, `a`, false}, // a string as it is, not quoted
		{`value.note + "-" + key`, `a-k`, false},
		{`value.amount`, `500`, false},
		{`value.amount / 3`, `166.66666666666666`, false},
		{`[1, "two", nil]`, `[1,"two",null]`, false},
		{`nil`, `<nil>`, false},
		{`value.missing`, `<nil>`, false},
		{`true`, `true`, false},
		{`""`, ``, false},
		{`upper(value.note)`, `A`, false},
	}
	in := rec(5, []byte("k"), []byte(`{"amount": 500, "note": "a"}`), "h", "v")
	in.Output = "kept"
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			st := stage(t, "map: '"+c.expr+"'")
			outs := run(t, st, in)
			if outs[0].kind != "out" || len(outs[0].recs) != 1 {
				t.Fatalf("outcome %+v", outs[0])
			}
			got := outs[0].recs[0]
			if c.value == "<nil>" {
				if got.Value != nil {
					t.Errorf("value %q, want null", got.Value)
				}
			} else if c.json && !sameValue(got.Value, []byte(c.value), true) || !c.json && string(got.Value) != c.value {
				t.Errorf("value %s, want %s", got.Value, c.value)
			}
			if c.value == "" && got.Value == nil {
				t.Errorf("empty string became null")
			}
			// Everything else stays.
			if string(got.Key) != "k" || len(got.Headers) != 1 || got.Headers[0].Key != "h" || got.Offset != 5 ||
				got.Topic != "in" || got.Partition != 3 || !got.Timestamp.Equal(in.Timestamp) || got.Output != "kept" {
				t.Errorf("map changed more than the value: %+v", got)
			}
		})
	}
}

func TestMapObject(t *testing.T) {
	st := stage(t, `map: {value: 'value.v', key: 'value.k', headers: '{"src": topic, "n": value.n, "none": nil}'}`)
	outs := run(t, st,
		rec(0, []byte("old"), []byte(`{"v": {"a": 1}, "k": "new", "n": 7}`), "h", "gone"),
		jrec(1, `{"v": "s", "k": null, "n": "x"}`),
		jrec(2, `{"v": 1, "k": 12, "n": 1.5}`),
		jrec(3, `{"v": 1, "k": true, "n": 1}`), // a boolean key fails
		jrec(4, `not json`),
	)
	if got, want := kinds(outs), "out out out fail fail"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	type want struct{ key, value, headers string }
	for i, w := range []want{
		{"new", `{"a":1}`, `[n=7 none=<nil> src=in]`}, // headers sorted by name
		{"<nil>", `s`, `[n=x none=<nil> src=in]`},
		{"12", `1`, `[n=1.5 none=<nil> src=in]`},
	} {
		r := outs[i].recs[0]
		key := string(r.Key)
		if r.Key == nil {
			key = "<nil>"
		}
		var hs []string
		for _, h := range r.Headers {
			v := string(h.Value)
			if h.Value == nil {
				v = "<nil>"
			}
			hs = append(hs, h.Key+"="+v)
		}
		gotH := "[" + strings.Join(hs, " ") + "]"
		if key != w.key || string(r.Value) != w.value || gotH != w.headers {
			t.Errorf("input %d: key %s value %s headers %s, want %s %s %s", i, key, r.Value, gotH, w.key, w.value, w.headers)
		}
	}
	if !strings.Contains(outs[3].err.Error(), "boolean") {
		t.Errorf("boolean key error: %v", outs[3].err)
	}

	// Only the fields given change.
	st = stage(t, `map: {key: 'upper(key)'}`)
	outs = run(t, st, rec(0, []byte("k"), []byte("v"), "h", "1"))
	if r := outs[0].recs[0]; string(r.Key) != "K" || string(r.Value) != "v" || len(r.Headers) != 1 {
		t.Errorf("key-only map: %+v", r)
	}
	st = stage(t, `map: {headers: 'nil'}`)
	outs = run(t, st, rec(0, []byte("k"), []byte("v"), "h", "1"))
	if r := outs[0].recs[0]; string(r.Key) != "k" || string(r.Value) != "v" || len(r.Headers) != 0 {
		t.Errorf("headers: nil: %+v", r)
	}
	st = stage(t, `map: {headers: 'headers'}`) // map[string]string passes through
	outs = run(t, st, rec(0, nil, nil, "b", "2", "a", "1", "a", "3"))
	if r := outs[0].recs[0]; len(r.Headers) != 2 || r.Headers[0].Key != "a" || string(r.Headers[0].Value) != "3" || r.Headers[1].Key != "b" {
		t.Errorf("headers: headers: %+v", r.Headers)
	}
	st = stage(t, `map: {headers: '"h"'}`)
	if outs := run(t, st, jrec(0, `{}`)); outs[0].kind != "fail" || !strings.Contains(outs[0].err.Error(), "want a map of header names") {
		t.Errorf("headers from a string: %+v", outs[0])
	}
}

func TestMapRunTimeErrors(t *testing.T) {
	st := stage(t, `map: 'value.a / value.b'`)
	outs := run(t, st, jrec(0, `{"a": 1, "b": 2}`), jrec(1, `{"a": 1, "b": 0}`), jrec(2, `{"a": "x", "b": 1}`), jrec(3, `{"a": 3, "b": 4}`))
	// 1/0 is +Inf, which JSON cannot hold.
	if got, want := kinds(outs), "out fail fail out"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	if string(outs[0].recs[0].Value) != "0.5" || string(outs[3].recs[0].Value) != "0.75" {
		t.Errorf("values %s %s", outs[0].recs[0].Value, outs[3].recs[0].Value)
	}
	if e := outs[1].err.Error(); !strings.HasPrefix(e, "map value value.a / value.b: ") || !strings.Contains(e, "JSON") {
		t.Errorf("error %q", e)
	}
}

func TestKeyStage(t *testing.T) {
	st := stage(t, `key: 'value.id'`)
	outs := run(t, st,
		jrec(0, `{"id": "user-1"}`),
		jrec(1, `{"id": 42}`),
		jrec(2, `{"id": 1.5}`),
		jrec(3, `{"id": null}`),
		jrec(4, `{}`),
		jrec(5, `{"id": true}`),
		jrec(6, `{"id": {"a": 1}}`),
		jrec(7, `{"id": -7e3}`),
		jrec(8, `{"id": ""}`),
	)
	if got, want := kinds(outs), "out out out out out fail fail out out"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	for i, want := range map[int]string{0: "user-1", 1: "42", 2: "1.5", 3: "<nil>", 4: "<nil>", 7: "-7000", 8: ""} {
		r := outs[i].recs[0]
		got := string(r.Key)
		if r.Key == nil {
			got = "<nil>"
		}
		if got != want {
			t.Errorf("input %d: key %q, want %q", i, got, want)
		}
	}
	if outs[8].recs[0].Key == nil {
		t.Error("an empty string key became null")
	}
	if e := outs[5].err.Error(); !strings.Contains(e, "gave a boolean (true)") || !strings.HasPrefix(e, "key value.id: ") {
		t.Errorf("error %q", e)
	}
	// Integers computed by the expression.
	st = stage(t, `key: 'offset * 10'`)
	if r := run(t, st, jrec(4, `x`))[0].recs[0]; string(r.Key) != "40" || string(r.Value) != "x" {
		t.Errorf("key %q value %q", r.Key, r.Value)
	}
	st = stage(t, `key: 'key + "-" + topic'`)
	if r := run(t, st, rec(0, []byte("k"), nil))[0].recs[0]; string(r.Key) != "k-in" || r.Value != nil {
		t.Errorf("key %q value %q", r.Key, r.Value)
	}
}

func TestRoute(t *testing.T) {
	s := specWith(t, "{big: b, nz: n, default: d}", `  - route:
      big: 'value.amount > 1000'
      nz: 'value.country == "NZ"'
      default: 'value.amount > 0'
`)
	outs := run(t, s.Stages[0],
		jrec(0, `{"amount": 5000, "country": "NZ"}`), // first match wins
		jrec(1, `{"amount": 50, "country": "NZ"}`),
		jrec(2, `{"amount": 50, "country": "AU"}`),
		jrec(3, `{"amount": 0, "country": "AU"}`), // no case: dropped
		jrec(4, `{"amount": 5000}`),               // later cases not evaluated
		jrec(5, `{"country": "NZ"}`),              // nil > 1000: the first case fails
		jrec(6, `{"amount": 50}`),                 // nil == "NZ" is false; then default
	)
	if got, want := kinds(outs), "out out out drop out fail out"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	for i, want := range map[int]string{0: "big", 1: "nz", 2: "default", 4: "big", 6: "default"} {
		if got := outs[i].recs[0].Output; got != want {
			t.Errorf("input %d routed to %q, want %q", i, got, want)
		}
	}
	if e := outs[5].err.Error(); !strings.HasPrefix(e, "route big value.amount > 1000: ") {
		t.Errorf("error %q", e)
	}
	if r := outs[0].recs[0]; string(r.Value) != `{"amount": 5000, "country": "NZ"}` || r.Offset != 0 {
		t.Errorf("routed record changed: %+v", r)
	}

	// An always-true last case takes the rest.
	s = specWith(t, "{big: b, rest: r}", "  - route: {big: 'value.amount > 1000', rest: true}\n")
	outs = run(t, s.Stages[0], jrec(0, `{"amount": 5000}`), jrec(1, `{"amount": 5}`), jrec(2, `{"amount": "x"}`))
	if got, want := kinds(outs), "out out fail"; got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	if outs[0].recs[0].Output != "big" || outs[1].recs[0].Output != "rest" {
		t.Errorf("outputs %q %q", outs[0].recs[0].Output, outs[1].recs[0].Output)
	}

	// Only an always-true case: no expression is run.
	s = specWith(t, "{all: a}", "  - route: {all: true}\n")
	outs = run(t, s.Stages[0], rec(0, nil, nil), jrec(1, `not json`))
	if got := kinds(outs); got != "out out" || outs[1].recs[0].Output != "all" {
		t.Fatalf("outcomes %s", got)
	}
}

func TestRunTimeErrorsLeaveNeighbours(t *testing.T) {
	for _, line := range []string{
		`filter: 'value.n > 1'`,
		`map: 'value.n + 1'`,
		`key: 'value.n'`,
		`route: {default: 'value.n > 1'}`,
		// Functions whose errors quote the value, newline and all.
		`map: 'type(value) == "string" ? date(value) : value.n'`,
		`map: 'type(value) == "string" ? fromJSON(value) : value.n'`,
		`filter: 'type(value) == "string" ? int(value) > 0 : value.n > 1'`,
		`key: 'type(value) == "string" ? duration(value) : value.n'`,
	} {
		t.Run(line, func(t *testing.T) {
			st := stage(t, line)
			var in []sdk.Record
			for i := range 9 {
				v := fmt.Sprintf(`{"n": %d}`, i)
				if i%3 == 1 {
					v = "line one\nline two" // not JSON: value.n fails
				}
				in = append(in, jrec(int64(i), v))
			}
			outs := run(t, st, in...)
			for i, o := range outs {
				switch {
				case i%3 == 1 && o.kind != "fail":
					t.Errorf("input %d: %s, want fail", i, o.kind)
				case i%3 == 1:
					if e := o.err.Error(); strings.ContainsAny(e, "\n\r") || e == "" {
						t.Errorf("input %d: error %q is not one line", i, e)
					}
				case o.kind == "fail":
					t.Errorf("input %d failed beside a failing input: %v", i, o.err)
				}
			}
		})
	}
}

// chainOf builds a chain of the given stages (parsed) around custom ones.
func chainOf(stages ...*Stage) *chain { return newChain(stages) }

func procStage(name string, f sdk.ProcessorFunc) *Stage {
	return &Stage{Kind: "x", Name: name, proc: f}
}

// fanOut emits each record twice, the copies tagged with a header n=1, 2.
var fanOut = procStage("fan", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	for i, r := range in {
		for n := 1; n <= 2; n++ {
			c := r
			c.Headers = append(append([]sdk.Header(nil), r.Headers...), sdk.Header{Key: "n", Value: []byte{'0' + byte(n)}})
			res.Emit(i, c)
		}
	}
	return nil
})

func TestChain(t *testing.T) {
	s := specWith(t, "", `  - filter: 'value.n in [0, 2, 4, 5]'
  - map: '{"n": value.n, "inv": 10 / (value.n - 4)}'
    name: invert
  - key: 'string(value.n)'
`)
	c := newChain(s.Stages)
	var in []sdk.Record
	for i := range 8 {
		in = append(in, jrec(int64(i), fmt.Sprintf(`{"n": %d}`, i)))
	}
	in[6].Value = []byte("six") // fails in the filter
	out, failed, err := c.run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	// 0, 2, 5 pass; 4 fails in the map (10/0 is +Inf: not JSON);
	// 6 fails in the filter; 1, 3, 7 are filtered out.
	var got []string
	for _, o := range out {
		got = append(got, fmt.Sprintf("%d:%s:%s", o.Source, o.Record.Key, o.Record.Value))
	}
	if want := `0:0:{"inv":-2.5,"n":0} 2:2:{"inv":-5,"n":2} 5:5:{"inv":10,"n":5}`; strings.Join(got, " ") != want {
		t.Errorf("outputs %s, want %s", strings.Join(got, " "), want)
	}
	if len(failed) != 2 || failed[0].Source != 4 || failed[0].Stage.Name != "invert" || failed[1].Source != 6 || failed[1].Stage.Name != "filter#1" {
		t.Fatalf("failures %+v", failed)
	}
	for _, f := range failed {
		if f.Err == nil || strings.Contains(f.Err.Error(), "\n") {
			t.Errorf("failure %+v", f)
		}
	}
	// Per-stage counts: in and out of each stage.
	if got := fmt.Sprint(c.counts); got != "[{8 4} {4 3} {3 3}]" {
		t.Errorf("counts %s", got)
	}
	// The chain is reusable: a second run gives the same.
	out2, failed2, err := c.run(context.Background(), in)
	if err != nil || len(out2) != 3 || len(failed2) != 2 {
		t.Errorf("second run: %d outputs, %d failures, %v", len(out2), len(failed2), err)
	}

	// No stages: everything flows as it is.
	out, failed, err = newChain(nil).run(context.Background(), in[:3])
	if err != nil || len(out) != 3 || len(failed) != 0 || out[2].Source != 2 || string(out[2].Record.Value) != `{"n": 2}` {
		t.Errorf("empty chain: %v %v %v", out, failed, err)
	}
}

// A fan-out stage followed by one that fails on one copy: the input has
// no outputs at all, and fails once, at the later stage.
func TestChainFanOutThenFailure(t *testing.T) {
	failSecondCopyOf3 := procStage("picky", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
		for i, r := range in {
			n, _ := r.Header("n")
			if r.Offset == 3 && string(n) == "2" || r.Offset == 5 {
				res.Fail(i, fmt.Errorf("no thanks %d/%s", r.Offset, n))
				continue
			}
			res.Emit(i, r)
		}
		return nil
	})
	last := stage(t, `map: {headers: '{"n": headers.n, "last": "yes"}'}`)
	var seen []int64
	spy := procStage("spy", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
		for i, r := range in {
			seen = append(seen, r.Offset)
			res.Emit(i, r)
		}
		return nil
	})
	c := chainOf(fanOut, failSecondCopyOf3, spy, last)
	var in []sdk.Record
	for i := range 7 {
		in = append(in, jrec(int64(i), "v"))
	}
	out, failed, err := c.run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range out {
		n, _ := o.Record.Header("n")
		got = append(got, fmt.Sprintf("%d/%s", o.Source, n))
	}
	if want := "0/1 0/2 1/1 1/2 2/1 2/2 4/1 4/2 6/1 6/2"; strings.Join(got, " ") != want {
		t.Errorf("outputs %s, want %s", strings.Join(got, " "), want)
	}
	if len(failed) != 2 || failed[0].Source != 3 || failed[0].Stage.Name != "picky" || failed[0].Err.Error() != "no thanks 3/2" ||
		failed[1].Source != 5 || failed[1].Err.Error() != "no thanks 5/1" {
		t.Errorf("failures %+v", failed)
	}
	// The first copy of input 3 passed "picky" but is dropped before the
	// next stage sees it.
	for _, off := range seen {
		if off == 3 || off == 5 {
			t.Errorf("stage after the failure saw input %d", off)
		}
	}
	if len(seen) != 10 {
		t.Errorf("spy saw %d records, want 10", len(seen))
	}
}

func TestChainErrors(t *testing.T) {
	boom := errors.New("plugin crashed")
	cases := []struct {
		name  string
		proc  sdk.ProcessorFunc
		check func(error) bool
	}{
		{"batch error", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error { return boom },
			func(err error) bool { return errors.Is(err, boom) }},
		{"outputs out of order", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
			for i := len(in) - 1; i >= 0; i-- {
				res.Emit(i, in[i])
			}
			return nil
		}, func(err error) bool { return errors.Is(err, sdk.ErrContract) }},
		{"output of a failed input", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
			res.Emit(0, in[0])
			res.Fail(0, boom)
			return nil
		}, func(err error) bool { return errors.Is(err, sdk.ErrContract) }},
		{"source out of range", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
			res.Emit(len(in), in[0])
			return nil
		}, func(err error) bool { return errors.Is(err, sdk.ErrContract) }},
		{"failure without error", func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
			res.Fail(1, nil)
			return nil
		}, func(err error) bool { return errors.Is(err, sdk.ErrContract) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := chainOf(stage(t, `filter: 'true'`), procStage("bad", c.proc))
			out, failed, err := ch.run(context.Background(), []sdk.Record{jrec(0, "a"), jrec(1, "b"), jrec(2, "c")})
			if err == nil || !c.check(err) || !strings.Contains(err.Error(), "stage bad: ") {
				t.Fatalf("err %v", err)
			}
			if out != nil || failed != nil {
				t.Errorf("partial results with an error: %v %v", out, failed)
			}
		})
	}
	// A cancelled context fails the batch in the built-in stages.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := chainOf(stage(t, `filter: 'true'`)).run(ctx, []sdk.Record{jrec(0, "a")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// RunTests runs a spec's own test cases through the chain.
func TestRunTests(t *testing.T) {
	s, err := Parse("p.yaml", []byte(`pipeline: p
input: {topics: [in]}
output: {big: b, default: d}
stages:
  - filter: 'value.amount > 0'
  - route: {big: 'value.amount > 100'}
tests:
  - name: passes
    input:
      - {key: a, value: {amount: 500}}
      - {value: {amount: 5}}
      - {value: {amount: 0}}
      - {value: not json}
    expect:
      big: [{key: a, value: {amount: 500}}]
    failed: 1
  - name: fails
    input:
      - {value: {amount: 500}}
    expect:
      default: [{value: {amount: 500}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunTests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || len(res[0].Problems) != 0 {
		t.Fatalf("results %+v", res)
	}
	if p := strings.Join(res[1].Problems, "; "); !strings.Contains(p, "output big: 1 records, want 0") || !strings.Contains(p, "output default: 0 records, want 1") {
		t.Errorf("problems %q", p)
	}
}

// An expression written over several lines still gives one-line errors.
func TestMultiLineExpressionErrors(t *testing.T) {
	for _, line := range []string{
		"filter: |\n      value.n > 1 &&\n        value.n < 5\n",
		"map: >\n      value.n\n\n      + 1\n",
		"map: {value: \"value.n\\n+ 1\", headers: \"{'a':\\n value.h}\"}",
		"key: |-\n      value.n +\n      1\n",
		"route: {default: \"value.n\\n > 1\"}",
	} {
		t.Run(line, func(t *testing.T) {
			st := stage(t, line)
			outs := run(t, st, jrec(0, `{"n": 2, "h": "x"}`), jrec(1, "text"), jrec(2, `{"n": 3, "h": "x"}`))
			if outs[1].kind != "fail" || outs[0].kind == "fail" || outs[2].kind == "fail" {
				t.Fatalf("outcomes %s (%v)", kinds(outs), outs[0].err)
			}
			// run checks the error has no newline.
			if strings.ContainsAny(st.Summary, "\r\n") {
				t.Errorf("summary %q", st.Summary)
			}
		})
	}
	st := stage(t, "filter: |\n      value.n > 1 &&\n        value.n < 5\n")
	if st.Summary != "keep records where value.n > 1 && value.n < 5" {
		t.Errorf("summary %q", st.Summary)
	}
	outs := run(t, st, jrec(0, "text"))
	if e := outs[0].err.Error(); !strings.HasPrefix(e, "filter value.n > 1 && value.n < 5: ") {
		t.Errorf("error %q", e)
	}
	st = stage(t, "filter: |\n      value.n > 1 &&\n        value.m.x < 5\n")
	outs = run(t, st, jrec(0, `{"n": 2}`))
	if e := outs[0].err.Error(); !strings.HasSuffix(e, "(at line 2, column 11)") {
		t.Errorf("error %q: want the line and column in the expression", e)
	}
}
