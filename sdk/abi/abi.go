// Package abi is version 1 of the batch ABI between weir (the host) and a
// WASM processor module (the guest): the byte encodings both sides use.
// It imports only the standard library and sdk, so guests link it too.
//
// # Exports a v1 module provides
//
//	weir_v1_alloc(size i32) i32          a buffer of size bytes the host writes into
//	weir_v1_init(ptr, len i32) i64       module config (the stage's YAML config as JSON);
//	                                     returns a packed reply (an error message, empty when ok)
//	weir_v1_process(ptr, len i32) i64    one encoded Batch; returns a packed encoded Results reply
//
// and optionally
//
//	weir_v1_features(flags i32)          called once, before init, with the features the host
//	                                     takes (FeatureKept, FeatureFields); a module without it
//	                                     gets none
//	weir_v1_fields() i64                 called once after a successful init when the host offered
//	                                     FeatureFields: a packed reply of the top-level JSON fields
//	                                     the module reads, u32 x string (none: the host scans nothing)
//
// A packed reply is ptr<<32 | len of bytes in guest memory, valid until the
// next call. The version is in the export names: a module exporting
// weir_vN_process for another N is refused at load with a message saying
// so. Everything is little-endian.
//
// # Batch
//
//	topic    string
//	count    u32
//	records  count x { offset i64, timestamp_ms i64, partition i32, key bytes, value bytes,
//	                   headers u32 x { key string, value bytes }, [fields] }
//
// When the module named fields (weir_v1_fields), each record ends with
// where they are in its value, as package jsonfield finds them:
//
//	fields   u8      0: the value is a JSON object; per field named, in order,
//	                 { start i64, end i64, escaped u8, 7 zero bytes }: value[start:end] is the
//	                 field's value as raw JSON, end 0 when the object has none, escaped 1 for a
//	                 string with a backslash escape;
//	                 1: it is not; a string follows saying why
//
// A span is laid out as a jsonfield.Span is in a Go guest's memory (24
// bytes), so the Go SDK uses the spans where they are instead of decoding
// them: in Go compiled to WASM, decoding two spans per record cost more
// than decoding the record.
//
// # Results
//
//	status   u8      0: the batch was processed; 1: it was not (message follows, nothing else);
//	                 2: processed, with kept outputs (only when the host offered FeatureKept)
//	outputs  u32 x { source u32, output string, key bytes, value bytes, timestamp_ms i64,
//	                 headers u32 x { key string, value bytes } }
//	failed   u32 x { source u32, message string }
//
// With status 2 each output starts with source u32 and a u8: 1 means the
// input record source unchanged (nothing follows: the host has it), 0 that
// the fields of a status-0 output follow. A filter's kept records then
// cross the boundary as 5 bytes instead of a copy each way.
//
// bytes is an i32 length (-1: null) and the bytes; string is a u32 length
// and the bytes. Decoders check every length against what is left and
// return ErrCorrupt rather than read past the end or allocate for a length
// the input cannot hold.
package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/jsonfield"
)

// Version is the ABI version this package speaks.
const Version = 1

// Export names of ABI v1.
const (
	ExportAlloc    = "weir_v1_alloc"
	ExportInit     = "weir_v1_init"
	ExportProcess  = "weir_v1_process"
	ExportFeatures = "weir_v1_features"
	ExportFields   = "weir_v1_fields"
)

// Features a host offers through ExportFeatures.
const (
	// FeatureKept: results may say "this input, unchanged" (status 2).
	FeatureKept = 1
	// FeatureFields: the host scans each record's value for the fields
	// the module names (ExportFields) and sends their spans with it.
	FeatureFields = 2
)

// MaxFields is the most fields a module may name.
const MaxFields = 64

// ErrCorrupt is returned when an encoding is truncated or inconsistent.
var ErrCorrupt = errors.New("abi: corrupt encoding")

// AppendBatch appends the encoding of a batch of records read from topic.
func AppendBatch(b []byte, topic string, recs []sdk.Record) []byte {
	return AppendBatchFields(b, topic, recs, nil)
}

