package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// GroupConsumeOptions say what ConsumeGroup reads and how it prints it.
type GroupConsumeOptions struct {
	// Group is the consumer group to join.
	Group string
	// Topics are the topics to subscribe to. Each must exist.
	Topics []string
	// Reset is where a partition starts when the group has no committed offset for it (or the committed
	// offset has left the log): OffsetBeginning (the zero value) or OffsetEnd.
	Reset OffsetSpec
	// Count stops after this many records; 0 means no limit.
	Count int64
	// Format prints each record; nil means DefaultFormat.
	Format *Format
	// Follow keeps consuming until ctx is done (or Count is reached). Without it ConsumeGroup returns once the
	// group has given this member its partitions and each of them has been read up to the high watermark it
	// had when it was assigned. A member assigned nothing (more members than partitions) returns at once.
	Follow bool
	// OnAssign, if set, is called for each partition assigned to this member once its start offset and high
	// watermark are known, before anything is fetched from it. Committed is false when the partition starts
	// at Reset because the group has no usable committed offset for it.
	OnAssign func(topic string, r PartitionRange, committed bool)
}

// ConsumeGroup consumes co.Topics as a member of consumer group co.Group (the classic group protocol, kgo's
// default cooperative-sticky assignor; isolation read_uncommitted) and writes each record, formatted, to w.
// It returns the number of records written.
//
// Offsets are committed at least once: a record's offset is marked for commit only after it has been written
// to w, marked offsets are committed every 5s while consuming, when partitions are revoked, and when
// ConsumeGroup returns (also when ctx is canceled). A record printed but not committed (a crash) is printed
// again by the next member; a record is never committed without having been printed.
func ConsumeGroup(ctx context.Context, o Options, co GroupConsumeOptions, w io.Writer) (n int64, err error) {
	if co.Group == "" {
		return 0, errors.New("no group given")
	}
	if len(co.Topics) == 0 {
		return 0, errors.New("no topic given")
	}
	var reset kgo.Offset
	switch co.Reset.Kind {
	case OffsetBeginning:
		reset = kgo.NewOffset().AtStart()
	case OffsetEnd:
		reset = kgo.NewOffset().AtEnd()
	default:
		return 0, fmt.Errorf("reset offset %s: a group member starts where the group left off; without a committed offset it starts at beginning or end (use `weir group seek` to move the group)", co.Reset)
	}
	format := co.Format
	if format == nil {
		if format, err = ParseFormat(DefaultFormat); err != nil {
			return 0, err
		}
	}
	if err := checkTopics(ctx, o, co.Topics); err != nil {
		return 0, err
	}

	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	tr := &assignTracker{follow: co.Follow, reset: co.Reset.Kind, onAssign: co.OnAssign, stop: stopPolling,
		resolving: map[tp]bool{}, end: map[tp]int64{}}
	cl, err := connect(ctx, o,
		kgo.ConsumerGroup(co.Group),
		kgo.ConsumeTopics(co.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
		kgo.AutoCommitMarks(),
		kgo.OnPartitionsAssigned(tr.assigned),
		kgo.AdjustFetchOffsetsFn(tr.adjust),
		kgo.OnPartitionsRevoked(tr.revoked),
		kgo.OnPartitionsLost(tr.lost),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close() // leaves the group
	defer func() {
		// Commit what was printed, even when ctx is canceled (Ctrl-C is how -F ends).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout())
		defer cancel()
		if cerr := cl.CommitMarkedOffsets(cctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("commit offsets of group %s: %w", co.Group, cerr))
		}
	}()

	out := bufio.NewWriterSize(w, 64<<10)
	var (
		buf     []byte
		printed []*kgo.Record
	)
	for {
		fetches := cl.PollFetches(pollCtx)
		if ctx.Err() != nil {
			return n, errors.Join(ctx.Err(), out.Flush())
		}
		if pollCtx.Err() != nil {
			return n, nil // finished (see assignTracker.checkFinished)
		}
		ferr := fetchErr(fetches)
		if ferr != nil {
			return n, errors.Join(ferr, out.Flush())
		}
		done := false
		printed = printed[:0]
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if done {
					return
				}
				if !tr.want(r) {
					continue // fetched past the high watermark it had when assigned: left for the next member
				}
				if !r.Attrs.IsControl() {
					buf = format.Append(buf[:0], r)
					if _, err := out.Write(buf); err != nil {
						ferr = fmt.Errorf("write output: %w", err)
						done = true
						return
					}
					n++
				}
				printed = append(printed, r)
				if co.Count > 0 && n >= co.Count {
					done = true
				}
			}
		})
		if err := out.Flush(); err != nil && ferr == nil {
			ferr = fmt.Errorf("write output: %w", err)
		}
		if ferr != nil {
			return n, ferr
		}
		// Only now that the records are out: mark them for the next commit.
		cl.MarkCommitRecords(printed...)
		if done || tr.finished() {
			return n, nil
		}
	}
}

// fetchErr returns the first error in fetches that kgo does not retry itself, as the package's error.
func fetchErr(fetches kgo.Fetches) error {
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		switch {
		case ferr != nil:
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		default:
			ferr = classifyFetchErr(t, p, err)
		}
	})
	return ferr
}

