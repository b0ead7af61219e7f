package broker

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/weirstream/weir/core/commitlog"
)

// Topic config keys, with Kafka's names. Every key has a broker-wide default
// (Config.TopicDefaults) that a topic may override.
const (
	CfgCleanupPolicy     = "cleanup.policy"      // delete, compact or "compact,delete"
	CfgRetentionMs       = "retention.ms"        // -1: forever
	CfgRetentionBytes    = "retention.bytes"     // -1: any size
	CfgSegmentBytes      = "segment.bytes"       // roll size
	CfgSegmentMs         = "segment.ms"          // roll age
	CfgMaxMessageBytes   = "max.message.bytes"   // largest batch
	CfgDeleteRetentionMs = "delete.retention.ms" // tombstone lifetime in compacted topics
	CfgFlushMessages     = "flush.messages"      // fsync every N batches; 1 = every batch (group commit)
	CfgFlushMs           = "flush.ms"            // fsync at most this long after an append
	CfgMessageTimestamp  = "message.timestamp.type"
)

// DefaultTopicConfigs are weir's defaults. Durability is on by default:
// flush.messages=1 fsyncs every batch before acknowledging it, which
// concurrent producers share (group commit). Kafka's default is to leave
// flushing to the OS and rely on replication; a single node has no replicas.
var DefaultTopicConfigs = map[string]string{
	CfgCleanupPolicy:     "delete",
	CfgRetentionMs:       strconv.FormatInt(7*24*3600*1000, 10),
	CfgRetentionBytes:    "-1",
	CfgSegmentBytes:      strconv.Itoa(1 << 30),
	CfgSegmentMs:         strconv.FormatInt(7*24*3600*1000, 10),
	CfgMaxMessageBytes:   "1048588",
	CfgDeleteRetentionMs: strconv.FormatInt(24*3600*1000, 10),
	CfgFlushMessages:     "1",
	CfgFlushMs:           "9223372036854775807",
	CfgMessageTimestamp:  "CreateTime",
}

// ConfigKeys lists the topic config keys weir knows, sorted.
func ConfigKeys() []string { return slices.Sorted(maps.Keys(DefaultTopicConfigs)) }

// parseInt parses a config value as an int64 within [lo, hi].
func parseInt(key, v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%q: want an integer in [%d, %d]", ErrInvalidConfig, key, v, lo, hi)
	}
	return n, nil
}

// logOptions validates a complete config map (defaults merged with
// overrides) and turns it into commitlog options.
func logOptions(cfg map[string]string) (commitlog.Options, error) {
	var o commitlog.Options
	for k := range cfg {
		if _, ok := DefaultTopicConfigs[k]; !ok {
			return o, fmt.Errorf("%w: unknown config %q (known: %v)", ErrInvalidConfig, k, ConfigKeys())
		}
	}
	switch cfg[CfgCleanupPolicy] {
	case "delete":
		o.Cleanup = commitlog.CleanupDelete
	case "compact":
		o.Cleanup = commitlog.CleanupCompact
	case "compact,delete", "delete,compact":
		o.Cleanup = commitlog.CleanupCompact | commitlog.CleanupDelete
	default:
		return o, fmt.Errorf("%w: %s=%q: want delete, compact or compact,delete", ErrInvalidConfig, CfgCleanupPolicy, cfg[CfgCleanupPolicy])
	}
	ms, err := parseInt(CfgRetentionMs, cfg[CfgRetentionMs], -1, 1<<62)
	if err != nil {
		return o, err
	}
	o.Retention = time.Duration(ms) * time.Millisecond
	if ms < 0 || ms > int64(1<<62)/int64(time.Millisecond) {
		o.Retention = -1
	} else if ms == 0 {
		o.Retention = time.Nanosecond // retention.ms=0 means delete as soon as possible
	}
	if o.RetentionBytes, err = parseInt(CfgRetentionBytes, cfg[CfgRetentionBytes], -1, 1<<62); err != nil {
		return o, err
	}
	if o.SegmentBytes, err = parseInt(CfgSegmentBytes, cfg[CfgSegmentBytes], 14, 1<<30); err != nil {
		return o, err
	}
	o.SegmentBytes = max(o.SegmentBytes, 1024)
	if ms, err = parseInt(CfgSegmentMs, cfg[CfgSegmentMs], 1, 1<<62); err != nil {
		return o, err
	}
	o.SegmentAge = clampMs(ms)
	mmb, err := parseInt(CfgMaxMessageBytes, cfg[CfgMaxMessageBytes], 0, 1<<30)
	if err != nil {
		return o, err
	}
	o.MaxMessageBytes = max(int(mmb), 1)
	if ms, err = parseInt(CfgDeleteRetentionMs, cfg[CfgDeleteRetentionMs], 0, 1<<62); err != nil {
		return o, err
	}
	o.DeleteRetention = max(clampMs(ms), time.Nanosecond)
	fm, err := parseInt(CfgFlushMessages, cfg[CfgFlushMessages], 1, 1<<63-1)
	if err != nil {
		return o, err
	}
	fms, err := parseInt(CfgFlushMs, cfg[CfgFlushMs], 0, 1<<63-1)
	if err != nil {
		return o, err
	}
	switch {
	case fm == 1 || fms == 0:
		o.Flush = commitlog.FlushPolicy{Mode: commitlog.FlushAlways}
	case fm >= 1<<62 && fms > int64(1<<62)/int64(time.Millisecond):
		o.Flush = commitlog.FlushPolicy{Mode: commitlog.FlushNever}
	default:
		o.Flush = commitlog.FlushPolicy{Mode: commitlog.FlushInterval}
		if fm < 1<<62 {
			o.Flush.Batches = int(fm)
		}
		if fms <= int64(1<<62)/int64(time.Millisecond) {
			o.Flush.Interval = time.Duration(fms) * time.Millisecond
		}
	}
	switch cfg[CfgMessageTimestamp] {
	case "CreateTime", "LogAppendTime":
	default:
		return o, fmt.Errorf("%w: %s=%q: want CreateTime or LogAppendTime", ErrInvalidConfig, CfgMessageTimestamp, cfg[CfgMessageTimestamp])
	}
	return o, nil
}

func clampMs(ms int64) time.Duration {
	if ms > int64(1<<62)/int64(time.Millisecond) {
		return 1 << 62
	}
	return time.Duration(ms) * time.Millisecond
}

// mergeConfigs returns defaults overlaid with overrides.
func mergeConfigs(defaults, overrides map[string]string) map[string]string {
	out := maps.Clone(defaults)
	maps.Copy(out, overrides)
	return out
}