// AppendBatchFields is AppendBatch with each record's fields section, as
// s finds them in its value (s nil: none).
func AppendBatchFields(b []byte, topic string, recs []sdk.Record, s *jsonfield.Scanner) []byte {
	b = appendString(b, topic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
	for i := range recs {
		r := &recs[i]
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Timestamp.UnixMilli()))
		b = binary.LittleEndian.AppendUint32(b, uint32(r.Partition))
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = appendHeaders(b, r.Headers)
		if s != nil {
			if err := s.Scan(r.Value); err != nil {
				b = appendString(append(b, 1), err.Error())
				continue
			}
			b = append(b, 0)
			for _, sp := range s.Spans() {
				b = binary.LittleEndian.AppendUint64(b, uint64(sp.Start))
				b = binary.LittleEndian.AppendUint64(b, uint64(sp.End))
				e := uint64(0)
				if sp.Escaped {
					e = 1
				}
				b = binary.LittleEndian.AppendUint64(b, e)
			}
		}
	}
	return b
}

// spanSize is the size of an encoded span.
const spanSize = 24

// spanInPlace: a jsonfield.Span in memory is an encoded span (int is 64
// bits and the platform little-endian, as in WASM), so spans are used
// where they are in the batch.
var spanInPlace = unsafe.Sizeof(jsonfield.Span{}) == spanSize && unsafe.Offsetof(jsonfield.Span{}.End) == 8 &&
	unsafe.Offsetof(jsonfield.Span{}.Escaped) == 16 && binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Fields is the fields sections of a decoded batch, for N names.
type Fields struct {
	N    int
	b    []byte  // the batch
	at   []int32 // per record, where its section starts in b
	none []jsonfield.Span
	tmp  []jsonfield.Span
}

// Spans returns record k's spans where they are in the batch, or false
// when its value is not a JSON object or the platform lays spans out
// otherwise (then Record has them). It costs no call: a Go guest calls it
// for every record.
func (f *Fields) Spans(k int) ([]jsonfield.Span, bool) {
	at := int(f.at[k])
	if !spanInPlace || f.b[at] != 0 {
		return nil, false
	}
	return unsafe.Slice((*jsonfield.Span)(unsafe.Pointer(&f.b[at+1])), f.N), true
}

// Record returns record k's spans, valid until the next call, and, for a
// value that is not a JSON object (its spans all absent), why. The spans
// are the host's: a span beyond its value fails the slicing that uses it.
func (f *Fields) Record(k int) ([]jsonfield.Span, string) {
	at := int(f.at[k])
	if f.b[at] != 0 {
		clear(f.none) // the caller's, until now
		l := int(binary.LittleEndian.Uint32(f.b[at+1:]))
		if l == 0 {
			return f.none, "value is not a JSON object"
		}
		return f.none, string(f.b[at+5 : at+5+l])
	}
	sec := f.b[at+1 : at+1+spanSize*f.N]
	if spanInPlace {
		return unsafe.Slice((*jsonfield.Span)(unsafe.Pointer(unsafe.SliceData(sec))), f.N), ""
	}
	for j := range f.tmp {
		e := sec[spanSize*j:]
		f.tmp[j] = jsonfield.Span{Start: int(binary.LittleEndian.Uint64(e)), End: int(binary.LittleEndian.Uint64(e[8:])), Escaped: e[16] == 1}
	}
	return f.tmp, ""
}

// AppendNames appends the encoding of the field names a module reads.
func AppendNames(b []byte, names []string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	return b
}

// CheckNames says what is wrong with the field names a module gives, if
// anything: more than MaxFields, or a name empty or repeated.
func CheckNames(names []string) error {
	if len(names) > MaxFields {
		return fmt.Errorf("%d JSON field names, more than the %d a module may name", len(names), MaxFields)
	}
	for j, name := range names {
		if name == "" {
			return fmt.Errorf("JSON field name %d is empty", j)
		}
		if slices.Contains(names[:j], name) {
			return fmt.Errorf("JSON field %q named twice", name)
		}
	}
	return nil
}

// DecodeNames decodes field names and checks them (CheckNames).
func DecodeNames(b []byte) ([]string, error) {
	d := decoder{b: b}
	names := make([]string, d.count(4))
	for j := range names {
		names[j] = d.string()
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the field names", ErrCorrupt, len(d.b))
	}
	if err := CheckNames(names); err != nil {
		return nil, fmt.Errorf("abi: %w", err)
	}
	return names, nil
}

