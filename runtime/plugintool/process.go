package plugintool

import (
	"context"
	"errors"
	"fmt"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/plugins"
)

// The kinds of processor `weir plugin` scaffolds and builds.
const (
	// KindWasm is a WASM module (sdk/guest), built with GOOS=wasip1
	// GOARCH=wasm and run inside weir: a `wasm:` stage.
	KindWasm = "wasm"
	// KindProcess is a plugin process (plugins/plugin), built for this machine
	// and run beside weir, which supervises it: a `plugin:` stage.
	KindProcess = "process"
)

// The SDK packages whose import tells the kinds apart.
const (
	guestPkg  = "github.com/weirstream/weir/sdk/guest"
	pluginPkg = "github.com/weirstream/weir/plugins/plugin"
)

// DefaultOutput is where Build puts what it builds from dir when no
// output is given: dir/NAME.wasm or dir/NAME, NAME being dir's name.
func DefaultOutput(dir, kind string) string {
	name := filepath.Base(filepath.Clean(dir))
	if abs, err := filepath.Abs(dir); err == nil {
		name = filepath.Base(abs) // "." names the current directory
	}
	if kind == KindWasm {
		name += ".wasm"
	}
	return filepath.Join(dir, name)
}

// DetectKind tells from the Go source in dir (its non-test files) which
// kind of processor it is: KindProcess if it imports plugins/plugin, KindWasm
// if it imports sdk/guest or has a //go:build line that needs wasip1. A
// package with neither sign is taken for a WASM module (the default kind;
// building checks that it is one); one with both is an error.
func DetectKind(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	var wasmWhy, procWhy string
	n := 0
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		n++
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return "", fmt.Errorf("plugin build: %v", err)
		}
		for _, cg := range af.Comments {
			if cg.Pos() > af.Package {
				break
			}
			for _, c := range cg.List {
				if !constraint.IsGoBuild(c.Text) {
					continue
				}
				if x, err := constraint.Parse(c.Text); err == nil && needsWasip1(x) {
					wasmWhy = fmt.Sprintf("%s has %q", filepath.Base(f), c.Text)
				}
			}
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch p {
			case guestPkg:
				wasmWhy = fmt.Sprintf("%s imports sdk/guest", filepath.Base(f))
			case pluginPkg:
				procWhy = fmt.Sprintf("%s imports plugins/plugin", filepath.Base(f))
			}
		}
	}
	switch {
	case n == 0:
		return "", fmt.Errorf("plugin build: no Go files (other than tests) in %s", dir)
	case wasmWhy != "" && procWhy != "":
		return "", fmt.Errorf("plugin build: %s looks like a WASM module (%s) and a plugin process (%s): pass --kind", dir, wasmWhy, procWhy)
	case procWhy != "":
		return KindProcess, nil
	}
	return KindWasm, nil
}

// needsWasip1 reports whether a build constraint holds for wasip1/wasm
// and not for this machine.
func needsWasip1(x constraint.Expr) bool {
	common := func(tag string) bool { return tag == "gc" || strings.HasPrefix(tag, "go1.") }
	wasi := x.Eval(func(tag string) bool { return common(tag) || tag == "wasip1" || tag == "wasm" })
	native := x.Eval(func(tag string) bool {
		return common(tag) || tag == runtime.GOOS || tag == runtime.GOARCH || tag == "unix" && runtime.GOOS != "windows"
	})
	return wasi && !native
}

// BuildProcess compiles the Go plugin in dir to out (default
// DefaultOutput) for this machine's GOOS and GOARCH, then starts it once
// to check that it is a weir plugin (go-plugin's handshake and a health
// call; it is not configured). It returns the binary's size.
func BuildProcess(ctx context.Context, dir, out string, stderr io.Writer) (int, error) {
	if out == "" {
		out = DefaultOutput(dir, KindProcess)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", absOut, ".")
	cmd.Dir = dir
	// The host runs the plugin: build for it, whatever GOOS or GOARCH the
	// environment sets.
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return 0, goBuildError(dir, err)
	}
	fi, err := os.Stat(absOut)
	if err != nil {
		return 0, err
	}
	if err := plugins.Probe(ctx, plugins.Config{Path: absOut, Timeout: 10 * time.Second, Stderr: stderr}); err != nil {
		return 0, fmt.Errorf("plugin build: %s was built but is not a weir plugin (build it with plugins/plugin: plugin.Serve): %w", absOut, err)
	}
	return int(fi.Size()), nil
}

// isWasm reports whether the file starts with WASM's magic number.
func isWasm(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, err
	}
	return string(magic[:]) == "\x00asm", nil
}

// InModule reports whether dir is inside a Go module (a go.mod in it or
// above it), as a scaffold must be to build: `weir plugin init` prints
// how to make one when it is not.
func InModule(dir string) bool {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return true
		}
		up := filepath.Dir(d)
		if up == d {
			return false
		}
		d = up
	}
}

func processFiles(name string) map[string]string {
	r := strings.NewReplacer("{{name}}", name)
	return map[string]string{
		"main.go":       r.Replace(processMainTmpl),
		"main_test.go":  r.Replace(processTestTmpl),
		"pipeline.yaml": r.Replace(processPipelineTmpl),
		".gitignore":    r.Replace("# the plugin binary (weir plugin build .)\n/{{name}}\n"),
	}
}

