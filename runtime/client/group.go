package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrUnknownGroup is matched (errors.Is) by the error returned when a consumer group named by the caller does
// not exist. The error's text is "group NAME does not exist".
var ErrUnknownGroup = errors.New("group does not exist")

// ErrGroupNotEmpty is matched (errors.Is) by the error returned when an operation that needs an empty group
// (delete, seek) meets a group that still has members.
var ErrGroupNotEmpty = errors.New("group has active members")

// UnknownGroupError is returned when a group does not exist. It matches ErrUnknownGroup and
// kerr.GroupIDNotFound with errors.Is.
type UnknownGroupError struct{ Group string }

func (e *UnknownGroupError) Error() string { return fmt.Sprintf("group %s does not exist", e.Group) }

// Is reports whether target is ErrUnknownGroup or kerr.GroupIDNotFound.
func (e *UnknownGroupError) Is(target error) bool {
	return target == ErrUnknownGroup || target == kerr.GroupIDNotFound
}

// GroupNotEmptyError is returned when Op ("delete" or "seek") needs an empty group and Group has members.
// It matches ErrGroupNotEmpty and kerr.NonEmptyGroup with errors.Is.
type GroupNotEmptyError struct {
	Group   string
	Op      string
	Members int // 0 when unknown
}

func (e *GroupNotEmptyError) Error() string {
	if e.Op == "seek" {
		n := "active members"
		switch {
		case e.Members == 1:
			n = "1 active member"
		case e.Members > 1:
			n = fmt.Sprintf("%d active members", e.Members)
		}
		return fmt.Sprintf("group %s has %s; seek needs an empty group", e.Group, n)
	}
	return fmt.Sprintf("group %s has active members; stop them first", e.Group)
}

// Is reports whether target is ErrGroupNotEmpty or kerr.NonEmptyGroup.
func (e *GroupNotEmptyError) Is(target error) bool {
	return target == ErrGroupNotEmpty || target == kerr.NonEmptyGroup
}

// GroupSummary is one row of ListGroups.
type GroupSummary struct {
	Group        string
	State        string // Empty, PreparingRebalance, CompletingRebalance, Stable
	ProtocolType string // "consumer" for Kafka consumers
	Protocol     string // the assignor chosen for the current generation ("" when empty)
	Members      int    // -1 if the group could not be described
}

// ListGroups lists the cluster's consumer groups sorted by name, with their state, protocol and member count.
func ListGroups(ctx context.Context, o Options) ([]GroupSummary, error) {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	ls, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]GroupSummary, 0, len(ls))
	for _, l := range ls.Sorted() {
		out = append(out, GroupSummary{Group: l.Group, State: l.State, ProtocolType: l.ProtocolType, Members: -1})
	}
	if len(out) == 0 {
		return out, nil
	}
	// ListGroups carries no protocol or members; DescribeGroups does. A failure here only leaves them blank.
	ds, _ := adm.DescribeGroups(ctx, ls.Groups()...)
	for i := range out {
		if d, ok := ds[out[i].Group]; ok && d.Err == nil {
			out[i].Protocol, out[i].Members = d.Protocol, len(d.Members)
			if out[i].State == "" {
				out[i].State = d.State
			}
		}
	}
	return out, nil
}

