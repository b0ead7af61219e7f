package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The broker holds an empty group's first rebalance open for group.initial.rebalance.delay (3s): every join
// below takes that long, so the tests run in parallel and poll with deadlines.

// eventually polls cond every 50ms until it returns nil or the deadline passes, then fails with its last error.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeGroup runs ConsumeGroup with format %v\n and returns the printed values.
func consumeGroup(t *testing.T, ctx context.Context, o Options, co GroupConsumeOptions) []string {
	t.Helper()
	f, err := ParseFormat(`%v\n`)
	if err != nil {
		t.Fatal(err)
	}
	co.Format = f
	var out bytes.Buffer
	n, err := ConsumeGroup(ctx, o, co, &out)
	if err != nil {
		t.Fatalf("consume -g %s: %v", co.Group, err)
	}
	got := lines(out.String())
	if int64(len(got)) != n {
		t.Fatalf("consume -g %s: returned %d, printed %d lines", co.Group, n, len(got))
	}
	return got
}

func committedOffsets(t *testing.T, ctx context.Context, o Options, group string) map[string]map[int32]int64 {
	t.Helper()
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	rs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	rs.Each(func(r kadm.OffsetResponse) {
		if r.Err != nil {
			t.Fatalf("committed offset of %s/%d: %v", r.Topic, r.Partition, r.Err)
		}
		if out[r.Topic] == nil {
			out[r.Topic] = map[int32]int64{}
		}
		out[r.Topic][r.Partition] = r.At
	})
	return out
}

