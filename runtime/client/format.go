package client

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultFormat is the consume output format when none is given: the value and a newline.
const DefaultFormat = `%v\n`

// Format is a parsed kcat-style output format. Tokens:
//
//	%k key            %K key length (-1 for a null key)
//	%v value          %S value length (-1 for a null value)
//	%o offset         %p partition        %t topic
//	%T timestamp (milliseconds since the Unix epoch)
//	%h headers as k1=v1,k2=v2
//	%% a literal %
//
// and the escapes \n \t \r \0 and \\. Anything else is copied as is; an unknown %x or \x is an error.
// A null key or value prints as nothing.
type Format struct {
	parts []fmtPart
}

type fmtPart struct {
	verb byte   // 0 for a literal
	lit  []byte // literal bytes when verb == 0
}

// ParseFormat parses a format string (see Format).
func ParseFormat(s string) (*Format, error) {
	f := &Format{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			f.parts = append(f.parts, fmtPart{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+1 == len(s) {
				return nil, fmt.Errorf("format %q: trailing %%", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit = append(lit, '%')
			case 'k', 'K', 'v', 'S', 'o', 'p', 't', 'T', 'h':
				flush()
				f.parts = append(f.parts, fmtPart{verb: v})
			default:
				return nil, fmt.Errorf("format %q: unknown token %%%c (known: %%k %%v %%o %%p %%t %%T %%h %%K %%S %%%%)", s, v)
			}
		case '\\':
			if i+1 == len(s) {
				return nil, fmt.Errorf("format %q: trailing backslash", s)
			}
			i++
			b, err := unescape(s[i])
			if err != nil {
				return nil, fmt.Errorf("format %q: %w", s, err)
			}
			lit = append(lit, b)
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return f, nil
}

func unescape(c byte) (byte, error) {
	switch c {
	case 'n':
		return '\n', nil
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	case '0':
		return 0, nil
	case '\\':
		return '\\', nil
	}
	return 0, fmt.Errorf(`unknown escape \%c (known: \n \t \r \0 \\)`, c)
}

// Unescape replaces the escapes \n \t \r \0 and \\ in s (for separators given on a command line).
func Unescape(s string) (string, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q: trailing backslash", s)
		}
		i++
		b, err := unescape(s[i])
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, b)
	}
	return string(out), nil
}

// Append appends r formatted by f to dst.
func (f *Format) Append(dst []byte, r *kgo.Record) []byte {
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			dst = append(dst, p.lit...)
		case 'k':
			dst = append(dst, r.Key...)
		case 'v':
			dst = append(dst, r.Value...)
		case 'K':
			dst = appendLen(dst, r.Key)
		case 'S':
			dst = appendLen(dst, r.Value)
		case 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case 't':
			dst = append(dst, r.Topic...)
		case 'T':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, h.Key...)
				dst = append(dst, '=')
				dst = append(dst, h.Value...)
			}
		}
	}
	return dst
}

func appendLen(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "-1"...)
	}
	return strconv.AppendInt(dst, int64(len(b)), 10)
}