// PrintGroups writes groups as a table.
func PrintGroups(w io.Writer, gs []GroupSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE\tPROTOCOL\tMEMBERS")
	for _, g := range gs {
		members := "-"
		if g.Members >= 0 {
			members = strconv.Itoa(g.Members)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Group, dash(g.State), dash(g.ProtocolType), dash(g.Protocol), members)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// GroupMember is a member of a described group.
type GroupMember struct {
	ID         string
	InstanceID string // static membership (group.instance.id); "" if dynamic
	ClientID   string
	Host       string
	// Topics are the topics the member subscribed to (from its consumer protocol metadata).
	Topics []string
	// Assigned are the partitions the group leader assigned to the member, by topic, sorted (decoded from the
	// consumer protocol assignment; empty for other protocol types).
	Assigned map[string][]int32
}

// GroupPartition is one partition a group consumes: its committed offset, the partition's log bounds, the lag
// and the member it is assigned to.
type GroupPartition struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset, the next record it will read; -1 if it has none.
	Committed int64
	LogStart  int64 // -1 if unknown
	LogEnd    int64 // the high watermark; -1 if unknown
	// Lag is LogEnd - Committed, or LogEnd - LogStart when nothing is committed (all of the partition's
	// records are still to be read), as rpk computes it; -1 if unknown (see Err).
	Lag int64
	// Member is the member the partition is assigned to; nil if none (the group is empty or rebalancing).
	Member *GroupMember
	Err    error
}

// GroupDescription is the result of DescribeGroup.
type GroupDescription struct {
	Group        string
	Coordinator  int32
	State        string
	ProtocolType string
	Protocol     string
	Members      []GroupMember    // sorted by member id
	Partitions   []GroupPartition // sorted by topic and partition
	TotalLag     int64            // the sum of the known lags
}

// DescribeGroup reports a group's state, members with their assignments, and per partition the committed
// offset, log bounds and lag. Partitions are those assigned to members plus those the group has committed
// offsets for. A group that does not exist (no members and no committed offsets) is an UnknownGroupError.
func DescribeGroup(ctx context.Context, o Options, name string) (*GroupDescription, error) {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	return describeGroup(ctx, adm, name)
}

func describeGroup(ctx context.Context, adm *kadm.Client, name string) (*GroupDescription, error) {
	lags, err := adm.Lag(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", name, err)
	}
	l, ok := lags[name]
	if !ok {
		return nil, fmt.Errorf("describe group %s: no answer from the broker", name)
	}
	if l.DescribeErr != nil {
		if errors.Is(l.DescribeErr, kerr.GroupIDNotFound) {
			return nil, &UnknownGroupError{Group: name}
		}
		return nil, fmt.Errorf("describe group %s: %w", name, l.DescribeErr)
	}
	if l.FetchErr != nil {
		return nil, fmt.Errorf("describe group %s: fetch committed offsets: %w", name, l.FetchErr)
	}
	if (l.State == "Dead" || l.State == "") && len(l.Members) == 0 && len(l.Lag) == 0 {
		return nil, &UnknownGroupError{Group: name}
	}
	d := &GroupDescription{
		Group: name, Coordinator: l.Coordinator.NodeID, State: l.State,
		ProtocolType: l.ProtocolType, Protocol: l.Protocol,
	}
	byID := map[string]int{}
	for _, m := range l.Members {
		gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: map[string][]int32{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		if j, ok := m.Join.AsConsumer(); ok {
			gm.Topics = slices.Sorted(slices.Values(j.Topics))
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				ps := append(gm.Assigned[t.Topic], t.Partitions...)
				slices.Sort(ps)
				gm.Assigned[t.Topic] = ps
			}
		}
		d.Members = append(d.Members, gm)
	}
	sort.Slice(d.Members, func(i, j int) bool { return d.Members[i].ID < d.Members[j].ID })
	for i, m := range d.Members {
		byID[m.ID] = i
	}
	for _, ml := range l.Lag.Sorted() {
		gp := GroupPartition{
			Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, LogStart: -1, LogEnd: -1,
			Lag: ml.Lag, Err: ml.Err,
		}
		if ml.Start.Err == nil {
			gp.LogStart = ml.Start.Offset
		}
		if ml.End.Err == nil {
			gp.LogEnd = ml.End.Offset
		}
		if errors.Is(gp.Err, kerr.UnknownTopicOrPartition) {
			gp.Err = &UnknownTopicError{Topic: ml.Topic}
		}
		if ml.Member != nil {
			if i, ok := byID[ml.Member.MemberID]; ok {
				gp.Member = &d.Members[i]
			}
		}
		if gp.Lag > 0 {
			d.TotalLag += gp.Lag
		}
		d.Partitions = append(d.Partitions, gp)
	}
	return d, nil
}

// Partition returns the row for topic and partition, if the description has one.
func (d *GroupDescription) Partition(topic string, partition int32) (GroupPartition, bool) {
	for _, p := range d.Partitions {
		if p.Topic == topic && p.Partition == partition {
			return p, true
		}
	}
	return GroupPartition{}, false
}

// Print writes the description: a header, the members and their assignments, and a partition table.
func (d *GroupDescription) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "GROUP\t%s\n", d.Group)
	fmt.Fprintf(tw, "COORDINATOR\t%d\n", d.Coordinator)
	fmt.Fprintf(tw, "STATE\t%s\n", dash(d.State))
	fmt.Fprintf(tw, "PROTOCOL-TYPE\t%s\n", dash(d.ProtocolType))
	fmt.Fprintf(tw, "PROTOCOL\t%s\n", dash(d.Protocol))
	fmt.Fprintf(tw, "MEMBERS\t%d\n", len(d.Members))
	fmt.Fprintf(tw, "TOTAL-LAG\t%d\n", d.TotalLag)
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(d.Members) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER-ID\tINSTANCE-ID\tCLIENT-ID\tHOST\tASSIGNED")
		for _, m := range d.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, dash(m.InstanceID), m.ClientID, m.Host, assignment(m.Assigned))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(d.Partitions) > 0 {
		fmt.Fprintln(w)
		withErr := false
		for _, p := range d.Partitions {
			withErr = withErr || p.Err != nil
		}
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		head := "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-START-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER-ID\tCLIENT-ID\tHOST"
		if withErr {
			head += "\tERROR"
		}
		fmt.Fprintln(tw, head)
		for _, p := range d.Partitions {
			mid, cid, host := "-", "-", "-"
			if p.Member != nil {
				mid, cid, host = p.Member.ID, p.Member.ClientID, p.Member.Host
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", p.Topic, p.Partition, offset(p.Committed),
				offset(p.LogStart), offset(p.LogEnd), offset(p.Lag), mid, cid, host)
			if withErr {
				e := "-"
				if p.Err != nil {
					e = p.Err.Error()
				}
				fmt.Fprintf(tw, "\t%s", e)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// assignment renders {t1: [0 1], t2: [3]} as "t1[0,1] t2[3]".
func assignment(a map[string][]int32) string {
	if len(a) == 0 {
		return "-"
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(a)) {
		parts = append(parts, t+ints(a[t]))
	}
	return strings.Join(parts, " ")
}

// DeleteGroups deletes the named groups and their committed offsets. Every group is attempted; the error joins
// the failures, one per group: a GroupNotEmptyError for a group with members, an UnknownGroupError for one
// that does not exist.
func DeleteGroups(ctx context.Context, o Options, names ...string) error {
	if len(names) == 0 {
		return errors.New("no groups to delete")
	}
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	resps, err := adm.DeleteGroups(ctx, names...)
	if err != nil {
		return fmt.Errorf("delete groups: %w", err)
	}
	var errs []error
	for _, n := range names {
		r, ok := resps[n]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("delete group %s: no answer from the broker", n))
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			errs = append(errs, &GroupNotEmptyError{Group: n, Op: "delete"})
		case errors.Is(r.Err, kerr.GroupIDNotFound):
			errs = append(errs, &UnknownGroupError{Group: n})
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("delete group %s: %w%s", n, r.Err, detail(r.ErrMessage)))
		}
	}
	return errors.Join(errs...)
}
