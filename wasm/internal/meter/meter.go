// Package meter instruments a WebAssembly module so that it meters its own
// work, which lets a host stop a runaway module at a deadline without
// interrupting it from outside.
//
// Instrument adds to a module (binary format, MVP plus the sign-extension,
// saturating-conversion, bulk-memory, reference-types, multi-value, SIMD,
// tail-call and threads encodings):
//
//   - a mutable i64 global, the fuel, exported as GlobalExport;
//   - a function import ImportModule.ImportName of type () -> (), appended
//     after the module's own imports (every function index at or above the
//     old import count moves up by one, and every reference to one is
//     rewritten: calls, ref.func, element segments, exports, start, names);
//   - a check at the entry of every function and at the head of every loop:
//     the fuel is reduced by the number of instructions of the region the
//     check guards, and when it drops below zero the import is called. The
//     check keeps the new value in a scratch i64 local added to each
//     function, so it loads the global once, not twice.
//
// A region is a function body outside its loops, or one loop's body outside
// its nested loops; branches inside a region only go forward or out of it,
// so between two checks a module runs at most one region's instructions
// (plus the work of one bulk-memory instruction or host call). The fuel is
// therefore an upper bound on instructions executed: the host sets it before
// a call, and the import (the host) decides on each exhaustion whether to
// refill it or to end the call by panicking. Branch depths are unchanged,
// since each inserted check is a closed if-block.
//
// Invariants: Instrument never changes what a module computes, only adds the
// checks; its output is valid whenever its input is; it refuses (ErrModule)
// input it cannot parse, opcodes it does not know (exception handling, GC)
// and modules that already use the names it adds.
package meter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Names the instrumented module uses.
const (
	ImportModule = "weir_meter"
	ImportName   = "fuel_exhausted"
	GlobalExport = "weir_meter_fuel"
)

// ErrModule is returned by Instrument for input it cannot instrument: not
// a WebAssembly binary, truncated or malformed, an opcode outside the
// supported proposals, or a module already importing ImportModule or
// exporting GlobalExport.
var ErrModule = errors.New("meter: module")

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	secData     = 11
	secDataCnt  = 12
	secTag      = 13
)

// order ranks the known sections in the order the binary format requires.
var order = map[byte]int{secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCnt: 11, secCode: 12, secData: 13}

type section struct {
	id   byte
	body []byte
}

// Instrument returns the metered form of the module wasm.
func Instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly binary (version 1)", ErrModule)
	}
	var secs []section
	r := reader{b: wasm, off: 8}
	for r.more() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrModule, id, r.err)
		}
		secs = append(secs, section{id, body})
	}
	m := &module{}
	// First pass: counts the rewrite depends on.
	for _, s := range secs {
		var err error
		switch s.id {
		case secType:
			err = m.scanTypes(s.body)
		case secFunction:
			err = m.scanFunctions(s.body)
		case secImport:
			err = m.scanImports(s.body)
		case secGlobal:
			m.globals, err = count(s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrModule, s.id, err)
		}
	}
	m.fuelGlobal = m.importedGlobals + m.globals
	m.meterFunc = m.importedFuncs

	have := map[byte]bool{}
	out := make([]section, 0, len(secs)+4)
	for _, s := range secs {
		have[s.id] = true
		var body []byte
		var err error
		switch s.id {
		case secType:
			body, err = appendToVec(s.body, []byte{0x60, 0, 0})
		case secImport:
			body, err = appendToVec(s.body, m.meterImport())
		case secGlobal:
			body, err = m.rewriteGlobals(s.body)
		case secExport:
			body, err = m.rewriteExports(s.body)
		case secStart:
			body, err = m.rewriteStart(s.body)
		case secElement:
			body, err = m.rewriteElements(s.body)
		case secCode:
			body, err = m.rewriteCode(s.body)
		case secCustom:
			body = m.rewriteCustom(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrModule, s.id, err)
		}
		out = append(out, section{s.id, body})
	}
	// Sections the module lacks.
	if !have[secType] {
		out = insert(out, section{secType, []byte{1, 0x60, 0, 0}})
	}
	if !have[secImport] {
		out = insert(out, section{secImport, append([]byte{1}, m.meterImport()...)})
	}
	if !have[secGlobal] {
		out = insert(out, section{secGlobal, append([]byte{1}, fuelGlobal...)})
	}
	if !have[secExport] {
		out = insert(out, section{secExport, append([]byte{1}, m.fuelExport()...)})
	}
	size := 8
	for _, s := range out {
		size += 1 + 5 + len(s.body)
	}
	b := make([]byte, 0, size)
	b = append(b, wasm[:8]...)
	for _, s := range out {
		b = append(b, s.id)
		b = binary.AppendUvarint(b, uint64(len(s.body)))
		b = append(b, s.body...)
	}
	return b, nil
}

