package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/examples/plugin-http/scoring"
	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/plugins"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

// binDir holds the plugin binary, built once by pluginBinary, with a
// copy of pipeline.yaml.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var pluginBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "plugin-http-")
	if err != nil {
		return "", err
	}
	binDir = dir
	out := filepath.Join(dir, "http")
	if msg, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, msg)
	}
	return out, nil
})

// service is the demo scoring service on 127.0.0.1 plus endpoints that
// misbehave, counting the requests each path gets.
type service struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func (s *service) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func startService(t *testing.T) *service {
	t.Helper()
	s := &service{hits: map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("/score", scoring.Handler())
	mux.Handle("/score/batch", scoring.Handler())
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the database is on fire\n(try later)", http.StatusInternalServerError)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>Welcome</body></html>")
	})
	stop := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		// Read the body, so that the server sees the client close the
		// connection (and cancels r's context) when it gives up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `[{"a": 1}]`) // one value, whatever was sent
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(stop) }) // first: Close waits for handlers
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("the service is at %s, not on 127.0.0.1", s.URL)
	}
	return s
}

func newStage(t testing.TB, config string) *plugins.Stage {
	t.Helper()
	bin, err := pluginBinary()
	if err != nil {
		t.Fatal(err)
	}
	st, err := plugins.NewStage(plugins.Config{Path: bin, Config: []byte(config), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func order(i int) sdk.Record {
	v := fmt.Sprintf(`{"id": %d, "amount": %d.25}`, i, i*7%2000)
	switch {
	case i%7 == 3:
		v = fmt.Sprintf(`{"id": %d, "amount": 1, "test": true}`, i) // dropped (204)
	case i%11 == 5:
		v = fmt.Sprintf("order %d", i) // not JSON: fails unsent
	}
	return sdk.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v), Topic: "orders", Offset: int64(i),
		Headers: []sdk.Header{{Key: "n", Value: []byte(strconv.Itoa(i))}}, Timestamp: time.UnixMilli(1700000000000 + int64(i))}
}

// model is what the plugin should make of one record with a service that
// scores like package scoring.
func model(r sdk.Record) ([]sdk.Record, error) {
	if !json.Valid(r.Value) {
		return nil, errNotJSON
	}
	scored, status, err := scoring.Score(r.Value)
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusNoContent:
		return nil, nil
	}
	r.Value = scored
	return []sdk.Record{r}, nil
}

// TestConformance runs the stage conformance suite through the plugin
// process calling the demo service, in both modes.
func TestConformance(t *testing.T) {
	svc := startService(t)
	t.Run("record", func(t *testing.T) {
		stagetest.Run(t, stagetest.Stage{
			New: func(t testing.TB) sdk.Processor {
				return newStage(t, `{"url": "`+svc.URL+`/score", "timeout": "5s"}`)
			},
			Input: func(i int) sdk.Record {
				r := order(i)
				if i%13 == 6 {
					r.Value = []byte(fmt.Sprintf(`{"id": %d, "amount": -1}`, i)) // refused (422)
				}
				return r
			},
			Expect: model,
			Covers: []string{"filter", "fail"},
			Large:  2000,
		})
	})
	const batchConfig = `{"url": "%s/score/batch", "mode": "batch", "max_batch": 50}`
	t.Run("batch", func(t *testing.T) {
		stagetest.Run(t, stagetest.Stage{
			New: func(t testing.TB) sdk.Processor {
				return newStage(t, fmt.Sprintf(batchConfig, svc.URL))
			},
			Input:  order,
			Expect: model,
			Covers: []string{"filter", "fail"},
			Large:  2000,
		})
	})
	t.Run("batch requests", func(t *testing.T) {
		// 230 records, in batches of up to 50: 5 requests.
		in := make([]sdk.Record, 230)
		for i := range in {
			in[i] = order(i)
		}
		before := svc.count("/score/batch")
		var res sdk.Results
		if err := newStage(t, fmt.Sprintf(batchConfig, svc.URL)).Process(context.Background(), in, &res); err != nil {
			t.Fatal(err)
		}
		if n := svc.count("/score/batch") - before; n != 5 {
			t.Errorf("%d requests, want 5", n)
		}
	})
}

