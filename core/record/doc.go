// Package record provides zero-copy views over Kafka RecordBatch v2 bytes,
// the unit weir stores on disk and sends on the wire: segments hold batches
// exactly as producers sent them, so this package is both the storage format
// and the wire format.
//
// # Batch header
//
// A batch is a 61-byte header followed by the records section. All integers
// in the header are big-endian.
//
//	offset  size  field
//	     0     8  baseOffset            int64  producers send 0; the broker writes it in place
//	     8     4  batchLength           int32  bytes after this field: total size = batchLength + 12
//	    12     4  partitionLeaderEpoch  int32  written in place by the broker
//	    16     1  magic                 int8   always 2
//	    17     4  crc                   uint32 CRC-32C (Castagnoli) of bytes 21..end
//	   ----- everything from here to the end of the batch is covered by the CRC -----
//	    21     2  attributes            int16  see below
//	    23     4  lastOffsetDelta       int32  offset of the last record - baseOffset
//	    27     8  baseTimestamp         int64  ms; record timestamps are deltas from it
//	    35     8  maxTimestamp          int64  ms; largest record timestamp (or log-append time)
//	    43     8  producerId            int64  -1 when the producer is not idempotent
//	    51     2  producerEpoch         int16  -1 when not idempotent
//	    53     4  baseSequence          int32  record i has sequence baseSequence+i; -1 when not idempotent
//	    57     4  recordsCount          int32  number of records in the batch
//	    61     -  records               the records, back to back; one compressed blob when codec != none
//
// Attributes:
//
//	bit  0-2  compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd (5-7 invalid)
//	bit    3  timestamp type: 0 CreateTime, 1 LogAppendTime (record timestamps are maxTimestamp)
//	bit    4  transactional
//	bit    5  control batch (transaction markers, written by the broker only)
//	bit 6-15  unused, zero
//
// # Record
//
// Inside the (decompressed) records section each record is encoded with
// zig-zag varints (the same encoding as [encoding/binary.AppendVarint]):
//
//	length          varint   bytes of the record after this field
//	attributes      int8     unused, zero
//	timestampDelta  varlong  timestamp - baseTimestamp
//	offsetDelta     varint   offset - baseOffset
//	keyLength       varint   -1 for a null key
//	key             keyLength bytes
//	valueLength     varint   -1 for a null value
//	value           valueLength bytes
//	headerCount     varint
//	headers         headerCount times:
//	    headerKeyLength    varint  (never negative)
//	    headerKey          bytes (UTF-8)
//	    headerValueLength  varint  -1 for a null value
//	    headerValue        bytes
//
// # Invariants
//
//   - batchLength = total size - 12, and is at least HeaderSize-12 = 49.
//   - The CRC is CRC-32C (Castagnoli) over bytes 21..end. baseOffset and
//     partitionLeaderEpoch lie before byte 21, outside the CRC, so the broker
//     rewrites them in place ([SetBaseOffset], [SetPartitionLeaderEpoch])
//     without recomputing the CRC or re-encoding anything.
//   - A producer batch has recordsCount > 0, lastOffsetDelta = recordsCount-1
//     and no control bit; an idempotent one (producerId >= 0) has
//     baseSequence >= 0 ([Validate]).
//   - A stored batch may have had records removed by compaction:
//     recordsCount >= 0 and lastOffsetDelta >= recordsCount-1, because the
//     batch keeps its original offset range; every batch covers at least one
//     offset, so lastOffsetDelta >= 0 ([ValidateStored]).
//   - The offsets a batch covers are baseOffset..baseOffset+lastOffsetDelta.
//
// # Safety
//
// Every function here accepts arbitrary bytes: corrupt input yields an error
// (never a panic), and lengths and counts read from the input are checked
// against the bytes actually present before anything is allocated, so memory
// use is linear in the input and the decompressed size. Decompression is
// capped by the caller ([Records]'s maxDecompressed) and the cap is enforced
// while decompressing, not after. Only [Validate] and [ValidateStored] check
// the CRC; [ParseHeader], [Next] and [Records] do not.
//
// Views alias their input: the slices returned by [Next] and the keys and
// values of [Record] point into the batch (or a decompression buffer), so a
// caller that reuses the buffer must copy first.
package record