const processMainTmpl = `// Command {{name}} is a weir plugin: a processor that runs as a process
// of its own, beside weir, which starts it, supervises it (restarting it
// if it crashes or hangs) and calls it over gRPC once per batch of
// records. Use a plugin rather than a WASM module when a stage needs the
// network, files, native libraries or a lot of memory.
//
// What it does: upper-cases each record's value and puts the configured
// prefix before it; a record without a value (null) fails.
//
// Its config, the stage's config (YAML in the pipeline, JSON here):
//
//	prefix  text put before every value (default: none)
//
// Build it for this machine, next to the pipeline that uses it:
//
//	weir plugin build .      (or: go build -o {{name}} .)
//
// and use it in a pipeline as a stage (path is relative to the pipeline
// file):
//
//	- plugin: {path: {{name}}, config: {prefix: "> "}, timeout: 2s}
//
// go test runs main_test.go, which calls the functions below directly;
// weir pipeline test pipeline.yaml runs the built binary as weir does.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/plugins/plugin"
)

// processor holds what the config sets.
type processor struct {
	prefix []byte
}

// configure receives the stage's config (JSON; "{}" when the pipeline
// gives none) when the plugin starts, before the first batch, and again
// whenever weir restarts the plugin. An error refuses the config: the
// pipeline is not loaded, and weir pipeline validate prints the error.
func (p *processor) configure(raw []byte) error {
	var c struct {
		Prefix string ` + "`json:\"prefix\"`" + `
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt key is an error, not a silent default
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("{{name}} config: %w", err)
	}
	p.prefix = []byte(c.Prefix)
	return nil
}

// process is called once per record, in order. It returns
//
//   - one record to pass it on (changed or not),
//   - none to drop it,
//   - several to fan it out,
//   - or an error to fail this record alone: the pipeline routes it by
//     its on_error policy (dead-letter topic, skip, retry or halt) while
//     the rest of the batch flows on. A panic fails the record too.
//
// Outputs inherit the input's topic, partition and offset. Do not keep
// r's byte slices after returning: weir may reuse them.
func (p *processor) process(r sdk.Record) ([]sdk.Record, error) {
	if r.Value == nil {
		return nil, errors.New("{{name}}: the record has no value (null)")
	}
	r.Value = append(append([]byte(nil), p.prefix...), bytes.ToUpper(r.Value)...)
	return []sdk.Record{r}, nil
}

func main() {
	p := &processor{}
	// Serve answers weir until weir ends the process. Run by hand, the
	// binary says it is a plugin and exits.
	plugin.Serve(&plugin.Func{Each: p.process, Config: p.configure})
}
`

const processTestTmpl = `package main

import (
	"context"
	"testing"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/plugins/plugin"
)

// TestProcess calls the plugin's functions directly, in this process: the
// quickest check of its logic.
func TestProcess(t *testing.T) {
	p := &processor{}
	if err := p.configure([]byte(` + "`" + `{"prefix": "> "}` + "`" + `)); err != nil {
		t.Fatal(err)
	}
	out, err := p.process(sdk.Record{Key: []byte("k"), Value: []byte("hello")})
	if err != nil || len(out) != 1 || string(out[0].Key) != "k" || string(out[0].Value) != "> HELLO" {
		t.Fatalf("got %+v, %v; want one record k=\"> HELLO\"", out, err)
	}
	if _, err := p.process(sdk.Record{Key: []byte("k")}); err == nil {
		t.Fatal("a record without a value did not fail")
	}
}

// TestConfig: a config the plugin cannot use is refused.
func TestConfig(t *testing.T) {
	p := &processor{}
	if err := p.configure([]byte(` + "`" + `{"prefx": "> "}` + "`" + `)); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
	if err := p.configure([]byte("{}")); err != nil {
		t.Fatalf("the empty config: %v", err)
	}
}

// TestBatch runs a batch through plugin.Func, the adapter main serves:
// outputs in input order, and a failing record fails alone.
func TestBatch(t *testing.T) {
	p := &processor{}
	f := &plugin.Func{Each: p.process, Config: p.configure}
	if err := f.Configure([]byte(` + "`" + `{"prefix": "#"}` + "`" + `)); err != nil {
		t.Fatal(err)
	}
	in := []sdk.Record{{Value: []byte("a")}, {Value: nil}, {Value: []byte("b")}}
	var res sdk.Results
	if err := f.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Out) != 2 || res.Out[0].Source != 0 || string(res.Out[0].Record.Value) != "#A" ||
		res.Out[1].Source != 2 || string(res.Out[1].Record.Value) != "#B" {
		t.Fatalf("outputs %+v", res.Out)
	}
	if len(res.Failed) != 1 || res.Failed[0].Source != 1 {
		t.Fatalf("failures %+v, want input 1", res.Failed)
	}
}
`

const processPipelineTmpl = `# A pipeline with the plugin {{name}} as a stage. Build the plugin next to
# this file first, then run the test cases below (no broker needed):
#   weir plugin build .
#   weir pipeline test pipeline.yaml
pipeline: {{name}}
input: {topics: [in]}
stages:
  - plugin: {path: {{name}}, config: {prefix: "> "}, timeout: 2s}
output: out
on_error: {policy: dead_letter, topic: {{name}}.dlq}
tests:
  - name: values are upper-cased after the prefix
    input: [{key: k, value: hello}]
    expect:
      default: [{key: k, value: "> HELLO"}]
  - name: a record without a value fails (to the dead-letter topic)
    input: [{key: k, value: null}]
    failed: 1
`
