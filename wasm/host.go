// Package wasm runs weir WASM processor modules (ABI v1, package sdk/abi)
// with wazero's compiler: a module is compiled once (with an on-disk
// compilation cache), instantiated per stage with no filesystem, network or
// environment, and called once per batch. Guest stdout and stderr go to the
// writers given. A trap or a failed call discards the instance; the next
// batch gets a fresh one.
//
// A call ends when its context does, even inside a loop that never returns:
// Compile meters the module (package wasm/internal/meter injects a fuel
// count at every function entry and loop head), the host gives each call
// FuelChunk units, and each time they run out it checks the call's context
// and either refills or stops the call. This costs a few percent where
// wazero's own WithCloseOnContextDone costs 7-15x (see the README).
package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
	"github.com/weirstream/weir/sdk/jsonfield"
	"github.com/weirstream/weir/wasm/internal/meter"
)

// ErrABI is returned by Compile for a module that is not a weir module of
// a version this host speaks.
var ErrABI = errors.New("wasm: module ABI")

// ErrImport is returned by Compile for a module importing a host function
// it is not granted: only wasi_snapshot_preview1 is, and of it not the
// filesystem (path_*) or the network (sock_*).
var ErrImport = errors.New("wasm: module import")

// Runtime compiles and runs modules. Modules of one Runtime share its
// memory limit.
type Runtime struct {
	r       wazero.Runtime
	cache   wazero.CompilationCache
	metered bool
	// offer is the abi features offered to modules: all but in tests of
	// a module under a host without some.
	offer uint32
}

// fuelExhausted is the meter's import: a metered module calls it when its
// fuel runs out. It ends the call (a panic wazero turns into the call's
// error) once the call's context is done, and refills the fuel otherwise.
func fuelExhausted(ctx context.Context, m api.Module, _ []uint64) {
	if err := ctx.Err(); err != nil {
		panic(err)
	}
	m.ExportedGlobal(meter.GlobalExport).(api.MutableGlobal).Set(FuelChunk)
}

// Config of a Runtime.
type Config struct {
	// CacheDir keeps compiled modules across restarts; empty: in memory.
	CacheDir string
	// MemoryLimitPages caps each instance's memory, in 64 KiB pages; a Go
	// guest needs at least 32. 0: 1024 (64 MiB).
	MemoryLimitPages uint32
	// Interrupt is how a call is stopped when its context ends; the zero
	// value is the fuel meter.
	Interrupt Interrupt
}

// Interrupt is a mechanism that stops a module's call when the call's
// context ends.
type Interrupt int

const (
	// InterruptFuel meters the module (wasm/internal/meter) and checks the
	// context each time FuelChunk units of fuel are spent: a few percent.
	InterruptFuel Interrupt = iota
	// InterruptNone runs modules as they are: a call cannot be stopped
	// before it returns, whatever its context says. For trusted modules.
	InterruptNone
	// InterruptClose is wazero's WithCloseOnContextDone, which closes the
	// module when the context ends: 7-15x slower than InterruptFuel here.
	InterruptClose
)

func (i Interrupt) String() string {
	switch i {
	case InterruptFuel:
		return "fuel"
	case InterruptNone:
		return "none"
	case InterruptClose:
		return "close"
	}
	return fmt.Sprintf("Interrupt(%d)", int(i))
}

// FuelChunk is the fuel (an upper bound on WASM instructions run) a call
// gets at its start and at each refill; each refill checks the call's
// context, so a call overruns its deadline by at most about one chunk.
const FuelChunk = 1 << 20

// NewRuntime makes a runtime with wazero's compiler.
func NewRuntime(ctx context.Context, c Config) (*Runtime, error) {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = 1024
	}
	var cache wazero.CompilationCache
	var err error
	if c.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(c.CacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache).WithMemoryLimitPages(c.MemoryLimitPages).
		WithCloseOnContextDone(c.Interrupt == InterruptClose)
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("wasm: WASI: %w", err)
	}
	_, err = r.NewHostModuleBuilder(meter.ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(fuelExhausted), nil, nil).Export(meter.ImportName).
		Instantiate(ctx)
	if err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("wasm: meter: %w", err)
	}
	return &Runtime{r: r, cache: cache, metered: c.Interrupt == InterruptFuel, offer: abi.FeatureKept | abi.FeatureFields}, nil
}