func TestGroupListDescribeDeleteWithLiveMember(t *testing.T) {
	t.Parallel()
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "orders", 2)
	mustProduce(t, ctx, o, ProduceOptions{Topic: "orders", Partition: 0}, "a0\na1\na2\na3\na4\na5\n")
	mustProduce(t, ctx, o, ProduceOptions{Topic: "orders", Partition: 1}, "b0\nb1\nb2\nb3\n")

	// A real group member: consumes all 10 records, then commits what it "processed": offset 4 of partition 0
	// and nothing of partition 1.
	member, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.ClientID("test-member"),
		kgo.ConsumerGroup("live"), kgo.ConsumeTopics("orders"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			member.Close()
		}
	}()
	var seen int
	for seen < 10 {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("member saw %d of 10 records: %v", seen, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("member fetch: %v", errs)
		}
		seen += fs.NumRecords()
	}
	var commitErr error
	member.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"orders": {0: {Epoch: -1, Offset: 4}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
			if err == nil {
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						commitErr = errors.Join(commitErr, kerr.ErrorForCode(p.ErrorCode))
					}
				}
			}
		})
	if commitErr != nil {
		t.Fatalf("member commit: %v", commitErr)
	}

	var d *GroupDescription
	eventually(t, 20*time.Second, "describe live group", func() error {
		d, err = DescribeGroup(ctx, o, "live")
		if err != nil {
			return err
		}
		if d.State != "Stable" || len(d.Members) != 1 || len(d.Partitions) != 2 {
			return fmt.Errorf("state %s, %d members, %d partitions", d.State, len(d.Members), len(d.Partitions))
		}
		return nil
	})
	m := d.Members[0]
	if m.ClientID != "test-member" || m.ID == "" || m.Host == "" || !slices.Equal(m.Assigned["orders"], []int32{0, 1}) ||
		!slices.Equal(m.Topics, []string{"orders"}) {
		t.Fatalf("member: %+v", m)
	}
	if d.ProtocolType != "consumer" || d.Protocol == "" {
		t.Fatalf("protocol %q/%q", d.ProtocolType, d.Protocol)
	}
	want := []struct {
		p                          int32
		committed, start, end, lag int64
	}{
		{0, 4, 0, 6, 2},
		{1, -1, 0, 4, 4}, // nothing committed: lag is log end - log start
	}
	for _, w := range want {
		p, ok := d.Partition("orders", w.p)
		if !ok || p.Committed != w.committed || p.LogStart != w.start || p.LogEnd != w.end || p.Lag != w.lag ||
			p.Member == nil || p.Member.ID != m.ID || p.Err != nil {
			t.Fatalf("partition %d: %+v (member %+v), want %+v", w.p, p, p.Member, w)
		}
	}
	if d.TotalLag != 6 {
		t.Fatalf("total lag %d, want 6", d.TotalLag)
	}
	var buf bytes.Buffer
	if err := d.Print(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"STATE          Stable", "TOTAL-LAG      6", "test-member", "orders[0,1]", "CURRENT-OFFSET", m.ID} {
		if !strings.Contains(buf.String(), s) {
			t.Fatalf("describe output lacks %q:\n%s", s, buf.String())
		}
	}

	gs, err := ListGroups(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0] != (GroupSummary{Group: "live", State: "Stable", ProtocolType: "consumer", Protocol: d.Protocol, Members: 1}) {
		t.Fatalf("list: %+v", gs)
	}

	// Seek and delete are refused while the member is there.
	_, err = Seek(ctx, o, "live", SeekOptions{To: SeekSpec{Mode: SeekEarliest}})
	if !errors.Is(err, ErrGroupNotEmpty) || err.Error() != "group live has 1 active member; seek needs an empty group" {
		t.Fatalf("seek with a member: %v", err)
	}
	// Past the client's check, the broker refuses the admin commit (UNKNOWN_MEMBER_ID): the same error.
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	err = commitAsAdmin(ctx, adm, "live", kadm.Offsets{"orders": {0: {Topic: "orders", Partition: 0, At: 0, LeaderEpoch: -1}}})
	if !errors.Is(err, ErrGroupNotEmpty) || !strings.Contains(err.Error(), "seek needs an empty group") {
		t.Fatalf("admin commit with a member: %v", err)
	}
	if got := committedOffsets(t, ctx, o, "live"); got["orders"][0] != 4 {
		t.Fatalf("refused seek changed the offsets: %v", got)
	}
	err = DeleteGroups(ctx, o, "live")
	if !errors.Is(err, ErrGroupNotEmpty) || !errors.Is(err, kerr.NonEmptyGroup) || err.Error() != "group live has active members; stop them first" {
		t.Fatalf("delete with a member: %v", err)
	}

	// The member leaves: the group is Empty, keeps its offsets, and can be deleted.
	member.Close()
	closed = true
	eventually(t, 10*time.Second, "group empty after the member left", func() error {
		d, err = DescribeGroup(ctx, o, "live")
		if err != nil {
			return err
		}
		if d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %s, %d members", d.State, len(d.Members))
		}
		return nil
	})
	if p, _ := d.Partition("orders", 0); p.Committed != 4 || p.Member != nil || p.Lag != 2 {
		t.Fatalf("empty group partition 0: %+v", p)
	}
	if err := DeleteGroups(ctx, o, "live"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := DescribeGroup(ctx, o, "live"); !errors.Is(err, ErrUnknownGroup) || err.Error() != "group live does not exist" {
		t.Fatalf("describe deleted group: %v", err)
	}
	if err := DeleteGroups(ctx, o, "live", "never"); !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), "group never does not exist") {
		t.Fatalf("delete deleted group: %v", err)
	}
	if gs, err := ListGroups(ctx, o); err != nil || len(gs) != 0 {
		t.Fatalf("list after delete: %+v %v", gs, err)
	}
	// Its offsets went with it: a new member of the same name starts at the reset offset.
	if got := committedOffsets(t, ctx, o, "live"); len(got) != 0 {
		t.Fatalf("offsets after delete: %v", got)
	}
}

