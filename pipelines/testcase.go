package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/sdk"
)

// TestCase is one case of a spec's tests: input records and the records
// expected on each output. Outputs not named must receive nothing; Failed
// is the number of inputs expected to fail (they would go to the error
// policy).
type TestCase struct {
	Name   string
	Pos    Pos
	Input  []sdk.Record
	Expect map[string][]expectRecord
	Failed int
}

// expectRecord is an expected output record. A value written as a YAML
// mapping or list is compared as JSON (key order and spacing aside); a
// string is compared byte for byte.
type expectRecord struct {
	key, value []byte
	keySet     bool
	valueJSON  bool
	headers    []sdk.Header
	headersSet bool
	pos        Pos
}

func (d *decoder) tests(n *yaml.Node, s *Spec) []TestCase {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "", "tests: want a list of cases, got %s", kindName(n))
		return nil
	}
	outputs := map[string]bool{}
	for _, o := range s.Outputs {
		outputs[o.Name] = true
	}
	var cases []TestCase
	for i, item := range n.Content {
		fs := d.fields(item, "test", "name", "input", "expect", "failed")
		if fs == nil {
			continue
		}
		tc := TestCase{Name: fmt.Sprintf("case %d", i+1), Pos: d.pos(resolve(item)), Expect: map[string][]expectRecord{}}
		if f, ok := fs["name"]; ok {
			if name, ok := d.nonEmpty(f.val, "test name"); ok {
				tc.Name = name
			}
		}
		if f, ok := fs["input"]; !ok {
			d.errorf(item, "input: [{key: K, value: V}]", "test %q: missing field \"input\"", tc.Name)
		} else if l := resolve(f.val); l.Kind != yaml.SequenceNode {
			d.errorf(l, "", "test %q: input: want a list of records, got %s", tc.Name, kindName(l))
		} else {
			topic := ""
			if len(s.Input.Topics) > 0 {
				topic = s.Input.Topics[0]
			}
			for j, rn := range l.Content {
				r := d.testRecord(rn, fmt.Sprintf("test %q input %d", tc.Name, j+1), true)
				rec := sdk.Record{Key: r.key, Value: r.value, Headers: r.headers, Topic: topic, Offset: int64(j),
					Timestamp: time.UnixMilli(1_700_000_000_000 + int64(j))}
				if !r.keySet {
					rec.Key = nil
				}
				tc.Input = append(tc.Input, rec)
			}
		}
		if f, ok := fs["expect"]; ok {
			efs := d.fields(f.val, fmt.Sprintf("test %q expect", tc.Name))
			for name, ef := range efs {
				if !outputs[name] && len(outputs) > 0 {
					d.errorf(ef.key, "outputs: "+strings.Join(outputNames(s), ", "), "test %q expect: no output named %q", tc.Name, name)
					continue
				}
				l := resolve(ef.val)
				if l.Kind != yaml.SequenceNode {
					d.errorf(l, "", "test %q expect %s: want a list of records, got %s", tc.Name, name, kindName(l))
					continue
				}
				tc.Expect[name] = []expectRecord{}
				for j, rn := range l.Content {
					tc.Expect[name] = append(tc.Expect[name], d.testRecord(rn, fmt.Sprintf("test %q expect %s record %d", tc.Name, name, j+1), false))
				}
			}
		}
		if f, ok := fs["failed"]; ok {
			if v, ok := d.integer(f.val, "test failed", 0, 1<<20); ok {
				tc.Failed = int(v)
			}
		}
		cases = append(cases, tc)
	}
	return cases
}

func outputNames(s *Spec) []string {
	var names []string
	for _, o := range s.Outputs {
		names = append(names, o.Name)
	}
	return names
}

// testRecord decodes {key, value, headers}. A mapping or list value is
// JSON; a string is its bytes; null is null.
func (d *decoder) testRecord(n *yaml.Node, what string, input bool) expectRecord {
	r := expectRecord{pos: d.pos(resolve(n))}
	fs := d.fields(n, what, "key", "value", "headers")
	if f, ok := fs["key"]; ok {
		r.keySet = true
		v := resolve(f.val)
		if v.Tag != "!!null" {
			if v.Kind != yaml.ScalarNode {
				d.errorf(v, "", "%s: key: want a string, got %s", what, kindName(v))
			}
			r.key = []byte(v.Value)
		}
	}
	if f, ok := fs["value"]; ok {
		v := resolve(f.val)
		switch {
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		case v.Kind == yaml.ScalarNode && v.Tag == "!!str":
			r.value = []byte(v.Value)
		default:
			var x any
			if err := v.Decode(&x); err != nil {
				d.errorf(v, "", "%s: value: %v", what, err)
				break
			}
			b, err := json.Marshal(jsonable(x))
			if err != nil {
				d.errorf(v, "", "%s: value: %v", what, err)
				break
			}
			r.value, r.valueJSON = b, true
		}
	}
	if f, ok := fs["headers"]; ok {
		r.headersSet = true
		hfs := d.fields(f.val, what+" headers")
		var keys []string
		for k := range hfs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := resolve(hfs[k].val)
			r.headers = append(r.headers, sdk.Header{Key: k, Value: []byte(v.Value)})
		}
	}
	return r
}

