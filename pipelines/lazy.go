package pipelines

import (
	"slices"
	"strconv"

	"github.com/expr-lang/expr/ast"
)

// Lazy value decoding. Most expressions read a few fields of a JSON value
// (value.country, value.user.id). For those, decoding the whole value into
// maps costs ten times the expression. So when every use of value in an
// expression is such a chain of constant field names, the evaluator reads
// only those fields  and hands the expression a map holding just them: the
// expression cannot tell, since it reads nothing else. Any other use of
// value (value itself, value[key], len(value), ...) decodes it whole. The
// value is checked to be one valid JSON object in the same single pass
// that finds the fields (jsonscan.go), so a malformed value behaves as it
// would when decoded whole: it is a string.

// valuePaths returns the field paths an expression reads from value, and
// false when it uses value in a way that needs the whole of it.
func valuePaths(root ast.Node) ([][]string, bool) {
	var members []*ast.MemberNode
	var idents []*ast.IdentifierNode
	ast.Walk(&root, collector(func(n ast.Node) {
		switch x := n.(type) {
		case *ast.MemberNode:
			members = append(members, x)
		case *ast.IdentifierNode:
			// $env (as in $env.value.x) reads value past the paths: whole.
			if x.Value == "value" || x.Value == "$env" {
				idents = append(idents, x)
			}
		}
	}))
	inner := map[ast.Node]bool{}
	for _, m := range members {
		if c, ok := m.Node.(*ast.MemberNode); ok {
			inner[c] = true
		}
	}
	covered := map[*ast.IdentifierNode]bool{}
	var paths [][]string
	for _, m := range members {
		if inner[m] {
			continue
		}
		path, id := memberChain(m)
		if id == nil {
			continue
		}
		covered[id] = true
		paths = append(paths, path)
	}
	for _, id := range idents {
		if !covered[id] {
			return nil, false
		}
	}
	return prunePaths(paths), true
}

type collector func(ast.Node)

func (c collector) Visit(n *ast.Node) { c(*n) }

// memberChain unwinds value.a.b (or value["a"]["b"]) into [a b] and the
// value identifier at its root; nil when the chain is not all constant
// field names on value.
func memberChain(m *ast.MemberNode) ([]string, *ast.IdentifierNode) {
	var rev []string
	var n ast.Node = m
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			s, ok := x.Property.(*ast.StringNode)
			if !ok || x.Method {
				return nil, nil
			}
			rev = append(rev, s.Value)
			n = x.Node
		case *ast.IdentifierNode:
			if x.Value != "value" {
				return nil, nil
			}
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			return rev, x
		default:
			return nil, nil
		}
	}
}

// prunePaths drops duplicates and paths that extend another path (the
// shorter one brings the whole subtree).
func prunePaths(paths [][]string) [][]string {
	var out [][]string
	for i, p := range paths {
		keep := true
		for j, q := range paths {
			if i == j {
				continue
			}
			if len(q) < len(p) && isPrefix(q, p) || len(q) == len(p) && isPrefix(q, p) && j < i {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, p)
		}
	}
	return out
}

func isPrefix(q, p []string) bool {
	for i := range q {
		if q[i] != p[i] {
			return false
		}
	}
	return true
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
