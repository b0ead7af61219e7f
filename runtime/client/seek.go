package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// SeekMode says how Seek picks a partition's new committed offset.
type SeekMode int

const (
	// SeekEarliest commits the log start offset.
	SeekEarliest SeekMode = iota
	// SeekLatest commits the high watermark: the group skips everything produced so far.
	SeekLatest
	// SeekOffset commits offset Value, clamped to [log start, high watermark].
	SeekOffset
	// SeekTimestamp commits the offset of the first record with a timestamp at or after Value (Unix
	// milliseconds), or the high watermark if no record is that new.
	SeekTimestamp
	// SeekShift moves the committed offset by Value (negative: back), clamped to [log start, high watermark].
	// Partitions without a committed offset are left alone.
	SeekShift
)

// SeekSpec is a parsed --to flag.
type SeekSpec struct {
	Mode  SeekMode
	Value int64
}

// ParseSeek parses a seek target: earliest (or start, beginning, oldest), latest (or end, newest), offset=N,
// timestamp=MS (or @MS), shift=N or shift=-N. "offset:N" and the other forms with ':' work too.
func ParseSeek(s string) (SeekSpec, error) {
	switch strings.ToLower(s) {
	case "earliest", "start", "beginning", "oldest":
		return SeekSpec{Mode: SeekEarliest}, nil
	case "latest", "end", "newest":
		return SeekSpec{Mode: SeekLatest}, nil
	}
	if ts, ok := strings.CutPrefix(s, "@"); ok {
		s = "timestamp=" + ts
	}
	mode, val, ok := strings.Cut(s, "=")
	if !ok {
		mode, val, ok = strings.Cut(s, ":")
	}
	const want = "want earliest, latest, offset N, timestamp MS or shift ±N"
	if !ok {
		switch strings.ToLower(s) {
		case "offset", "timestamp", "shift":
			return SeekSpec{}, fmt.Errorf("seek to %q: missing value (%s)", s, want)
		}
		return SeekSpec{}, fmt.Errorf("seek to %q: %s", s, want)
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(val, "+"), 10, 64)
	if err != nil {
		return SeekSpec{}, fmt.Errorf("seek to %q: %q is not an integer", s, val)
	}
	switch strings.ToLower(mode) {
	case "offset":
		if n < 0 {
			return SeekSpec{}, fmt.Errorf("seek to %q: want an offset >= 0", s)
		}
		return SeekSpec{Mode: SeekOffset, Value: n}, nil
	case "timestamp", "time", "ts":
		if n < 0 {
			return SeekSpec{}, fmt.Errorf("seek to %q: want a millisecond timestamp >= 0", s)
		}
		return SeekSpec{Mode: SeekTimestamp, Value: n}, nil
	case "shift":
		return SeekSpec{Mode: SeekShift, Value: n}, nil
	}
	return SeekSpec{}, fmt.Errorf("seek to %q: %s", s, want)
}

func (s SeekSpec) String() string {
	switch s.Mode {
	case SeekEarliest:
		return "earliest"
	case SeekLatest:
		return "latest"
	case SeekOffset:
		return "offset=" + strconv.FormatInt(s.Value, 10)
	case SeekTimestamp:
		return "timestamp=" + strconv.FormatInt(s.Value, 10)
	case SeekShift:
		return fmt.Sprintf("shift=%+d", s.Value)
	}
	return fmt.Sprintf("SeekSpec(%d,%d)", s.Mode, s.Value)
}

// newOffset returns the offset to commit for a partition spanning [logStart, hw) whose committed offset is old
// (-1: none); atTime is the listed offset for SeekTimestamp (-1: no record that new). ok is false when the
// partition is left alone (SeekShift without a committed offset).
func (s SeekSpec) newOffset(old, logStart, hw, atTime int64) (off int64, ok bool) {
	switch s.Mode {
	case SeekEarliest:
		return OffsetSpec{Kind: OffsetBeginning}.resolve(logStart, hw, -1), true
	case SeekLatest:
		return OffsetSpec{Kind: OffsetEnd}.resolve(logStart, hw, -1), true
	case SeekOffset:
		return OffsetSpec{Kind: OffsetExact, Value: s.Value}.resolve(logStart, hw, -1), true
	case SeekTimestamp:
		return OffsetSpec{Kind: OffsetTimestamp, Value: s.Value}.resolve(logStart, hw, atTime), true
	case SeekShift:
		if old < 0 {
			return -1, false
		}
		to := old + s.Value
		if s.Value > 0 && to < old { // overflow
			to = hw
		}
		return max(logStart, min(to, hw)), true
	}
	return -1, false
}

// SeekOptions say where Seek moves a group's committed offsets.
type SeekOptions struct {
	To SeekSpec
	// Topics limits the seek to these topics, every partition of each. Empty means every topic the group has
	// committed offsets for (every partition of those topics).
	Topics []string
	// DryRun computes and returns the new offsets without committing them.
	DryRun bool
}

