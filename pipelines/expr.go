package pipelines

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/sdk"
)

// Limits on expressions, checked when a spec is loaded.
const (
	MaxExprLen   = 4096 // bytes of one expression
	MaxExprNodes = 1000 // expr-lang AST nodes of one expression
)

// exprEnv is the typed environment every expression is checked against
// and run with. key is the key as a string ("" when null); value is the
// value decoded from JSON when it is JSON, else the value as a string;
// headers maps each header key to its last value; timestamp is the
// record's time.
type exprEnv struct {
	Key       string            `expr:"key"`
	Value     any               `expr:"value"`
	Headers   map[string]string `expr:"headers"`
	Timestamp time.Time         `expr:"timestamp"`
	Topic     string            `expr:"topic"`
	Partition int               `expr:"partition"`
	Offset    int               `expr:"offset"`

	// Slots of lazily decoded top-level value fields (lazy.go).
	V0  any `expr:"__weir_v0"`
	V1  any `expr:"__weir_v1"`
	V2  any `expr:"__weir_v2"`
	V3  any `expr:"__weir_v3"`
	V4  any `expr:"__weir_v4"`
	V5  any `expr:"__weir_v5"`
	V6  any `expr:"__weir_v6"`
	V7  any `expr:"__weir_v7"`
	V8  any `expr:"__weir_v8"`
	V9  any `expr:"__weir_v9"`
	V10 any `expr:"__weir_v10"`
	V11 any `expr:"__weir_v11"`
	V12 any `expr:"__weir_v12"`
	V13 any `expr:"__weir_v13"`
	V14 any `expr:"__weir_v14"`
	V15 any `expr:"__weir_v15"`
}

// maxSlots is the number of V fields of exprEnv.
const maxSlots = 16

func (e *exprEnv) slots() [maxSlots]*any {
	return [maxSlots]*any{&e.V0, &e.V1, &e.V2, &e.V3, &e.V4, &e.V5, &e.V6, &e.V7, &e.V8, &e.V9, &e.V10, &e.V11, &e.V12, &e.V13, &e.V14, &e.V15}
}

// envUse says which environment fields an expression reads, so a record
// is decoded only as far as some expression needs.
type envUse struct {
	key, value, headers bool
	// wholeValue: some expression needs the whole decoded value; else
	// only fields in the stage's slots are read (see lazy.go).
	wholeValue bool
}

func (u *envUse) or(o envUse) {
	u.key = u.key || o.key
	u.value = u.value || o.value
	u.headers = u.headers || o.headers
	u.wholeValue = u.wholeValue || o.wholeValue
}

type useVisitor struct{ use *envUse }

func (v useVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		switch id.Value {
		case "key":
			v.use.key = true
		case "value":
			v.use.value = true
		case "headers":
			v.use.headers = true
		case "$env": // $env.value, $env["key"], get($env, ...): anything
			v.use.key, v.use.value, v.use.headers = true, true, true
		}
	}
}

// program is a compiled expression and what it reads. fast, when set, is
// the same expression with each value.FIELD read from an environment slot
// (see lazy.go); p is the original, run when the value is not a JSON
// object.
type program struct {
	src  string
	p    *vm.Program
	fast *vm.Program
	use  envUse
}

// compile compiles the expression in scalar node n; boolean asks for a
// boolean result. Errors are reported at the expression's position.
func (d *decoder) compile(n *yaml.Node, what string, boolean bool, slots *slotTable) (*program, bool) {
	src, ok := d.nonEmpty(n, what)
	if !ok {
		return nil, false
	}
	if len(src) > MaxExprLen {
		d.errorf(n, "split the work over several stages", "%s: expression of %d bytes, more than %d", what, len(src), MaxExprLen)
		return nil, false
	}
	opts := []expr.Option{expr.Env(exprEnv{}), expr.MaxNodes(MaxExprNodes)}
	if boolean {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		d.exprError(n, what, src, err, boolean)
		return nil, false
	}
	prog := &program{src: joinLines(src), p: p}
	node := p.Node()
	ast.Walk(&node, useVisitor{&prog.use})
	if prog.use.value {
		prog.use.wholeValue = !readsOnlyFields(node)
		if !prog.use.wholeValue {
			patch := &slotPatcher{slots: slots}
			fast, err := expr.Compile(src, append(opts, expr.Patch(patch))...)
			if err != nil || patch.overflow {
				prog.use.wholeValue = true
			} else {
				prog.fast = fast
			}
		}
	}
	return prog, true
}