func TestGroupSeekModes(t *testing.T) {
	t.Parallel()
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "events", 1)
	const base = int64(1_700_000_000_000)
	cl, err := connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r := &kgo.Record{Topic: "events", Value: fmt.Appendf(nil, "v%d", i), Timestamp: time.UnixMilli(base + int64(i)*1000)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	vals := func(from, to int) []string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprintf("v%d", i))
		}
		return s
	}
	g := GroupConsumeOptions{Group: "app", Topics: []string{"events"}}
	withCount := func(n int64) GroupConsumeOptions { c := g; c.Count = n; return c }

	// Seek needs something to act on.
	if _, err := Seek(ctx, o, "app", SeekOptions{To: SeekSpec{Mode: SeekEarliest}}); err == nil || !strings.Contains(err.Error(), "no committed offsets") {
		t.Fatalf("seek of a group without offsets: %v", err)
	}
	if _, err := Seek(ctx, o, "app", SeekOptions{To: SeekSpec{Mode: SeekEarliest}, Topics: []string{"nope"}}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("seek of an unknown topic: %v", err)
	}

	if got := consumeGroup(t, ctx, o, g); !slices.Equal(got, vals(0, 10)) {
		t.Fatalf("first consume: %q", got)
	}
	steps := []struct {
		to       string
		old, new int64
		consume  int64    // -n for the consume after the seek (0: to the end)
		want     []string // what that consume prints
	}{
		{"earliest", 10, 0, 2, vals(0, 2)},
		{"shift=+3", 2, 5, 1, vals(5, 6)},
		{"shift=-100", 6, 0, 1, vals(0, 1)}, // clamped to the log start
		{"offset=7", 1, 7, 0, vals(7, 10)},  // then at the end again
		{"offset=1000", 10, 10, 0, nil},     // clamped to the high watermark
		{"timestamp=" + fmt.Sprint(base+4000), 10, 4, 1, vals(4, 5)},
		{"@" + fmt.Sprint(base+4500), 5, 5, 1, vals(5, 6)},      // first record at or after: v5
		{"timestamp=" + fmt.Sprint(base+99_000), 6, 10, 0, nil}, // no record that new: the end
		{"shift=-3", 10, 7, 0, vals(7, 10)},
		{"latest", 10, 10, 0, nil},
	}
	for _, s := range steps {
		spec, err := ParseSeek(s.to)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := Seek(ctx, o, "app", SeekOptions{To: spec})
		if err != nil {
			t.Fatalf("seek --to %s: %v", s.to, err)
		}
		if len(rs) != 1 || rs[0] != (SeekResult{Topic: "events", Partition: 0, Old: s.old, New: s.new}) {
			t.Fatalf("seek --to %s: %+v, want %d → %d", s.to, rs, s.old, s.new)
		}
		if got := committedOffsets(t, ctx, o, "app")["events"][0]; got != s.new {
			t.Fatalf("seek --to %s: committed %d, want %d", s.to, got, s.new)
		}
		if got := consumeGroup(t, ctx, o, withCount(s.consume)); !slices.Equal(got, s.want) {
			t.Fatalf("consume after seek --to %s: %q, want %q", s.to, got, s.want)
		}
	}

	// --dry-run computes without committing; PrintSeek shows old → new.
	rs, err := Seek(ctx, o, "app", SeekOptions{To: SeekSpec{Mode: SeekOffset, Value: 3}, Topics: []string{"events"}, DryRun: true})
	if err != nil || len(rs) != 1 || rs[0].New != 3 {
		t.Fatalf("dry run: %+v %v", rs, err)
	}
	if got := committedOffsets(t, ctx, o, "app")["events"][0]; got != 10 {
		t.Fatalf("dry run committed %d", got)
	}
	var buf bytes.Buffer
	if err := PrintSeek(&buf, rs); err != nil || !strings.Contains(buf.String(), "10          →  3") {
		t.Fatalf("PrintSeek: %v\n%s", err, buf.String())
	}

	// --topic on a group that never consumed creates it; shift leaves partitions without a commit alone.
	rs, err = Seek(ctx, o, "fresh", SeekOptions{To: SeekSpec{Mode: SeekShift, Value: 2}, Topics: []string{"events"}})
	if err != nil || len(rs) != 1 || rs[0].Skipped == "" || rs[0].New != -1 {
		t.Fatalf("shift without a commit: %+v %v", rs, err)
	}
	if _, err := Seek(ctx, o, "fresh", SeekOptions{To: SeekSpec{Mode: SeekOffset, Value: 8}, Topics: []string{"events"}}); err != nil {
		t.Fatal(err)
	}
	if got := consumeGroup(t, ctx, o, GroupConsumeOptions{Group: "fresh", Topics: []string{"events"}}); !slices.Equal(got, vals(8, 10)) {
		t.Fatalf("consume after seeking a new group: %q", got)
	}
}

