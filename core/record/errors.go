package record

import "errors"

var (
	// ErrTruncated is returned when the input ends before the batch does:
	// fewer than HeaderSize bytes, or fewer than the batch's Size().
	ErrTruncated = errors.New("record: truncated batch")

	// ErrMagic is returned when the magic byte is not 2 (only RecordBatch
	// v2 is supported).
	ErrMagic = errors.New("record: unsupported magic")

	// ErrCRC is returned when the CRC-32C over bytes 21..end does not match
	// the header's crc field.
	ErrCRC = errors.New("record: crc mismatch")

	// ErrLength is returned when batchLength is smaller than a header
	// (HeaderSize-12) or inconsistent with the bytes given (a buffer that is
	// supposed to hold exactly one batch has trailing bytes).
	ErrLength = errors.New("record: invalid batch length")

	// ErrOffsetDelta is returned when lastOffsetDelta does not fit the
	// record count (producer batch: != count-1; stored batch:
	// < max(count-1, 0)),
	// or, from Build, when record offsets are not strictly increasing from
	// BaseOffset within int32 deltas.
	ErrOffsetDelta = errors.New("record: invalid last offset delta")

	// ErrNoRecords is returned when a producer batch holds no records or
	// a batch claims a negative record count.
	ErrNoRecords = errors.New("record: invalid record count")

	// ErrControl is returned by Validate when a client batch has the
	// control bit set (only the broker writes control batches).
	ErrControl = errors.New("record: control batch from client")

	// ErrSequence is returned when an idempotent batch (producerId >= 0)
	// has a negative baseSequence.
	ErrSequence = errors.New("record: invalid base sequence")

	// ErrCodec is returned for an unknown compression codec (attributes
	// bits 0-2 above 4, or an unknown name given to ParseCodec).
	ErrCodec = errors.New("record: unknown compression codec")

	// ErrCorrupt is returned when the records section is malformed: bad
	// varints, lengths or counts beyond the bytes present, trailing bytes,
	// or compressed data that does not decompress.
	ErrCorrupt = errors.New("record: corrupt records")

	// ErrTooLarge is returned when the records section would decompress to
	// more than the caller's maxDecompressed bytes.
	ErrTooLarge = errors.New("record: decompressed records too large")
)
