package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// BuildOptions describes the batch Build writes.
type BuildOptions struct {
	BaseOffset           int64
	PartitionLeaderEpoch int32
	Codec                Codec

	// ProducerID is the idempotent producer id; use -1 for none (the zero
	// value 0 is a valid producer id). When ProducerID < 0, Build writes
	// ProducerID -1, ProducerEpoch -1 and BaseSequence -1, as Kafka does for
	// non-idempotent batches, whatever the fields below say.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32

	Transactional bool
	Control       bool
	LogAppendTime bool

	// LastOffsetDelta, when non-nil, overrides the computed value (the
	// largest offset delta among the records, or 0 without records): used
	// by compaction to keep the original offset range of a batch whose
	// records were removed. It must be >= the computed value. nil means
	// compute. (With Go 1.26: LastOffsetDelta: new(h.LastOffsetDelta).)
	LastOffsetDelta *int32

	// BaseTimestamp and MaxTimestamp, when non-nil, override the computed
	// values (the smallest and largest record timestamps, or -1 without
	// records), e.g. to keep a compacted batch's original timestamps or to
	// set the log-append time. Record timestamp deltas are always relative
	// to the BaseTimestamp written.
	BaseTimestamp *int64
	MaxTimestamp  *int64
}

// Build encodes recs into one RecordBatch v2 with a valid CRC.
//
// Each record's offset delta is rec.Offset - opts.BaseOffset, so callers
// preserve original offsets (e.g. compaction); offsets must be strictly
// increasing, >= BaseOffset and within an int32 delta (else ErrOffsetDelta).
// BaseTimestamp is the smallest record timestamp and MaxTimestamp the
// largest, unless overridden. The records section is compressed with
// opts.Codec (snappy as a raw block); an unknown codec returns ErrCodec.
// Zero records are allowed (NumRecords 0) for control and compaction use;
// Validate rejects such a batch, ValidateStored accepts it.
func Build(opts BuildOptions, recs []Record) ([]byte, error) {
	if !opts.Codec.known() {
		return nil, fmt.Errorf("%w: %d", ErrCodec, opts.Codec)
	}
	if int64(len(recs)) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: %d records", ErrNoRecords, len(recs))
	}

	baseTS, maxTS := int64(-1), int64(-1)
	var lastDelta int32
	for i, r := range recs {
		if i == 0 || r.Timestamp < baseTS {
			baseTS = r.Timestamp
		}
		if i == 0 || r.Timestamp > maxTS {
			maxTS = r.Timestamp
		}
		d := r.Offset - opts.BaseOffset
		if d < 0 || d > math.MaxInt32 || (i > 0 && r.Offset <= recs[i-1].Offset) {
			return nil, fmt.Errorf("%w: record %d has offset %d (base %d)", ErrOffsetDelta, i, r.Offset, opts.BaseOffset)
		}
		lastDelta = int32(d)
	}
	if opts.LastOffsetDelta != nil {
		if *opts.LastOffsetDelta < lastDelta {
			return nil, fmt.Errorf("%w: LastOffsetDelta %d < largest record delta %d", ErrOffsetDelta, *opts.LastOffsetDelta, lastDelta)
		}
		lastDelta = *opts.LastOffsetDelta
	}
	if opts.BaseTimestamp != nil {
		baseTS = *opts.BaseTimestamp
	}
	if opts.MaxTimestamp != nil {
		maxTS = *opts.MaxTimestamp
	}

	// Size the uncompressed records section exactly.
	size := 0
	for _, r := range recs {
		n := bodySize(&r, r.Timestamp-baseTS, r.Offset-opts.BaseOffset)
		size += varintSize(int64(n)) + n
	}

	var out []byte
	if opts.Codec == CodecNone {
		out = make([]byte, HeaderSize, HeaderSize+size)
		out = appendRecords(out, recs, baseTS, opts.BaseOffset)
	} else {
		raw := appendRecords(make([]byte, 0, size), recs, baseTS, opts.BaseOffset)
		var err error
		out, err = compress(opts.Codec, make([]byte, HeaderSize, HeaderSize+len(raw)/2+64), raw)
		if err != nil {
			return nil, fmt.Errorf("record: compress %s: %w", opts.Codec, err)
		}
	}
	if len(out)-lengthOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("%w: batch of %d bytes", ErrLength, len(out))
	}

	attrs := int16(opts.Codec)
	if opts.LogAppendTime {
		attrs |= attrLogAppendTime
	}
	if opts.Transactional {
		attrs |= attrTransactional
	}
	if opts.Control {
		attrs |= attrControl
	}
	pid, epoch, seq := opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	if pid < 0 {
		pid, epoch, seq = -1, -1, -1
	}
	be := binary.BigEndian
	be.PutUint64(out[offBaseOffset:], uint64(opts.BaseOffset))
	be.PutUint32(out[offBatchLength:], uint32(len(out)-lengthOverhead))
	be.PutUint32(out[offLeaderEpoch:], uint32(opts.PartitionLeaderEpoch))
	out[offMagic] = magicV2
	be.PutUint16(out[offAttributes:], uint16(attrs))
	be.PutUint32(out[offLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(out[offBaseTimestamp:], uint64(baseTS))
	be.PutUint64(out[offMaxTimestamp:], uint64(maxTS))
	be.PutUint64(out[offProducerID:], uint64(pid))
	be.PutUint16(out[offProducerEpoch:], uint16(epoch))
	be.PutUint32(out[offBaseSequence:], uint32(seq))
	be.PutUint32(out[offNumRecords:], uint32(len(recs)))
	be.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
	return out, nil
}

func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63) // zig-zag
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func bytesSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(b))) + len(b)
}

// bodySize is the encoded size of a record after its length field.
func bodySize(r *Record, tsDelta, offDelta int64) int {
	n := 1 + varintSize(tsDelta) + varintSize(offDelta) + bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(v))), v...)
}

func appendRecords(b []byte, recs []Record, baseTS, baseOffset int64) []byte {
	for i := range recs {
		r := &recs[i]
		tsDelta, offDelta := r.Timestamp-baseTS, r.Offset-baseOffset
		b = binary.AppendVarint(b, int64(bodySize(r, tsDelta, offDelta)))
		b = append(b, byte(r.Attributes))
		b = binary.AppendVarint(b, tsDelta)
		b = binary.AppendVarint(b, offDelta)
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = binary.AppendVarint(b, int64(len(r.Headers)))
		for _, h := range r.Headers {
			b = binary.AppendVarint(b, int64(len(h.Key)))
			b = append(b, h.Key...)
			b = appendBytes(b, h.Value)
		}
	}
	return b
}