// insert puts a known section where the order requires it.
func insert(secs []section, s section) []section {
	at := len(secs)
	for i, o := range secs {
		if o.id != secCustom && order[o.id] > order[s.id] {
			at = i
			break
		}
	}
	secs = append(secs, section{})
	copy(secs[at+1:], secs[at:])
	secs[at] = s
	return secs
}

type module struct {
	types, globals                 uint32
	params                         []uint32 // parameter count of each type
	funcTypes                      []uint32 // type of each defined function
	importedFuncs, importedGlobals uint32
	fuelGlobal, meterFunc          uint32
}

// fuelGlobal: (mut i64) initialised to 0.
var fuelGlobal = []byte{0x7E, 0x01, 0x42, 0x00, 0x0B}

func (m *module) meterImport() []byte {
	b := appendName(nil, ImportModule)
	b = appendName(b, ImportName)
	b = append(b, 0x00)
	return binary.AppendUvarint(b, uint64(m.types))
}

func (m *module) fuelExport() []byte {
	b := appendName(nil, GlobalExport)
	b = append(b, 0x03)
	return binary.AppendUvarint(b, uint64(m.fuelGlobal))
}

// fn maps a function index of the input to the output.
func (m *module) fn(i uint32) uint32 {
	if i >= m.importedFuncs {
		return i + 1
	}
	return i
}

func (m *module) scanTypes(b []byte) error {
	r := reader{b: b}
	m.types = r.u32()
	for i := uint32(0); i < m.types && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			return fmt.Errorf("type %d: form 0x%02x", i, form)
		}
		np := r.u32()
		r.bytes(int(np))
		r.bytes(int(r.u32()))
		m.params = append(m.params, np)
	}
	return r.end()
}

func (m *module) scanFunctions(b []byte) error {
	r := reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		m.funcTypes = append(m.funcTypes, r.u32())
	}
	return r.end()
}

func (m *module) scanImports(b []byte) error {
	r := reader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod := r.name()
		r.name()
		if mod == ImportModule {
			return fmt.Errorf("the module already imports from %q", ImportModule)
		}
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
			m.importedFuncs++
		case 0x01:
			r.valtype()
			r.limits()
		case 0x02:
			r.limits()
		case 0x03:
			r.valtype()
			r.byte()
			m.importedGlobals++
		case 0x04:
			r.byte()
			r.u32()
		default:
			return fmt.Errorf("import %d: unknown kind 0x%02x", i, kind)
		}
	}
	return r.end()
}

