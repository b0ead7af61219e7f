package commitlog

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/weirstream/weir/core/vfs"
)

// Sentinel errors. Errors returned by this package wrap one of these (or an
// error from package record or vfs) with detail.
var (
	// ErrFailed is returned by Append and every write operation after an
	// fsync (or a write that could not be rolled back) failed: the log can no
	// longer promise durability and must be reopened.
	ErrFailed = errors.New("commitlog: log failed")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("commitlog: log closed")
	// ErrBatchTooLarge is returned by Append for a batch larger than
	// Options.MaxMessageBytes; nothing is written.
	ErrBatchTooLarge = errors.New("commitlog: batch larger than max.message.bytes")
	// ErrOffsetOutOfRange is returned by Read for an offset below the log
	// start offset or above the log end offset.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")
	// ErrCorrupt is returned by Open when a sealed segment below the recovery
	// point holds an invalid batch (damage the tail recovery must not silently
	// discard), or when the directory holds inconsistent segments.
	ErrCorrupt = errors.New("commitlog: corrupt log")
	// ErrInvalidOptions is returned by Open for options that fail validation.
	ErrInvalidOptions = errors.New("commitlog: invalid options")
)

// FlushMode says when the log fsyncs.
type FlushMode int

const (
	// FlushAlways fsyncs before Append returns (group commit).
	FlushAlways FlushMode = iota
	// FlushInterval fsyncs after FlushPolicy.Batches appended batches or
	// FlushPolicy.Interval, whichever comes first.
	FlushInterval
	// FlushNever leaves writeback to the operating system; Close still fsyncs.
	FlushNever
)

func (m FlushMode) String() string {
	switch m {
	case FlushAlways:
		return "always"
	case FlushInterval:
		return "interval"
	case FlushNever:
		return "never"
	}
	return fmt.Sprintf("FlushMode(%d)", int(m))
}

// ParseFlushMode parses "always", "interval" or "never".
func ParseFlushMode(s string) (FlushMode, error) {
	switch s {
	case "always":
		return FlushAlways, nil
	case "interval":
		return FlushInterval, nil
	case "never":
		return FlushNever, nil
	}
	return 0, fmt.Errorf("%w: unknown flush mode %q (want always, interval or never)", ErrInvalidOptions, s)
}

// FlushPolicy is when appended data is fsynced.
type FlushPolicy struct {
	Mode FlushMode
	// Batches: with FlushInterval, fsync after this many batches (0: no count trigger).
	Batches int
	// Interval: with FlushInterval, fsync at most this long after an append (0: no time trigger).
	Interval time.Duration
}

// CleanupPolicy says how old data leaves the log.
type CleanupPolicy int

const (
	// CleanupDelete deletes whole segments past retention.
	CleanupDelete CleanupPolicy = 1 << iota
	// CleanupCompact keeps only the last record per key in sealed segments.
	CleanupCompact
)

// Options configure a log. The zero value of a field means its default.
type Options struct {
	// FS is the filesystem; default vfs.OS.
	FS vfs.FS
	// SegmentBytes rolls the active segment when the next batch would grow it
	// past this size; default 1 GiB, at most 2 GiB (positions are uint32).
	SegmentBytes int64
	// SegmentAge rolls a non-empty active segment whose first batch was
	// appended longer ago than this; 0 disables age rolls.
	SegmentAge time.Duration
	// IndexIntervalBytes is the number of bytes between index entries; default 4096.
	IndexIntervalBytes int
	// MaxMessageBytes is the largest batch Append accepts; default 1048588
	// (Kafka's). A batch larger than SegmentBytes gets a segment of its own.
	MaxMessageBytes int
	// Flush is the flush policy; the zero value is FlushAlways.
	Flush FlushPolicy
	// Cleanup is a set of CleanupPolicy bits; default CleanupDelete.
	Cleanup CleanupPolicy
	// Retention deletes segments whose newest record is older than this; <0
	// keeps forever; 0 means the default, 7 days.
	Retention time.Duration
	// RetentionBytes deletes the oldest segments while the log is larger
	// than this; <=0 keeps any size.
	RetentionBytes int64
	// DeleteRetention keeps tombstones (null values) in compacted segments
	// for this long after their timestamp; default 24 hours.
	DeleteRetention time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives recovery and fault messages; default slog.Default().
	Logger *slog.Logger
}

const (
	defaultSegmentBytes     = 1 << 30
	maxSegmentBytes         = 2 << 30
	defaultIndexInterval    = 4096
	defaultMaxMessageBytes  = 1048588
	defaultRetention        = 7 * 24 * time.Hour
	defaultDeleteRetention  = 24 * time.Hour
	maxDecompressedPerBatch = 64 << 20
)

// withDefaults returns o with defaults filled in, or an error naming the
// first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	if o.SegmentBytes < 1024 || o.SegmentBytes > maxSegmentBytes {
		return o, fmt.Errorf("%w: segment bytes %d not in [1024, %d]", ErrInvalidOptions, o.SegmentBytes, int64(maxSegmentBytes))
	}
	if o.SegmentAge < 0 {
		return o, fmt.Errorf("%w: negative segment age %v", ErrInvalidOptions, o.SegmentAge)
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = defaultIndexInterval
	}
	if o.IndexIntervalBytes < 0 {
		return o, fmt.Errorf("%w: negative index interval %d", ErrInvalidOptions, o.IndexIntervalBytes)
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = defaultMaxMessageBytes
	}
	if o.MaxMessageBytes < 0 || o.MaxMessageBytes > 1<<30 {
		return o, fmt.Errorf("%w: max message bytes %d not in [1, 1 GiB]", ErrInvalidOptions, o.MaxMessageBytes)
	}
	switch o.Flush.Mode {
	case FlushAlways, FlushNever:
	case FlushInterval:
		if o.Flush.Batches < 0 || o.Flush.Interval < 0 || (o.Flush.Batches == 0 && o.Flush.Interval == 0) {
			return o, fmt.Errorf("%w: flush interval needs batches > 0 or interval > 0 (got %d, %v)", ErrInvalidOptions, o.Flush.Batches, o.Flush.Interval)
		}
	default:
		return o, fmt.Errorf("%w: unknown flush mode %d", ErrInvalidOptions, o.Flush.Mode)
	}
	if o.Cleanup == 0 {
		o.Cleanup = CleanupDelete
	}
	if o.Cleanup&^(CleanupDelete|CleanupCompact) != 0 {
		return o, fmt.Errorf("%w: unknown cleanup policy bits %#x", ErrInvalidOptions, int(o.Cleanup))
	}
	if o.Retention == 0 {
		o.Retention = defaultRetention
	}
	if o.DeleteRetention == 0 {
		o.DeleteRetention = defaultDeleteRetention
	}
	if o.DeleteRetention < 0 {
		return o, fmt.Errorf("%w: negative delete retention %v", ErrInvalidOptions, o.DeleteRetention)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}