// exprError reports a compile error at its place inside the YAML scalar.
func (d *decoder) exprError(n *yaml.Node, what, src string, err error, boolean bool) {
	pos := d.pos(n)
	msg := err.Error()
	if fe, ok := err.(*file.Error); ok {
		msg = fe.Message
		pos = d.scalarPos(n, runeOffset(src, fe.Line, fe.Column))
	}
	hint := "fields: key, value, headers, timestamp, topic, partition, offset"
	if boolean && strings.Contains(msg, "expected bool") {
		hint = "this stage needs a true/false expression, e.g. value.amount > 100"
	}
	if strings.Contains(msg, "exceeds maximum allowed nodes") {
		hint = fmt.Sprintf("at most %d nodes: split the work over several stages", MaxExprNodes)
	}
	d.errs = append(d.errs, &SpecError{Pos: pos, Msg: fmt.Sprintf("%s: %s", what, msg), Hint: hint})
}

// runeOffset is the offset in runes of line line (from 1), rune column
// col (from 0) of s.
func runeOffset(s string, line, col int) int {
	off := 0
	for ; line > 1; line-- {
		l, rest, ok := strings.Cut(s, "\n")
		if !ok {
			break
		}
		off += utf8.RuneCountInString(l) + 1
		s = rest
	}
	return off + col
}

// evaluator runs programs on records, filling the environment only with
// what the programs read.
type evaluator struct {
	use envUse
	env exprEnv
	vm  vm.VM
	// Lazy decoding: the top-level value fields named in slots go into
	// the environment's V slots; fast says the current record was decoded
	// that way (else Value holds the whole decoded value).
	slots *slotTable
	scan  *scanner
	ptrs  [maxSlots]*any
	fast  bool
}

// newEvaluator is the evaluator of a stage whose programs were compiled
// with slots.
func newEvaluator(use envUse, slots *slotTable) evaluator {
	return evaluator{use: use, slots: slots}
}

func (e *evaluator) load(r *sdk.Record) {
	e.env.Topic, e.env.Partition, e.env.Offset, e.env.Timestamp = r.Topic, int(r.Partition), int(r.Offset), r.Timestamp
	if e.use.key {
		e.env.Key = ""
		if len(r.Key) > 0 {
			// Aliases the record's key, unchanged while it is processed.
			e.env.Key = unsafe.String(&r.Key[0], len(r.Key))
		}
	}
	if e.use.value {
		e.env.Value, e.fast = nil, false
		if !e.use.wholeValue && e.slots != nil && len(e.slots.names) > 0 {
			if e.scan == nil {
				e.scan = &scanner{wanted: e.slots.names}
				e.ptrs = e.env.slots()
			}
			e.fast = lazySlots(e.scan, r.Value, e.ptrs[:len(e.slots.names)])
		}
		if !e.fast {
			e.env.Value = decodeValue(r.Value)
		}
	}
	if e.use.headers {
		h := make(map[string]string, len(r.Headers))
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		e.env.Headers = h
	}
}

func (e *evaluator) run(p *program) (any, error) {
	prog := p.p
	if e.fast && p.fast != nil {
		prog = p.fast
	}
	v, err := e.vm.Run(prog, &e.env)
	if err != nil {
		return nil, oneLine(err)
	}
	return v, nil
}

// oneLine drops expr-lang's source snippet from a run-time error: the
// error travels in a dead letter's header and a log line. Line breaks in
// the message itself (it may quote the record: "invalid date a\nb") are
// escaped.
func oneLine(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		if fe.Line > 1 {
			return fmt.Errorf("%s (at line %d, column %d)", lineBreaks.Replace(fe.Message), fe.Line, fe.Column+1)
		}
		return fmt.Errorf("%s (at column %d)", lineBreaks.Replace(fe.Message), fe.Column+1)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(lineBreaks.Replace(msg))
}

var lineBreaks = strings.NewReplacer("\n", `\n`, "\r", `\r`)

// joinLines is an expression written over several lines on one, for
// summaries and errors.
func joinLines(src string) string {
	if !strings.ContainsAny(src, "\r\n") {
		return src
	}
	var parts []string
	for _, l := range strings.FieldsFunc(src, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// decodeValue is a value as expressions see it: JSON decoded when it is
// valid JSON (numbers as float64), else the bytes as a string; nil (null)
// stays nil.
func decodeValue(b []byte) any {
	if b == nil {
		return nil
	}
	if json.Valid(b) {
		var v any
		if err := json.Unmarshal(b, &v); err == nil {
			return v
		}
	}
	return string(b)
}

// encodeValue turns an expression's result into record bytes: strings and
// byte slices as they are, nil as null, everything else as JSON.
func encodeValue(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("result of type %T cannot be encoded as JSON: %w", v, err)
	}
	return b, nil
}

// encodeKey turns a key expression's result into key bytes: strings and
// byte slices as they are, integers and floats in decimal, nil as null.
func encodeKey(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case float64:
		return strconv.AppendFloat(nil, x, 'f', -1, 64), nil
	case bool:
		return nil, fmt.Errorf("key expression gave a boolean (%v); keys are strings, numbers or null", x)
	}
	return nil, fmt.Errorf("key expression gave %T; keys are strings, numbers or null", v)
}