func run(t *testing.T, st *plugins.Stage, values ...string) *sdk.Results {
	t.Helper()
	in := make([]sdk.Record, len(values))
	for i, v := range values {
		in[i] = sdk.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}
	}
	var res sdk.Results
	if err := st.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// failures returns "input: error" for each failed input, in input order.
func failures(res *sdk.Results) map[int]string {
	m := map[int]string{}
	for _, f := range res.Failed {
		m[f.Source] = f.Err.Error()
	}
	return m
}

// TestErrors: what the service does wrong fails the records concerned,
// with a message naming the URL and the cause; the plugin is not
// restarted for it.
func TestErrors(t *testing.T) {
	svc := startService(t)
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/score"
	}()
	for _, tc := range []struct {
		name, config string
		values       []string
		want         map[int]string // failed inputs: a part of the message
		outputs      int
		hits         map[string]int // requests each path got
	}{
		{"500", `{"url": "` + svc.URL + `/fail"}`, []string{`{"a": 1}`},
			map[int]string{0: `http: POST ` + svc.URL + `/fail: 500 Internal Server Error: "the database is on fire (try later)"`}, 0,
			map[string]int{"/fail": 1}},
		{"422", `{"url": "` + svc.URL + `/score"}`, []string{`{"amount": 5}`, `{"amount": -5}`, `{"amount": 7}`},
			map[int]string{1: `422 Unprocessable Entity: "amount -5 is negative"`}, 2,
			map[string]int{"/score": 3}},
		{"not JSON back", `{"url": "` + svc.URL + `/html"}`, []string{`{}`},
			map[int]string{0: `200 OK, but the body is not JSON: "<html><body>Welcome</body></html>"`}, 0,
			map[string]int{"/html": 1}},
		{"not JSON in", `{"url": "` + svc.URL + `/score"}`, []string{`nope`, `{"amount": 1}`},
			map[int]string{0: "http: the value is not JSON: not sent"}, 1,
			map[string]int{"/score": 1}},
		// The first request times out; the others are not sent.
		{"timeout", `{"url": "` + svc.URL + `/hang", "timeout": "200ms"}`, []string{`{"a": 1}`, `{"a": 2}`, `{"a": 3}`},
			map[int]string{
				0: "http: POST " + svc.URL + "/hang: no answer within 200ms",
				1: "http: not sent: POST " + svc.URL + "/hang got no answer for an earlier record of this batch (no answer within 200ms)",
				2: "not sent"}, 0,
			map[string]int{"/hang": 1}},
		{"refused", `{"url": "` + closed + `"}`, []string{`{"a": 1}`, `{"a": 2}`},
			map[int]string{0: "http: POST " + closed + ": dial tcp " + strings.TrimSuffix(strings.TrimPrefix(closed, "http://"), "/score") + ": connect: connection refused",
				1: "not sent"}, 0,
			nil},
		// Batch mode: an error fails every record of the request.
		{"batch 422", `{"url": "` + svc.URL + `/score/batch", "mode": "batch"}`, []string{`{"amount": 5}`, `{"amount": -5}`, `x`},
			map[int]string{0: `422 Unprocessable Entity: "order 2: amount -5 is negative"`, 1: "422", 2: "not JSON"}, 0,
			map[string]int{"/score/batch": 1}},
		{"batch short", `{"url": "` + svc.URL + `/short", "mode": "batch"}`, []string{`{"amount": 5}`, `{"amount": 6}`},
			map[int]string{0: "2 values sent, 1 answered", 1: "2 values sent, 1 answered"}, 0,
			map[string]int{"/short": 1}},
		{"batch timeout", `{"url": "` + svc.URL + `/hang", "mode": "batch", "max_batch": 2, "timeout": "200ms"}`, []string{`{}`, `{}`, `{}`, `{}`, `{}`},
			map[int]string{0: "no answer within 200ms", 1: "no answer within 200ms", 2: "not sent", 3: "not sent", 4: "not sent"}, 0,
			map[string]int{"/hang": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]int{}
			for p := range tc.hits {
				before[p] = svc.count(p)
			}
			st := newStage(t, tc.config)
			res := run(t, st, tc.values...)
			got := failures(res)
			if len(got) != len(tc.want) || len(res.Out) != tc.outputs {
				t.Fatalf("failures %v and %d outputs, want failures of %v and %d outputs", got, len(res.Out), keys(tc.want), tc.outputs)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("input %d failed with %q, want %q", i, got[i], w)
				}
			}
			for p, n := range tc.hits {
				if h := svc.count(p) - before[p]; h != n {
					t.Errorf("%d requests to %s, want %d", h, p, n)
				}
			}
			if r := st.Restarts(); r != 0 {
				t.Errorf("%d restarts", r)
			}
		})
	}
}

