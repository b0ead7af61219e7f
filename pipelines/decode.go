package pipelines

import (
	"encoding/json"
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
	// pipeline and stage name the pipeline and the stage being decoded
	// (for stages whose output names them).
	pipeline, stage string
	raw             []byte   // the spec's text, for positions inside scalars
	lines           []string // raw's lines, split on first use
	errs            SpecErrors
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

// sourceLines is the spec's text split into lines (without line breaks).
func (d *decoder) sourceLines() []string {
	if d.lines == nil {
		d.lines = strings.Split(strings.ReplaceAll(string(d.raw), "\r\n", "\n"), "\n")
	}
	return d.lines
}

// scalarPos is the position in the file of rune off of scalar n's value,
// undoing YAML's quoting, escapes, line folding and block indentation;
// d.pos(n) when the source is not at hand.
func (d *decoder) scalarPos(n *yaml.Node, off int) Pos {
	lines := d.sourceLines()
	if n.Kind != yaml.ScalarNode || n.Line < 1 || n.Line > len(lines) || n.Column < 1 {
		return d.pos(n)
	}
	at := func(ln, col int) Pos { return Pos{File: d.file, Line: ln + 1, Col: col + 1} }
	blank := func(s string) bool { return strings.TrimLeft(s, " \t") == "" }
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		// Content starts on the line after the indicator, indented as its
		// first non-blank line, less the spaces that line keeps in the
		// value (with an indentation indicator like |2).
		spaces := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
		indent := -1
		for _, l := range lines[n.Line:] {
			if !blank(l) {
				indent = spaces(l)
				break
			}
		}
		for _, l := range strings.Split(n.Value, "\n") {
			if !blank(l) {
				indent -= spaces(l)
				break
			}
		}
		if indent < 0 {
			return d.pos(n)
		}
		folded := n.Style&yaml.FoldedStyle != 0
		v, blanks, first, prevMore := 0, 0, true, false
		for ln := n.Line; ln < len(lines); ln++ {
			l := lines[ln]
			if blank(l) {
				blanks++
				continue
			}
			if spaces(l) < indent {
				break // the end of the block
			}
			text := []rune(l[indent:])
			more := text[0] == ' ' || text[0] == '\t'
			switch {
			case !folded || first || more || prevMore:
				v += blanks // each blank line is a line break
			case blanks > 0:
				v += blanks - 1 // the break before blank lines folds away
			}
			if off <= v+len(text) {
				return at(ln, indent+max(0, off-v))
			}
			v += len(text) + 1 // and a line break, or the space it folds to
			blanks, first, prevMore = 0, false, more
		}
		return d.pos(n)
	}
	single := n.Style&yaml.SingleQuotedStyle != 0
	double := n.Style&yaml.DoubleQuotedStyle != 0
	ln, c := n.Line-1, n.Column-1
	// The node starts at its anchor or tag, if any: skip them.
	for first := []rune(lines[ln]); c < len(first) && (first[c] == '&' || first[c] == '!'); {
		for c < len(first) && first[c] != ' ' && first[c] != '\t' {
			c++
		}
		for c < len(first) && (first[c] == ' ' || first[c] == '\t') {
			c++
		}
	}
	if single || double {
		c++ // the opening quote
	}
	v := 0
	for {
		line := []rune(lines[ln])
		end := len(line) // content ends before trailing white space
		for end > c && (line[end-1] == ' ' || line[end-1] == '\t') {
			end--
		}
		joined := false // a double-quoted line ending in \ joins the next
		for c < end {
			if v >= off {
				return at(ln, c)
			}
			switch r := line[c]; {
			case single && r == '\'':
				if c+1 < len(line) && line[c+1] == '\'' {
					c++
				} else {
					return at(ln, c) // the closing quote
				}
			case double && r == '"':
				return at(ln, c)
			case double && r == '\\':
				if c+1 == end {
					joined, c = true, end
					continue
				}
				c += map[rune]int{'x': 2, 'u': 4, 'U': 8}[line[c+1]] + 1
			}
			c++
			v++
		}
		if v >= off || ln+1 >= len(lines) {
			return at(ln, c)
		}
		// Fold the line break: a space, or the blank lines after it.
		ln++
		blanks := 0
		for ln < len(lines)-1 && blank(lines[ln]) {
			ln++
			blanks++
		}
		if !joined {
			v += max(1, blanks)
		}
		if v > off {
			return at(ln, 0)
		}
		next := lines[ln]
		c = len([]rune(next)) - len([]rune(strings.TrimLeft(next, " \t")))
	}
}

// jsonConfig is a stage's config (any YAML) as JSON, for a module or a
// plugin.
func (d *decoder) jsonConfig(n *yaml.Node, what string) ([]byte, bool) {
	var x any
	if err := n.Decode(&x); err != nil {
		d.errorf(n, "", "%s: %v", what, err)
		return nil, false
	}
	b, err := json.Marshal(jsonable(x))
	if err != nil {
		d.errorf(n, "", "%s: %v", what, err)
		return nil, false
	}
	return b, true
}