// Close releases the runtime and every module and instance of it.
func (rt *Runtime) Close(ctx context.Context) error { return rt.r.Close(ctx) }

// Module is a compiled weir module.
type Module struct {
	rt       *Runtime
	name     string
	compiled wazero.CompiledModule
}

// Compile validates, meters (with InterruptFuel) and compiles
// a module: it must export the ABI v1 functions and import nothing but
// WASI.
func (rt *Runtime) Compile(ctx context.Context, name string, wasm []byte) (*Module, error) {
	if rt.metered {
		m, err := meter.Instrument(wasm)
		if err != nil {
			if _, verr := rt.r.CompileModule(ctx, wasm); verr != nil {
				return nil, fmt.Errorf("wasm: %s: %w", name, verr) // not valid WASM: say why
			}
			return nil, fmt.Errorf("wasm: %s: %w", name, err)
		}
		wasm = m
	}
	cm, err := rt.r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("wasm: %s: %w", name, err)
	}
	for _, f := range cm.ImportedFunctions() {
		mod, fn, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName && !(rt.metered && mod == meter.ImportModule && fn == meter.ImportName) {
			cm.Close(ctx)
			return nil, fmt.Errorf("%w: %s imports %s.%s, which weir does not provide", ErrImport, name, mod, fn)
		}
		if what := ungranted(mod, fn); what != "" {
			cm.Close(ctx)
			return nil, fmt.Errorf("%w: %s imports %s.%s: %s, which weir does not grant to modules", ErrImport, name, mod, fn, what)
		}
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportProcess]; !ok {
		for n := range exports {
			if v, ok := strings.CutPrefix(n, "weir_v"); ok && strings.HasSuffix(v, "_process") {
				cm.Close(ctx)
				return nil, fmt.Errorf("%w: %s exports %s: it speaks ABI v%s; this weir speaks v%d", ErrABI, name, n, strings.TrimSuffix(v, "_process"), abi.Version)
			}
		}
		cm.Close(ctx)
		return nil, fmt.Errorf("%w: %s is not a weir module: it does not export %s (build it with sdk/guest)", ErrABI, name, abi.ExportProcess)
	}
	for _, want := range []string{abi.ExportAlloc, abi.ExportInit} {
		if _, ok := exports[want]; !ok {
			cm.Close(ctx)
			return nil, fmt.Errorf("%w: %s does not export %s", ErrABI, name, want)
		}
	}
	return &Module{rt: rt, name: name, compiled: cm}, nil
}

// Instance is one instantiated module, used by one goroutine at a time.
type Instance struct {
	m       *Module
	mod     api.Module
	alloc   api.Function
	process api.Function
	mem     api.Memory
	fuel    api.MutableGlobal // nil when unmetered
	buf     []byte
	// fields scans each record's value for the fields the module named
	// (abi.ExportFields); nil when it named none.
	fields *jsonfield.Scanner
}