func (m *module) rewriteGlobals(b []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	w := binary.AppendUvarint(make([]byte, 0, len(b)+16), uint64(n)+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.off
		r.valtype()
		r.byte()
		w = append(w, b[start:r.off]...)
		var err error
		if w, err = m.constExpr(&r, w); err != nil {
			return nil, fmt.Errorf("global %d: %v", i, err)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return append(w, fuelGlobal...), nil
}

func (m *module) rewriteExports(b []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	w := binary.AppendUvarint(make([]byte, 0, len(b)+32), uint64(n)+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		if name == GlobalExport {
			return nil, fmt.Errorf("the module already exports %q", GlobalExport)
		}
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			idx = m.fn(idx)
		}
		w = appendName(w, name)
		w = append(w, kind)
		w = binary.AppendUvarint(w, uint64(idx))
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return append(w, m.fuelExport()...), nil
}

func (m *module) rewriteStart(b []byte) ([]byte, error) {
	r := reader{b: b}
	idx := r.u32()
	if err := r.end(); err != nil {
		return nil, err
	}
	return binary.AppendUvarint(nil, uint64(m.fn(idx))), nil
}

func (m *module) rewriteElements(b []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	w := binary.AppendUvarint(make([]byte, 0, len(b)+16), uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if flags > 7 {
			return nil, fmt.Errorf("element segment %d: flags %d", i, flags)
		}
		w = binary.AppendUvarint(w, uint64(flags))
		var err error
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			w = binary.AppendUvarint(w, uint64(r.u32()))
		}
		if flags&1 == 0 { // active: an offset expression
			if w, err = m.constExpr(&r, w); err != nil {
				return nil, fmt.Errorf("element segment %d: %v", i, err)
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			w = append(w, r.byte())
		}
		cnt := r.u32()
		w = binary.AppendUvarint(w, uint64(cnt))
		for j := uint32(0); j < cnt && r.err == nil; j++ {
			if flags&4 == 0 {
				w = binary.AppendUvarint(w, uint64(m.fn(r.u32())))
			} else if w, err = m.constExpr(&r, w); err != nil {
				return nil, fmt.Errorf("element segment %d: %v", i, err)
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return w, nil
}

// constExpr copies a constant expression, through its end, rewriting
// function references.
func (m *module) constExpr(r *reader, w []byte) ([]byte, error) {
	depth := 0
	for r.err == nil {
		op, err := m.instr(r, &w)
		if err != nil {
			return nil, err
		}
		switch op {
		case opBlock, opLoop, opIf:
			depth++
		case opEnd:
			if depth == 0 {
				return w, nil
			}
			depth--
		}
	}
	return nil, r.err
}

// rewriteCustom shifts the function indices of the name section; other
// custom sections are copied. A name section that does not parse is
// dropped (names only serve stack traces).
func (m *module) rewriteCustom(b []byte) []byte {
	r := reader{b: b}
	if r.name() != "name" || r.err != nil {
		return b
	}
	w := append([]byte(nil), b[:r.off]...)
	for r.more() {
		id := r.byte()
		sub := r.bytes(int(r.u32()))
		if r.err != nil {
			return nil
		}
		var out []byte
		switch id {
		case 1: // function names: namemap
			out = m.nameMap(sub, false)
		case 2, 3: // local and label names: indirect namemaps keyed by function
			out = m.nameMap(sub, true)
		default:
			out = sub
		}
		if out == nil {
			return nil
		}
		w = append(w, id)
		w = binary.AppendUvarint(w, uint64(len(out)))
		w = append(w, out...)
	}
	return w
}

func (m *module) nameMap(b []byte, indirect bool) []byte {
	r := reader{b: b}
	n := r.u32()
	w := binary.AppendUvarint(make([]byte, 0, len(b)+8), uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		w = binary.AppendUvarint(w, uint64(m.fn(r.u32())))
		start := r.off
		if indirect {
			k := r.u32()
			for j := uint32(0); j < k && r.err == nil; j++ {
				r.u32()
				r.name()
			}
		} else {
			r.name()
		}
		w = append(w, b[start:r.off]...)
	}
	if r.end() != nil {
		return nil
	}
	return w
}

func (m *module) rewriteCode(b []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	w := binary.AppendUvarint(make([]byte, 0, len(b)+len(b)/4), uint64(n))
	var costs []int64
	var body []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		fb := r.bytes(int(size))
		if r.err != nil {
			break
		}
		var err error
		if int(i) >= len(m.funcTypes) || int(m.funcTypes[i]) >= len(m.params) {
			return nil, fmt.Errorf("function %d: no type", m.importedFuncs+i)
		}
		body, costs, err = m.rewriteBody(fb, m.params[m.funcTypes[i]], body[:0], costs[:0])
		if err != nil {
			return nil, fmt.Errorf("function %d: %v", m.importedFuncs+i, err)
		}
		w = binary.AppendUvarint(w, uint64(len(body)))
		w = append(w, body...)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return w, nil
}

// rewriteBody instruments one function body. A first pass counts the
// instructions of each region (region 0 is the body outside loops, region
// k the k-th loop in order of appearance); the second copies the body with
// a check at its entry and after each loop opcode.
func (m *module) rewriteBody(fb []byte, params uint32, w []byte, costs []int64) ([]byte, []int64, error) {
	r := reader{b: fb}
	nl := r.u32()
	locals := uint64(params)
	for j := uint32(0); j < nl && r.err == nil; j++ {
		locals += uint64(r.u32())
		r.valtype()
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if locals >= math.MaxUint32 {
		return nil, nil, errors.New("too many locals")
	}
	localsEnd := r.off
	codeStart := r.off
	tmp := uint32(locals) // the scratch local the checks add

	costs = append(costs, 0)
	stack := []int{0} // region of each open block
	for r.more() {
		op, err := m.instr(&r, nil)
		if err != nil {
			return nil, nil, err
		}
		top := stack[len(stack)-1]
		costs[top]++
		switch op {
		case opLoop:
			costs = append(costs, 0)
			stack = append(stack, len(costs)-1)
		case opBlock, opIf:
			stack = append(stack, top)
		case opEnd:
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 && r.more() {
			return nil, nil, errors.New("instructions after the function's end")
		}
	}
	if len(stack) != 0 {
		return nil, nil, errors.New("function body ends inside a block")
	}

	// The locals with one more group: a scratch i64.
	w = binary.AppendUvarint(w, uint64(nl)+1)
	w = append(w, fb[uleb32Len(fb):localsEnd]...)
	w = append(w, 1, 0x7E)
	w = m.check(w, tmp, costs[0])
	r = reader{b: fb, off: codeStart}
	loop := 0
	for r.more() {
		op, err := m.instr(&r, &w)
		if err != nil {
			return nil, nil, err
		}
		if op == opLoop {
			loop++
			w = m.check(w, tmp, costs[loop])
		}
	}
	return w, costs, nil
}

// check appends: tmp = fuel - cost; fuel = tmp; if tmp < 0 { call meter }.
func (m *module) check(w []byte, tmp uint32, cost int64) []byte {
	w = append(w, 0x23)
	w = binary.AppendUvarint(w, uint64(m.fuelGlobal))
	w = append(w, 0x42)
	w = appendSleb(w, cost)
	w = append(w, 0x7D, 0x22) // i64.sub, local.tee
	w = binary.AppendUvarint(w, uint64(tmp))
	w = append(w, 0x24) // global.set
	w = binary.AppendUvarint(w, uint64(m.fuelGlobal))
	w = append(w, 0x20) // local.get
	w = binary.AppendUvarint(w, uint64(tmp))
	w = append(w, 0x42, 0x00, 0x53, 0x04, 0x40, 0x10) // i64.const 0, i64.lt_s, if, call
	w = binary.AppendUvarint(w, uint64(m.meterFunc))
	return append(w, 0x0B)
}

// uleb32Len is the length of the LEB128 at the start of b.
func uleb32Len(b []byte) int {
	for i, c := range b {
		if c&0x80 == 0 {
			return i + 1
		}
	}
	return len(b)
}

const (
	opBlock = 0x02
	opLoop  = 0x03
	opIf    = 0x04
	opEnd   = 0x0B
)

// instr reads one instruction and, when w is not nil, appends it (with its
// function index rewritten) to *w. It returns the opcode (the prefix byte
// for prefixed instructions).
func (m *module) instr(r *reader, w *[]byte) (byte, error) {
	start := r.off
	op := r.byte()
	var fnAt, fnEnd int = -1, -1 // a function index immediate to rewrite
	switch {
	case op == 0x00 || op == 0x01 || op == 0x05 || op == opEnd || op == 0x0F || op == 0x1A || op == 0x1B:
	case op == opBlock || op == opLoop || op == opIf:
		r.sleb(33)
	case op == 0x0C || op == 0x0D: // br, br_if
		r.u32()
	case op == 0x0E: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x10 || op == 0x12 || op == 0xD2: // call, return_call, ref.func
		fnAt = r.off
		r.u32()
		fnEnd = r.off
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1C: // select t*
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.valtype()
		}
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3E: // loads and stores
		r.memarg()
	case op == 0x3F || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41:
		r.sleb(32)
	case op == 0x42:
		r.sleb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op >= 0x45 && op <= 0xC4: // numeric, sign extension
	case op == 0xD0: // ref.null
		r.sleb(33)
	case op == 0xD1: // ref.is_null
	case op == 0xFC:
		sub := r.u32()
		switch {
		case sub <= 7: // saturating truncation
		case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
			r.u32()
			r.u32()
		case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
			r.u32()
		default:
			return 0, fmt.Errorf("unknown instruction 0xFC %d at byte %d", sub, start)
		}
	case op == 0xFD:
		sub := r.u32()
		switch {
		case sub <= 11 || sub == 92 || sub == 93: // loads and stores
			r.memarg()
		case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
			r.bytes(16)
		case sub >= 21 && sub <= 34: // lane access
			r.byte()
		case sub >= 84 && sub <= 91: // load and store lane
			r.memarg()
			r.byte()
		case sub <= 275:
		default:
			return 0, fmt.Errorf("unknown instruction 0xFD %d at byte %d", sub, start)
		}
	case op == 0xFE:
		sub := r.u32()
		if sub == 3 { // atomic.fence
			r.byte()
		} else if sub <= 0x4E {
			r.memarg()
		} else {
			return 0, fmt.Errorf("unknown instruction 0xFE %d at byte %d", sub, start)
		}
	default:
		return 0, fmt.Errorf("unsupported instruction 0x%02X at byte %d", op, start)
	}
	if r.err != nil {
		return 0, r.err
	}
	if w != nil {
		if fnAt < 0 {
			*w = append(*w, r.b[start:r.off]...)
		} else {
			idx, _ := binary.Uvarint(r.b[fnAt:fnEnd])
			*w = append(*w, r.b[start:fnAt]...)
			*w = binary.AppendUvarint(*w, uint64(m.fn(uint32(idx))))
		}
	}
	return op, nil
}

// count reads a vector's length.
func count(b []byte) (uint32, error) {
	r := reader{b: b}
	n := r.u32()
	return n, r.err
}

// appendToVec adds one encoded element to a vector.
func appendToVec(b, elem []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	w := binary.AppendUvarint(make([]byte, 0, len(b)+len(elem)+5), uint64(n)+1)
	w = append(w, b[r.off:]...)
	return append(w, elem...), nil
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// reader decodes the binary format; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) more() bool { return r.err == nil && r.off < len(r.b) }

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format+" at byte %d", append(a, r.off)...)
	}
}

func (r *reader) end() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d bytes left over", len(r.b)-r.off)
	}
	return r.err
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.fail("unexpected end")
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits+7 {
			r.fail("LEB128 too long")
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7F) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) u32() uint32 {
	v := r.uleb(32)
	if v > math.MaxUint32 {
		r.fail("u32 out of range")
	}
	return uint32(v)
}

func (r *reader) sleb(bits uint) {
	for shift := uint(0); ; shift += 7 {
		if shift >= bits+7 {
			r.fail("LEB128 too long")
			return
		}
		c := r.byte()
		if r.err != nil || c&0x80 == 0 {
			return
		}
	}
}

func (r *reader) name() string {
	n := r.u32()
	return string(r.bytes(int(n)))
}

// valtype reads a value or reference type (one byte in the supported
// proposals).
func (r *reader) valtype() { r.byte() }

func (r *reader) limits() {
	flags := r.byte()
	r.uleb(64)
	if flags&1 != 0 {
		r.uleb(64)
	}
}

// memarg reads alignment (with the multi-memory bit) and offset.
func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 {
		r.u32()
	}
	r.uleb(64)
}