func TestConsumeGroupContinuesWhereItStopped(t *testing.T) {
	t.Parallel()
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "jobs", 3)
	mustCreate(t, ctx, o, "jobs2", 1)
	var in strings.Builder
	for i := range 30 {
		fmt.Fprintf(&in, "k%d:j%d\n", i, i)
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "jobs", Partition: -1, KeySeparator: ":"}, in.String())
	mustProduce(t, ctx, o, ProduceOptions{Topic: "jobs2", Partition: -1}, "x0\nx1\n")
	var all []string
	for i := range 30 {
		all = append(all, fmt.Sprintf("j%d", i))
	}
	all = append(all, "x0", "x1")
	sort.Strings(all)

	var assigned []string
	var mu sync.Mutex
	co := GroupConsumeOptions{Group: "workers", Topics: []string{"jobs", "jobs2"}, Count: 10,
		OnAssign: func(topic string, r PartitionRange, committed bool) {
			mu.Lock()
			defer mu.Unlock()
			assigned = append(assigned, fmt.Sprintf("%s/%d %d-%d %v", topic, r.Partition, r.Start, r.End, committed))
		}}
	start := time.Now()
	first := consumeGroup(t, ctx, o, co)
	if len(first) != 10 {
		t.Fatalf("first consume -n 10: %q", first)
	}
	mu.Lock()
	if len(assigned) != 4 {
		t.Fatalf("assigned: %q", assigned)
	}
	for _, a := range assigned {
		if !strings.HasSuffix(a, " false") || !strings.Contains(a, " 0-") {
			t.Fatalf("first assignment should start at the reset offset 0: %q", assigned)
		}
	}
	assigned = nil
	mu.Unlock()
	co.Count = 0
	second := consumeGroup(t, ctx, o, co)
	got := append(slices.Clone(first), second...)
	sort.Strings(got)
	if !slices.Equal(got, all) {
		t.Fatalf("two consumes printed %d records (%q then %q), want each of the 32 once", len(got), first, second)
	}
	if third := consumeGroup(t, ctx, o, co); len(third) != 0 {
		t.Fatalf("third consume: %q", third)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("three consumes took %v", el)
	}
	d, err := DescribeGroup(ctx, o, "workers")
	if err != nil || d.TotalLag != 0 || len(d.Partitions) != 4 {
		t.Fatalf("describe after consuming everything: %+v %v", d, err)
	}

	// -o end: a group without commits starts at the end; what is produced later is read by the next run.
	if got := consumeGroup(t, ctx, o, GroupConsumeOptions{Group: "tail", Topics: []string{"jobs2"}, Reset: OffsetSpec{Kind: OffsetEnd}}); len(got) != 0 {
		t.Fatalf("reset end: %q", got)
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "jobs2", Partition: -1}, "x2\n")
	// Nothing was committed (nothing was read): the second run starts at the end again, after x2.
	if got := consumeGroup(t, ctx, o, GroupConsumeOptions{Group: "tail", Topics: []string{"jobs2"}, Reset: OffsetSpec{Kind: OffsetEnd}}); len(got) != 0 {
		t.Fatalf("reset end again: %q", got)
	}

	// Errors: an unknown topic, a reset offset that is not beginning or end.
	if _, err := ConsumeGroup(ctx, o, GroupConsumeOptions{Group: "workers", Topics: []string{"jobs", "nope"}}, &bytes.Buffer{}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := ConsumeGroup(ctx, o, GroupConsumeOptions{Group: "workers", Topics: []string{"jobs"}, Reset: OffsetSpec{Kind: OffsetExact, Value: 3}}, &bytes.Buffer{}); err == nil {
		t.Fatal("reset offset 3 accepted")
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestConsumeGroupFollowCommitsOnCancel(t *testing.T) {
	t.Parallel()
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "feed", 2)
	f, _ := ParseFormat(`%v\n`)
	assigned := make(chan struct{}, 2)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out syncBuffer
	errc := make(chan error, 1)
	go func() {
		_, err := ConsumeGroup(fctx, o, GroupConsumeOptions{Group: "followers", Topics: []string{"feed"}, Follow: true, Format: f,
			OnAssign: func(string, PartitionRange, bool) { assigned <- struct{}{} }}, &out)
		errc <- err
	}()
	for range 2 {
		select {
		case <-assigned:
		case err := <-errc:
			t.Fatalf("follow consumer ended before its assignment: %v", err)
		case <-ctx.Done():
			t.Fatal("no assignment")
		}
	}
	mustProduce(t, ctx, o, ProduceOptions{Topic: "feed", Partition: -1, KeySeparator: ":"}, "a:1\nb:2\nc:3\nd:4\ne:5\n")
	eventually(t, 10*time.Second, "follow consumer prints 5 records", func() error {
		if n := len(lines(out.String())); n != 5 {
			return fmt.Errorf("%d lines", n)
		}
		return nil
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow consumer: %v, want context.Canceled", err)
	}
	// What was printed was committed on the way out.
	d, err := DescribeGroup(ctx, o, "followers")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range d.Partitions {
		if p.Committed >= 0 {
			sum += p.Committed
		}
	}
	if sum != 5 || d.TotalLag != 0 || len(d.Members) != 0 {
		t.Fatalf("after cancel: committed %d records, lag %d, %d members\n%+v", sum, d.TotalLag, len(d.Members), d)
	}
}

func TestParseSeek(t *testing.T) {
	for _, c := range []struct {
		in   string
		want SeekSpec
	}{
		{"earliest", SeekSpec{Mode: SeekEarliest}},
		{"start", SeekSpec{Mode: SeekEarliest}},
		{"LATEST", SeekSpec{Mode: SeekLatest}},
		{"end", SeekSpec{Mode: SeekLatest}},
		{"offset=42", SeekSpec{Mode: SeekOffset, Value: 42}},
		{"offset:42", SeekSpec{Mode: SeekOffset, Value: 42}},
		{"timestamp=1764300000000", SeekSpec{Mode: SeekTimestamp, Value: 1764300000000}},
		{"@5", SeekSpec{Mode: SeekTimestamp, Value: 5}},
		{"shift=-3", SeekSpec{Mode: SeekShift, Value: -3}},
		{"shift=+3", SeekSpec{Mode: SeekShift, Value: 3}},
		{"shift=3", SeekSpec{Mode: SeekShift, Value: 3}},
	} {
		got, err := ParseSeek(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSeek(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "offset", "offset=-1", "offset=x", "timestamp=-5", "shift", "jump=3"} {
		if _, err := ParseSeek(bad); err == nil {
			t.Errorf("ParseSeek(%q) accepted", bad)
		}
	}
	// newOffset: clamping and the shift of a partition without a commit.
	for _, c := range []struct {
		s                    SeekSpec
		old, ls, hw, at, new int64
		ok                   bool
	}{
		{SeekSpec{Mode: SeekEarliest}, 5, 2, 9, -1, 2, true},
		{SeekSpec{Mode: SeekLatest}, -1, 2, 9, -1, 9, true},
		{SeekSpec{Mode: SeekOffset, Value: 1}, 5, 2, 9, -1, 2, true},
		{SeekSpec{Mode: SeekOffset, Value: 100}, 5, 2, 9, -1, 9, true},
		{SeekSpec{Mode: SeekTimestamp, Value: 7}, 5, 2, 9, 4, 4, true},
		{SeekSpec{Mode: SeekTimestamp, Value: 7}, 5, 2, 9, -1, 9, true},
		{SeekSpec{Mode: SeekShift, Value: -10}, 5, 2, 9, -1, 2, true},
		{SeekSpec{Mode: SeekShift, Value: 3}, 5, 2, 9, -1, 8, true},
		{SeekSpec{Mode: SeekShift, Value: 1 << 62}, 5, 2, 9, -1, 9, true},
		{SeekSpec{Mode: SeekShift, Value: 1}, -1, 2, 9, -1, -1, false},
	} {
		got, ok := c.s.newOffset(c.old, c.ls, c.hw, c.at)
		if got != c.new || ok != c.ok {
			t.Errorf("%v.newOffset(old %d, [%d,%d), at %d) = %d %v, want %d %v", c.s, c.old, c.ls, c.hw, c.at, got, ok, c.new, c.ok)
		}
	}
}