// Instantiate starts an instance: no filesystem, network or environment;
// stdout and stderr go to the writers (nil: discarded); config is passed
// to the module's init.
func (m *Module) Instantiate(ctx context.Context, config []byte, stdout, stderr io.Writer) (*Instance, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	mc := wazero.NewModuleConfig().WithName("").WithStdout(stdout).WithStderr(stderr).
		WithStartFunctions("_initialize")
	if linearMemory != nil {
		ctx = experimental.WithMemoryAllocator(ctx, linearMemory)
	}
	mod, err := m.rt.r.InstantiateModule(ctx, m.compiled, mc)
	if err != nil {
		return nil, fmt.Errorf("wasm: %s: instantiate: %w", m.name, err)
	}
	in := &Instance{m: m, mod: mod, alloc: mod.ExportedFunction(abi.ExportAlloc), process: mod.ExportedFunction(abi.ExportProcess), mem: mod.Memory()}
	if g, ok := mod.ExportedGlobal(meter.GlobalExport).(api.MutableGlobal); ok && m.rt.metered {
		in.fuel = g
	}
	told := false // whether the module heard of the features offered
	if f := mod.ExportedFunction(abi.ExportFeatures); f != nil {
		told = true
		if _, err := f.Call(ctx, uint64(m.rt.offer)); err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("wasm: %s: %s: %w", m.name, abi.ExportFeatures, err)
		}
	}
	reply, err := in.call(ctx, mod.ExportedFunction(abi.ExportInit), config)
	if err == nil && len(reply) > 0 {
		err = errors.New(string(reply))
	}
	if err != nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("wasm: %s: init: %w", m.name, err)
	}
	if f := mod.ExportedFunction(abi.ExportFields); f != nil && told && m.rt.offer&abi.FeatureFields != 0 {
		names, err := in.names(ctx, f)
		if err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("wasm: %s: %s: %w", m.name, abi.ExportFields, err)
		}
		if len(names) > 0 {
			in.fields = jsonfield.New(names...)
		}
	}
	return in, nil
}

// names calls the module's abi.ExportFields and decodes its reply.
func (in *Instance) names(ctx context.Context, f api.Function) ([]string, error) {
	if in.fuel != nil {
		in.fuel.Set(FuelChunk)
	}
	res, err := f.Call(ctx)
	if err != nil {
		return nil, err
	}
	b, err := in.reply(res[0])
	if err != nil || b == nil {
		return nil, err
	}
	return abi.DecodeNames(b)
}

// call copies data into the guest, calls fn with it and returns the reply
// bytes (in guest memory, valid until the next call).
func (in *Instance) call(ctx context.Context, fn api.Function, data []byte) ([]byte, error) {
	if in.fuel != nil {
		in.fuel.Set(FuelChunk)
	}
	res, err := in.alloc.Call(ctx, uint64(len(data)))
	if err != nil {
		return nil, err
	}
	ptr := uint32(res[0])
	if len(data) > 0 && !in.mem.Write(ptr, data) {
		return nil, fmt.Errorf("guest buffer %d+%d outside its memory", ptr, len(data))
	}
	res, err = fn.Call(ctx, uint64(ptr), uint64(len(data)))
	if err != nil {
		return nil, err
	}
	return in.reply(res[0])
}

// reply returns the bytes of a packed reply (nil when empty), in guest
// memory.
func (in *Instance) reply(packed uint64) ([]byte, error) {
	rp, rn := abi.Unpack(packed)
	if rn == 0 {
		return nil, nil
	}
	b, ok := in.mem.Read(rp, rn)
	if !ok {
		return nil, fmt.Errorf("guest reply %d+%d outside its memory", rp, rn)
	}
	return b, nil
}

// Process runs one batch (from one topic) through the module.
func (in *Instance) Process(ctx context.Context, topic string, batch []sdk.Record, res *sdk.Results) error {
	in.buf = abi.AppendBatchFields(in.buf[:0], topic, batch, in.fields)
	reply, err := in.call(ctx, in.process, in.buf)
	if err != nil {
		return err
	}
	return abi.DecodeResults(reply, batch, res)
}

// Close discards the instance.
func (in *Instance) Close(ctx context.Context) error { return in.mod.Close(ctx) }

// ungranted names the capability a WASI import needs that modules do not
// get ("" for the rest: clocks, random, stdout and stderr, exit, and the
// fd calls a Go guest's runtime imports, which find no preopened files).
func ungranted(mod, fn string) string {
	if mod != wasi_snapshot_preview1.ModuleName {
		return ""
	}
	switch {
	case strings.HasPrefix(fn, "path_"):
		return "the filesystem"
	case strings.HasPrefix(fn, "sock_"):
		return "the network"
	}
	return ""
}