func keys(m map[int]string) []int {
	var l []int
	for k := range m {
		l = append(l, k)
	}
	return l
}

// TestConfig: a config the plugin cannot use is refused (when the stage
// starts, so the pipeline is not loaded).
func TestConfig(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{}`, `"url" (the service's URL) is required`},
		{`{"url": "ftp://127.0.0.1/x"}`, `url "ftp://127.0.0.1/x": want an http:// or https:// URL`},
		{`{"url": "127.0.0.1:8089"}`, `want an http:// or https:// URL`},
		{`{"url": "http://127.0.0.1:1/", "timeout": "soon"}`, `timeout "soon"`},
		{`{"url": "http://127.0.0.1:1/", "timeout": "-1s"}`, `timeout "-1s"`},
		{`{"url": "http://127.0.0.1:1/", "mode": "stream"}`, `mode "stream": want "record" or "batch"`},
		{`{"url": "http://127.0.0.1:1/", "max_batch": -2}`, `max_batch -2`},
		{`{"url": "http://127.0.0.1:1/", "timout": "1s"}`, `unknown field "timout"`},
	} {
		if err := (&caller{}).Configure([]byte(tc.config)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.config, err, tc.want)
		}
	}
	// Through the process, as weir loads a pipeline.
	err := newStage(t, `{"url": "127.0.0.1:8089"}`).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "want an http:// or https:// URL") {
		t.Fatalf("a bad url through the process: %v", err)
	}
	// The service need not be up for the config to be taken.
	if err := newStage(t, `{"url": "http://127.0.0.1:1/score"}`).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestHeaders: configured headers are sent, with the JSON content type.
func TestHeaders(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization") + " " + r.Header.Get("Content-Type") + " " + r.Method)
		io.Copy(w, r.Body)
	}))
	defer srv.Close()
	st := newStage(t, `{"url": "`+srv.URL+`", "headers": {"Authorization": "Bearer s3cret"}}`)
	res := run(t, st, `{"echo": true}`)
	if len(res.Out) != 1 || string(res.Out[0].Record.Value) != `{"echo": true}` {
		t.Fatalf("outputs %+v, failures %v", res.Out, failures(res))
	}
	if g, _ := got.Load().(string); g != "Bearer s3cret application/json POST" {
		t.Fatalf("the service saw %q", g)
	}
}

// TestPipeline loads pipeline.yaml with its url pointed at a demo service
// on a free port, next to the built plugin, and runs its test cases as
// `weir pipeline test` does.
func TestPipeline(t *testing.T) {
	svc := startService(t)
	if _, err := pluginBinary(); err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const url = "http://127.0.0.1:8089/score"
	if !strings.Contains(string(spec), `url: "`+url+`"`) {
		t.Fatalf("pipeline.yaml does not call %s: update this test", url)
	}
	path := filepath.Join(binDir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(string(spec), url, svc.URL+"/score", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := svc.count("/score")
	s, err := pipelines.Load(path)
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
	// 3 + 2 orders reached the service (not the value that is not JSON).
	if n := svc.count("/score") - before; n != 5 {
		t.Errorf("the service got %d requests, want 5", n)
	}
}