// checkTopics returns an UnknownTopicError for the first of topics that does not exist.
func checkTopics(ctx context.Context, o Options, topics []string) error {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	tds, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range topics {
		td, ok := tds[t]
		if !ok {
			return &UnknownTopicError{Topic: t}
		}
		if td.Err != nil {
			return topicErr(t, td.Err)
		}
	}
	return nil
}

type tp struct {
	topic     string
	partition int32
}

// assignTracker follows this member's assignment for ConsumeGroup: which partitions it owns, where each
// started, and (without follow) which are still below the high watermark they had when assigned. kgo calls
// its callbacks from its group goroutine, serially; the poll loop reads it concurrently, hence the mutex.
type assignTracker struct {
	follow   bool
	reset    OffsetKind
	onAssign func(string, PartitionRange, bool)
	stop     func() // wakes the poll loop once finished

	mu            sync.Mutex
	adm           *kadm.Client // over the member's own client, from the first assigned call
	gotAssignment bool         // an assignment has been received
	resolving     map[tp]bool  // assigned, start and end not yet known
	end           map[tp]int64 // assigned and not yet read up to this high watermark
}

// assigned records newly assigned partitions; their start and end are resolved in adjust, which kgo calls
// after fetching their committed offsets. kgo calls this after every rebalance, even with nothing new.
func (a *assignTracker) assigned(_ context.Context, cl *kgo.Client, ps map[string][]int32) {
	a.mu.Lock()
	if a.adm == nil {
		a.adm = kadm.NewClient(cl) // used by adjust, which kgo calls after this on the same goroutine
	}
	a.gotAssignment = true
	for t, parts := range ps {
		for _, p := range parts {
			a.resolving[tp{t, p}] = true
		}
	}
	a.mu.Unlock()
	a.checkFinished()
}

// adjust learns where each newly assigned partition starts (its committed offset, or the reset offset when
// there is none or it is outside the log) and its high watermark. It leaves the offsets as kgo fetched them.
func (a *assignTracker) adjust(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	topics := make([]string, 0, len(offs))
	for t := range offs {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	a.mu.Lock()
	adm := a.adm
	a.mu.Unlock()
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	type assignedPartition struct {
		topic     string
		r         PartitionRange
		committed bool
	}
	var news []assignedPartition
	for _, t := range topics {
		for p, o := range offs[t] {
			ls, lsok := starts.Lookup(t, p)
			hw, hwok := ends.Lookup(t, p)
			if !lsok || !hwok || ls.Err != nil || hw.Err != nil {
				return nil, fmt.Errorf("list offsets of %s partition %d: %w", t, p, errors.Join(ls.Err, hw.Err))
			}
			at := o.EpochOffset().Offset
			r := PartitionRange{Partition: p, Start: OffsetSpec{Kind: a.reset}.resolve(ls.Offset, hw.Offset, -1), End: hw.Offset}
			committed := at >= 0 && at >= ls.Offset && at <= hw.Offset
			if committed {
				r.Start = at
			}
			news = append(news, assignedPartition{t, r, committed})
		}
	}
	slices.SortFunc(news, func(x, y assignedPartition) int {
		if x.topic != y.topic {
			if x.topic < y.topic {
				return -1
			}
			return 1
		}
		return int(x.r.Partition - y.r.Partition)
	})
	a.mu.Lock()
	for _, np := range news {
		k := tp{np.topic, np.r.Partition}
		delete(a.resolving, k)
		delete(a.end, k)
		if a.follow || np.r.Start < np.r.End {
			a.end[k] = np.r.End
		}
	}
	a.mu.Unlock()
	if a.onAssign != nil {
		for _, np := range news {
			a.onAssign(np.topic, np.r, np.committed)
		}
	}
	a.checkFinished()
	return offs, nil
}

// revoked commits what has been printed (so the partitions' next owner goes on from there) and forgets the
// partitions. kgo also calls it when the member leaves the group on close.
func (a *assignTracker) revoked(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
	cl.CommitMarkedOffsets(ctx) // best effort; an error means the next owner re-reads some records
	a.forget(ps)
}

// lost forgets partitions lost on a fatal group error (commits would fail).
func (a *assignTracker) lost(_ context.Context, _ *kgo.Client, ps map[string][]int32) { a.forget(ps) }

func (a *assignTracker) forget(ps map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, parts := range ps {
		for _, p := range parts {
			delete(a.resolving, tp{t, p})
			delete(a.end, tp{t, p})
		}
	}
}

// want reports whether r is to be printed and committed, and notes a partition finished when r reaches the
// high watermark it had when assigned. With follow it is always true.
func (a *assignTracker) want(r *kgo.Record) bool {
	if a.follow {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := tp{r.Topic, r.Partition}
	stop, ok := a.end[k]
	if !ok || r.Offset >= stop {
		delete(a.end, k)
		return false
	}
	if r.Offset+1 >= stop {
		delete(a.end, k)
	}
	return true
}

// finished reports, without follow, whether an assignment was received and every assigned partition has been
// read up to its high watermark.
func (a *assignTracker) finished() bool {
	if a.follow {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gotAssignment && len(a.resolving) == 0 && len(a.end) == 0
}

func (a *assignTracker) checkFinished() {
	if a.finished() {
		a.stop()
	}
}
