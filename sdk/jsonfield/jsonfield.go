// Package jsonfield finds the values of named top-level fields of a JSON
// object in one pass, checking on the way that the bytes are one valid
// JSON object (the syntax encoding/json accepts, white space around it
// allowed), without decoding anything or allocating. It imports only the
// standard library, so a WASM guest links it as well as the host.
//
// weir's WASM host runs it natively for a module that names the fields it
// reads (sdk/guest.RegisterFields, RegisterFilter): the module then gets each record's spans
// with its batch instead of scanning the value itself, which Go compiled
// to WASM does ~10x slower.
//
// A Span is byte offsets into the scanned value: value[Start:End] is the
// field's value as raw JSON (a string with its quotes); End 0 means the
// object has no such field. When a name appears more than once in an
// object the last occurrence wins, as in encoding/json. Names are compared
// after unescaping, so "c\u006fde" is the field "code", but as bytes:
// where encoding/json replaces invalid UTF-8 in a name with U+FFFD, this
// does not.
//
// The scanner is written for Go compiled to WASM too, where a call costs
// far more than natively (every call goes through the resumable-stack
// machinery) and so does every taken branch: the top-level object is one
// loop with tight inner loops per token (strings are skipped 8 bytes at a
// time), and only a nested object or array (skipNested) or an escaped
// field name costs a call.
package jsonfield

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
)

// Span locates a field's value in the scanned bytes.
type Span struct {
	Start, End int  // End 0: the object has no such field
	Escaped    bool // a string value with a backslash escape in it
}

// Present reports whether the field was found.
func (s Span) Present() bool { return s.End > 0 }

// Scanner finds the fields it was made for; one goroutine at a time.
type Scanner struct {
	names []string
	// byLen finds a field name among names by its length, without a loop
	// over names per name: 0 no name has that length, j+1 only names[j]
	// has it, -1 several have (then names is searched).
	byLen [64]int8
	found []Span // per name, after Scan
	err   error  // why the last scan failed
	stack []byte // '{' and '[' of the open containers (skipNested)
}

// New returns a scanner for the values of the top-level fields names,
// which should be distinct (of a repeated name only the first is found).
func New(names ...string) *Scanner {
	s := &Scanner{names: append([]string(nil), names...), found: make([]Span, len(names))}
	for j, w := range s.names {
		switch l := len(w); {
		case l >= len(s.byLen):
		case s.byLen[l] == 0 && j < 127:
			s.byLen[l] = int8(j + 1)
		default:
			s.byLen[l] = -1
		}
	}
	return s
}

// Names returns the names the scanner looks for, in the order of Spans.
func (s *Scanner) Names() []string { return s.names }

// Scan scans value. A nil error means value is one JSON object; Spans
// then says where the named fields' values are. The error says what is
// wrong and at which byte: "value is null, not a JSON object", "value is
// not a JSON object", or "value is not a valid JSON object: ... at byte N".
func (s *Scanner) Scan(value []byte) error {
	if !s.scan(value) {
		clear(s.found)
		return s.err
	}
	return nil
}

// Spans returns the spans of the last Scan, one per name (all absent after
// a failed Scan); valid until the next Scan.
func (s *Scanner) Spans() []Span { return s.found }

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

