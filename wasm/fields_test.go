package wasm

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
	"github.com/weirstream/weir/sdk/jsonfield"
)

// fieldsValues exercise the scan: fields present, absent, escaped,
// duplicated, nested and of every type, and values that are not objects.
var fieldsValues = []string{
	`{"a": 1, "b": "x", "ab": [1, {"a": 2}]}`,
	` {"b":"q\"uote","a":{"a":1}} `,
	`{"a":1,"a":"last wins"}`,
	`{"\u0061": true, "zz": null}`,
	`{}`,
	`{"a": -1.5e+3, "b": false, "long_name_of_more_than_sixty_four_bytes_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": 1}`,
	`not json`,
	`[1, 2]`,
	`null`,
	`{"a": 1,}`,
	`{"a": 1} {}`,
	`{"a": "tab	in a string"}`,
}

var fieldsNames = []string{"a", "b", "ab", "long_name_of_more_than_sixty_four_bytes_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}

// newFieldsStage starts wasm/testdata/fields under a host that offers
// the features offer (compiled once: the tests share a compilation cache).
func newFieldsStage(t *testing.T, offer uint32, config string) (*Stage, error) {
	t.Helper()
	rt, err := NewRuntime(context.Background(), Config{CacheDir: filepath.Join(testRoot, "fields-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	rt.offer = offer
	m, err := rt.Compile(context.Background(), "fields.wasm", build(t, "./testdata/fields"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(m, []byte(config), nil, nil)
	t.Cleanup(func() { s.Close(context.Background()) })
	in, err := s.instance(context.Background())
	if err != nil {
		return nil, err
	}
	if hostScans := in.fields != nil; hostScans != (offer&abi.FeatureFields != 0) {
		t.Fatalf("offered %b, the host scans: %v", offer, hostScans)
	}
	return s, nil
}

// TestFields: a module registered with guest.RegisterFields gets, for
// every record, the spans and error package jsonfield gives natively,
// whether the host scans (abi.FeatureFields) or, under a host without
// that feature, the SDK scans in the module.
func TestFields(t *testing.T) {
	names, _ := json.Marshal(fieldsNames)
	native := jsonfield.New(fieldsNames...)
	for _, offer := range []uint32{abi.FeatureKept | abi.FeatureFields, abi.FeatureKept, 0} {
		t.Run(fmt.Sprintf("offer %b", offer), func(t *testing.T) {
			s, err := newFieldsStage(t, offer, `{"form": "fields", "names": `+string(names)+`}`)
			if err != nil {
				t.Fatal(err)
			}
			in := values(fieldsValues...)
			in = append(in, sdk.Record{Key: []byte("nil value")})
			res := process(t, s, in)
			if len(res.Out) != len(in) || len(res.Failed) != 0 {
				t.Fatalf("%d outputs, %d failed, want %d outputs", len(res.Out), len(res.Failed), len(in))
			}
			for _, o := range res.Out {
				var got struct {
					Spans [][3]int
					Err   string
				}
				if err := json.Unmarshal(o.Record.Value, &got); err != nil {
					t.Fatalf("output %s: %v", o.Record.Value, err)
				}
				value := in[o.Source].Value
				want := [][3]int{}
				wantErr := ""
				if err := native.Scan(value); err != nil {
					wantErr = err.Error()
				}
				for _, sp := range native.Spans() {
					e := 0
					if sp.Escaped {
						e = 1
					}
					want = append(want, [3]int{sp.Start, sp.End, e})
				}
				if !slices.Equal(got.Spans, want) || got.Err != wantErr {
					t.Errorf("%q: module got %v %q, jsonfield says %v %q", value, got.Spans, got.Err, want, wantErr)
				}
			}
		})
	}
}

// TestFilterForm: a guest.RegisterFilter module keeps (unchanged, by
// reference), drops and fails records, a panic fails its record alone,
// a value that is not a JSON object fails with the scanner's message, and
// what the function does to a record it keeps does not show, with the host
// scanning or the module, and with kept records crossing by reference or
// whole.
func TestFilterForm(t *testing.T) {
	native := jsonfield.New("a")
	for _, offer := range []uint32{abi.FeatureKept | abi.FeatureFields, abi.FeatureKept, 0} {
		t.Run(fmt.Sprintf("offer %b", offer), func(t *testing.T) {
			s, err := newFieldsStage(t, offer, `{"form": "filter", "names": ["a"]}`)
			if err != nil {
				t.Fatal(err)
			}
			var in []sdk.Record
			for i, v := range fieldsValues {
				key := "k"
				if i%3 == 1 {
					key = "x"
				}
				in = append(in, sdk.Record{Key: fmt.Appendf(nil, "%s%d", key, i), Value: []byte(v), Headers: []sdk.Header{{Key: "h", Value: []byte("v")}}})
			}
			in = append(in, sdk.Record{Key: []byte("kmutate"), Value: []byte(`{"a":2}`)},
				sdk.Record{Key: []byte("panic"), Value: []byte(`{}`)}, sdk.Record{Key: []byte("k-after"), Value: []byte(`{"a":1}`)})
			res := process(t, s, in)
			var kept []int
			for _, o := range res.Out {
				kept = append(kept, o.Source)
				if r := in[o.Source]; string(o.Record.Value) != string(r.Value) || string(o.Record.Key) != string(r.Key) || len(o.Record.Headers) != len(r.Headers) {
					t.Errorf("output of %d changed: %+v", o.Source, o.Record)
				}
			}
			failed := map[int]string{}
			for _, f := range res.Failed {
				failed[f.Source] = f.Err.Error()
			}
			var wantKept []int
			wantFailed := map[int]string{len(in) - 2: "panic: asked to"}
			for i, r := range in[:len(in)-2] {
				if err := native.Scan(r.Value); err != nil {
					wantFailed[i] = err.Error()
				} else if strings.HasPrefix(string(r.Key), "k") {
					wantKept = append(wantKept, i)
				}
			}
			wantKept = append(wantKept, len(in)-1)
			if !slices.Equal(kept, wantKept) {
				t.Errorf("kept %v, want %v", kept, wantKept)
			}
			if fmt.Sprint(failed) != fmt.Sprint(wantFailed) {
				t.Errorf("failed %v, want %v", failed, wantFailed)
			}
		})
	}
}

// TestFieldsRefused: names the SDK cannot use fail the module's init,
// saying why.
func TestFieldsRefused(t *testing.T) {
	many, _ := json.Marshal(slices.Collect(func(yield func(string) bool) {
		for i := range abi.MaxFields + 1 {
			if !yield(fmt.Sprint("f", i)) {
				return
			}
		}
	}))
	for names, want := range map[string]string{
		`["a", "b", "a"]`: `init: JSON field "a" named twice`,
		`["a", ""]`:       `init: JSON field name 1 is empty`,
		string(many):      `init: 65 JSON field names, more than the 64 a module may name`,
	} {
		for _, form := range []string{"fields", "filter"} {
			_, err := newFieldsStage(t, abi.FeatureKept|abi.FeatureFields, `{"form": "`+form+`", "names": `+names+`}`)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: %v, want an error saying %q", form, names, err, want)
			}
		}
	}
}
