package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// OffsetKind says how an OffsetSpec picks the first offset to consume.
type OffsetKind int

const (
	// OffsetBeginning starts at each partition's log start offset.
	OffsetBeginning OffsetKind = iota
	// OffsetEnd starts at each partition's high watermark: only records produced from now on.
	OffsetEnd
	// OffsetExact starts at offset Value (clamped to [log start, high watermark]).
	OffsetExact
	// OffsetFromEnd starts Value records before the high watermark (not before the log start).
	OffsetFromEnd
	// OffsetTimestamp starts at the first record whose timestamp is at or after Value (Unix milliseconds).
	OffsetTimestamp
)

// OffsetSpec is a parsed -o/--offset flag.
type OffsetSpec struct {
	Kind  OffsetKind
	Value int64
}

// ParseOffset parses a kcat-style start offset: "beginning" (or "start", "oldest"), "end" (or "newest"), N
// (absolute), -N (N before the end), @MS or s@MS (first record at or after the Unix timestamp MS in
// milliseconds).
func ParseOffset(s string) (OffsetSpec, error) {
	switch strings.ToLower(s) {
	case "beginning", "start", "oldest", "earliest":
		return OffsetSpec{Kind: OffsetBeginning}, nil
	case "end", "newest", "latest":
		return OffsetSpec{Kind: OffsetEnd}, nil
	}
	if ts, ok := strings.CutPrefix(s, "s@"); ok {
		s = "@" + ts
	}
	if ts, ok := strings.CutPrefix(s, "@"); ok {
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || ms < 0 {
			return OffsetSpec{}, fmt.Errorf("offset %q: want @TIMESTAMP_MS with a non-negative millisecond timestamp", s)
		}
		return OffsetSpec{Kind: OffsetTimestamp, Value: ms}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return OffsetSpec{}, fmt.Errorf("offset %q: want beginning, end, N, -N or @TIMESTAMP_MS", s)
	}
	if strings.HasPrefix(s, "-") {
		return OffsetSpec{Kind: OffsetFromEnd, Value: -n}, nil
	}
	return OffsetSpec{Kind: OffsetExact, Value: n}, nil
}

func (o OffsetSpec) String() string {
	switch o.Kind {
	case OffsetBeginning:
		return "beginning"
	case OffsetEnd:
		return "end"
	case OffsetExact:
		return strconv.FormatInt(o.Value, 10)
	case OffsetFromEnd:
		return "-" + strconv.FormatInt(o.Value, 10)
	case OffsetTimestamp:
		return "@" + strconv.FormatInt(o.Value, 10)
	}
	return fmt.Sprintf("OffsetSpec(%d,%d)", o.Kind, o.Value)
}

// resolve returns the start offset for a partition whose log spans [logStart, hw). atTime is the offset the
// broker listed for an OffsetTimestamp spec (-1 when it found none), ignored otherwise. The result always lies
// in [logStart, hw].
func (o OffsetSpec) resolve(logStart, hw, atTime int64) int64 {
	var off int64
	switch o.Kind {
	case OffsetBeginning:
		off = logStart
	case OffsetEnd:
		off = hw
	case OffsetExact:
		off = o.Value
	case OffsetFromEnd:
		off = hw - o.Value
	case OffsetTimestamp:
		off = atTime
		if off < 0 {
			off = hw
		}
	}
	return max(logStart, min(off, hw))
}

// partitionOffsets are the listed offsets of some topics' partitions: log
// start, log end (high watermark) and, when asked, the first offset at or
// after a time. Consume and Seek both resolve their start points from them.
type partitionOffsets struct {
	op                   string // prefixes errors: "consume orders", "seek group billing"
	starts, ends, atTime kadm.ListedOffsets
}

// listPartitionOffsets lists start and end offsets of topics, and with
// withTime the offsets at atMilli.
func listPartitionOffsets(ctx context.Context, adm *kadm.Client, op string, topics []string, withTime bool, atMilli int64) (*partitionOffsets, error) {
	po := &partitionOffsets{op: op}
	var err error
	if po.starts, err = adm.ListStartOffsets(ctx, topics...); err != nil {
		return nil, fmt.Errorf("%s: list start offsets: %w", op, err)
	}
	if po.ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
		return nil, fmt.Errorf("%s: list end offsets: %w", op, err)
	}
	if withTime {
		if po.atTime, err = adm.ListOffsetsAfterMilli(ctx, atMilli, topics...); err != nil {
			return nil, fmt.Errorf("%s: list timestamp offsets: %w", op, err)
		}
	}
	return po, nil
}

// get returns a partition's log start, log end and offset at the listed
// time (-1 when no time was listed, or no record is that new).
func (po *partitionOffsets) get(t string, p int32) (start, end, at int64, err error) {
	one := func(l kadm.ListedOffsets) (int64, error) {
		lo, ok := l.Lookup(t, p)
		if !ok {
			return 0, fmt.Errorf("%s: no offsets listed for %s partition %d", po.op, t, p)
		}
		if lo.Err != nil {
			return 0, fmt.Errorf("%s: list offsets of %s partition %d: %w", po.op, t, p, topicErr(t, lo.Err))
		}
		return lo.Offset, nil
	}
	if start, err = one(po.starts); err != nil {
		return 0, 0, 0, err
	}
	if end, err = one(po.ends); err != nil {
		return 0, 0, 0, err
	}
	at = -1
	if po.atTime != nil {
		if at, err = one(po.atTime); err != nil {
			return 0, 0, 0, err
		}
	}
	return start, end, at, nil
}