// SeekResult is one partition's change.
type SeekResult struct {
	Topic     string
	Partition int32
	Old       int64 // committed before; -1 if none
	New       int64 // committed now; -1 if left alone (Skipped)
	// Skipped says why the partition was left alone ("" if it was not).
	Skipped string
}

// Seek resets a group's committed offsets (kafka-consumer-groups.sh --reset-offsets, rpk group seek). The group
// must have no members: the offsets are committed as an admin (generation -1, no member id), which the broker
// accepts only for an empty group; a group with members is a GroupNotEmptyError. A group that does not exist
// yet is created with the new offsets (Topics must then be given). Results are sorted by topic and partition.
func Seek(ctx context.Context, o Options, group string, so SeekOptions) ([]SeekResult, error) {
	if group == "" {
		return nil, errors.New("no group given")
	}
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()

	if err := checkEmpty(ctx, adm, group); err != nil {
		return nil, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("seek group %s: fetch committed offsets: %w", group, err)
	}
	topics := slices.Clone(so.Topics)
	if len(topics) == 0 {
		for t := range committed {
			topics = append(topics, t)
		}
		if len(topics) == 0 {
			return nil, fmt.Errorf("group %s has no committed offsets; name the topics to seek with --topic", group)
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)

	tds, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("seek group %s: metadata: %w", group, err)
	}
	for _, t := range topics {
		td, ok := tds[t]
		if !ok {
			return nil, &UnknownTopicError{Topic: t}
		}
		if td.Err != nil {
			return nil, topicErr(t, td.Err)
		}
	}
	offs, err := listPartitionOffsets(ctx, adm, "seek group "+group, topics, so.To.Mode == SeekTimestamp, so.To.Value)
	if err != nil {
		return nil, err
	}

	var results []SeekResult
	commit := kadm.Offsets{}
	for _, t := range topics {
		for _, p := range tds[t].Partitions.Numbers() {
			old := int64(-1)
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil {
				old = c.At
			}
			ls, hw, at, err := offs.get(t, p)
			if err != nil {
				return nil, err
			}
			r := SeekResult{Topic: t, Partition: p, Old: old, New: -1}
			if off, ok := so.To.newOffset(old, ls, hw, at); ok {
				r.New = off
				commit.Add(kadm.Offset{Topic: t, Partition: p, At: off, LeaderEpoch: -1})
			} else {
				r.Skipped = "no committed offset to shift"
			}
			results = append(results, r)
		}
	}
	slices.SortFunc(results, func(a, b SeekResult) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	if so.DryRun || len(commit) == 0 {
		return results, nil
	}
	if err := commitAsAdmin(ctx, adm, group, commit); err != nil {
		return nil, err
	}
	return results, nil
}

// checkEmpty returns a GroupNotEmptyError if the group has members.
func checkEmpty(ctx context.Context, adm *kadm.Client, group string) error {
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("seek group %s: describe: %w", group, err)
	}
	d, ok := ds[group]
	switch {
	case !ok:
		return fmt.Errorf("seek group %s: describe: no answer from the broker", group)
	case d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound):
		return fmt.Errorf("seek group %s: describe: %w", group, d.Err)
	case len(d.Members) > 0:
		return &GroupNotEmptyError{Group: group, Op: "seek", Members: len(d.Members)}
	}
	return nil
}

// commitAsAdmin commits offsets for group with generation -1 and no member id. The broker refuses that with
// UNKNOWN_MEMBER_ID while the group has members (one may have joined since checkEmpty): that becomes a
// GroupNotEmptyError.
func commitAsAdmin(ctx context.Context, adm *kadm.Client, group string, offs kadm.Offsets) error {
	resps, err := adm.CommitOffsets(ctx, group, offs)
	if err != nil {
		return fmt.Errorf("seek group %s: commit: %w", group, err)
	}
	var errs []error
	notEmpty := false
	for _, r := range resps.Sorted() {
		switch {
		case r.Err == nil:
		case errors.Is(r.Err, kerr.UnknownMemberID), errors.Is(r.Err, kerr.IllegalGeneration),
			errors.Is(r.Err, kerr.RebalanceInProgress):
			notEmpty = true
		case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
			errs = append(errs, &UnknownTopicError{Topic: r.Topic})
		default:
			errs = append(errs, fmt.Errorf("seek group %s: commit %s partition %d: %w", group, r.Topic, r.Partition, r.Err))
		}
	}
	if notEmpty {
		e := &GroupNotEmptyError{Group: group, Op: "seek"}
		if ds, err := adm.DescribeGroups(ctx, group); err == nil {
			e.Members = len(ds[group].Members)
		}
		return e
	}
	return errors.Join(errs...)
}

// PrintSeek writes seek results as a table: topic, partition, old → new.
func PrintSeek(w io.Writer, rs []SeekResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD-OFFSET\t\tNEW-OFFSET")
	for _, r := range rs {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\t(unchanged: %s)\n", r.Topic, r.Partition, offset(r.Old), r.Skipped)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t→\t%d\n", r.Topic, r.Partition, offset(r.Old), r.New)
	}
	return tw.Flush()
}
