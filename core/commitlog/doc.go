// Package commitlog is weir's partition log: an ordered, append-only,
// durable sequence of Kafka RecordBatch v2 batches, stored as the producer
// sent them.
//
// # On-disk format
//
// A log is one directory. It holds segments, each a group of three files
// named by the segment's base offset (the offset of its first record) printed
// as 20 decimal digits, and one checkpoint file:
//
//	00000000000000000000.log        batches, back to back, exactly as on the wire
//	00000000000000000000.index      sparse offset index: 8-byte entries
//	00000000000000000000.timeindex  sparse time index: 16-byte entries
//	00000000000000004096.log        the next segment starts at offset 4096
//	...
//	checkpoint                      recovery point and clean-shutdown flag
//
// A .log file is a concatenation of RecordBatch v2 batches (see package
// record). Each batch's baseOffset and partitionLeaderEpoch were written by
// the log on append; every other byte is the producer's, so the batch CRC
// still holds and fetch returns file bytes without re-encoding.
//
// An .index entry is (relativeOffset uint32, position uint32), big-endian:
// the batch whose baseOffset is segmentBase+relativeOffset starts at byte
// position of the .log file. An entry is added when at least
// IndexIntervalBytes were appended since the previous one, so a lookup reads
// at most about IndexIntervalBytes of batch headers after the index.
//
// A .timeindex entry is (maxTimestamp int64, relativeOffset uint32,
// position uint32), big-endian: maxTimestamp is the largest batch
// MaxTimestamp in the segment up to and including the batch at position,
// which is the batch that first reached it. Entries are added at index
// intervals when the running maximum grows, and once more when a segment is
// sealed, so the last entry of a sealed segment holds its maximum timestamp.
// Timestamps are therefore non-decreasing along the file, and every batch
// before an entry's position has a MaxTimestamp no larger than the entry's.
//
// The checkpoint file is 48 bytes: magic "WLCP", version uint32 (1), flags
// uint32 (bit 0: clean shutdown), recoveryPoint int64, logEndOffset int64,
// activeBase int64, activeSize int64, CRC-32C of the preceding bytes
// uint32. It is replaced atomically (write to checkpoint.tmp, fsync,
// rename, fsync the directory).
//
// # Invariants
//
//   - Segment base offsets strictly increase; a segment's batches have
//     increasing baseOffsets no smaller than the segment base and smaller than
//     the next segment's base. Offsets are dense except where compaction
//     removed records.
//   - Every offset below the recovery point is in a segment that was fsynced
//     (data and indexes) before the checkpoint was written.
//   - Readers see only whole batches: a segment publishes its size after the
//     write of a batch has returned, and readers never read past it.
//   - 0 <= logStartOffset <= highWatermark <= logEndOffset. Reads stop at the
//     high watermark, which the caller advances (a single node advances it to
//     the log end once the batch is durable per the flush policy).
//
// # Recovery
//
// Open after a clean shutdown (checkpoint flag set, and the active segment's
// size matches) loads the indexes and reads no batch data. After a crash it
// scans the segments from the one holding the recovery point to the end,
// checks every batch (length, magic, CRC, offsets), truncates the log at the
// first batch that is invalid or torn, drops any later segment, and rebuilds
// those segments' indexes. An invalid batch below the recovery point (data
// that was fsynced) is a disk fault and fails Open with ErrCorrupt instead.
// An index file that is missing or inconsistent is rebuilt from its segment
// wherever it is.
//
// # Durability
//
// FlushAlways fsyncs before Append returns; concurrent appenders share one
// fsync (group commit). FlushInterval fsyncs every N batches or T, whichever
// comes first; a crash may lose what was appended since the last fsync.
// FlushNever leaves it to the operating system. An fsync error marks the
// log failed: the page cache may have dropped the dirty pages, so retrying
// could report success for data that is gone. Every later Append returns
// ErrFailed; reads continue.
//
// # Concurrency and lock order
//
// One Append runs at a time (appendMu). Readers take mu for reading only to
// pick a segment and pin it, then read without locks, so they never block the
// appender. Retention and compaction serialize on cleanMu and take appendMu
// and mu only to swap segments. Lock order: cleanMu, appendMu, mu, segment.mu,
// syncMu.
package commitlog
