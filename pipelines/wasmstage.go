package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/wasm"
)

// WASM modules of every pipeline in the process share runtimes, one per
// memory limit (wazero sets the limit per runtime), and compiled modules
// are cached by path and contents.
var wasmHost struct {
	sync.Mutex
	runtimes map[uint32]*wasm.Runtime
}

func wasmRuntime(pages uint32) (*wasm.Runtime, error) {
	wasmHost.Lock()
	defer wasmHost.Unlock()
	if rt := wasmHost.runtimes[pages]; rt != nil {
		return rt, nil
	}
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{MemoryLimitPages: pages})
	if err != nil {
		return nil, err
	}
	if wasmHost.runtimes == nil {
		wasmHost.runtimes = map[uint32]*wasm.Runtime{}
	}
	wasmHost.runtimes[pages] = rt
	return rt, nil
}

// slogWriter turns a guest's output lines into log records.
type slogWriter struct {
	module, stream string
}

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		slog.Info("wasm module output", "module", w.module, "stream", w.stream, "line", line)
	}
	return len(p), nil
}

func init() {
	registerKind(&StageKind{
		Name:    "wasm",
		Summary: "run each batch through a WASM module built with sdk/guest (ABI v1): zero or more outputs or an error per record",
		Fields: []string{
			"wasm: {module: PATH, config: {...}, memory_limit: PAGES, timeout: DURATION}",
			"  module        the .wasm file, relative to the pipeline file",
			"  config        any YAML, passed to the module as JSON (guest.Config)",
			"  memory_limit  64 KiB pages per instance (default 1024 = 64 MiB; a Go guest needs 32)",
			"  timeout       per call into the module (default 5s): a module still running is stopped, and its batch bisected",
		},
		Example: `- wasm: {module: redact.wasm, config: {mask: "#"}}`,
		build:   buildWasm,
	})
}

func buildWasm(d *decoder, n *yaml.Node) (processor, string, bool) {
	fs := d.fields(n, "wasm", "module", "config", "memory_limit", "timeout")
	if fs == nil {
		return nil, "", false
	}
	f, ok := fs["module"]
	if !ok {
		d.errorf(n, "wasm: {module: path/to/module.wasm}", "wasm: missing field \"module\"")
		return nil, "", false
	}
	path, ok := d.nonEmpty(f.val, "wasm.module")
	if !ok {
		return nil, "", false
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	pages := uint32(1024)
	if v, ok := fs["memory_limit"]; ok {
		p, good := d.integer(v.val, "wasm.memory_limit", 32, 65536)
		if !good {
			return nil, "", false
		}
		pages = uint32(p)
	}
	timeout := wasm.DefaultTimeout
	if v, ok := fs["timeout"]; ok {
		t, good := d.duration(v.val, "wasm.timeout")
		if !good {
			return nil, "", false
		}
		if t < time.Millisecond {
			d.errorf(v.val, "e.g. 500ms", "wasm.timeout: %v is too short", t)
			return nil, "", false
		}
		timeout = t
	}
	config := []byte("{}")
	if v, ok := fs["config"]; ok {
		var x any
		if err := v.val.Decode(&x); err != nil {
			d.errorf(v.val, "", "wasm.config: %v", err)
			return nil, "", false
		}
		b, err := json.Marshal(jsonable(x))
		if err != nil {
			d.errorf(v.val, "", "wasm.config: %v", err)
			return nil, "", false
		}
		config = b
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		d.errorf(f.val, "build it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared", "wasm.module: %v", err)
		return nil, "", false
	}
	rt, err := wasmRuntime(pages)
	if err != nil {
		d.errorf(f.val, "", "wasm: %v", err)
		return nil, "", false
	}
	m, err := rt.Compile(context.Background(), filepath.Base(path), raw)
	if err != nil {
		d.errorf(f.val, "", "wasm.module: %v", err)
		return nil, "", false
	}
	// Instantiate once now (and let go), so a module that fails its init
	// is reported at load, not on the first batch.
	st := wasm.NewStage(m, config, slogWriter{filepath.Base(path), "stdout"}, slogWriter{filepath.Base(path), "stderr"})
	st.Timeout = timeout
	if err := st.Check(context.Background()); err != nil {
		d.errorf(f.val, "", "wasm.module: %v", err)
		return nil, "", false
	}
	return st, fmt.Sprintf("module %s (%d KiB), memory limit %d MiB, timeout %v, config %s", filepath.Base(path), len(raw)>>10, pages/16, timeout, config), true
}
