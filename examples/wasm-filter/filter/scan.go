package filter

import (
	"encoding/json"
	"errors"
	"fmt"
)

// A one-pass JSON object scanner: it checks that a value is one valid JSON
// object (the syntax encoding/json accepts, white space around it allowed)
// and notes where the values of the wanted top-level fields are, without
// decoding anything or allocating. It is one loop with an explicit stack
// rather than a recursive descent: calls are what cost most in Go compiled
// to WASM.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

var (
	errNull      = errors.New("value is null, not a JSON object")
	errNotObject = errors.New("value is not a JSON object")
)

// span locates a field's value in the scanned bytes; end 0: absent.
type span struct {
	start, end int
	escaped    bool // a string value with a backslash escape
}

type scanner struct {
	wanted []string
	found  []span // per wanted name, after scan
	err    error  // why the last scan failed
	stack  []byte // '{' and '[' of the open containers
}

// what the scanner expects next
const (
	stValue        = iota // a value
	stValueOrClose        // a value or ']' (after '[')
	stKey                 // a field name (after ',' in an object)
	stKeyOrClose          // a field name or '}' (after '{')
	stAfterValue          // ',' or the end of the container
)

// stop marks the bytes a string scan stops at: the closing quote, a
// backslash and the control characters JSON forbids in strings.
var stop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (s *scanner) fail(i int, what string) bool {
	s.err = fmt.Errorf("value is not a valid JSON object: %s at byte %d", what, i)
	return false
}

// scan scans b; on false s.err says why. The last occurrence of a
// duplicated field wins, as in encoding/json.
func (s *scanner) scan(b []byte) bool {
	s.err = nil
	s.found = s.found[:0]
	for range s.wanted {
		s.found = append(s.found, span{})
	}
	if b == nil {
		s.err = errNull
		return false
	}
	n := len(b)
	i := 0
	for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	if i == n || b[i] != '{' {
		s.err = errNotObject
		return false
	}
	stack := append(s.stack[:0], '{')
	i++
	state := stKeyOrClose
	field, fieldStart := -1, 0 // the wanted field whose value is being scanned
	for {
		for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		if i >= n {
			return s.fail(i, "unexpected end")
		}
		c := b[i]
		if state == stValue && len(stack) == 1 {
			fieldStart = i
		}
		escaped := false
		switch {
		case state == stAfterValue:
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				i++
				if top == '{' {
					state = stKey
				} else {
					state = stValue
				}
				continue
			case c == '}' && top == '{' || c == ']' && top == '[':
				stack = stack[:len(stack)-1]
				i++
			case top == '{':
				return s.fail(i, "want ',' or '}'")
			default:
				return s.fail(i, "want ',' or ']'")
			}
		case c == '"': // a string, or a field name
			start := i
			for i++; ; {
				for i < n && !stop[b[i]] {
					i++
				}
				if i >= n {
					return s.fail(start, "unterminated string")
				}
				if b[i] == '"' {
					i++
					break
				}
				if b[i] != '\\' {
					return s.fail(i, "control character in a string")
				}
				escaped = true
				if i+1 >= n {
					return s.fail(start, "unterminated string")
				}
				switch b[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > n || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
						return s.fail(i, "invalid \\u escape")
					}
					i += 6
				default:
					return s.fail(i, "invalid escape")
				}
			}
			if state == stKey || state == stKeyOrClose {
				if len(stack) == 1 {
					field = s.lookup(b[start+1:i-1], escaped)
				}
				for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
					i++
				}
				if i >= n || b[i] != ':' {
					return s.fail(i, "want ':'")
				}
				i++
				state = stValue
				continue
			}
		case state == stKeyOrClose && c == '}' || state == stValueOrClose && c == ']':
			stack = stack[:len(stack)-1]
			i++
		case state == stKey || state == stKeyOrClose:
			return s.fail(i, "want a field name")
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return s.fail(i, "nested too deep")
			}
			stack = append(stack, c)
			i++
			if c == '{' {
				state = stKeyOrClose
			} else {
				state = stValueOrClose
			}
			continue
		case c == '-' || isDigit(c):
			start := i
			if c == '-' {
				i++
			}
			switch {
			case i < n && b[i] == '0':
				i++
			case i < n && isDigit(b[i]):
				for i < n && isDigit(b[i]) {
					i++
				}
			default:
				return s.fail(start, "invalid number")
			}
			if i < n && b[i] == '.' {
				i++
				if i >= n || !isDigit(b[i]) {
					return s.fail(start, "invalid number")
				}
				for i < n && isDigit(b[i]) {
					i++
				}
			}
			if i < n && (b[i] == 'e' || b[i] == 'E') {
				i++
				if i < n && (b[i] == '+' || b[i] == '-') {
					i++
				}
				if i >= n || !isDigit(b[i]) {
					return s.fail(start, "invalid number")
				}
				for i < n && isDigit(b[i]) {
					i++
				}
			}
		case c == 't' && n-i >= 4 && string(b[i:i+4]) == "true",
			c == 'n' && n-i >= 4 && string(b[i:i+4]) == "null":
			i += 4
		case c == 'f' && n-i >= 5 && string(b[i:i+5]) == "false":
			i += 5
		default:
			return s.fail(i, fmt.Sprintf("unexpected %q", c))
		}
		// A value ended at i: a scalar, or the container just closed.
		if len(stack) == 0 { // the object itself
			break
		}
		if len(stack) == 1 && field >= 0 {
			s.found[field] = span{start: fieldStart, end: i, escaped: escaped}
			field = -1
		}
		state = stAfterValue
	}
	s.stack = stack
	for i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	if i != n {
		return s.fail(i, "data after the object")
	}
	return true
}

// lookup returns the index in wanted of a top-level field name (its bytes
// between the quotes), or -1.
func (s *scanner) lookup(name []byte, escaped bool) int {
	if escaped { // rare: decode the name
		var k string
		if json.Unmarshal(append(append([]byte{'"'}, name...), '"'), &k) != nil {
			return -1
		}
		name = []byte(k)
	}
	for j, w := range s.wanted {
		if string(name) == w { // no allocation
			return j
		}
	}
	return -1
}