var (
	errNull      = errors.New("value is null, not a JSON object")
	errNotObject = errors.New("value is not a JSON object")
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

// space marks JSON white space.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stopMask sets the high bit of the bytes of w (8 bytes of a string,
// little-endian) that a string scan stops at, '"', '\\' or a control
// character; exact for the first of them (the borrows of the subtractions
// can only mark bytes after a true one).
func stopMask(w uint64) uint64 {
	q := w ^ (ones * '"')
	e := w ^ (ones * '\\')
	return ((q-ones)&^q | (e-ones)&^e | (w-ones*0x20)&^w) & highs
}

func isDigit(c byte) bool { return c-'0' < 10 }

// nonDigitMask sets the high bit of the bytes of w (8 bytes, little-
// endian) that are not ASCII digits; exact for the first of them.
func nonDigitMask(w uint64) uint64 {
	lo := w - ones*'0'           // borrows out of bytes below '0'
	hi := w + ones*(0x80-':')    // carries into the high bit of bytes from ':' up
	return (lo | hi | w) & highs // w: bytes >= 0x80
}

func isHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

func (s *Scanner) fail(i int, what string) bool {
	s.err = fmt.Errorf("value is not a valid JSON object: %s at byte %d", what, i)
	return false
}

// scan scans b; on false s.err says why.
func (s *Scanner) scan(b []byte) bool {
	s.err = nil
	found := s.found
	for j := range found {
		found[j] = Span{}
	}
	if b == nil {
		s.err = errNull
		return false
	}
	n := len(b)
	i := 0
	for i < n && space[b[i]] {
		i++
	}
	if i >= n || b[i] != '{' {
		s.err = errNotObject
		return false
	}
	i++
	for i < n && space[b[i]] {
		i++
	}
	if i < n && b[i] == '}' {
		i++
	} else {
		key := true // a field name comes next, else its value
		field := -1 // the wanted field whose value comes next
		for {
			if i < n && b[i] <= ' ' {
				for i < n && space[b[i]] {
					i++
				}
			}
			if i >= n {
				return s.fail(i, "unexpected end")
			}
			c := b[i]
			start := i
			escaped := false
			if c == '"' {
				// The string, to its closing quote: 8 bytes at a time
				// while 8 are left, then byte by byte.
				for i++; ; {
					if i+8 <= n {
						m := stopMask(binary.LittleEndian.Uint64(b[i : i+8]))
						if m == 0 {
							i += 8
							continue
						}
						i += bits.TrailingZeros64(m) >> 3
					} else {
						for i < n && !stop[b[i]] {
							i++
						}
						if i >= n {
							return s.fail(start, "unterminated string")
						}
					}
					if c := b[i]; c == '"' {
						i++
						break
					} else if c != '\\' {
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
				if key {
					name := b[start+1 : i-1]
					if escaped {
						field = s.lookupEscaped(name)
					} else if l := len(name); l < len(s.byLen) && s.byLen[l] > 0 {
						if j := int(s.byLen[l] - 1); s.names[j] == string(name) {
							field = j
						}
					} else if l >= len(s.byLen) || s.byLen[l] < 0 {
						field = s.lookup(name)
					}
					for i < n && space[b[i]] {
						i++
					}
					if i >= n || b[i] != ':' {
						return s.fail(i, "want ':'")
					}
					i++
					key = false
					continue
				}
			} else if key {
				return s.fail(i, "want a field name")
			} else if c == '-' || isDigit(c) {
				if c == '-' {
					i++
				}
				if i < n && b[i] == '0' {
					i++
				} else if i < n && isDigit(b[i]) {
					for i++; i+8 <= n; i += 8 {
						if m := nonDigitMask(binary.LittleEndian.Uint64(b[i : i+8])); m != 0 {
							i += bits.TrailingZeros64(m) >> 3
							break
						}
					}
					for ; i < n && isDigit(b[i]); i++ {
					}
				} else {
					return s.fail(start, "invalid number")
				}
				if i < n && b[i] == '.' {
					i++
					if i >= n || !isDigit(b[i]) {
						return s.fail(start, "invalid number")
					}
					for i++; i < n && isDigit(b[i]); i++ {
					}
				}
				if i < n && b[i]|0x20 == 'e' {
					i++
					if i < n && (b[i] == '+' || b[i] == '-') {
						i++
					}
					if i >= n || !isDigit(b[i]) {
						return s.fail(start, "invalid number")
					}
					for i++; i < n && isDigit(b[i]); i++ {
					}
				}
			} else if c == '{' || c == '[' {
				if i = s.skipNested(b, i); i < 0 {
					return false
				}
			} else if c == 't' && n-i >= 4 && string(b[i:i+4]) == "true" ||
				c == 'n' && n-i >= 4 && string(b[i:i+4]) == "null" {
				i += 4
			} else if c == 'f' && n-i >= 5 && string(b[i:i+5]) == "false" {
				i += 5
			} else {
				return s.fail(i, fmt.Sprintf("unexpected %q", c))
			}
			// A value ended at i.
			if field >= 0 {
				found[field] = Span{Start: start, End: i, Escaped: escaped}
				field = -1
			}
			for i < n && space[b[i]] {
				i++
			}
			if i >= n {
				return s.fail(i, "unexpected end")
			}
			if c := b[i]; c == ',' {
				i++
				key = true
				continue
			} else if c == '}' {
				i++
				break
			}
			return s.fail(i, "want ',' or '}'")
		}
	}
	for i < n && space[b[i]] {
		i++
	}
	if i != n {
		return s.fail(i, "data after the object")
	}
	return true
}

// lookup returns the index in names of a field name, or -1.
func (s *Scanner) lookup(name []byte) int {
	for j, w := range s.names {
		if w == string(name) {
			return j
		}
	}
	return -1
}

// lookupEscaped returns the index in names of a top-level field name
// with escapes (its bytes between the quotes), or -1.
func (s *Scanner) lookupEscaped(name []byte) int {
	var k string
	if json.Unmarshal(append(append([]byte{'"'}, name...), '"'), &k) != nil {
		return -1
	}
	for j, w := range s.names {
		if k == w {
			return j
		}
	}
	return -1
}

// what skipNested expects next
const (
	stValue        = iota // a value
	stValueOrClose        // a value or ']' (after '[')
	stKey                 // a field name (after ',' in an object)
	stKeyOrClose          // a field name or '}' (after '{')
	stAfterValue          // ',' or the end of the container
)

// skipNested checks the object or array at b[i] (a field's value in the
// top-level object) and returns the index after it, or -1 with s.err set.
// It is one loop with an explicit stack rather than a recursive descent.
func (s *Scanner) skipNested(b []byte, i int) int {
	n := len(b)
	stack := append(s.stack[:0], '{', b[i]) // the top-level object, then this value
	state := stKeyOrClose
	if b[i] == '[' {
		state = stValueOrClose
	}
	i++
	for {
		for i < n && space[b[i]] {
			i++
		}
		if i >= n {
			s.fail(i, "unexpected end")
			return -1
		}
		c := b[i]
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
				s.fail(i, "want ',' or '}'")
				return -1
			default:
				s.fail(i, "want ',' or ']'")
				return -1
			}
		case c == '"': // a string, or a field name
			start := i
			for i++; ; {
				for i < n && !stop[b[i]] {
					i++
				}
				if i >= n {
					s.fail(start, "unterminated string")
					return -1
				}
				if b[i] == '"' {
					i++
					break
				}
				if b[i] != '\\' {
					s.fail(i, "control character in a string")
					return -1
				}
				if i+1 >= n {
					s.fail(start, "unterminated string")
					return -1
				}
				switch b[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > n || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
						s.fail(i, "invalid \\u escape")
						return -1
					}
					i += 6
				default:
					s.fail(i, "invalid escape")
					return -1
				}
			}
			if state == stKey || state == stKeyOrClose {
				for i < n && space[b[i]] {
					i++
				}
				if i >= n || b[i] != ':' {
					s.fail(i, "want ':'")
					return -1
				}
				i++
				state = stValue
				continue
			}
		case state == stKeyOrClose && c == '}' || state == stValueOrClose && c == ']':
			stack = stack[:len(stack)-1]
			i++
		case state == stKey || state == stKeyOrClose:
			s.fail(i, "want a field name")
			return -1
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				s.fail(i, "nested too deep")
				return -1
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
				s.fail(start, "invalid number")
				return -1
			}
			if i < n && b[i] == '.' {
				i++
				if i >= n || !isDigit(b[i]) {
					s.fail(start, "invalid number")
					return -1
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
					s.fail(start, "invalid number")
					return -1
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
			s.fail(i, fmt.Sprintf("unexpected %q", c))
			return -1
		}
		// A value ended at i: a scalar, or the container just closed.
		if len(stack) == 1 { // the nested value itself
			s.stack = stack // keep what it grew to
			return i
		}
		state = stAfterValue
	}
}
