package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/plugins"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

// binDir holds the plugin binary, built once by pluginBinary, with
// countries.csv and pipeline.yaml next to it as in this directory.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var pluginBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "plugin-enrich-")
	if err != nil {
		return "", err
	}
	binDir = dir
	out := filepath.Join(dir, "enrich")
	if msg, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, msg)
	}
	for _, f := range []string{"countries.csv", "pipeline.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
})

func binary(t testing.TB) string {
	t.Helper()
	bin, err := pluginBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// configured is the processor in this process, configured as the test
// configures the plugin process.
func configured(t testing.TB, config string) *enricher {
	t.Helper()
	e := &enricher{base: "."}
	if err := e.configure([]byte(config)); err != nil {
		t.Fatal(err)
	}
	return e
}

func enrichOne(t *testing.T, e *enricher, value string) (string, error) {
	t.Helper()
	out, err := e.enrich(sdk.Record{Key: []byte("k"), Value: []byte(value)})
	switch {
	case err != nil:
		return "", err
	case len(out) == 0:
		return "(dropped)", nil
	case len(out) > 1 || string(out[0].Key) != "k":
		t.Fatalf("%s: outputs %+v", value, out)
	}
	return string(out[0].Value), nil
}

// TestEnrich checks the join in this process, config by config.
func TestEnrich(t *testing.T) {
	for _, tc := range []struct {
		config, value, want, err string
	}{
		{`{"table": "countries.csv", "key_field": "country"}`,
			`{"id": 7, "country": "NZ"}`, `{"id":7,"country":"NZ","region":"APAC","currency":"NZD"}`, ""},
		// Fields are copied as written (spacing inside values, numbers).
		{`{"table": "countries.csv", "key_field": "country"}`,
			`{"a": [1, 2.50], "country":"JP"}`, `{"a":[1, 2.50],"country":"JP","region":"APAC","currency":"JPY"}`, ""},
		// The table's columns replace the value's fields of those names.
		{`{"table": "countries.csv", "key_field": "country"}`,
			`{"currency": "XXX", "country": "GB", "x": null}`, `{"country":"GB","x":null,"region":"EMEA","currency":"GBP"}`, ""},
		{`{"table": "countries.csv", "key_field": "country", "into": "geo"}`,
			`{"country": "FR", "geo": 1}`, `{"country":"FR","geo":{"region":"EMEA","currency":"EUR"}}`, ""},
		{`{"table": "countries.csv", "key_field": "c", "key_column": "country", "into": "geo"}`,
			`{"c": "SG"}`, `{"c":"SG","geo":{"region":"APAC","currency":"SGD"}}`, ""},
		// Unknown keys, by policy; pass is the default.
		{`{"table": "countries.csv", "key_field": "country"}`, `{"country": "XX"}`, `{"country": "XX"}`, ""},
		{`{"table": "countries.csv", "key_field": "country"}`, `{"id": 1}`, `{"id": 1}`, ""},
		{`{"table": "countries.csv", "key_field": "country", "unknown": "drop"}`, `{"country": "XX"}`, "(dropped)", ""},
		{`{"table": "countries.csv", "key_field": "country", "unknown": "fail"}`, `{"country": "XX"}`, "",
			`enrich: country "XX" is not in the table countries.csv`},
		{`{"table": "countries.csv", "key_field": "country", "unknown": "fail"}`, `{"country": ["NZ"]}`, "",
			`enrich: the value has no field "country" with a string or number`},
		// Whatever the policy, a value that is not a JSON object fails.
		{`{"table": "countries.csv", "key_field": "country"}`, `not json`, "", "enrich: the value is not a JSON object"},
		{`{"table": "countries.csv", "key_field": "country"}`, `["NZ"]`, "", "enrich: the value is not a JSON object"},
		{`{"table": "countries.csv", "key_field": "country"}`, `{"country": "NZ"} {}`, "", "data after the object"},
	} {
		got, err := enrichOne(t, configured(t, tc.config), tc.value)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s with %s: got %q, %v; want the error %q", tc.value, tc.config, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s with %s: got %s, %v; want %s", tc.value, tc.config, got, err, tc.want)
		}
	}
	// A number key is looked up as written.
	dir := t.TempDir()
	table := filepath.Join(dir, "codes.csv")
	if err := os.WriteFile(table, []byte("\uFEFFcode,name\n64,New Zealand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := configured(t, `{"table": "`+table+`", "key_field": "code"}`)
	if got, err := enrichOne(t, e, `{"code": 64}`); err != nil || got != `{"code":64,"name":"New Zealand"}` {
		t.Errorf("a number key: %s, %v", got, err)
	}
}

// TestConfigErrors: a config or table the plugin cannot use is refused,
// and the message names the file and the line.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := write("short.csv", "country,region,currency\nNZ,APAC,NZD\n# a comment\nAU,APAC\n")
	dup := write("dup.csv", "country,region\nNZ,APAC\nAU,APAC\nNZ,EMEA\n")
	quote := write("quote.csv", "country,region\nNZ,\"APAC\n")
	nokey := write("nokey.csv", "code,region\nNZ,APAC\n")
	empty := write("empty.csv", "")
	for _, tc := range []struct{ config, want string }{
		{`{"table": "` + filepath.Join(dir, "missing.csv") + `", "key_field": "country"}`, "table: open " + filepath.Join(dir, "missing.csv") + ": no such file"},
		{`{"table": "` + short + `", "key_field": "country"}`, "table " + short + " line 4: wrong number of fields"},
		{`{"table": "` + dup + `", "key_field": "country"}`, "table " + dup + ` line 4: key "NZ" again (first on line 2)`},
		{`{"table": "` + quote + `", "key_field": "country"}`, "table " + quote + " line 2: extraneous or missing \" in quoted-field"},
		{`{"table": "` + nokey + `", "key_field": "country"}`, "table " + nokey + ` line 1: no column "country" for the keys (the columns are code, region)`},
		{`{"table": "` + empty + `", "key_field": "country"}`, "table " + empty + ": empty"},
		{`{"table": "countries.csv"}`, `"key_field"`},
		{`{"key_field": "country"}`, `"table"`},
		{`{"table": "countries.csv", "key_field": "country", "unknown": "skip"}`, `unknown: "skip"`},
		{`{"table": "countries.csv", "key_field": "country", "tabel": "x"}`, `unknown field "tabel"`},
		{`{"table": "countries.csv", "key_field": "region", "key_column": "country"}`, `column "region" would replace the key field`},
	} {
		err := (&enricher{base: "."}).configure([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.config, err, tc.want)
		}
	}
}