// jsonable converts YAML-decoded maps (map[string]any already with yaml.v3)
// for json.Marshal.
func jsonable(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	}
	return x
}

// TestResult is the outcome of one test case.
type TestResult struct {
	Case     *TestCase
	Problems []string // empty: passed
}

// RunTests runs the spec's test cases through its stages, without a
// broker.
func (s *Spec) RunTests(ctx context.Context) ([]TestResult, error) {
	var results []TestResult
	for i := range s.Tests {
		tc := &s.Tests[i]
		c := newChain(s.Stages)
		in := make([]sdk.Record, len(tc.Input))
		copy(in, tc.Input)
		out, failed, err := c.run(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("test %q: %w", tc.Name, err)
		}
		got := map[string][]sdk.Record{}
		for _, o := range out {
			name := o.Record.Output
			if name == "" {
				name = "default"
			}
			got[name] = append(got[name], o.Record)
		}
		res := TestResult{Case: tc}
		if len(failed) != tc.Failed {
			msg := fmt.Sprintf("%d inputs failed, want %d", len(failed), tc.Failed)
			for _, f := range failed {
				msg += fmt.Sprintf("\n      input %d failed in stage %s: %v", f.Source+1, f.Stage.Name, f.Err)
			}
			res.Problems = append(res.Problems, msg)
		}
		names := map[string]bool{}
		for n := range got {
			names[n] = true
		}
		for n := range tc.Expect {
			names[n] = true
		}
		var sorted []string
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		for _, name := range sorted {
			res.Problems = append(res.Problems, compareOutput(name, got[name], tc.Expect[name])...)
		}
		results = append(results, res)
	}
	return results, nil
}

func compareOutput(name string, got []sdk.Record, want []expectRecord) []string {
	var probs []string
	if len(got) != len(want) {
		probs = append(probs, fmt.Sprintf("output %s: %d records, want %d%s", name, len(got), len(want), listRecords(got)))
		return probs
	}
	for i := range want {
		g, w := got[i], want[i]
		if w.keySet && (!bytes.Equal(g.Key, w.key) || (g.Key == nil) != (w.key == nil)) {
			probs = append(probs, fmt.Sprintf("output %s record %d (%s): key %s, want %s", name, i+1, w.pos, quoteNull(g.Key), quoteNull(w.key)))
		}
		if !sameValue(g.Value, w.value, w.valueJSON) {
			probs = append(probs, fmt.Sprintf("output %s record %d (%s): value %s, want %s", name, i+1, w.pos, quoteNull(g.Value), quoteNull(w.value)))
		}
		if w.headersSet && !sameHeaders(g.Headers, w.headers) {
			probs = append(probs, fmt.Sprintf("output %s record %d (%s): headers %v, want %v", name, i+1, w.pos, showHeaders(g.Headers), showHeaders(w.headers)))
		}
	}
	return probs
}

func listRecords(rs []sdk.Record) string {
	var b strings.Builder
	for i, r := range rs {
		fmt.Fprintf(&b, "\n      got %d: key %s value %s", i+1, quoteNull(r.Key), quoteNull(r.Value))
	}
	return b.String()
}

func quoteNull(b []byte) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprintf("%q", b)
}

func sameValue(got, want []byte, asJSON bool) bool {
	if !asJSON {
		return bytes.Equal(got, want) && (got == nil) == (want == nil)
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

func sameHeaders(got, want []sdk.Header) bool {
	if len(got) != len(want) {
		return false
	}
	g := append([]sdk.Header(nil), got...)
	sort.SliceStable(g, func(i, j int) bool { return g[i].Key < g[j].Key })
	for i := range g {
		if g[i].Key != want[i].Key || !bytes.Equal(g[i].Value, want[i].Value) {
			return false
		}
	}
	return true
}

func showHeaders(hs []sdk.Header) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s=%q", h.Key, h.Value))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
