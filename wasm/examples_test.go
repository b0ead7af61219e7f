package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
	"github.com/weirstream/weir/sdk/stagetest"
)

// The example modules under examples/ (wasm-filter, wasm-fanout; the
// redactor is TestRedactConformance), each run through the conformance
// suite against a reference model in plain Go, plus the cases that name
// their behaviour.

// compileExample builds and compiles the example module in examples/NAME.
func compileExample(t *testing.T, name string) *Module {
	t.Helper()
	m, err := newRuntime(t, 0).Compile(context.Background(), name+".wasm", build(t, "../examples/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newExampleStage(t testing.TB, m *Module, config string) *Stage {
	s := NewStage(m, []byte(config), nil, nil)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// process runs one batch and checks the results against the contract.
func process(t *testing.T, s *Stage, in []sdk.Record) *sdk.Results {
	t.Helper()
	var res sdk.Results
	if err := s.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func values(vs ...string) []sdk.Record {
	in := make([]sdk.Record, len(vs))
	for i, v := range vs {
		in[i] = sdk.Record{Key: []byte("k" + strconv.Itoa(i)), Value: []byte(v), Topic: "t", Offset: int64(i)}
		if v == "<null>" {
			in[i].Value = nil
		}
	}
	return in
}

const filterConfig = `{"field": "country", "allow": ["NZ", "AU"], "min": {"amount": 100}}`

// filterModel is the reference model of examples/wasm-filter with
// filterConfig, on encoding/json.
func filterModel(r sdk.Record) ([]sdk.Record, error) {
	if r.Value == nil {
		return nil, errors.New("null")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &m); err != nil || m == nil {
		return nil, errors.New("not an object")
	}
	var country, amount any
	json.Unmarshal(m["country"], &country)
	json.Unmarshal(m["amount"], &amount)
	c, _ := country.(string)
	a, isNum := amount.(float64)
	if (c != "NZ" && c != "AU") || !isNum || a < 100 {
		return nil, nil
	}
	return []sdk.Record{r}, nil
}

// filterInput is record i of a stream with every path of the filter:
// kept, dropped for each test, and values that are not JSON objects.
func filterInput(i int) sdk.Record {
	country := []string{`"NZ"`, `"AU"`, `"US"`, `"N\u005a"`, `"nz"`, `1`, `null`, ``}[i%8]
	amount := []string{`100`, `99.5`, `1e3`, `-5`, `"500"`, `null`, ``, `100.0`, `0`}[i%9]
	var fields []string
	if country != "" {
		fields = append(fields, `"country":`+country)
	}
	if i%5 == 1 {
		fields = append(fields, ` "items" : [ {"sku": "A", "amount": 1}, "x\"y", true, -0.5e-3 ] `)
	}
	if amount != "" {
		fields = append(fields, `"amount": `+amount)
	}
	if i%11 == 4 {
		fields = append(fields, `"country":"US"`) // the last of duplicates counts
	}
	if i%13 == 6 {
		fields = append(fields, `"n\u0061me": "\u00e9\n", "nested": {"country": "NZ", "amount": 1}`)
	}
	v := " {" + strings.Join(fields, ",") + "}\n"
	switch i % 23 {
	case 3:
		v = "not json"
	case 8:
		v = `[{"country": "NZ", "amount": 500}]`
	case 12:
		v = `{"country": "NZ", "amount": 500` // cut short
	case 15:
		v = `{"country": "NZ", "amount": 500} {}`
	case 17:
		v = `{"country": "NZ", "amount": 500, "bad": 01}`
	case 19:
		v = `{"country": "NZ", "amount": 500, "bad": "tab	in a string"}`
	case 20:
		v = `"a string"`
	case 21:
		v = "null"
	case 22:
		v = "<null>"
	}
	r := sdk.Record{Key: []byte(fmt.Sprintf("o%d", i)), Value: []byte(v), Topic: "orders", Offset: int64(i),
		Timestamp: time.UnixMilli(int64(1700000000000 + i))}
	if v == "<null>" {
		r.Value = nil
	}
	if i%4 == 0 {
		r.Headers = []sdk.Header{{Key: "source", Value: []byte("web")}}
	}
	return r
}

// TestExampleFilter runs the conformance suite on examples/wasm-filter
// and checks that it keeps and drops the records its config says, fails
// values that are not JSON objects with a message saying so, and refuses
// a config it cannot use at init, naming the problem.
func TestExampleFilter(t *testing.T) {
	m := compileExample(t, "wasm-filter")
	t.Run("conformance", func(t *testing.T) {
		stagetest.Run(t, stagetest.Stage{
			New:    func(t testing.TB) sdk.Processor { return newExampleStage(t, m, filterConfig) },
			Input:  filterInput,
			Expect: filterModel,
			Covers: []string{"filter", "fail"},
			Large:  3000,
		})
	})
	t.Run("records", func(t *testing.T) { testFilterRecords(t, m) })
	t.Run("config", func(t *testing.T) { testFilterConfig(t, m) })
}

func testFilterRecords(t *testing.T, m *Module) {
	in := values(
		`{"country": "NZ", "amount": 500}`, // kept
		`{"country": "AU", "amount": 100}`, // kept
		`{"country": "US", "amount": 500}`,
		`{"country": "NZ", "amount": 99}`,
		`{"amount": 500}`,
		`{"country": "NZ", "amount": "500"}`,
		`{"country": "NZ"}`,
		`not json`,
		`[1, 2]`,
		`<null>`,
		`{"country": "NZ", "amount": 500,}`,
	)
	res := process(t, newExampleStage(t, m, filterConfig), in)
	var kept []int
	for _, o := range res.Out {
		kept = append(kept, o.Source)
		if !bytes.Equal(o.Record.Value, in[o.Source].Value) || !bytes.Equal(o.Record.Key, in[o.Source].Key) {
			t.Errorf("output of input %d changed: %q", o.Source, o.Record.Value)
		}
	}
	if !slices.Equal(kept, []int{0, 1}) {
		t.Errorf("kept inputs %v, want [0 1]", kept)
	}
	failed := map[int]string{}
	for _, f := range res.Failed {
		failed[f.Source] = f.Err.Error()
	}
	for i, want := range map[int]string{7: "value is not a JSON object", 8: "value is not a JSON object",
		9: "value is null, not a JSON object", 10: "value is not a valid JSON object: want a field name at byte 32"} {
		if failed[i] != want {
			t.Errorf("input %d failed with %q, want %q", i, failed[i], want)
		}
	}
	if len(failed) != 4 {
		t.Errorf("failures %v, want inputs 7 to 10", failed)
	}

	// One test alone: only "min", only "field" and "allow".
	res = process(t, newExampleStage(t, m, `{"min": {"amount": 100, "qty": 2}}`),
		values(`{"amount": 100, "qty": 2}`, `{"amount": 100, "qty": 1}`, `{"amount": 1e6, "qty": 2.5, "country": "US"}`))
	if len(res.Out) != 2 || res.Out[0].Source != 0 || res.Out[1].Source != 2 {
		t.Errorf("min only: outputs %+v", res.Out)
	}
	res = process(t, newExampleStage(t, m, `{"field": "tier", "allow": ["gold"]}`),
		values(`{"tier": "gold"}`, `{"tier": "silver"}`, `{"tier": "g\u006fld", "x": [{"tier": "no"}]}`, `{"Tier": "gold"}`))
	if len(res.Out) != 2 || res.Out[0].Source != 0 || res.Out[1].Source != 2 {
		t.Errorf("allow only: outputs %+v", res.Out)
	}
}

func testFilterConfig(t *testing.T, m *Module) {
	for _, tc := range []struct{ config, msg string }{
		{`{}`, `no test: give "field" and "allow", or "min", or both`},
		{`{"field": "country"}`, `"field": "country" has no "allow" list`},
		{`{"allow": ["NZ"]}`, `"allow" without "field"`},
		{`{"field": "country", "allow": []}`, `"allow" is empty`},
		{`{"field": "", "allow": ["x"]}`, `"field" is empty`},
		{`{"field": 3, "allow": ["x"]}`, `"field" is 3, not a string`},
		{`{"field": "country", "allow": "NZ"}`, `"allow" is "NZ", not a list of strings`},
		{`{"min": {"amount": "100"}}`, `"min" is {"amount": "100"}, not an object of field names to numbers`},
		{`{"feild": "country"}`, `unknown key "feild"`},
		{`[1]`, `want an object like`},
	} {
		err := newExampleStage(t, m, tc.config).Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), "init: filter config: ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("config %s: error %v, want one containing %q", tc.config, err, tc.msg)
		}
	}
}

// fanoutModel is the reference model of examples/wasm-fanout with the
// default config, for inputs whose items have no "order" field.
func fanoutModel(r sdk.Record) ([]sdk.Record, error) {
	var order struct {
		Order json.RawMessage
		Items *[]json.RawMessage
	}
	if r.Value == nil || json.Unmarshal(r.Value, &order) != nil || bytes.HasPrefix(bytes.TrimSpace(r.Value), []byte("null")) {
		return nil, errors.New("not an object")
	}
	if order.Items == nil {
		return nil, errors.New("no items")
	}
	var id string
	switch {
	case len(order.Order) == 0:
		return nil, errors.New("no id")
	case order.Order[0] == '"':
		json.Unmarshal(order.Order, &id)
	case order.Order[0] == '-' || order.Order[0] >= '0' && order.Order[0] <= '9':
		id = string(order.Order)
	default:
		return nil, errors.New("an id of another type")
	}
	var out []sdk.Record
	for i, item := range *order.Items {
		var c bytes.Buffer
		if json.Compact(&c, item) != nil || c.Bytes()[0] != '{' {
			return nil, errors.New("an item is not an object")
		}
		var idJSON bytes.Buffer
		json.Compact(&idJSON, order.Order)
		v := `{"order":` + idJSON.String()
		if c.Len() > 2 {
			v += "," + c.String()[1:]
		} else {
			v += "}"
		}
		o := r
		o.Key, o.Value = []byte(id+"/"+strconv.Itoa(i)), []byte(v)
		out = append(out, o)
	}
	return out, nil
}

// fanoutInput is record i of a stream of orders with 0 to 4 items, and
// values that are not orders.
func fanoutInput(i int) sdk.Record {
	var items []string
	for j := range i % 5 {
		switch j {
		case 0:
			items = append(items, fmt.Sprintf(`{"sku": "S%d", "qty": %d}`, i, j+1))
		case 1:
			items = append(items, `{}`)
		case 2:
			items = append(items, `{ "sku" : "x\"y\u00e9", "tags": [ "a", {"b": null} ], "price": 1.50e2 }`)
		default:
			items = append(items, fmt.Sprintf(`{"n": %d}`, j))
		}
	}
	id := `"o` + strconv.Itoa(i) + `"`
	if i%3 == 0 {
		id = strconv.Itoa(i)
	}
	v := `{"order": ` + id + `, "items": [` + strings.Join(items, ", ") + `], "note": "x"}`
	switch i % 17 {
	case 2:
		v = "not json"
	case 5:
		v = `{"order": "o", "items": [{"sku": "A"}, 7]}`
	case 9:
		v = `{"order": "o"}`
	case 11:
		v = `{"items": [{"sku": "A"}]}`
	case 13:
		v = `{"order": null, "items": [{"sku": "A"}]}`
	case 14:
		v = `{"order": "o", "items": {"sku": "A"}}`
	case 16:
		v = "<null>"
	}
	r := sdk.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v), Topic: "orders", Offset: int64(i),
		Timestamp: time.UnixMilli(int64(1700000000000 + i))}
	if v == "<null>" {
		r.Value = nil
	}
	if i%2 == 0 {
		r.Headers = []sdk.Header{{Key: "source", Value: []byte("web")}, {Key: "n", Value: []byte(strconv.Itoa(i))}}
	}
	return r
}

