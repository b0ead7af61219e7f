package pipelines

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML document and collects every problem with its
// position, so one run of `weir pipeline validate` reports them all.
type decoder struct {
	file string
	errs SpecErrors
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errorf(n *yaml.Node, hint, format string, args ...any) {
	d.errs = append(d.errs, &SpecError{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "an unexpected node"
}

// field is a key of a mapping with its value node.
type field struct {
	key, val *yaml.Node
}

// fields checks that n is a mapping whose keys are all in known (no
// duplicates) and returns them by name. what names the mapping in errors.
func (d *decoder) fields(n *yaml.Node, what string, known ...string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "%s: want a mapping, got %s", what, kindName(n))
		return nil
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "", "%s: keys must be strings", what)
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.errorf(k, "", "%s: %q given twice", what, k.Value)
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			d.errorf(k, suggest(k.Value, known), "%s: unknown field %q", what, k.Value)
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out
}

// suggest names the known word closest to s, or lists them.
func suggest(s string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= max(2, len(s)/3) {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "known: " + strings.Join(known, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!bool" || n.Tag == "!!int" || n.Tag == "!!float" {
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			// A bare number or boolean where a string is wanted: quote it.
			d.errorf(n, fmt.Sprintf("quote it: '%s'", n.Value), "%s: want a string, got %s", what, kindName(n))
			return "", false
		}
		d.errorf(n, "", "%s: want a string, got %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) nonEmpty(n *yaml.Node, what string) (string, bool) {
	s, ok := d.str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(n, "", "%s: must not be empty", what)
		return "", false
	}
	return s, ok
}

func (d *decoder) integer(n *yaml.Node, what string, lo, hi int64) (int64, bool) {
	n = resolve(n)
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
		d.errorf(n, "", "%s: want an integer, got %s", what, kindName(n))
		return 0, false
	}
	if v < lo || v > hi {
		d.errorf(n, "", "%s: %d is out of range [%d, %d]", what, v, lo, hi)
		return 0, false
	}
	return v, true
}

func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "", "%s: want a duration like 500ms or 2s, got %s", what, kindName(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		d.errorf(n, "write a number with a unit: 500ms, 2s, 1m", "%s: %q is not a duration", what, n.Value)
		return 0, false
	}
	return v, true
}

// strings decodes a list of strings, or one string as a list of one.
func (d *decoder) strList(n *yaml.Node, what string) ([]string, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		s, ok := d.nonEmpty(n, what)
		return []string{s}, ok
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "", "%s: want a list of strings, got %s", what, kindName(n))
		return nil, false
	}
	var out []string
	ok := true
	for _, e := range n.Content {
		s, good := d.nonEmpty(e, what)
		ok = ok && good
		out = append(out, s)
	}
	if len(out) == 0 {
		d.errorf(n, "", "%s: the list is empty", what)
		ok = false
	}
	return out, ok
}
