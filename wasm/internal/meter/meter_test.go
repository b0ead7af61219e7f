package meter

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A tiny assembler for test modules.

func vec(items ...[]byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func name(s string) []byte { return appendName(nil, s) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func sec(id byte, body []byte) []byte {
	return cat([]byte{id}, binary.AppendUvarint(nil, uint64(len(body))), body)
}

func u(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func body(locals []byte, code ...byte) []byte {
	b := cat(locals, code)
	return cat(u(uint64(len(b))), b)
}

const (
	i32 = 0x7F
	i64 = 0x7E
)

// testModule imports env.add1 (i32)->i32 (function 0) and defines:
//
//	1 sum(n i32) i64: loop i from 0 to n, total += add1(i) through call and
//	  through call_indirect of table slot 0 (function 2), returns total
//	2 id(x i32) i32
//	3 spin(): loops forever
//	4 start: sets global 0 to 7
//
// A funcref global holds ref.func 2, and a name section names them all.
func testModule() []byte {
	types := vec(
		[]byte{0x60, 1, i32, 1, i32}, // 0 (i32)->i32
		[]byte{0x60, 1, i32, 1, i64}, // 1 (i32)->i64
		[]byte{0x60, 0, 0},           // 2 ()->()
	)
	imports := vec(cat(name("env"), name("add1"), []byte{0x00, 0}))
	funcs := vec([]byte{1}, []byte{0}, []byte{2}, []byte{2})
	table := vec([]byte{0x70, 0x00, 1})
	globals := vec(
		[]byte{i32, 1, 0x41, 0, 0x0B},  // 0 mut i32 = 0
		[]byte{0x70, 0, 0xD2, 2, 0x0B}, // 1 funcref = ref.func 2
	)
	exports := vec(
		cat(name("sum"), []byte{0x00, 1}),
		cat(name("spin"), []byte{0x00, 3}),
		cat(name("g"), []byte{0x03, 0}),
		cat(name("id"), []byte{0x00, 2}),
	)
	start := u(4)
	elems := vec(cat([]byte{0x00, 0x41, 0, 0x0B}, vec([]byte{2})))
	// sum: locals i (i32), total (i64)
	sum := body(vec([]byte{1, i32}, []byte{1, i64}),
		0x02, 0x40, // block
		0x03, 0x40, // loop
		0x20, 1, 0x20, 0, 0x4E, 0x0D, 1, // if i >= n: br 1 (out of block)
		0x20, 2, 0x20, 1, 0x10, 0, 0xAD, 0x7C, 0x21, 2, // total += add1(i)
		0x20, 2, 0x20, 1, 0x41, 0, 0x11, 0, 0, 0xAD, 0x7C, 0x21, 2, // total += table[0](i)
		0x20, 1, 0x41, 1, 0x6A, 0x21, 1, // i++
		0x0C, 0, // br 0 (loop)
		0x0B, 0x0B,
		0x20, 2, 0x0B)
	id := body(vec(), 0x20, 0, 0x0B)
	spin := body(vec(), 0x03, 0x40, 0x0C, 0, 0x0B, 0x0B)
	st := body(vec(), 0x41, 7, 0x24, 0, 0x0B)
	code := vec(sum, id, spin, st)
	names := cat(name("name"), sec(1, vec(
		cat(u(0), name("add1")), cat(u(1), name("sum")), cat(u(2), name("id")), cat(u(3), name("spin")), cat(u(4), name("start")))))
	return cat([]byte("\x00asm\x01\x00\x00\x00"),
		sec(secType, types), sec(secImport, imports), sec(secFunction, funcs), sec(secTable, table),
		sec(secGlobal, globals), sec(secExport, exports), sec(secStart, start), sec(secElement, elems),
		sec(secCode, code), sec(secCustom, names))
}

// instantiate runs wasm with env.add1 and, when metered, the meter import
// that refills by chunk until ctx is done. It returns the module and a
// count of refills.
func instantiate(t *testing.T, ctx context.Context, wasm []byte, chunk uint64) (api.Module, *int) {
	t.Helper()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(context.Background()) })
	_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x uint32) uint32 { return x + 1 }).Export("add1").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refills := new(int)
	_, err = r.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, _ []uint64) {
			if err := ctx.Err(); err != nil {
				panic(err)
			}
			*refills++
			m.ExportedGlobal(GlobalExport).(api.MutableGlobal).Set(chunk)
		}), nil, nil).Export(ImportName).Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return m, refills
}