// TestExampleFanout runs the conformance suite on examples/wasm-fanout
// and checks that an order becomes one record per item, in order, with the
// keys and values its config says and the input's headers; that an empty
// order gives none; that a bad one fails whole with a message naming the
// problem; and that a bad config is refused at init.
func TestExampleFanout(t *testing.T) {
	m := compileExample(t, "wasm-fanout")
	t.Run("conformance", func(t *testing.T) {
		stagetest.Run(t, stagetest.Stage{
			New:    func(t testing.TB) sdk.Processor { return newExampleStage(t, m, `{}`) },
			Input:  fanoutInput,
			Expect: fanoutModel,
			Covers: []string{"filter", "fan-out", "fail"},
			Large:  3000,
		})
	})
	t.Run("records", func(t *testing.T) { testFanoutRecords(t, m) })
	t.Run("config", func(t *testing.T) { testFanoutConfig(t, m) })
}

func testFanoutRecords(t *testing.T, m *Module) {
	in := values(
		`{"order": "o1", "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1, "order": "x"}, {"sku": "C"}]}`,
		`{"order": "o2", "items": []}`,
		`{"order": 42, "items": [{"sku": "D"}]}`,
		`{"order": "o3", "items": [{"sku": "A"}, "B"]}`,
		`{"order": "o4"}`,
		`"o5"`,
		`<null>`,
	)
	in[0].Headers = []sdk.Header{{Key: "source", Value: []byte("web")}}
	in[0].Timestamp = time.UnixMilli(1700000000123)
	res := process(t, newExampleStage(t, m, `{}`), in)
	type out struct {
		src        int
		key, value string
	}
	var got []out
	for _, o := range res.Out {
		got = append(got, out{o.Source, string(o.Record.Key), string(o.Record.Value)})
		if o.Source == 0 && (len(o.Record.Headers) != 1 || o.Record.Headers[0].Key != "source" || !o.Record.Timestamp.Equal(in[0].Timestamp)) {
			t.Errorf("output %s lost the input's headers or timestamp: %v %v", o.Record.Key, o.Record.Headers, o.Record.Timestamp)
		}
	}
	want := []out{
		{0, "o1/0", `{"order":"o1","sku":"A","qty":2}`},
		{0, "o1/1", `{"order":"o1","sku":"B","qty":1}`},
		{0, "o1/2", `{"order":"o1","sku":"C"}`},
		{2, "42/0", `{"order":42,"sku":"D"}`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("outputs\n%v\nwant\n%v", got, want)
	}
	failed := map[int]string{}
	for _, f := range res.Failed {
		failed[f.Source] = f.Err.Error()
	}
	wantFailed := map[int]string{3: "items[1]: not a JSON object", 4: `value has no "items" field`,
		5: "value is not a JSON object", 6: "value is null, not a JSON object"}
	if len(failed) != len(wantFailed) {
		t.Errorf("failures %v, want %v", failed, wantFailed)
	}
	for i, w := range wantFailed {
		if failed[i] != w {
			t.Errorf("input %d failed with %q, want %q", i, failed[i], w)
		}
	}

	// Other field names, keyed by SKU.
	res = process(t, newExampleStage(t, m, `{"id": "id", "items": "lines", "key": "sku"}`),
		values(`{"id": "b7", "lines": [{"sku": "A", "n": 1}, {"sku": "B"}]}`, `{"id": "b8", "lines": [{"n": 1}]}`))
	if len(res.Out) != 2 || string(res.Out[0].Record.Key) != "A" || string(res.Out[1].Record.Key) != "B" ||
		string(res.Out[1].Record.Value) != `{"id":"b7","sku":"B"}` {
		t.Errorf("keyed by sku: outputs %+v", res.Out)
	}
	if len(res.Failed) != 1 || res.Failed[0].Source != 1 || res.Failed[0].Err.Error() != `lines[0]: no key field "sku"` {
		t.Errorf("keyed by sku: failures %+v", res.Failed)
	}
}

func testFanoutConfig(t *testing.T, m *Module) {
	for _, tc := range []struct{ config, msg string }{
		{`{"idd": "x"}`, `unknown key "idd"`},
		{`{"id": ""}`, `"id" is "", not a field name`},
		{`{"key": 3}`, `"key" is 3, not a field name`},
		{`{"id": "a", "items": "a"}`, `"id" and "items" are both "a"`},
		{`"x"`, `want an object like`},
	} {
		err := newExampleStage(t, m, tc.config).Check(context.Background())
		if err == nil || !strings.Contains(err.Error(), "init: fan-out config: ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("config %s: error %v, want one containing %q", tc.config, err, tc.msg)
		}
	}
}

// BenchmarkExampleFilter measures examples/wasm-filter on batches of 1000
// 200-byte JSON records (those of pipelines' BenchmarkFilterKinds, about
// half kept), with the fields it reads found by the host, natively, and
// under a host without abi.FeatureFields, by the guest SDK in the module
// (the same jsonfield scanner compiled to WASM): records/s on one
// goroutine.
func BenchmarkExampleFilter(b *testing.B) {
	dir := b.TempDir()
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "filter.wasm"), "../examples/wasm-filter")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "filter.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	in := make([]sdk.Record, 1000)
	for i := range in {
		in[i] = sdk.Record{Key: fmt.Appendf(nil, "user-%06d", i), Topic: "clicks", Offset: int64(i),
			Value: fmt.Appendf(nil, `{"user_id":"user-%06d","country":%q,"amount":%d,"currency":"NZD","page":"/products/widgets/%d","referrer":"https://example.com/search?q=widgets","ts":%d}`,
				i, []string{"NZ", "AU", "US", "DE"}[i%4], i%2000, i%50, 1700000000000+i)}
	}
	for _, c := range []struct {
		name  string
		offer uint32
	}{{"host-scans", abi.FeatureKept | abi.FeatureFields}, {"module-scans", abi.FeatureKept}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			rt, err := NewRuntime(ctx, Config{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			rt.offer = c.offer
			m, err := rt.Compile(ctx, "filter.wasm", raw)
			if err != nil {
				b.Fatal(err)
			}
			s := newExampleStage(b, m, filterConfig)
			var res sdk.Results
			b.ResetTimer()
			for range b.N {
				res.Reset()
				if err := s.Process(ctx, in, &res); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "records/s")
			if len(res.Out) == 0 || len(res.Failed) != 0 {
				b.Fatalf("%d kept, %d failed", len(res.Out), len(res.Failed))
			}
		})
	}
}