// DecodeBatch decodes a batch; keys, values and header values alias b.
func DecodeBatch(b []byte) ([]sdk.Record, error) { return AppendBatchRecords(nil, b) }

// AppendBatchRecords is DecodeBatch appending to dst, whose spare
// capacity it reuses.
//
// It is one loop with no calls per record but the header decoder: a guest
// decodes every batch with it, and in Go compiled to WASM a call costs
// more than decoding a record's fixed fields (this form is 4-6x faster
// than one built on the decoder's methods).
func AppendBatchRecords(dst []sdk.Record, b []byte) ([]sdk.Record, error) {
	return AppendBatchRecordsFields(dst, nil, b)
}

// AppendBatchRecordsFields is AppendBatchRecords of a batch whose records
// end with fields sections of f.N spans each (f nil: none), which it
// notes in f (reusing its capacity) for Fields.Record. Each section's
// size is checked, not its spans: see Record.
func AppendBatchRecordsFields(dst []sdk.Record, f *Fields, b []byte) ([]sdk.Record, error) {
	const fixed = 8 + 8 + 4 + 4 + 4 + 4 // offset, timestamp, partition, key, value and header count
	d := decoder{b: b}
	topic := d.string()
	n := d.count(fixed)
	if d.err != nil {
		return dst, d.err
	}
	b = d.b
	base := len(dst)
	dst = slices.Grow(dst, n)[:base+n]
	if f != nil {
		f.b = b
		f.at = slices.Grow(f.at[:0], n)[:n]
		if len(f.none) != f.N {
			f.none, f.tmp = make([]jsonfield.Span, f.N), make([]jsonfield.Span, f.N)
		}
	}
	i := 0
	for j := range n {
		if len(b)-i < fixed {
			return dst[:base+j], fmt.Errorf("%w: record %d: %d bytes left, fewer than its fixed fields", ErrCorrupt, j, len(b)-i)
		}
		r := &dst[base+j]
		r.Topic = topic
		r.Offset = int64(binary.LittleEndian.Uint64(b[i:]))
		r.Timestamp = time.UnixMilli(int64(binary.LittleEndian.Uint64(b[i+8:])))
		r.Partition = int32(binary.LittleEndian.Uint32(b[i+16:]))
		r.Output = ""
		// The key, then the value: a length (-1: null) and the bytes.
		// What follows them is left for sure: the value's length and the
		// header count after the key (8 bytes), the count after the value
		// (4), so the fixed check above covers every length read here.
		i += 20
		var ok bool
		if r.Key, i, ok = lenBytes(b, i, 8); !ok {
			return dst[:base+j], fmt.Errorf("%w: record %d: a key of %d bytes with %d left", ErrCorrupt, j, binary.LittleEndian.Uint32(b[i-4:]), len(b)-i-8)
		}
		if r.Value, i, ok = lenBytes(b, i, 4); !ok {
			return dst[:base+j], fmt.Errorf("%w: record %d: a value of %d bytes with %d left", ErrCorrupt, j, binary.LittleEndian.Uint32(b[i-4:]), len(b)-i-4)
		}
		r.Headers = nil
		if binary.LittleEndian.Uint32(b[i:]) == 0 {
			i += 4
		} else {
			d.b = b[i:]
			r.Headers = d.headers()
			if d.err != nil {
				return dst[:base+j], fmt.Errorf("record %d: headers: %w", j, d.err)
			}
			i = len(b) - len(d.b)
		}
		if f == nil {
			continue
		}
		// The section: a status byte and N spans, or 1 and a message.
		f.at[j] = int32(i)
		if i < len(b) && b[i] == 0 && len(b)-i > spanSize*f.N {
			i += 1 + spanSize*f.N
			continue
		}
		if len(b)-i < 5 || b[i] != 1 || uint64(binary.LittleEndian.Uint32(b[i+1:])) > uint64(len(b)-i-5) {
			return dst[:base+j], fmt.Errorf("%w: record %d: its fields section does not fit the %d bytes left", ErrCorrupt, j, len(b)-i)
		}
		i += 5 + int(binary.LittleEndian.Uint32(b[i+1:]))
	}
	if i != len(b) {
		return dst, fmt.Errorf("%w: %d bytes after the batch", ErrCorrupt, len(b)-i)
	}
	return dst, nil
}