func newStage(t testing.TB, config string) *plugins.Stage {
	t.Helper()
	st, err := plugins.NewStage(plugins.Config{Path: binary(t), Config: []byte(config), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

var countries = []string{"NZ", "AU", "JP", "SG", "DE", "FR", "GB", "ZA", "US", "CA", "BR"}

// TestConformance runs the stage conformance suite through the plugin
// process, with the processor in this process as the model: the join
// gives the same bytes through weir's host, batch after batch.
func TestConformance(t *testing.T) {
	const config = `{"table": "countries.csv", "key_field": "country", "unknown": "drop"}`
	model := configured(t, config)
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor { return newStage(t, config) },
		Input: func(i int) sdk.Record {
			v := fmt.Sprintf(`{"id": %d, "country": %q, "amount": %d.5}`, i, countries[i%len(countries)], i*3)
			switch {
			case i%7 == 3:
				v = fmt.Sprintf(`{"id": %d, "country": "X%d"}`, i, i) // dropped
			case i%11 == 5:
				v = fmt.Sprintf("order %d", i) // fails
			}
			return sdk.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v), Topic: "orders", Offset: int64(i),
				Headers: []sdk.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}}, Timestamp: time.UnixMilli(1700000000000 + int64(i))}
		},
		Expect: model.enrich,
		Covers: []string{"filter", "fail"},
		Large:  5000,
	})
}

// TestProcess runs the plugin as weir does: the table is found next to
// the binary, records are joined, and a table that cannot be read is
// refused when the stage starts, with its file and line.
func TestProcess(t *testing.T) {
	st := newStage(t, `{"table": "countries.csv", "key_field": "country", "unknown": "fail"}`)
	in := []sdk.Record{
		{Key: []byte("o1"), Value: []byte(`{"country": "ZA", "amount": 10}`)},
		{Key: []byte("o2"), Value: []byte(`{"country": "QQ"}`)},
		{Key: []byte("o3"), Value: []byte(`{"country": "CA"}`)},
	}
	var res sdk.Results
	if err := st.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Out {
		got = append(got, fmt.Sprintf("%d %s", o.Source, o.Record.Value))
	}
	want := []string{`0 {"country":"ZA","amount":10,"region":"EMEA","currency":"ZAR"}`, `2 {"country":"CA","region":"AMER","currency":"CAD"}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("outputs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(res.Failed) != 1 || res.Failed[0].Source != 1 || res.Failed[0].Err.Error() != `enrich: country "QQ" is not in the table countries.csv` {
		t.Errorf("failures %+v", res.Failed)
	}

	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("country,region\nNZ,APAC,extra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := newStage(t, `{"table": "`+bad+`", "key_field": "country"}`).Check(context.Background())
	if !errors.Is(err, plugins.ErrConfig) || !strings.Contains(err.Error(), "table "+bad+" line 2: wrong number of fields") {
		t.Fatalf("a bad table: %v", err)
	}
}

// TestPipeline loads pipeline.yaml (next to the binary, as `weir plugin
// build` puts it) and runs its test cases, as `weir pipeline test` does.
func TestPipeline(t *testing.T) {
	binary(t)
	s, err := pipelines.Load(filepath.Join(binDir, "pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tests) < 2 {
		t.Fatalf("pipeline.yaml has %d test cases", len(s.Tests))
	}
	results, err := s.RunTests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if len(r.Problems) > 0 {
			t.Errorf("%s: %v", r.Case.Name, r.Problems)
		}
	}
}
