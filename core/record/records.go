package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// RecordHeader is one header of a record. Key is never null in Kafka; a nil
// Value is a null value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record of a batch.
type Record struct {
	Offset     int64  // absolute: batch BaseOffset + offsetDelta
	Timestamp  int64  // absolute ms: BaseTimestamp + timestampDelta (MaxTimestamp when LogAppendTime)
	Key        []byte // nil means null (length -1); may alias the batch or the decompression buffer
	Value      []byte // nil means null (length -1); may alias the batch or the decompression buffer
	Headers    []RecordHeader
	Attributes int8
}

// minRecordSize is the smallest encoding of a record: a one-byte length,
// attributes, and one byte each for timestampDelta, offsetDelta, key length,
// value length and header count.
const minRecordSize = 7

// minHeaderSize is the smallest encoding of a record header: one byte each
// for the key length and the value length.
const minHeaderSize = 2

// Records decodes every record in a whole batch (len(batch) must equal the
// header's Size()), decompressing the records section when the codec is not
// none. It does not verify the CRC: use Validate or ValidateStored for that.
//
// maxDecompressed caps the decompressed size of the records section
// (decompression bomb defense); exceeding it returns ErrTooLarge. It does not
// apply to uncompressed batches, whose size the input already bounds.
// Record counts, key/value/header lengths and header counts are checked
// against the bytes actually present, so corrupt input returns ErrCorrupt
// (or a header error: ErrTruncated, ErrLength, ErrMagic, ErrCodec), never
// panics, and never allocates more than a small multiple of the input (or of
// maxDecompressed). The section must hold exactly NumRecords records.
//
// Keys and values alias batch for uncompressed batches and a fresh
// decompression buffer otherwise; header keys are copied into strings.
func Records(batch []byte, maxDecompressed int) ([]Record, error) {
	return AppendRecords(nil, batch, maxDecompressed)
}

// AppendRecords is Records appending to dst (whose spare capacity it
// reuses); on error it returns dst unchanged.
func AppendRecords(dst []Record, batch []byte, maxDecompressed int) ([]Record, error) {
	h, err := whole(batch)
	if err != nil {
		return dst, err
	}
	if !h.Codec().known() {
		return dst, fmt.Errorf("%w: %d", ErrCodec, h.Codec())
	}
	if h.NumRecords < 0 {
		return dst, fmt.Errorf("%w: %d", ErrNoRecords, h.NumRecords)
	}
	data := batch[HeaderSize:]
	if h.Codec() != CodecNone && (len(data) > 0 || h.NumRecords > 0) {
		data, err = decompress(h.Codec(), data, maxDecompressed)
		if err != nil {
			return dst, err
		}
	}
	if int64(h.NumRecords) > int64(len(data)/minRecordSize) {
		return dst, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, h.NumRecords, len(data))
	}
	if h.NumRecords == 0 {
		if len(data) != 0 {
			return dst, fmt.Errorf("%w: %d bytes in a batch of no records", ErrCorrupt, len(data))
		}
		return dst, nil
	}
	n := len(dst)
	recs := slices.Grow(dst, int(h.NumRecords))[:n+int(h.NumRecords)]
	d := decoder{b: data}
	for i := n; i < len(recs); i++ {
		recs[i] = Record{}
		if err := d.record(&recs[i], h); err != nil {
			return dst, fmt.Errorf("%w: record %d: %s", ErrCorrupt, i-n, err.Error())
		}
	}
	if len(d.b) != 0 {
		return dst, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(d.b))
	}
	return recs, nil
}

// decoder reads records from b, consuming it.
type decoder struct {
	b []byte
}

// decodeError is a detail message wrapped in ErrCorrupt by the caller.
type decodeError string

func (e decodeError) Error() string { return string(e) }

// varlong reads a zig-zag varint; ok is false when it is malformed.
func (d *decoder) varlong() (v int64, ok bool) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, false
	}
	d.b = d.b[n:]
	return v, true
}

// varint reads a zig-zag varint that must fit an int32.
func (d *decoder) varint() (int32, bool) {
	v, ok := d.varlong()
	if !ok || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, false
	}
	return int32(v), true
}

func badVarint(what string) error { return decodeError("bad varint for " + what) }

// bytes reads a varint length and that many bytes; -1 is null (nil).
func (d *decoder) bytes(what string) ([]byte, error) {
	n, ok := d.varint()
	if !ok {
		return nil, badVarint(what + " length")
	}
	if n == -1 {
		return nil, nil
	}
	if n < 0 || int(n) > len(d.b) {
		return nil, decodeError(fmt.Sprintf("%s length %d with %d bytes left", what, n, len(d.b)))
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) record(r *Record, h Header) error {
	length, ok := d.varint()
	if !ok {
		return badVarint("record length")
	}
	if length < 0 || int(length) > len(d.b) {
		return decodeError(fmt.Sprintf("record length %d with %d bytes left", length, len(d.b)))
	}
	rd := decoder{b: d.b[:length]}
	d.b = d.b[length:]

	if len(rd.b) < 1 {
		return decodeError("missing attributes")
	}
	r.Attributes = int8(rd.b[0])
	rd.b = rd.b[1:]
	tsDelta, ok := rd.varlong()
	if !ok {
		return badVarint("timestamp delta")
	}
	offDelta, ok := rd.varint()
	if !ok {
		return badVarint("offset delta")
	}
	r.Offset = h.BaseOffset + int64(offDelta)
	if h.LogAppendTime() {
		r.Timestamp = h.MaxTimestamp
	} else {
		r.Timestamp = h.BaseTimestamp + tsDelta
	}
	var err error
	if r.Key, err = rd.bytes("key"); err != nil {
		return err
	}
	if r.Value, err = rd.bytes("value"); err != nil {
		return err
	}
	count, ok := rd.varint()
	if !ok {
		return badVarint("header count")
	}
	if count < 0 || int(count) > len(rd.b)/minHeaderSize {
		return decodeError(fmt.Sprintf("header count %d with %d bytes left", count, len(rd.b)))
	}
	if count > 0 {
		r.Headers = make([]RecordHeader, count)
		for j := range r.Headers {
			k, err := rd.bytes("header key")
			if err != nil {
				return err
			}
			if k == nil {
				return decodeError("null header key")
			}
			r.Headers[j].Key = string(k)
			if r.Headers[j].Value, err = rd.bytes("header value"); err != nil {
				return err
			}
		}
	}
	if len(rd.b) != 0 {
		return decodeError(fmt.Sprintf("%d bytes left inside the record", len(rd.b)))
	}
	return nil
}
