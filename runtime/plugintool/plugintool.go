// Package plugintool is `weir plugin`: scaffold, build and try processors
// without a broker, of either kind: WASM modules (sdk/guest, run inside
// weir by wazero) and plugin processes (plugins/plugin, run beside weir and
// called over gRPC).
package plugintool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/weirstream/weir/plugins"
	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/wasm"
)

// Build compiles the Go guest in dir to out with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared, then loads it to check its ABI; it returns the size.
func Build(ctx context.Context, dir, out string, stderr io.Writer) (int, error) {
	if out == "" {
		out = DefaultOutput(dir, KindWasm)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", absOut, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return 0, goBuildError(dir, err)
	}
	raw, err := os.ReadFile(absOut)
	if err != nil {
		return 0, err
	}
	rt, _, err := compile(ctx, filepath.Base(absOut), raw)
	if err != nil {
		return 0, fmt.Errorf("plugin build: %s was built but is not a usable module: %w", absOut, err)
	}
	defer rt.Close(ctx)
	return len(raw), nil
}

// ErrNoGo is matched (errors.Is) by the error Build and BuildProcess return
// when the go command is not on PATH.
var ErrNoGo = errors.New("the Go toolchain is not on PATH")

// noGoError says that building dir needs the Go toolchain and where to get it.
type noGoError struct {
	dir string
	err error
}

func (e *noGoError) Error() string {
	return fmt.Sprintf("plugin build needs the Go toolchain (go 1.26 or later) on PATH to compile %s, and there is no go command on PATH; install Go from https://go.dev/dl/ or add its bin directory to PATH", e.dir)
}
func (e *noGoError) Unwrap() error        { return e.err }
func (e *noGoError) Is(target error) bool { return target == ErrNoGo }

// goBuildError is the error for a failed go build in dir: what is missing
// when the go command itself could not be found, else go build's failure
// (whose output went to the caller's stderr).
func goBuildError(dir string, err error) error {
	if errors.Is(err, exec.ErrNotFound) {
		return &noGoError{dir: dir, err: err}
	}
	return fmt.Errorf("plugin build: go build: %w", err)
}

// compile compiles a module in a new runtime whose compilation cache is
// the user's (wasm.UserCacheDir), or in memory when that cannot be used.
func compile(ctx context.Context, name string, raw []byte) (*wasm.Runtime, *wasm.Module, error) {
	try := func(dir string) (*wasm.Runtime, *wasm.Module, error) {
		rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: dir})
		if err != nil {
			return nil, nil, err
		}
		m, err := rt.Compile(ctx, name, raw)
		if err != nil {
			rt.Close(ctx)
			return nil, nil, err
		}
		return rt, m, nil
	}
	if dir := wasm.UserCacheDir(); dir != "" {
		rt, m, err := try(dir)
		if err == nil || errors.Is(err, wasm.ErrABI) || errors.Is(err, wasm.ErrImport) {
			return rt, m, err
		}
		// A module that does not compile, or a cache that cannot be
		// written: the former fails again below.
	}
	return try("")
}

// InputRecord is one line of `weir plugin test --input`: value is a string
// (its bytes) or any other JSON (encoded); key a string or null.
type InputRecord struct {
	Key     *string           `json:"key"`
	Value   json.RawMessage   `json:"value"`
	Headers map[string]string `json:"headers"`
}