// lenBytes reads the bytes with a length (-1: null) at b[i:], which has
// the length and after more bytes past them for sure; it returns them
// (aliasing b), where they end, and false if they do not fit (i then
// just after the length).
func lenBytes(b []byte, i, after int) ([]byte, int, bool) {
	l := binary.LittleEndian.Uint32(b[i:])
	i += 4
	if l == math.MaxUint32 {
		return nil, i, true
	}
	if uint(l) > uint(len(b)-i-after) { // never negative: see the caller
		return nil, i, false
	}
	e := i + int(l)
	return b[i:e:e], e, true
}

// AppendResults appends the encoding of a processed batch's results.
func AppendResults(b []byte, res *sdk.Results) []byte {
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(res.Out)))
	for i := range res.Out {
		o := &res.Out[i]
		b = binary.LittleEndian.AppendUint32(b, uint32(o.Source))
		b = appendString(b, o.Record.Output)
		b = appendBytes(b, o.Record.Key)
		b = appendBytes(b, o.Record.Value)
		b = binary.LittleEndian.AppendUint64(b, uint64(o.Record.Timestamp.UnixMilli()))
		b = appendHeaders(b, o.Record.Headers)
	}
	return appendFailures(b, res.Failed)
}

func appendFailures(b []byte, failed []sdk.Failure) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(failed)))
	for _, f := range failed {
		b = binary.LittleEndian.AppendUint32(b, uint32(f.Source))
		msg := "failed"
		if f.Err != nil {
			msg = f.Err.Error()
		}
		b = appendString(b, msg)
	}
	return b
}

// KeptWriter encodes the results of a batch in with status 2 as they are
// produced: an output that is its input record unchanged (same key, value
// and headers, by identity, same timestamp, default output) is sent as a
// reference to it. It is an sdk.Sink for sdk.Each, so a guest's outputs go
// straight into its reply instead of through an sdk.Results.
type KeptWriter struct {
	b      []byte
	in     []sdk.Record
	count  uint32
	failed []sdk.Failure
}

// Reset starts the results of the batch in, appended to b[:0] (whose
// capacity is reused).
func (w *KeptWriter) Reset(b []byte, in []sdk.Record) {
	w.b = append(b[:0], 2, 0, 0, 0, 0) // status, output count (set by Bytes)
	w.in = in
	w.count = 0
	clear(w.failed)
	w.failed = w.failed[:0]
}

// Emit appends an output of input src.
func (w *KeptWriter) Emit(src int, r sdk.Record) {
	if src >= 0 && src < len(w.in) && unchanged(&w.in[src], &r) {
		w.Keep(src)
		return
	}
	w.count++
	w.b = append(binary.LittleEndian.AppendUint32(w.b, uint32(src)), 0)
	w.b = appendString(w.b, r.Output)
	w.b = appendBytes(w.b, r.Key)
	w.b = appendBytes(w.b, r.Value)
	w.b = binary.LittleEndian.AppendUint64(w.b, uint64(r.Timestamp.UnixMilli()))
	w.b = appendHeaders(w.b, r.Headers)
}

// Keep appends input src, unchanged, as an output: what Emit of that
// input does, without comparing (for a filter, whose outputs are always
// its inputs).
func (w *KeptWriter) Keep(src int) {
	w.count++
	w.b = append(binary.LittleEndian.AppendUint32(w.b, uint32(src)), 1)
}

// Fail records that input src failed with err.
func (w *KeptWriter) Fail(src int, err error) {
	w.failed = append(w.failed, sdk.Failure{Source: src, Err: err})
}

// Bytes completes the encoding and returns it.
func (w *KeptWriter) Bytes() []byte {
	binary.LittleEndian.PutUint32(w.b[1:], w.count)
	return appendFailures(w.b, w.failed)
}

