package pipelines

import (
	"slices"
	"strconv"

	"github.com/expr-lang/expr/ast"
)

// Lazy value decoding. Most expressions read a few fields of a JSON value
// (value.country, value.user.id). For those, decoding the whole value into
// maps costs ten times the expression. So when every use of value in an
// expression is a chain of constant field names, the expression is
// rewritten to read each top-level field from an environment slot
// (slotPatcher), and the evaluator decodes only those fields into the
// slots (lazySlots): the expression cannot tell, since it reads nothing
// else. Any other use of value (value itself, value[key], len(value),
// $env...) decodes it whole. The value is checked to be one valid JSON
// object in the same single pass that finds the fields (jsonscan.go), so a
// malformed value behaves as it would when decoded whole: it is a string,
// and the original expression runs on it.

// readsOnlyFields reports whether every use of value in the expression is
// a chain of constant field names (value.a, value["a"].b).
func readsOnlyFields(root ast.Node) bool {
	var members []*ast.MemberNode
	var idents []*ast.IdentifierNode
	ast.Walk(&root, collector(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.MemberNode:
			members = append(members, x)
		case *ast.IdentifierNode:
			// $env (as in $env.value.x) reads value past the fields: whole.
			if x.Value == "value" || x.Value == "$env" {
				idents = append(idents, x)
			}
		}
	}))
	covered := map[*ast.IdentifierNode]bool{}
	for _, m := range members {
		if id := chainRoot(m); id != nil {
			covered[id] = true
		}
	}
	for _, id := range idents {
		if !covered[id] {
			return false
		}
	}
	return true
}

type collector func(ast.Node)

func (c collector) Visit(n *ast.Node) { c(*n) }

// chainRoot is the value identifier at the root of value.a.b (or
// value["a"]["b"]); nil when the chain is not all constant field names on
// value.
func chainRoot(m *ast.MemberNode) *ast.IdentifierNode {
	var n ast.Node = m
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			if _, ok := x.Property.(*ast.StringNode); !ok || x.Method {
				return nil
			}
			n = x.Node
		case *ast.IdentifierNode:
			if x.Value != "value" {
				return nil
			}
			return x
		default:
			return nil
		}
	}
}

// slotTable assigns the top-level value fields read by one stage's
// expressions to environment slots __weir_v0, __weir_v1, ...
type slotTable struct {
	names []string
}

// slotPatcher rewrites value.FIELD (and value["FIELD"]) into the slot
// identifier of FIELD; value.a.b becomes __weir_vK.b, K the slot of a,
// which holds a decoded whole.
type slotPatcher struct {
	slots    *slotTable
	overflow bool
}

func (p *slotPatcher) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "value" {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	k := slices.Index(p.slots.names, prop.Value)
	if k < 0 {
		if len(p.slots.names) == maxSlots {
			p.overflow = true
			return
		}
		p.slots.names = append(p.slots.names, prop.Value)
		k = len(p.slots.names) - 1
	}
	ast.Patch(n, &ast.IdentifierNode{Value: "__weir_v" + strconv.Itoa(k)})
}

// lazySlots scans raw once and decodes the wanted top-level fields into
// slots (nil when absent). It returns false when raw is not a valid JSON
// object (or holds what encoding/json cannot decode): the caller then
// decodes raw whole and runs the original expressions, so the result or
// error is the same as without laziness.
func lazySlots(sc *scanner, raw []byte, slots []*any) bool {
	if !sc.scanTop(raw) {
		return false
	}
	for w := range sc.wanted {
		*slots[w] = nil
		if sp := sc.found[w]; sp.end != 0 {
			v, ok := decodeSpan(raw[sp.start:sp.end])
			if !ok {
				return false
			}
			*slots[w] = v
		}
	}
	return true
}
