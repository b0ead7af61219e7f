package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumeOptions say what Consume reads and how it prints it.
type ConsumeOptions struct {
	Topic string
	// Offset is where every consumed partition starts (the zero value: the beginning).
	Offset OffsetSpec
	// Partition consumes only this partition; -1 consumes all of them.
	Partition int32
	// Count stops after this many records; 0 means no limit.
	Count int64
	// Format prints each record; nil means DefaultFormat.
	Format *Format
	// Follow keeps waiting for new records. Without it Consume returns once every consumed partition has
	// reached the high watermark it had when Consume started.
	Follow bool
	// OnStart, if set, is called once the start (and, without Follow, end) offsets are resolved, before
	// anything is fetched: records produced after this call are seen by a consumer that started at "end".
	OnStart func([]PartitionRange)
}

// PartitionRange is where Consume starts reading a partition and, without Follow, where it stops.
type PartitionRange struct {
	Partition int32
	Start     int64 // first offset to print
	End       int64 // high watermark when Consume started; without Follow, reading stops here
}

// Consume reads records from co.Topic directly (no consumer group, isolation read_uncommitted) and writes
// each one, formatted, to w. It returns the number of records written. A topic that does not exist is an
// error (it is never auto-created).
func Consume(ctx context.Context, o Options, co ConsumeOptions, w io.Writer) (int64, error) {
	format := co.Format
	if format == nil {
		var err error
		if format, err = ParseFormat(DefaultFormat); err != nil {
			return 0, err
		}
	}
	ranges, err := resolveRanges(ctx, o, co)
	if err != nil {
		return 0, err
	}
	if co.OnStart != nil {
		co.OnStart(ranges)
	}

	start := make(map[int32]kgo.Offset, len(ranges))
	end := make(map[int32]int64, len(ranges))
	for _, r := range ranges {
		if !co.Follow && r.Start >= r.End {
			continue // nothing to read here
		}
		start[r.Partition] = kgo.NewOffset().At(r.Start)
		end[r.Partition] = r.End
	}
	if len(start) == 0 {
		return 0, nil
	}

	cl, err := connect(ctx, o,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{co.Topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		// Reached only if an offset leaves the log (retention) while following: go on from the log start.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Control records (transaction markers) are not printed, but seeing them lets a partition whose last
		// offsets before the high watermark are markers count as finished.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return 0, err
	}
	defer cl.Close()

	out := bufio.NewWriterSize(w, 64<<10)
	var (
		n    int64
		buf  []byte
		left = len(start)
	)
	finish := func(p int32) {
		if _, ok := end[p]; ok {
			delete(end, p)
			left--
			cl.PauseFetchPartitions(map[string][]int32{co.Topic: {p}})
		}
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			out.Flush()
			return n, ctx.Err()
		}
		ferr := fetchErr(fetches)
		if ferr != nil {
			out.Flush()
			return n, ferr
		}
		done := false
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			for _, r := range fp.Records {
				if done {
					return
				}
				stop, ok := end[r.Partition]
				if !co.Follow && (!ok || r.Offset >= stop) {
					finish(r.Partition) // fetched past the high watermark seen at start
					continue
				}
				if !r.Attrs.IsControl() {
					buf = format.Append(buf[:0], r)
					if _, err := out.Write(buf); err != nil {
						ferr = fmt.Errorf("write output: %w", err)
						done = true
						return
					}
					n++
					if co.Count > 0 && n >= co.Count {
						done = true
						return
					}
				}
				if !co.Follow && r.Offset+1 >= stop {
					finish(r.Partition)
				}
			}
		})
		if err := out.Flush(); err != nil && ferr == nil {
			ferr = fmt.Errorf("write output: %w", err)
		}
		if ferr != nil {
			return n, ferr
		}
		if done || (!co.Follow && left == 0) {
			return n, nil
		}
	}
}

// resolveRanges checks that the topic (and partition) exist and lists, for each partition to consume, its
// start offset under co.Offset and its current high watermark.
func resolveRanges(ctx context.Context, o Options, co ConsumeOptions) ([]PartitionRange, error) {
	if co.Topic == "" {
		return nil, errors.New("no topic given")
	}
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()

	tds, err := adm.ListTopicsWithInternal(ctx, co.Topic)
	if err != nil {
		return nil, fmt.Errorf("consume %s: metadata: %w", co.Topic, err)
	}
	td, ok := tds[co.Topic]
	if !ok {
		return nil, &UnknownTopicError{Topic: co.Topic}
	}
	if td.Err != nil {
		return nil, topicErr(co.Topic, td.Err)
	}
	parts := td.Partitions.Numbers()
	slices.Sort(parts)
	if co.Partition >= 0 {
		if _, ok := td.Partitions[co.Partition]; !ok {
			return nil, fmt.Errorf("topic %s has no partition %d (it has %d)", co.Topic, co.Partition, len(parts))
		}
		parts = []int32{co.Partition}
	}

	offs, err := listPartitionOffsets(ctx, adm, "consume "+co.Topic, []string{co.Topic}, co.Offset.Kind == OffsetTimestamp, co.Offset.Value)
	if err != nil {
		return nil, err
	}
	var ranges []PartitionRange
	for _, p := range parts {
		ls, hw, at, err := offs.get(co.Topic, p)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, PartitionRange{Partition: p, Start: co.Offset.resolve(ls, hw, at), End: hw})
	}
	return ranges, nil
}

// classifyFetchErr turns a partition's fetch error into the package's error; nil for errors kgo retries itself.
func classifyFetchErr(t string, p int32, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return &UnknownTopicError{Topic: t}
	case kerr.IsRetriable(err):
		return nil
	case t == "":
		return fmt.Errorf("consume: %w", err) // not a partition's: a group error, for example
	}
	return fmt.Errorf("consume %s partition %d: %w", t, p, err)
}
