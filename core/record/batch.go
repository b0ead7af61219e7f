package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a RecordBatch v2 header; records start here.
const HeaderSize = 61

// Byte offsets of the header fields.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21 // first byte covered by the CRC
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// lengthOverhead is the number of bytes not counted by batchLength
	// (baseOffset and batchLength themselves).
	lengthOverhead = 12
	// minBatchLength is batchLength of a batch with an empty records section.
	minBatchLength = HeaderSize - lengthOverhead

	magicV2 = 2
)

// Attribute bits.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded 61-byte header of a RecordBatch v2.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the total number of bytes of the batch: BatchLength + 12.
func (h Header) Size() int { return int(h.BatchLength) + lengthOverhead }

// LastOffset is the offset of the last record the batch covers:
// BaseOffset + LastOffsetDelta.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the compression codec of the records section (attributes bits 0-2).
func (h Header) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// Transactional reports whether the batch is part of a transaction (bit 4).
func (h Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds control records (bit 5).
func (h Header) Control() bool { return h.Attributes&attrControl != 0 }

// LogAppendTime reports whether the timestamp type is LogAppendTime (bit 3):
// every record's timestamp is then the batch's MaxTimestamp.
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// ParseHeader decodes the header at the start of b. It needs
// len(b) >= HeaderSize (else ErrTruncated), checks magic == 2 (ErrMagic) and
// that BatchLength is at least HeaderSize-12 (ErrLength). It does not require
// the whole batch to be present and does not check the CRC.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := Header{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[offNumRecords:])),
	}
	if h.Magic != magicV2 {
		return h, fmt.Errorf("%w: %d", ErrMagic, h.Magic)
	}
	if h.BatchLength < minBatchLength {
		return h, fmt.Errorf("%w: batchLength %d < %d", ErrLength, h.BatchLength, minBatchLength)
	}
	return h, nil
}

// whole parses the header of b and checks that b is exactly one batch.
func whole(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if n := h.Size(); len(b) < n {
		return h, fmt.Errorf("%w: batch is %d bytes, have %d", ErrTruncated, n, len(b))
	} else if len(b) > n {
		return h, fmt.Errorf("%w: batch is %d bytes, given %d", ErrLength, n, len(b))
	}
	return h, nil
}

// checkCRC verifies the CRC of a whole batch.
func checkCRC(h Header, b []byte) error {
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: header %#08x, computed %#08x", ErrCRC, h.CRC, got)
	}
	return nil
}

// Validate checks that b is exactly one whole producer batch, as the broker
// does before appending it: len(b) == Size() (ErrTruncated when shorter,
// ErrLength when longer), magic 2 (ErrMagic), CRC-32C valid (ErrCRC),
// NumRecords > 0 (ErrNoRecords), LastOffsetDelta == NumRecords-1
// (ErrOffsetDelta), control bit not set (ErrControl), known codec (ErrCodec),
// and for idempotent batches (ProducerID >= 0) BaseSequence >= 0
// (ErrSequence). It does not look inside the records section.
func Validate(b []byte) (Header, error) {
	h, err := whole(b)
	if err != nil {
		return h, err
	}
	if err := checkCRC(h, b); err != nil {
		return h, err
	}
	if h.NumRecords <= 0 {
		return h, fmt.Errorf("%w: %d records in a producer batch", ErrNoRecords, h.NumRecords)
	}
	if h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrOffsetDelta, h.LastOffsetDelta, h.NumRecords)
	}
	if h.Control() {
		return h, ErrControl
	}
	if !h.Codec().known() {
		return h, fmt.Errorf("%w: %d", ErrCodec, h.Codec())
	}
	if h.ProducerID >= 0 && h.BaseSequence < 0 {
		return h, fmt.Errorf("%w: %d for producer %d", ErrSequence, h.BaseSequence, h.ProducerID)
	}
	return h, nil
}

// ValidateStored checks a batch as the log stores it: whole (ErrTruncated,
// ErrLength), magic 2 (ErrMagic), CRC valid (ErrCRC), known codec (ErrCodec),
// NumRecords >= 0 (ErrNoRecords) and LastOffsetDelta >= max(NumRecords-1, 0)
// (ErrOffsetDelta): compaction removes records but keeps the offset range,
// and every batch covers at least one offset. Control batches are allowed.
func ValidateStored(b []byte) (Header, error) {
	h, err := whole(b)
	if err != nil {
		return h, err
	}
	if err := checkCRC(h, b); err != nil {
		return h, err
	}
	if !h.Codec().known() {
		return h, fmt.Errorf("%w: %d", ErrCodec, h.Codec())
	}
	if h.NumRecords < 0 {
		return h, fmt.Errorf("%w: %d", ErrNoRecords, h.NumRecords)
	}
	if h.LastOffsetDelta < h.NumRecords-1 || h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: lastOffsetDelta %d with %d records", ErrOffsetDelta, h.LastOffsetDelta, h.NumRecords)
	}
	return h, nil
}

// SetBaseOffset writes baseOffset into the batch header in place. The field
// is outside the CRC, so the batch stays valid. b must hold at least the
// first 8 bytes of a batch (it panics otherwise, like a slice index).
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:offBaseOffset+8], uint64(off))
}

// SetPartitionLeaderEpoch writes partitionLeaderEpoch into the batch header
// in place. The field is outside the CRC, so the batch stays valid. b must
// hold at least the first 16 bytes of a batch.
func SetPartitionLeaderEpoch(b []byte, e int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:offLeaderEpoch+4], uint32(e))
}

// Next splits the first whole batch off a buffer of concatenated batches (as
// read from a segment): it returns the header, that batch's bytes (a
// sub-slice of b with its capacity clipped to its length, no copy), and the
// rest. It returns ErrTruncated if b holds a partial batch (fewer than
// HeaderSize bytes or fewer than Size()), and ErrMagic or ErrLength from
// ParseHeader. It does not verify the CRC.
func Next(b []byte) (h Header, batch, rest []byte, err error) {
	h, err = ParseHeader(b)
	if err != nil {
		return h, nil, b, err
	}
	n := h.Size()
	if len(b) < n {
		return h, nil, b, fmt.Errorf("%w: batch is %d bytes, have %d", ErrTruncated, n, len(b))
	}
	return h, b[:n:n], b[n:], nil
}

// SetLogAppendTime marks a whole, valid batch as carrying the broker's
// append time: it sets the timestamp-type attribute and MaxTimestamp to ts
// and recomputes the CRC (both fields are inside it). Readers then take ts
// as every record's timestamp.
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[offAttributes:]) | attrLogAppendTime
	be.PutUint16(b[offAttributes:], attrs)
	be.PutUint64(b[offMaxTimestamp:], uint64(ts))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}
