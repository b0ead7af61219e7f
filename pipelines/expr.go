package pipelines

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
}

// envUse says which environment fields an expression reads, so a record
// is decoded only as far as some expression needs.
type envUse struct {
	key, value, headers bool
}

func (u *envUse) or(o envUse) {
	u.key = u.key || o.key
	u.value = u.value || o.value
	u.headers = u.headers || o.headers
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
		}
	}
}

// program is a compiled expression and what it reads.
type program struct {
	src string
	p   *vm.Program
	use envUse
}

// compile compiles the expression in scalar node n; boolean asks for a
// boolean result. Errors are reported at the expression's position.
func (d *decoder) compile(n *yaml.Node, what string, boolean bool) (*program, bool) {
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
	prog := &program{src: src, p: p}
	node := p.Node()
	ast.Walk(&node, useVisitor{&prog.use})
	return prog, true
}

// exprError reports a compile error at its place inside the YAML scalar.
func (d *decoder) exprError(n *yaml.Node, what, src string, err error, boolean bool) {
	pos := d.pos(n)
	msg := err.Error()
	if fe, ok := err.(*file.Error); ok {
		msg = fe.Message
		switch n.Style {
		case yaml.LiteralStyle, yaml.FoldedStyle:
			pos.Line += fe.Line
			pos.Col = n.Column + 2 + fe.Column
		default:
			if fe.Line > 1 {
				pos.Line += fe.Line - 1
				pos.Col = 1 + fe.Column
			} else {
				quote := 0
				if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
					quote = 1
				}
				pos.Col += quote + utf8.RuneCountInString(src[:min(len(src), byteOffset(src, fe.Column))])
			}
		}
	}
	hint := "fields: key, value, headers, timestamp, topic, partition, offset"
	if boolean && strings.Contains(msg, "expected bool") {
		hint = "this stage needs a true/false expression, e.g. value.amount > 100"
	}
	d.errs = append(d.errs, &SpecError{Pos: pos, Msg: fmt.Sprintf("%s: %s", what, msg), Hint: hint})
}

// byteOffset is the byte offset of rune column col in s.
func byteOffset(s string, col int) int {
	i := 0
	for range col {
		if i >= len(s) {
			break
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	return i
}

// evaluator runs programs on records, filling the environment only with
// what the programs read.
type evaluator struct {
	use envUse
	env exprEnv
	vm  vm.VM
}

func (e *evaluator) load(r *sdk.Record) {
	e.env.Topic, e.env.Partition, e.env.Offset, e.env.Timestamp = r.Topic, int(r.Partition), int(r.Offset), r.Timestamp
	if e.use.key {
		e.env.Key = string(r.Key)
	}
	if e.use.value {
		e.env.Value = decodeValue(r.Value)
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
	v, err := e.vm.Run(p.p, &e.env)
	if err != nil {
		return nil, oneLine(err)
	}
	return v, nil
}

// oneLine drops expr-lang's source snippet from a run-time error: the
// error travels in a dead letter's header and a log line.
func oneLine(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Errorf("%s (at column %d)", fe.Message, fe.Column+1)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(msg)
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
