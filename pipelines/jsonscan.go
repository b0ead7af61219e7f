package pipelines

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// A single-pass JSON object scanner for lazy decoding: it checks that a
// value is valid JSON (the same syntax encoding/json accepts) and, in the
// same pass, notes where the top-level fields an expression reads are.
// Only those are then decoded. Fuzzed against encoding/json (FuzzScan).

// maxScanDepth bounds nesting; deeper values are decoded the slow way.
const maxScanDepth = 512

type span struct{ start, end int }

// strStop marks the bytes a string scan must stop at: the closing quote,
// a backslash and the control characters JSON forbids in strings.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanner is reused from record to record.
type scanner struct {
	b     []byte
	depth int
	// wanted top-level names and, after scan, their value spans (end 0:
	// absent).
	wanted []string
	found  []span
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace(i int) int {
	for i < len(s.b) && isSpace(s.b[i]) {
		i++
	}
	return i
}

// scanTop checks that b is one valid JSON object (with surrounding white
// space) and records the spans of the wanted fields (the last one wins on
// duplicates, as in encoding/json). ok is false when b is not an object,
// not valid, or too deep.
func (s *scanner) scanTop(b []byte) (ok bool) {
	s.b, s.depth = b, 0
	s.found = s.found[:0]
	for range s.wanted {
		s.found = append(s.found, span{})
	}
	i := s.skipSpace(0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	end, ok := s.object(i, true)
	if !ok {
		return false
	}
	return s.skipSpace(end) == len(b)
}

// value scans the value at i and returns its end.
func (s *scanner) value(i int) (int, bool) {
	if i >= len(s.b) {
		return i, false
	}
	switch c := s.b[i]; {
	case c == '{':
		return s.object(i, false)
	case c == '[':
		return s.array(i)
	case c == '"':
		end, _, ok := s.str(i)
		return end, ok
	case c == '-' || c >= '0' && c <= '9':
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	}
	return i, false
}

func (s *scanner) literal(i int, lit string) (int, bool) {
	if len(s.b)-i < len(lit) || string(s.b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func (s *scanner) object(i int, top bool) (int, bool) {
	s.depth++
	if s.depth > maxScanDepth {
		return i, false
	}
	defer func() { s.depth-- }()
	i = s.skipSpace(i + 1)
	if i < len(s.b) && s.b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(s.b) || s.b[i] != '"' {
			return i, false
		}
		kEnd, escaped, ok := s.str(i)
		if !ok {
			return i, false
		}
		key := s.b[i+1 : kEnd-1]
		i = s.skipSpace(kEnd)
		if i >= len(s.b) || s.b[i] != ':' {
			return i, false
		}
		i = s.skipSpace(i + 1)
		vStart := i
		if i, ok = s.value(i); !ok {
			return i, false
		}
		if top {
			s.note(key, escaped, vStart, i)
		}
		i = s.skipSpace(i)
		if i >= len(s.b) {
			return i, false
		}
		switch s.b[i] {
		case ',':
			i = s.skipSpace(i + 1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (s *scanner) note(key []byte, escaped bool, start, end int) {
	name := ""
	for w, want := range s.wanted {
		if escaped {
			if name == "" {
				name = unquoteKey(key)
			}
			if name != want {
				continue
			}
		} else if string(key) != want {
			continue
		}
		s.found[w] = span{start, end}
	}
}

// unquoteKey decodes an escaped key (its bytes between the quotes).
func unquoteKey(key []byte) string {
	var k string
	q := make([]byte, 0, len(key)+2)
	q = append(append(append(q, '"'), key...), '"')
	if json.Unmarshal(q, &k) != nil {
		return ""
	}
	return k
}

func (s *scanner) array(i int) (int, bool) {
	s.depth++
	if s.depth > maxScanDepth {
		return i, false
	}
	defer func() { s.depth-- }()
	i = s.skipSpace(i + 1)
	if i < len(s.b) && s.b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = s.value(i); !ok {
			return i, false
		}
		i = s.skipSpace(i)
		if i >= len(s.b) {
			return i, false
		}
		switch s.b[i] {
		case ',':
			i = s.skipSpace(i + 1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// str scans the string at i (at its opening quote) and returns the index
// after the closing quote and whether it had escapes.
func (s *scanner) str(i int) (end int, escaped, ok bool) {
	b := s.b
	for i++; i < len(b); i++ {
		// Most bytes of a string need no look: skip them in a tight loop.
		for i < len(b) && !strStop[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, true
		case c < 0x20:
			return i, escaped, false
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return i, escaped, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, escaped, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, escaped, false
					}
				}
				i += 4
			default:
				return i, escaped, false
			}
		}
	}
	return i, escaped, false
}

func (s *scanner) number(i int) (int, bool) {
	b := s.b
	start := i
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	intEnd := i
	if i < len(b) && b[i] == '.' {
		i++
		digits := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == digits {
			return i, false
		}
	}
	exp := false
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		exp = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		digits := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == digits {
			return i, false
		}
	}
	// encoding/json cannot decode a number beyond float64 into an any; a
	// value holding one decodes as a string, so lazy decoding must give
	// up on it too. Only an exponent or over 308 integer digits can get
	// there.
	if exp || intEnd-start > 308 {
		if _, err := strconv.ParseFloat(string(b[start:i]), 64); err != nil {
			return i, false
		}
	}
	return i, true
}

// decodeSpan decodes one scanned (valid) JSON value as encoding/json
// would into an any: strings, float64, bools, nil, maps and slices. ok is
// false where encoding/json fails (a number beyond float64).
func decodeSpan(b []byte) (any, bool) {
	switch b[0] {
	case '"':
		s := b[1 : len(b)-1]
		plain := true
		for _, c := range s {
			if c == '\\' || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain {
			if len(s) == 0 {
				return "", true
			}
			// The string aliases the record's value, which stays alive
			// and unchanged while the record is processed (and after).
			return unsafe.String(&s[0], len(s)), true
		}
	case 't':
		return true, true
	case 'f':
		return false, true
	case 'n':
		return nil, true
	case '{', '[':
	default:
		f, err := strconv.ParseFloat(string(b), 64)
		return f, err == nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	return v, err == nil
}
