package pipelines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/wasm"
)

// WASM modules of every pipeline in the process share runtimes, one per
// memory limit (wazero sets the limit per runtime) and compilation cache
// directory; the runtimes of one directory share its on-disk cache.
var wasmHost struct {
	sync.Mutex
	cacheDir string
	runtimes map[wasmRuntimeKey]*wasm.Runtime
}

type wasmRuntimeKey struct {
	cacheDir string
	pages    uint32
}

// SetWasmCacheDir makes the WASM stages of the specs loaded from now on
// keep their compiled code in dir (created if need be), so that loading
// a module again, in this process or after a restart, does not compile
// it again; "" (the default) keeps compiled code in memory only. If the
// directory cannot be used (not writable, full, removed), stages compile
// in memory and a warning is logged. It applies to the whole process, as
// the runtimes do: `weir serve` sets its data directory's wasm-cache, the
// command-line tools the user's cache directory.
func SetWasmCacheDir(dir string) {
	wasmHost.Lock()
	defer wasmHost.Unlock()
	wasmHost.cacheDir = dir
}

func wasmRuntime(dir string, pages uint32) (*wasm.Runtime, error) {
	wasmHost.Lock()
	defer wasmHost.Unlock()
	k := wasmRuntimeKey{dir, pages}
	if rt := wasmHost.runtimes[k]; rt != nil {
		return rt, nil
	}
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{CacheDir: dir, MemoryLimitPages: pages})
	if err != nil {
		return nil, err
	}
	if wasmHost.runtimes == nil {
		wasmHost.runtimes = map[wasmRuntimeKey]*wasm.Runtime{}
	}
	wasmHost.runtimes[k] = rt
	return rt, nil
}

// compileWasm compiles a module in the runtime of its memory limit, with
// the cache directory if one is set and usable, else in memory.
func compileWasm(name string, raw []byte, pages uint32) (*wasm.Module, error) {
	wasmHost.Lock()
	dir := wasmHost.cacheDir
	wasmHost.Unlock()
	var err error
	if dir != "" {
		var rt *wasm.Runtime
		if rt, err = wasmRuntime(dir, pages); err == nil {
			m, cerr := rt.Compile(context.Background(), name, raw)
			if cerr == nil || errors.Is(cerr, wasm.ErrABI) || errors.Is(cerr, wasm.ErrImport) {
				return m, cerr
			}
			err = cerr // a bad module, or a cache that cannot be written: see below
		}
	}
	rt, rerr := wasmRuntime("", pages)
	if rerr != nil {
		return nil, rerr
	}
	m, merr := rt.Compile(context.Background(), name, raw)
	if merr == nil && err != nil {
		slog.Warn("pipelines: WASM compilation cache unusable: compiled in memory", "dir", dir, "module", name, "err", err)
	}
	return m, merr
}

// guestLog turns one output stream of a stage's guest into log records
// of the process's default logger (a node's log), one per line, naming
// the pipeline, the stage (as metrics and dead-letter headers do), the
// module file and the stream. A line is logged when its newline arrives;
// one longer than guestLineMax is logged in pieces of that size.
type guestLog struct {
	pipeline, stage, module, stream string
	plugin                          bool // a plugin's stderr, not a WASM module's

	mu    sync.Mutex
	buf   []byte // the line so far
	split bool   // a piece of a long line was just logged
}

const guestLineMax = 4 << 10

func (w *guestLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		c := p[:min(len(p), guestLineMax)]
		p = p[len(c):]
		w.buf = append(w.buf, c...)
		rest := w.buf
		for len(rest) > 0 {
			if i := bytes.IndexByte(rest, '\n'); i >= 0 && i <= guestLineMax {
				if i > 0 || !w.split { // (not the end of a line logged in pieces)
					w.log(bytes.TrimSuffix(rest[:i], []byte("\r")))
				}
				rest, w.split = rest[i+1:], false
			} else if len(rest) >= guestLineMax {
				w.log(rest[:guestLineMax])
				rest, w.split = rest[guestLineMax:], true
			} else {
				break
			}
		}
		w.buf = w.buf[:copy(w.buf, rest)]
	}
	return n, nil
}

func (w *guestLog) log(line []byte) {
	msg, kind := "wasm module output", "module"
	if w.plugin {
		msg, kind = "plugin output", "plugin"
	}
	slog.Default().LogAttrs(context.Background(), slog.LevelInfo, msg,
		slog.String("pipeline", w.pipeline), slog.String("stage", w.stage), slog.String(kind, w.module),
		slog.String("stream", w.stream), slog.String("line", string(line)))
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
		if config, ok = d.jsonConfig(v.val, "wasm.config"); !ok {
			return nil, "", false
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		d.errorf(f.val, "build it with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared", "wasm.module: %v", err)
		return nil, "", false
	}
	m, err := compileWasm(filepath.Base(path), raw, pages)
	if err != nil {
		d.errorf(f.val, "", "wasm.module: %v", err)
		return nil, "", false
	}
	// Instantiate once now (and let go), so a module that fails its init
	// is reported at load, not on the first batch.
	out := func(stream string) *guestLog {
		return &guestLog{pipeline: d.pipeline, stage: d.stage, module: filepath.Base(path), stream: stream}
	}
	st := wasm.NewStage(m, config, out("stdout"), out("stderr"))
	st.Timeout = timeout
	if err := st.Check(context.Background()); err != nil {
		d.errorf(f.val, "", "wasm.module: %v", err)
		return nil, "", false
	}
	return st, fmt.Sprintf("module %s (%d KiB), memory limit %d MiB, timeout %v, config %s", filepath.Base(path), len(raw)>>10, pages/16, timeout, config), true
}