func TestInstrumentKeepsBehaviour(t *testing.T) {
	ctx := context.Background()
	orig := testModule()
	inst, err := Instrument(orig)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := instantiate(t, ctx, orig, 0)
	mm, refills := instantiate(t, ctx, inst, 1000)
	if g := mm.ExportedGlobal("g").Get(); g != 7 {
		t.Fatalf("start function: global = %d, want 7", g)
	}
	for _, n := range []uint64{0, 1, 10, 5000} {
		want, err := om.ExportedFunction("sum").Call(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := mm.ExportedFunction("sum").Call(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != want[0] || want[0] != n*n {
			t.Fatalf("sum(%d) = %d metered, %d unmetered, want %d", n, got[0], want[0], n*n)
		}
	}
	// sum's loop body has 23 instructions and runs 5000+ times: the fuel
	// must have run out (1000 a chunk) at least 5000*20/1000 times.
	if *refills < 5000*20/1000 {
		t.Fatalf("%d refills: the loop is not metered", *refills)
	}
	// Names survive, shifted: function 1 of the input is 2 now.
	if !strings.Contains(string(inst), "sum") {
		t.Fatal("name section lost")
	}
}

func TestInstrumentStopsLoop(t *testing.T) {
	inst, err := Instrument(testModule())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := instantiate(t, context.Background(), inst, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = m.ExportedFunction("spin").Call(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("spin returned %v, want the deadline", err)
	}
	if late := time.Since(start) - 100*time.Millisecond; late > 50*time.Millisecond {
		t.Fatalf("stopped %v after the deadline", late)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	good := testModule()
	already, err := Instrument(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "not a WebAssembly binary"},
		{"text", "(module)", "not a WebAssembly binary"},
		{"truncated", string(good[:len(good)-20]), "unexpected end"},
		{"metered twice", string(already), `already imports from "weir_meter"`},
	} {
		_, err := Instrument([]byte(tc.in))
		if !errors.Is(err, ErrModule) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrModule saying %q", tc.name, err, tc.want)
		}
	}
}

func TestInstrumentEmptyModule(t *testing.T) {
	// No type, import, global or export sections: all four are created,
	// in order.
	inst, err := Instrument([]byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, inst)
	if err != nil {
		t.Fatalf("instrumented empty module does not compile: %v", err)
	}
	if _, ok := cm.ExportedFunctions()[GlobalExport]; ok {
		t.Fatal("fuel exported as a function")
	}
	if n := len(cm.ImportedFunctions()); n != 1 {
		t.Fatalf("%d imports, want the meter's", n)
	}
}

// FuzzInstrument: Instrument never panics, and what it instruments is
// valid after if and only if it was valid before. (wazero only sees input
// Instrument parsed: on arbitrary bytes its decoder allocates by declared
// counts and a fuzz worker runs out of memory.)
func FuzzInstrument(f *testing.F) {
	f.Add(testModule())
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Instrument(in)
		if err != nil {
			return
		}
		cm, inErr := r.CompileModule(ctx, in)
		if inErr == nil {
			cm.Close(ctx)
		}
		cm, outErr := r.CompileModule(ctx, out)
		if outErr == nil {
			cm.Close(ctx)
		}
		if (inErr == nil) != (outErr == nil) {
			t.Fatalf("input valid: %v; instrumented valid: %v", inErr, outErr)
		}
	})
}