// unchanged reports whether out is in as it came: the same bytes (the
// same memory, not equal contents: a cheap test), timestamp and output.
func unchanged(in, out *sdk.Record) bool {
	return out.Output == "" && sameBytes(in.Key, out.Key) && sameBytes(in.Value, out.Value) &&
		len(in.Headers) == len(out.Headers) && (len(in.Headers) == 0 || &in.Headers[0] == &out.Headers[0]) &&
		in.Timestamp.UnixMilli() == out.Timestamp.UnixMilli()
}

func sameBytes(a, b []byte) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	return len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b)
}

// AppendBatchError appends the encoding of a batch the guest could not
// process.
func AppendBatchError(b []byte, msg string) []byte {
	return appendString(append(b, 1), msg)
}

// BatchError is a guest's report that it could not process a batch.
type BatchError struct{ Msg string }

func (e *BatchError) Error() string { return "module: " + e.Msg }

// DecodeResults decodes a guest's results for the batch in into res
// (appending); record bytes are copied out of b, which lives in guest
// memory, and a kept output (status 2) is its input record. A batch error
// is returned as *BatchError.
func DecodeResults(b []byte, in []sdk.Record, res *sdk.Results) error {
	d := decoder{b: b}
	status := d.u8()
	if d.err == nil && status == 1 {
		msg := d.string()
		if d.err != nil {
			return d.err
		}
		return &BatchError{Msg: msg}
	}
	if d.err == nil && status != 0 && status != 2 {
		return fmt.Errorf("%w: status %d", ErrCorrupt, status)
	}
	min := 4 + 4 + 4 + 4 + 8 + 4
	if status == 2 {
		min = 4 + 1
	}
	n := d.count(min)
	for i := 0; i < n && d.err == nil; i++ {
		src := int(d.u32())
		if status == 2 && d.u8() == 1 {
			if d.err == nil && (src < 0 || src >= len(in)) {
				d.err = fmt.Errorf("%w: output %d keeps input %d of a batch of %d", ErrCorrupt, i, src, len(in))
			}
			if d.err == nil {
				res.Out = append(res.Out, sdk.Output{Source: src, Record: in[src]})
			}
			continue
		}
		var r sdk.Record
		r.Output = d.string()
		r.Key = clone(d.bytes())
		r.Value = clone(d.bytes())
		r.Timestamp = time.UnixMilli(int64(d.u64()))
		r.Headers = d.headers()
		for j := range r.Headers {
			r.Headers[j].Value = clone(r.Headers[j].Value)
		}
		res.Out = append(res.Out, sdk.Output{Source: src, Record: r})
	}
	nf := d.count(4 + 4)
	for i := 0; i < nf && d.err == nil; i++ {
		src := int(d.u32())
		msg := d.string()
		res.Failed = append(res.Failed, sdk.Failure{Source: src, Err: errors.New(msg)})
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the results", ErrCorrupt, len(d.b))
	}
	return d.err
}

// Pack and Unpack combine a guest pointer and length into a reply.
func Pack(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

func Unpack(v uint64) (ptr, n uint32) { return uint32(v >> 32), uint32(v) }

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.LittleEndian.AppendUint32(b, math.MaxUint32) // -1
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendHeaders(b []byte, hs []sdk.Header) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hs)))
	for _, h := range hs {
		b = appendString(b, h.Key)
		b = appendBytes(b, h.Value)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: %d bytes wanted, %d left", ErrCorrupt, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// count reads an element count, checked against the bytes left given
// each element's minimum size.
func (d *decoder) count(minSize int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(minSize) > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: %d elements cannot fit in %d bytes", ErrCorrupt, n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.u32()
	return string(d.take(int(min(n, math.MaxInt32))))
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.err != nil || n == math.MaxUint32 {
		return nil
	}
	v := d.take(int(min(n, math.MaxInt32)))
	if v == nil && d.err == nil {
		return []byte{}
	}
	return v
}

func (d *decoder) headers() []sdk.Header {
	n := d.count(4 + 4)
	if n == 0 || d.err != nil {
		return nil
	}
	hs := make([]sdk.Header, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.string()
		hs = append(hs, sdk.Header{Key: k, Value: d.bytes()})
	}
	return hs
}