// OutputLine is one line `weir plugin test` prints.
type OutputLine struct {
	Input   int               `json:"input"`
	Output  string            `json:"output,omitempty"`
	Key     *string           `json:"key"`
	Value   *string           `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// Test runs module, a WASM module or a plugin binary, on the JSON Lines
// records of input (one batch) and writes one JSON line per output record
// and per failed input.
func Test(ctx context.Context, module string, config []byte, input io.Reader, w io.Writer, log io.Writer) (outputs, failed int, err error) {
	wasmFile, err := isWasm(module)
	if err != nil {
		return 0, 0, err
	}
	var recs []sdk.Record
	sc := bufio.NewScanner(input)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var in InputRecord
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return 0, 0, fmt.Errorf("plugin test: input line %d: %w (want {\"key\": ..., \"value\": ..., \"headers\": {...}})", line, err)
		}
		r := sdk.Record{Topic: "test", Offset: int64(len(recs)), Timestamp: time.Now()}
		if in.Key != nil {
			r.Key = []byte(*in.Key)
		}
		var s string
		switch {
		case len(in.Value) == 0 || string(in.Value) == "null":
		case json.Unmarshal(in.Value, &s) == nil:
			r.Value = []byte(s)
		default:
			r.Value = append([]byte(nil), in.Value...)
		}
		for k, v := range in.Headers {
			r.Headers = append(r.Headers, sdk.Header{Key: k, Value: []byte(v)})
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if len(config) == 0 {
		config = []byte("{}")
	}
	if !json.Valid(config) {
		return 0, 0, errors.New("plugin test: --config is not JSON")
	}
	var st sdk.Processor
	if wasmFile {
		raw, err := os.ReadFile(module)
		if err != nil {
			return 0, 0, err
		}
		rt, m, err := compile(ctx, filepath.Base(module), raw)
		if err != nil {
			return 0, 0, err
		}
		defer rt.Close(ctx)
		ws := wasm.NewStage(m, config, log, log)
		defer ws.Close(ctx)
		st = ws
	} else {
		// A plugin binary: run as a plugin stage runs it, with only the
		// config (no environment).
		path, err := filepath.Abs(module)
		if err != nil {
			return 0, 0, err
		}
		ps, err := plugins.NewStage(plugins.Config{Path: path, Config: config, Stderr: log})
		if err != nil {
			return 0, 0, err
		}
		defer ps.Close()
		if err := ps.Check(ctx); err != nil {
			return 0, 0, err
		}
		st = ps
	}
	var res sdk.Results
	if err := st.Process(ctx, recs, &res); err != nil {
		return 0, 0, err
	}
	if err := sdk.Check(len(recs), &res); err != nil {
		return 0, 0, err
	}
	enc := json.NewEncoder(w)
	for _, o := range res.Out {
		l := OutputLine{Input: o.Source + 1, Output: o.Record.Output, Key: str(o.Record.Key), Value: str(o.Record.Value)}
		for _, h := range o.Record.Headers {
			if l.Headers == nil {
				l.Headers = map[string]string{}
			}
			l.Headers[h.Key] = string(h.Value)
		}
		if err := enc.Encode(l); err != nil {
			return 0, 0, err
		}
	}
	for _, f := range res.Failed {
		if err := enc.Encode(OutputLine{Input: f.Source + 1, Error: f.Err.Error()}); err != nil {
			return 0, 0, err
		}
	}
	return len(res.Out), len(res.Failed), nil
}

func str(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Init writes a WASM module skeleton into dir/name (InitKind with
// KindWasm).
func Init(dir, name string) (string, error) { return InitKind(dir, name, KindWasm) }

// InitKind writes a processor skeleton of kind into dir/name and returns
// its directory. A WASM module gets main.go (the processor),
// module_test.go (builds it and runs it through the host) and
// pipeline.yaml (a pipeline using it, with a test case); a plugin process
// gets main.go, main_test.go (a unit test of its functions), pipeline.yaml
// and a .gitignore for the binary.
func InitKind(dir, name, kind string) (string, error) {
	var files map[string]string
	switch kind {
	case KindWasm:
		files = map[string]string{
			"main.go":        fmt.Sprintf(mainTmpl, name, name),
			"module_test.go": moduleTestTmpl,
			"pipeline.yaml":  fmt.Sprintf(pipelineTmpl, name, name, name),
		}
	case KindProcess:
		files = processFiles(name)
	default:
		return "", fmt.Errorf("plugin init: --kind %q: want %s or %s", kind, KindWasm, KindProcess)
	}
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("plugin init: name %q: lower-case letters, digits and '-', starting with a letter", name)
	}
	root := filepath.Join(dir, name)
	if _, err := os.Stat(root); err == nil {
		return "", fmt.Errorf("plugin init: %s already exists", root)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(root, f), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	return root, nil
}

const mainTmpl = `//go:build wasip1

// Command %s is a weir WASM processor. Build it with
//
//	weir plugin build .
//
// and use it in a pipeline as a stage: - wasm: {module: %[2]s.wasm}
package main

import (
	"bytes"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

func init() {
	// Called for every record: return zero records to drop it, several to
	// fan out, or an error to send it to the pipeline's error policy. A
	// function that reads a few top-level fields of JSON values runs
	// faster registered with guest.RegisterFields (or, for a filter,
	// guest.RegisterFilter): weir finds the fields natively.
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		r.Value = bytes.ToUpper(r.Value)
		return []sdk.Record{r}, nil
	})
}
`

const moduleTestTmpl = `//go:build !wasip1

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/wasm"
)

// TestModule builds this module and runs a record through it, as weir
// will.
func TestModule(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "m.wasm", raw)
	if err != nil {
		t.Fatal(err)
	}
	st := wasm.NewStage(m, []byte("{}"), nil, nil)
	defer st.Close(ctx)
	var res sdk.Results
	if err := st.Process(ctx, []sdk.Record{{Value: []byte("hello"), Topic: "t"}}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Out) != 1 || string(res.Out[0].Record.Value) != "HELLO" {
		t.Fatalf("outputs %+v, failures %+v", res.Out, res.Failed)
	}
}
`

const pipelineTmpl = `# weir pipeline validate pipeline.yaml (after weir plugin build .)
pipeline: %s
input: {topics: [in]}
stages:
  - wasm: {module: %s.wasm}
output: out
on_error: {policy: dead_letter, topic: %s.dlq}
tests:
  - input: [{key: k, value: hello}]
    expect:
      default: [{key: k, value: HELLO}]
`
