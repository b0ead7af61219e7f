package pipelines

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidSpec is wrapped by every error of loading a pipeline spec:
// bad YAML, unknown or missing fields, wrong types, unknown stage kinds,
// expressions that do not compile. The *SpecError values say where.
var ErrInvalidSpec = errors.New("pipelines: invalid spec")

// ErrHalted is returned by Run when a record failed under the halt policy
// (or exhausted its retries with nothing after them); the input offsets of
// that record and after it are not committed.
var ErrHalted = errors.New("pipelines: halted on a failed record")

// Pos is a position in a spec file; Line and Col count from 1.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// SpecError is one problem in a spec, at a position, with an optional hint
// on how to fix it.
type SpecError struct {
	Pos  Pos
	Msg  string
	Hint string
}

func (e *SpecError) Error() string {
	s := e.Pos.String() + ": " + e.Msg
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

func (e *SpecError) Unwrap() error { return ErrInvalidSpec }

// SpecErrors are all the problems found in a spec, in file order.
type SpecErrors []*SpecError

func (es SpecErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es SpecErrors) Unwrap() error { return ErrInvalidSpec }
