// Package sdk is the record contract between weir pipelines and the stages
// that process their records: built-in expr stages, WASM modules and
// out-of-process plugins all implement [Processor] over [Record]s.
//
// It imports only the standard library, so a stage author's module depends
// on nothing of the host.
//
// # The contract
//
// A stage receives a batch of records and answers, for each input record,
// zero or more output records or one error:
//
//   - [Results.Out] lists output records in input order: Out[i].Source is
//     the index of the input record that produced Out[i], and the Sources
//     never decrease. Records of one input keep the order the stage gave.
//   - [Results.Failed] names the inputs that failed, each with its error;
//     a failed input has no outputs. The pipeline routes it by its error
//     policy (dead-letter topic, skip, retry, halt) and the rest of the
//     batch flows on.
//   - An input neither in Out nor in Failed was filtered out.
//   - Process returns an error only when the whole batch could not be
//     processed (a crashed plugin, a cancelled context); the pipeline then
//     retries the batch or halts, by policy. It never returns partial
//     Results with an error.
//
// A stage must not keep references to the input records' byte slices
// after Process returns: the pipeline reuses them. Output records may
// alias input bytes.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Record is one record of a topic as a stage sees it.
type Record struct {
	// Key and Value are the record's bytes; nil is Kafka's null.
	Key   []byte
	Value []byte
	// Headers in order; keys may repeat.
	Headers []Header
	// Timestamp is the record's time (millisecond precision on the wire).
	Timestamp time.Time
	// Topic, Partition and Offset are where the input record was read;
	// outputs inherit them from their input (provenance), and stages need
	// not set them.
	Topic     string
	Partition int32
	Offset    int64
	// Output names the pipeline output an output record goes to; empty is
	// the pipeline's default output. Route stages set it.
	Output string
}

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Header returns the value of the last header named key, and whether there
// was one.
func (r *Record) Header(key string) ([]byte, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// Output is a record a stage produced from input record Source.
type Output struct {
	Source int
	Record Record
}

// Failure is an input record the stage could not process.
type Failure struct {
	Source int
	Err    error
}

// Results are a stage's answer to a batch; see the package doc.
type Results struct {
	Out    []Output
	Failed []Failure
}

// Sink receives a stage's outputs and failures as they are produced:
// *Results collects them; the WASM guest SDK encodes them for the host.
type Sink interface {
	Emit(src int, rec Record)
	Fail(src int, err error)
}

// Each runs f on every record of in, in order, and adds to res each
// record's outputs, or its error: a panic in f fails just that record
// (with the panic as its error), and the records after it go on. The
// per-record adapter of the WASM guest SDK and of plugins.
func Each(in []Record, res Sink, f func(Record) ([]Record, error)) {
	for i := 0; i < len(in); {
		i = eachFrom(in, res, f, i)
	}
}

// eachFrom runs f from record i on and returns where to go on: the end, or
// after a record whose call panicked. One deferred recover per batch, not
// per record: a defer per call cost 10-15% of a batch in a Go WASM guest.
func eachFrom(in []Record, res Sink, f func(Record) ([]Record, error), i int) (next int) {
	defer func() {
		if p := recover(); p != nil {
			res.Fail(i, fmt.Errorf("panic: %v", p))
			next = i + 1
		}
	}()
	for ; i < len(in); i++ {
		outs, err := f(in[i])
		if err != nil {
			res.Fail(i, err)
			continue
		}
		for _, o := range outs {
			res.Emit(i, o)
		}
	}
	return i
}

// Reset empties r, keeping its capacity.
func (r *Results) Reset() {
	clear(r.Out) // drop references to records
	r.Out = r.Out[:0]
	clear(r.Failed)
	r.Failed = r.Failed[:0]
}

// Emit appends an output of input src.
func (r *Results) Emit(src int, rec Record) { r.Out = append(r.Out, Output{Source: src, Record: rec}) }

// Fail records that input src failed with err.
func (r *Results) Fail(src int, err error) {
	r.Failed = append(r.Failed, Failure{Source: src, Err: err})
}

// Processor is a stage. Process appends its answer for batch in to res,
// which the caller has reset; see the package doc for the rules. A
// Processor is used by one goroutine at a time.
type Processor interface {
	Process(ctx context.Context, in []Record, res *Results) error
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, in []Record, res *Results) error

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in []Record, res *Results) error {
	return f(ctx, in, res)
}

// ErrContract is wrapped by [Check] when Results break the contract.
var ErrContract = errors.New("sdk: results break the stage contract")

// Check reports whether res is a valid answer to a batch of n records:
// Sources within [0, n) and non-decreasing in Out, each failed input named
// once, in range, and without outputs.
func Check(n int, res *Results) error {
	last := -1
	for i, o := range res.Out {
		if o.Source < 0 || o.Source >= n {
			return fmt.Errorf("%w: output %d names input %d of a batch of %d", ErrContract, i, o.Source, n)
		}
		if o.Source < last {
			return fmt.Errorf("%w: output %d (input %d) after an output of input %d: outputs must follow input order", ErrContract, i, o.Source, last)
		}
		last = o.Source
	}
	if len(res.Failed) == 0 {
		return nil
	}
	failed := make(map[int]bool, len(res.Failed))
	for _, f := range res.Failed {
		if f.Source < 0 || f.Source >= n {
			return fmt.Errorf("%w: failure names input %d of a batch of %d", ErrContract, f.Source, n)
		}
		if failed[f.Source] {
			return fmt.Errorf("%w: input %d failed twice", ErrContract, f.Source)
		}
		if f.Err == nil {
			return fmt.Errorf("%w: input %d failed without an error", ErrContract, f.Source)
		}
		failed[f.Source] = true
	}
	for _, o := range res.Out {
		if failed[o.Source] {
			return fmt.Errorf("%w: input %d both failed and produced output", ErrContract, o.Source)
		}
	}
	return nil
}
