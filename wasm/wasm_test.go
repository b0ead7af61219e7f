package wasm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

var (
	buildOnce sync.Map // package dir -> func() (string, error)
	// testRoot holds what the tests build and cache, removed after them.
	testRoot string
)

func TestMain(m *testing.M) {
	var err error
	if testRoot, err = os.MkdirTemp("", "weir-wasm-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(testRoot)
	os.Exit(code)
}

// build compiles a Go guest (GOOS=wasip1, c-shared) once per test binary.
func build(t *testing.T, pkg string) []byte {
	t.Helper()
	f, _ := buildOnce.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp(testRoot, "build-")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, "m.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", errors.New(err.Error() + ": " + string(b))
		}
		return out, nil
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		t.Fatalf("building %s: %v", pkg, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRuntime(t *testing.T, pages uint32) *Runtime {
	t.Helper()
	rt, err := NewRuntime(context.Background(), Config{CacheDir: t.TempDir(), MemoryLimitPages: pages})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

var email = regexp.MustCompile(`([A-Za-z0-9._%+-])([A-Za-z0-9._%+-]*)([A-Za-z0-9._%+-])@([A-Za-z0-9.-]+\.[A-Za-z]{2,})`)

// redact is the reference model of examples/wasm-redact, in plain Go.
func redact(v []byte, mask string) []byte {
	return email.ReplaceAllFunc(v, func(m []byte) []byte {
		s := email.FindSubmatch(m)
		return []byte(string(s[1]) + strings.Repeat(mask, utf8.RuneCount(s[2])) + string(s[3]) + "@" + string(s[4]))
	})
}

// TestRedactConformance runs the conformance suite on the example
// redactor module.
func TestRedactConformance(t *testing.T) {
	rt := newRuntime(t, 0)
	m, err := rt.Compile(context.Background(), "redact", build(t, "../examples/wasm-redact"))
	if err != nil {
		t.Fatal(err)
	}
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor {
			s := NewStage(m, []byte(`{"mask":"#"}`), nil, nil)
			t.Cleanup(func() { s.Close(context.Background()) })
			return s
		},
		Input: func(i int) sdk.Record {
			v := []byte("order " + strings.Repeat("x", i%7) + " from alice.smith@example.com and bob@ex.org")
			switch i % 10 {
			case 3:
				v = []byte{0xff, 0xfe, 'b', 'a', 'd'}
			case 7:
				v = nil
			}
			var hs []sdk.Header
			if i%4 == 0 {
				hs = []sdk.Header{{Key: "h", Value: []byte("v")}}
			}
			return sdk.Record{Key: []byte("k"), Value: v, Headers: hs, Topic: "t", Offset: int64(i), Timestamp: time.UnixMilli(int64(1700000000000 + i))}
		},
		Expect: func(r sdk.Record) ([]sdk.Record, error) {
			if !utf8.Valid(r.Value) {
				return nil, errors.New("value is not UTF-8")
			}
			out := r
			if r.Value != nil {
				out.Value = redact(r.Value, "#")
			}
			return []sdk.Record{out}, nil
		},
		Covers: []string{"fail"},
		Large:  3000,
	})
}

// TestMisbehavingRecords: a panic fails its record; a guest that exits or
// runs out of memory loses its instance, the batch is bisected on fresh
// instances, and only the records that fail alone fail.
func TestMisbehavingRecords(t *testing.T) {
	rt := newRuntime(t, 256) // 16 MiB
	m, err := rt.Compile(context.Background(), "misbehave", build(t, "./testdata/misbehave"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(m, nil, nil, nil)
	defer s.Close(context.Background())
	values := []string{"a", "b", "exit", "c", "oom", "d", "panic", "e"}
	in := make([]sdk.Record, len(values))
	for i, v := range values {
		in[i] = sdk.Record{Value: []byte(v), Topic: "t", Offset: int64(i)}
	}
	var res sdk.Results
	start := time.Now()
	if err := s.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Out {
		got = append(got, string(o.Record.Value))
	}
	if strings.Join(got, ",") != "A,B,C,D,E" {
		t.Fatalf("outputs %v", got)
	}
	failed := map[int]string{}
	for _, f := range res.Failed {
		failed[f.Source] = f.Err.Error()
	}
	if len(failed) != 3 || !strings.Contains(failed[6], "panic: asked to") || failed[2] == "" || failed[4] == "" {
		t.Fatalf("failures %v", failed)
	}
	if s.Discarded < 2 {
		t.Fatalf("%d instances discarded, want at least 2 (exit, oom)", s.Discarded)
	}
	t.Logf("bisected in %v, %d instances discarded; exit: %s; oom: %s", time.Since(start), s.Discarded, failed[2], failed[4])
	// The stage carries on with a fresh instance.
	res.Reset()
	if err := s.Process(context.Background(), in[:2], &res); err != nil || len(res.Out) != 2 {
		t.Fatalf("after the failures: %v, %+v", err, res)
	}
}

// wasmModule hand-assembles a module with one exported function taking
// and returning nothing, and optionally one imported function.
func wasmModule(export, importMod, importName string) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	section := func(id byte, body []byte) {
		b.WriteByte(id)
		b.WriteByte(byte(len(body)))
		b.Write(body)
	}
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	section(1, []byte{1, 0x60, 0, 0}) // one type: () -> ()
	nImports := 0
	if importMod != "" {
		body := []byte{1}
		body = append(body, name(importMod)...)
		body = append(body, name(importName)...)
		body = append(body, 0, 0) // func of type 0
		section(2, body)
		nImports = 1
	}
	section(3, []byte{1, 0}) // one function of type 0
	exp := []byte{1}
	exp = append(exp, name(export)...)
	exp = append(exp, 0, byte(nImports)) // func index after the imports
	section(7, exp)
	section(10, []byte{1, 2, 0, 0x0b}) // body: no locals, end
	return b.Bytes()
}

func TestCompileRefuses(t *testing.T) {
	rt := newRuntime(t, 0)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		wasm []byte
		is   error
		msg  string
	}{
		{"newer ABI", wasmModule("weir_v2_process", "", ""), ErrABI, "speaks ABI v2; this weir speaks v1"},
		{"not a weir module", wasmModule("run", "", ""), ErrABI, "is not a weir module"},
		{"unknown host function", wasmModule("weir_v1_process", "env", "open_socket"), ErrImport, "imports env.open_socket"},
		{"filesystem", wasmModule("weir_v1_process", "wasi_snapshot_preview1", "path_open"), ErrImport, "path_open: the filesystem, which weir does not grant"},
		{"network", wasmModule("weir_v1_process", "wasi_snapshot_preview1", "sock_accept"), ErrImport, "sock_accept: the network, which weir does not grant"},
		{"not wasm", []byte("hello"), nil, "invalid magic number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rt.Compile(ctx, "m", tc.wasm)
			if err == nil {
				t.Fatal("compiled")
			}
			if (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

// TestRunawayLoop: a module that never returns is stopped at the stage
// timeout (plus at most 100 ms), its record fails, and the stage goes on.
func TestRunawayLoop(t *testing.T) {
	rt := newRuntime(t, 0)
	m, err := rt.Compile(context.Background(), "misbehave", build(t, "./testdata/misbehave"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStage(m, nil, nil, nil)
	s.Timeout = 300 * time.Millisecond
	defer s.Close(context.Background())
	// The first call instantiates: do that outside the timed call.
	var res sdk.Results
	if err := s.Process(context.Background(), []sdk.Record{{Value: []byte("warm"), Topic: "t"}}, &res); err != nil || len(res.Out) != 1 {
		t.Fatalf("warm-up: %v %+v", err, res)
	}
	res.Reset()
	start := time.Now()
	if err := s.Process(context.Background(), []sdk.Record{{Value: []byte("loop"), Topic: "t"}}, &res); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err.Error(), "stage timeout") {
		t.Fatalf("results %+v", res)
	}
	if took > s.Timeout+100*time.Millisecond {
		t.Fatalf("stopped after %v, timeout %v", took, s.Timeout)
	}
	// In a batch, the looping record is found by bisection and the others
	// are delivered.
	res.Reset()
	in := []sdk.Record{{Value: []byte("a"), Topic: "t"}, {Value: []byte("loop"), Topic: "t"}, {Value: []byte("b"), Topic: "t"}, {Value: []byte("c"), Topic: "t"}}
	start = time.Now()
	if err := s.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Out) != 3 || len(res.Failed) != 1 || res.Failed[0].Source != 1 {
		t.Fatalf("results %+v", res)
	}
	t.Logf("one looping record: stopped in %v (timeout %v); in a batch of 4, isolated in %v", took, s.Timeout, time.Since(start))
}
