package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime/server"
)

// Consumer-group tests with real clients. Group members run as they would
// in an application; a crash is simulated by cutting every connection of
// one member at once (killDialer) without a LeaveGroup, so the broker only
// learns of it when the member's session times out.

const (
	groupSessionTimeout = 6 * time.Second
	groupHeartbeat      = 250 * time.Millisecond
	// Bounds for the rebalance timings: a crashed member's partitions are
	// owned again within sessionTimeout+1s; a member that leaves cleanly
	// hands its partitions over within 1s.
	crashReassignBound = 7 * time.Second
	leaveReassignBound = 1 * time.Second
)

// groupBroker starts a broker for group tests: no HTTP listener and no
// initial rebalance delay (members join one after another, so every join
// is a rebalance the clients must survive).
func groupBroker(t *testing.T, edit ...func(*server.Config)) *testBroker {
	t.Helper()
	return startBroker(t, append([]func(*server.Config){func(c *server.Config) {
		c.HTTPAddr = "off"
		c.GroupInitialRebalanceDelay = -1
	}}, edit...)...)
}

// killDialer dials the broker for one client and can cut every connection
// it made at once, refusing new ones: a crashed process as the broker sees
// it (its sockets close, no LeaveGroup is sent).
type killDialer struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

var errKilled = errors.New("test: member killed, connection refused")

func (d *killDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	dead := d.dead
	d.mu.Unlock()
	if dead {
		return nil, errKilled
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		c.Close()
		return nil, errKilled
	}
	d.conns = append(d.conns, c)
	return c, nil
}

// Dial makes killDialer a golang.org/x/net/proxy.Dialer, for sarama.
func (d *killDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d *killDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// owners tracks which partitions each member owns, as the clients'
// assignment callbacks report them, with the history of every change so a
// test can tell when a condition first held.
type owners struct {
	mu      sync.Mutex
	cur     map[string]map[int32]bool
	hist    []ownSnap
	changed chan struct{}
}

type ownSnap struct {
	at   time.Time
	sets map[string][]int32
}

func newOwners() *owners {
	return &owners{cur: map[string]map[int32]bool{}, changed: make(chan struct{})}
}

func (o *owners) update(member string, fn func(map[int32]bool)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur[member] == nil {
		o.cur[member] = map[int32]bool{}
	}
	fn(o.cur[member])
	o.hist = append(o.hist, ownSnap{at: time.Now(), sets: o.snapshotLocked()})
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *owners) add(member string, ps []int32) {
	o.update(member, func(s map[int32]bool) {
		for _, p := range ps {
			s[p] = true
		}
	})
}

func (o *owners) remove(member string, ps []int32) {
	o.update(member, func(s map[int32]bool) {
		for _, p := range ps {
			delete(s, p)
		}
	})
}

func (o *owners) set(member string, ps []int32) {
	o.update(member, func(s map[int32]bool) {
		clear(s)
		for _, p := range ps {
			s[p] = true
		}
	})
}

func (o *owners) snapshotLocked() map[string][]int32 {
	out := map[string][]int32{}
	for m, s := range o.cur {
		for p := range s {
			out[m] = append(out[m], p)
		}
		slices.Sort(out[m])
	}
	return out
}

func (o *owners) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprint(o.snapshotLocked())
}

// ownership is a condition on who owns what.
type ownership struct {
	desc string
	ok   func(map[string][]int32) bool
}

// covering: the members own every partition 0..n-1 between them, each
// exactly once, and when per > 0 each owns exactly per partitions.
func covering(members []string, n int32, per int) ownership {
	return ownership{
		desc: fmt.Sprintf("%v own partitions 0..%d between them (%d each)", members, n-1, per),
		ok: func(sets map[string][]int32) bool {
			seen := map[int32]bool{}
			for _, m := range members {
				if per > 0 && len(sets[m]) != per {
					return false
				}
				for _, p := range sets[m] {
					if seen[p] || p < 0 || p >= n {
						return false
					}
					seen[p] = true
				}
			}
			return len(seen) == int(n)
		},
	}
}

// waitNow waits until the current ownership satisfies c.
func (o *owners) waitNow(t *testing.T, c ownership, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		o.mu.Lock()
		ok, ch := c.ok(o.snapshotLocked()), o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("after %v: want %s; owners %v", timeout, c.desc, o)
		}
	}
}

// waitAfter returns the first moment after since at which the ownership
// satisfied c (as reported by the callbacks), waiting for it if needed.
func (o *owners) waitAfter(t *testing.T, since time.Time, c ownership, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	next := 0
	for {
		o.mu.Lock()
		for ; next < len(o.hist); next++ {
			h := o.hist[next]
			if !h.at.Before(since) && c.ok(h.sets) {
				o.mu.Unlock()
				return h.at
			}
		}
		ch := o.changed
		o.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("after %v: want %s; owners %v", timeout, c.desc, o)
		}
	}
}

// ledger records which member consumed which record values.
type ledger struct {
	mu      sync.Mutex
	by      map[string][]string // value -> members that consumed it, in order
	members map[string][]string // member -> values
	changed chan struct{}
}

func newLedger() *ledger {
	return &ledger{by: map[string][]string{}, members: map[string][]string{}, changed: make(chan struct{})}
}

func (l *ledger) add(member, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.by[value] = append(l.by[value], member)
	l.members[member] = append(l.members[member], value)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *ledger) consumedBy(member string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.members[member])
}

// waitAll waits until every value in want was consumed at least once.
func (l *ledger) waitAll(t *testing.T, what string, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		missing := 0
		var first string
		for _, v := range want {
			if len(l.by[v]) == 0 {
				if missing == 0 {
					first = v
				}
				missing++
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: %d of %d records never consumed within %v (first %s)", what, missing, len(want), timeout, first)
		}
	}
}

// waitMember waits until member consumed at least one value of want.
func (l *ledger) waitMember(t *testing.T, member string, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		hit := slices.ContainsFunc(l.members[member], func(v string) bool { return slices.Contains(want, v) })
		ch := l.changed
		l.mu.Unlock()
		if hit {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("member %s consumed none of %d records within %v", member, len(want), timeout)
		}
	}
}

// duplicates returns how many of want were consumed more than once.
func (l *ledger) duplicates(want []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range want {
		if len(l.by[v]) > 1 {
			n++
		}
	}
	return n
}

// exactlyOnce asserts every value of want was consumed exactly once.
func (l *ledger) exactlyOnce(t *testing.T, what string, want []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	for _, v := range want {
		if n := len(l.by[v]); n != 1 {
			bad = append(bad, fmt.Sprintf("%s x%d %v", v, n, l.by[v]))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%s: %d of %d records not consumed exactly once: %s", what, len(bad), len(want), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
}

// produceSpread produces perPart records to each partition of topic with
// values "<phase>-p<partition>-<i>" and returns the values.
func produceSpread(t *testing.T, addr, topic, phase string, partitions int32, perPart int) []string {
	t.Helper()
	cl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	var recs []*kgo.Record
	var vals []string
	for i := range perPart {
		for p := range partitions {
			v := fmt.Sprintf("%s-p%d-%03d", phase, p, i)
			vals = append(vals, v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(testCtx(t, 20*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s to %s: %v", phase, topic, err)
	}
	return vals
}

// waitCommitted waits until the group's committed offsets for every
// partition of topic equal the partitions' end offsets.
func waitCommitted(t *testing.T, adm *kadm.Client, group, topic string, partitions int32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err := adm.ListEndOffsets(ctx, topic)
		var committed kadm.OffsetResponses
		if err == nil {
			committed, err = adm.FetchOffsets(ctx, group)
		}
		cancel()
		var lag []string
		if err == nil {
			for p := range partitions {
				end, ok := ends.Lookup(topic, p)
				c, cok := committed.Lookup(topic, p)
				switch {
				case !ok || end.Err != nil:
					lag = append(lag, fmt.Sprintf("p%d: no end offset", p))
				case !cok:
					lag = append(lag, fmt.Sprintf("p%d: none/%d", p, end.Offset))
				case c.Err != nil || c.At != end.Offset:
					lag = append(lag, fmt.Sprintf("p%d: %d/%d %v", p, c.At, end.Offset, c.Err))
				}
			}
		}
		if err == nil && len(lag) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offsets of %s never reached the end offsets: %v %v", group, topic, lag, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// describeGroup describes one group with kadm.
func describeGroup(t *testing.T, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ds, err := adm.DescribeGroups(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("describe %s: %v", group, err)
	}
	d, ok := ds[group]
	if !ok {
		t.Fatalf("describe %s: group missing from the response", group)
	}
	if d.Err != nil {
		t.Fatalf("describe %s: %v", group, d.Err)
	}
	return d
}

// checkDescribed asserts a Stable consumer group of n members, each
// assigned per partitions of topic, covering all of them.
func checkDescribed(t *testing.T, adm *kadm.Client, group, topic, protocol string, n, per int, partitions int32) {
	t.Helper()
	d := describeGroup(t, adm, group)
	if d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != protocol || len(d.Members) != n {
		t.Fatalf("describe %s: state %s type %q protocol %q, %d members; want Stable consumer %q with %d", group, d.State, d.ProtocolType, d.Protocol, len(d.Members), protocol, n)
	}
	seen := map[int32]string{}
	for _, m := range d.Members {
		if m.MemberID == "" || m.ClientID == "" || m.ClientHost == "" {
			t.Errorf("describe %s: member %+v lacks ids or host", group, m)
		}
		meta, ok := m.Join.AsConsumer()
		if !ok || !slices.Contains(meta.Topics, topic) {
			t.Errorf("describe %s: member %s subscription %+v, want topic %s", group, m.MemberID, meta, topic)
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("describe %s: member %s assignment not a consumer assignment", group, m.MemberID)
		}
		var ps []int32
		for _, at := range a.Topics {
			if at.Topic == topic {
				ps = append(ps, at.Partitions...)
			}
		}
		if len(ps) != per {
			t.Errorf("describe %s: member %s (%s) assigned %v, want %d partitions", group, m.MemberID, m.ClientID, ps, per)
		}
		for _, p := range ps {
			if other, dup := seen[p]; dup {
				t.Errorf("describe %s: partition %d assigned to %s and %s", group, p, other, m.MemberID)
			}
			seen[p] = m.MemberID
		}
	}
	if len(seen) != int(partitions) {
		t.Errorf("describe %s: %d partitions assigned, want %d", group, len(seen), partitions)
	}
}

// kgoMember is a franz-go group consumer running a poll loop: records are
// processed (added to the ledger) as they are polled; with
// BlockRebalanceOnPoll, a revoke first commits everything processed, so a
// clean rebalance consumes nothing twice.
type kgoMember struct {
	t      *testing.T
	name   string
	cl     *kgo.Client
	dial   *killDialer
	dead   atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func startKgoMember(t *testing.T, addr, group, topic, name string, bal kgo.GroupBalancer, own *owners, led *ledger, extra ...kgo.Opt) *kgoMember {
	t.Helper()
	m := &kgoMember{t: t, name: name, dial: &killDialer{}, done: make(chan struct{})}
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ClientID(name), kgo.Dialer(m.dial.DialContext),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.Balancers(bal),
		kgo.SessionTimeout(groupSessionTimeout), kgo.HeartbeatInterval(groupHeartbeat), kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond), kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.RetryTimeout(3 * time.Second), kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { own.add(name, a[topic]) }),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			if !m.dead.Load() {
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					t.Logf("%s: commit on revoke: %v", name, err)
				}
			}
			own.remove(name, r[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { own.remove(name, l[topic]) }),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("kgo client %s: %v", name, err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				cl.AllowRebalance()
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				if !m.dead.Load() && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: fetch %s/%d: %v", name, topic, p, err)
				}
			})
			if !m.dead.Load() {
				fs.EachRecord(func(r *kgo.Record) { led.add(name, string(r.Value)) })
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.close)
	return m
}

// kill simulates a crash: the member's connections drop and it stops
// processing; it never sends LeaveGroup.
func (m *kgoMember) kill() {
	m.dead.Store(true)
	m.dial.kill()
	m.cancel()
	<-m.done
}

// close stops polling and closes the client, which commits what was
// processed (the revoke callback) and leaves the group.
func (m *kgoMember) close() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		closed := make(chan struct{})
		go func() { m.cl.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			m.t.Errorf("%s: client Close hung", m.name)
		}
	})
}

// TestKgoGroupFailover runs three franz-go members of one group on a
// six-partition topic, eager (range) and cooperative-sticky:
//   - members joining one after another while records are waiting share the
//     partitions two each, and every record is consumed exactly once;
//   - one member crashes (connections cut, no LeaveGroup) mid-stream: the
//     survivors own its partitions within session.timeout+1s and every
//     record is consumed at least once;
//   - a member closes normally: the last one owns everything within 1s,
//     nothing consumed twice;
//   - committed offsets survive a broker restart: a new member of the group
//     consumes exactly the records produced after the last commit.
func TestKgoGroupFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		bal  func() kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testKgoGroupFailover(t, tc.name, tc.bal)
		})
	}
}

func testKgoGroupFailover(t *testing.T, protocol string, bal func() kgo.GroupBalancer) {
	b := groupBroker(t)
	const topic, group, parts = "orders", "billing", int32(6)
	createTopic(t, b.addr(), topic, parts, nil)
	adm := newAdmin(t, b.addr())
	own, led := newOwners(), newLedger()

	phase1 := produceSpread(t, b.addr(), topic, "p1", parts, 50)
	ma := startKgoMember(t, b.addr(), group, topic, "a", bal(), own, led)
	mb := startKgoMember(t, b.addr(), group, topic, "b", bal(), own, led)
	mc := startKgoMember(t, b.addr(), group, topic, "c", bal(), own, led)
	own.waitNow(t, covering([]string{"a", "b", "c"}, parts, 2), 30*time.Second)
	led.waitAll(t, "phase 1", phase1, 20*time.Second)
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 1 (three members joining, clean)", phase1)
	checkDescribed(t, adm, group, topic, protocol, 3, 2, parts)
	t.Logf("stable: %v", own)

	// Crash c while it is consuming.
	phase2 := produceSpread(t, b.addr(), topic, "p2a", parts, 20)
	led.waitMember(t, "c", phase2, 20*time.Second)
	killed := time.Now()
	mc.kill()
	phase2 = append(phase2, produceSpread(t, b.addr(), topic, "p2b", parts, 20)...)
	at := own.waitAfter(t, killed, covering([]string{"a", "b"}, parts, 0), 20*time.Second)
	t.Logf("TIMING %s crash: survivors own all %d partitions %v after the kill (session timeout %v)", protocol, parts, at.Sub(killed).Round(time.Millisecond), groupSessionTimeout)
	if d := at.Sub(killed); d > crashReassignBound {
		t.Errorf("crashed member's partitions reassigned after %v, want <= %v", d, crashReassignBound)
	}
	own.waitNow(t, covering([]string{"a", "b"}, parts, 3), 20*time.Second)
	led.waitAll(t, "phase 2 (crash)", phase2, 20*time.Second)
	t.Logf("phase 2: %d of %d records consumed twice (processed by the crashed member, not committed)", led.duplicates(phase2), len(phase2))

	// b leaves cleanly after consuming part of phase 3.
	phase3 := produceSpread(t, b.addr(), topic, "p3a", parts, 10)
	led.waitAll(t, "phase 3a", phase3, 20*time.Second)
	left := time.Now()
	mb.close()
	at = own.waitAfter(t, left, covering([]string{"a"}, parts, 6), 20*time.Second)
	t.Logf("TIMING %s leave: remaining member owns all %d partitions %v after Close", protocol, parts, at.Sub(left).Round(time.Millisecond))
	if d := at.Sub(left); d > leaveReassignBound {
		t.Errorf("leaving member's partitions reassigned after %v, want <= %v", d, leaveReassignBound)
	}
	phase3 = append(phase3, produceSpread(t, b.addr(), topic, "p3b", parts, 10)...)
	led.waitAll(t, "phase 3", phase3, 20*time.Second)
	ma.close()
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 3 (clean leave)", phase3)
	if d := describeGroup(t, adm, group); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after every member left: state %s with %d members, want Empty", d.State, len(d.Members))
	}

	// Committed offsets survive a restart; a new member resumes after them.
	b.restart()
	phase4 := produceSpread(t, b.addr(), topic, "p4", parts, 10)
	own2, led2 := newOwners(), newLedger()
	startKgoMember(t, b.addr(), group, topic, "d", bal(), own2, led2)
	own2.waitNow(t, covering([]string{"d"}, parts, 6), 20*time.Second)
	led2.waitAll(t, "phase 4 (after restart)", phase4, 20*time.Second)
	got := led2.consumedBy("d")
	sort.Strings(got)
	want := slices.Clone(phase4)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after restart the group's new member consumed %d records, want exactly the %d new ones; first: %v", len(got), len(want), got[:min(len(got), 5)])
	}
}

// TestTwoGroupsIndependent consumes one topic with two groups at once:
// each sees every record exactly once, and each has its own offsets.
func TestTwoGroupsIndependent(t *testing.T) {
	t.Parallel()
	b := groupBroker(t)
	const topic, parts = "shared", int32(4)
	createTopic(t, b.addr(), topic, parts, nil)
	adm := newAdmin(t, b.addr())
	vals := produceSpread(t, b.addr(), topic, "r", parts, 25)
	own1, led1 := newOwners(), newLedger()
	own2, led2 := newOwners(), newLedger()
	startKgoMember(t, b.addr(), "g1", topic, "g1-a", kgo.RangeBalancer(), own1, led1)
	startKgoMember(t, b.addr(), "g1", topic, "g1-b", kgo.RangeBalancer(), own1, led1)
	startKgoMember(t, b.addr(), "g2", topic, "g2-a", kgo.CooperativeStickyBalancer(), own2, led2)
	own1.waitNow(t, covering([]string{"g1-a", "g1-b"}, parts, 2), 20*time.Second)
	own2.waitNow(t, covering([]string{"g2-a"}, parts, 4), 20*time.Second)
	led1.waitAll(t, "group g1", vals, 20*time.Second)
	led2.waitAll(t, "group g2", vals, 20*time.Second)
	waitCommitted(t, adm, "g1", topic, parts)
	waitCommitted(t, adm, "g2", topic, parts)
	led1.exactlyOnce(t, "group g1", vals)
	led2.exactlyOnce(t, "group g2", vals)
	checkDescribed(t, adm, "g1", topic, "range", 2, 2, parts)
	checkDescribed(t, adm, "g2", topic, "cooperative-sticky", 1, 4, parts)
}

// TestGroupAdmin: DescribeGroups while members consume; DeleteGroups
// refused while the group has members and, once it is empty, removing its
// offsets; OffsetDelete refused for a topic the group consumes and allowed
// for one it does not.
func TestGroupAdmin(t *testing.T) {
	t.Parallel()
	b := groupBroker(t)
	const group = "admin-g"
	createTopic(t, b.addr(), "subscribed", 2, nil)
	createTopic(t, b.addr(), "other", 1, nil)
	produceSpread(t, b.addr(), "subscribed", "s", 2, 5)
	adm := newAdmin(t, b.addr())
	ctx := testCtx(t, 60*time.Second)

	// An empty group accepts commits from outside (generation -1).
	var offs kadm.Offsets
	offs.AddOffset("other", 0, 7, -1)
	offs.AddOffset("subscribed", 0, 2, -1)
	if err := adm.CommitAllOffsets(ctx, group, offs); err != nil {
		t.Fatalf("commit to the empty group: %v", err)
	}

	own, led := newOwners(), newLedger()
	m := startKgoMember(t, b.addr(), group, "subscribed", "admin-member", kgo.RangeBalancer(), own, led)
	own.waitNow(t, covering([]string{"admin-member"}, 2, 2), 20*time.Second)
	// Partition 0 resumes from the committed 2, partition 1 from the start.
	led.waitAll(t, "subscribed", []string{"s-p0-002", "s-p0-004", "s-p1-000", "s-p1-004"}, 20*time.Second)
	for _, v := range led.consumedBy("admin-member") {
		if v == "s-p0-000" || v == "s-p0-001" {
			t.Errorf("consumed %s, below the committed offset 2", v)
		}
	}
	checkDescribed(t, adm, group, "subscribed", "range", 1, 2, 2)

	// A commit from outside the group is refused while it has members.
	if err := adm.CommitAllOffsets(ctx, group, offs); !errors.Is(err, kerr.UnknownMemberID) {
		t.Errorf("outside commit to a group with members: %v, want UNKNOWN_MEMBER_ID", err)
	}

	dr, err := adm.DeleteGroups(ctx, group)
	if err != nil {
		t.Fatalf("delete groups: %v", err)
	}
	if err := dr[group].Err; !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("deleting a group with members: %v, want NON_EMPTY_GROUP", err)
	}

	del, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{"subscribed": {0: {}, 1: {}}, "other": {0: {}}})
	if err != nil {
		t.Fatalf("delete offsets: %v", err)
	}
	for _, p := range []int32{0, 1} {
		if e, _ := del.Lookup("subscribed", p); !errors.Is(e, kerr.GroupSubscribedToTopic) {
			t.Errorf("OffsetDelete subscribed/%d: %v, want GROUP_SUBSCRIBED_TO_TOPIC", p, e)
		}
	}
	if e, ok := del.Lookup("other", 0); !ok || e != nil {
		t.Errorf("OffsetDelete other/0: %v (present %v), want success", e, ok)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if o, ok := fetched.Lookup("other", 0); ok {
		t.Errorf("other/0 still committed after OffsetDelete: %+v", o)
	}
	if o, ok := fetched.Lookup("subscribed", 0); !ok || o.At < 2 {
		t.Errorf("subscribed/0 after refused OffsetDelete: %+v (present %v)", o, ok)
	}

	m.close()
	waitCommitted(t, adm, group, "subscribed", 2)
	if d := describeGroup(t, adm, group); d.State != "Empty" {
		t.Fatalf("after the member left: state %s, want Empty", d.State)
	}
	dr, err = adm.DeleteGroups(ctx, group)
	if err != nil || dr[group].Err != nil {
		t.Fatalf("deleting the empty group: %v %v", err, dr[group].Err)
	}
	// OffsetFetch for the deleted group's partitions: -1, no error.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	for _, tp := range []struct {
		topic string
		ps    []int32
	}{{"subscribed", []int32{0, 1}}, {"other", []int32{0}}} {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = tp.topic, tp.ps
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, newClient(t, b.addr()))
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if resp.ErrorCode != 0 || len(resp.Topics) != 2 {
		t.Fatalf("offset fetch after delete: code %d, %d topics", resp.ErrorCode, len(resp.Topics))
	}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.Offset != -1 || p.ErrorCode != 0 {
				t.Errorf("offset fetch after delete: %s/%d offset %d code %d, want -1", rt.Topic, p.Partition, p.Offset, p.ErrorCode)
			}
		}
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("deleted group still listed")
	}
	dr, err = adm.DeleteGroups(ctx, group)
	if err != nil || !errors.Is(dr[group].Err, kerr.GroupIDNotFound) {
		t.Errorf("deleting the deleted group: %v %v, want GROUP_ID_NOT_FOUND", err, dr[group].Err)
	}
	// The deletion is durable.
	b.restart()
	adm = newAdmin(t, b.addr())
	fetched, err = adm.FetchOffsets(testCtx(t, 20*time.Second), group)
	if err != nil {
		t.Fatalf("fetch offsets after restart: %v", err)
	}
	fetched.Each(func(o kadm.OffsetResponse) {
		t.Errorf("deleted group has offset %s/%d=%d after restart", o.Topic, o.Partition, o.At)
	})
	if listed, err = adm.ListGroups(testCtx(t, 20*time.Second)); err != nil {
		t.Fatalf("list groups after restart: %v", err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("deleted group listed again after a restart: %+v", listed[group])
	}
}

// rawMember drives the group protocol by hand (kmsg requests through its
// own kgo client, which finds the coordinator), for static membership.
type rawMember struct {
	t          *testing.T
	cl         *kgo.Client
	group      string
	instanceID string
	memberID   string
	generation int32
	leader     string
	members    []kmsg.JoinGroupResponseMember
}

func newRawMember(t *testing.T, addr, group, instanceID string) *rawMember {
	return &rawMember{t: t, cl: newClient(t, addr, kgo.ClientID(instanceID)), group: group, instanceID: instanceID}
}

func (m *rawMember) join(ctx context.Context, topic string) (*kmsg.JoinGroupResponse, error) {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.InstanceID = m.group, m.memberID, kmsg.StringPtr(m.instanceID)
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 10000
	req.ProtocolType = "consumer"
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", meta.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return resp, err
	}
	m.memberID, m.generation, m.leader, m.members = resp.MemberID, resp.Generation, resp.LeaderID, resp.Members
	return resp, nil
}

func (m *rawMember) sync(ctx context.Context, assignments map[string][]byte) ([]byte, error) {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.InstanceID, req.Generation = m.group, m.memberID, kmsg.StringPtr(m.instanceID), m.generation
	req.ProtocolType, req.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	for id, a := range assignments {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = id, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return nil, err
	}
	return resp.MemberAssignment, kerr.ErrorForCode(resp.ErrorCode)
}

func (m *rawMember) heartbeat(ctx context.Context) error {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.InstanceID, req.Generation = m.group, m.memberID, kmsg.StringPtr(m.instanceID), m.generation
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func consumerAssignment(topic string, ps ...int32) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	at := kmsg.NewConsumerMemberAssignmentTopic()
	at.Topic, at.Partitions = topic, ps
	a.Topics = append(a.Topics, at)
	return a.AppendTo(nil)
}

// TestStaticMembersBatchedLeave forms a group of two static members
// (group.instance.id) by hand, describes it, and removes both with one
// LeaveGroup v5 request naming them by instance id (what kadm and the Java
// admin's removeMembersFromConsumerGroup send): per-member results, a
// wrong member id for an instance is FENCED_INSTANCE_ID, an unknown
// instance UNKNOWN_MEMBER_ID.
func TestStaticMembersBatchedLeave(t *testing.T) {
	t.Parallel()
	b := groupBroker(t)
	const group, topic = "static-g", "st"
	createTopic(t, b.addr(), topic, 2, nil)
	ctx := testCtx(t, 30*time.Second)
	s1, s2 := newRawMember(t, b.addr(), group, "inst-1"), newRawMember(t, b.addr(), group, "inst-2")

	// s1 alone completes generation 1; s2's join starts a rebalance that
	// completes when s1 rejoins.
	if _, err := s1.join(ctx, topic); err != nil {
		t.Fatalf("s1 join: %v", err)
	}
	s2done := make(chan error, 1)
	go func() { _, err := s2.join(ctx, topic); s2done <- err }()
	// s1 learns of the rebalance by heartbeat (or joins first), then rejoins.
	for {
		err := s1.heartbeat(ctx)
		if errors.Is(err, kerr.RebalanceInProgress) {
			break
		}
		if err != nil && !errors.Is(err, kerr.IllegalGeneration) {
			t.Fatalf("s1 heartbeat: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s1.join(ctx, topic); err != nil {
		t.Fatalf("s1 rejoin: %v", err)
	}
	if err := <-s2done; err != nil {
		t.Fatalf("s2 join: %v", err)
	}
	if s1.generation != s2.generation || s1.leader != s1.memberID || len(s1.members) != 2 {
		t.Fatalf("generation %d/%d, leader %s (s1 %s), leader sees %d members", s1.generation, s2.generation, s1.leader, s1.memberID, len(s1.members))
	}
	for _, jm := range s1.members {
		if jm.InstanceID == nil || (*jm.InstanceID != "inst-1" && *jm.InstanceID != "inst-2") {
			t.Errorf("join response member %s instance %v", jm.MemberID, jm.InstanceID)
		}
	}
	if _, err := s1.sync(ctx, map[string][]byte{s1.memberID: consumerAssignment(topic, 0), s2.memberID: consumerAssignment(topic, 1)}); err != nil {
		t.Fatalf("leader sync: %v", err)
	}
	got, err := s2.sync(ctx, nil)
	if err != nil {
		t.Fatalf("s2 sync: %v", err)
	}
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(got); err != nil || len(a.Topics) != 1 || !slices.Equal(a.Topics[0].Partitions, []int32{1}) {
		t.Fatalf("s2 assignment %+v (%v), want %s [1]", a, err, topic)
	}

	adm := newAdmin(t, b.addr())
	checkDescribed(t, adm, group, topic, "range", 2, 1, 2)
	d := describeGroup(t, adm, group)
	for _, m := range d.Members {
		if m.InstanceID == nil {
			t.Errorf("described member %s has no instance id", m.MemberID)
		}
	}

	leave := func(members ...kmsg.LeaveGroupRequestMember) *kmsg.LeaveGroupResponse {
		t.Helper()
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Version = 5
		req.Group, req.Members = group, members
		resp, err := req.RequestWith(ctx, newClient(t, b.addr()))
		if err != nil {
			t.Fatalf("leave group: %v", err)
		}
		if resp.ErrorCode != 0 || len(resp.Members) != len(members) {
			t.Fatalf("leave group: code %d, %d member results for %d", resp.ErrorCode, len(resp.Members), len(members))
		}
		return resp
	}
	member := func(memberID, instanceID string) kmsg.LeaveGroupRequestMember {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID, m.InstanceID = memberID, kmsg.StringPtr(instanceID)
		return m
	}
	if r := leave(member("not-"+s1.memberID, "inst-1")); r.Members[0].ErrorCode != kerr.FencedInstanceID.Code {
		t.Errorf("leave with a stale member id for inst-1: code %d, want FENCED_INSTANCE_ID", r.Members[0].ErrorCode)
	}
	r := leave(member("", "inst-1"), member(s2.memberID, "inst-2"), member("", "ghost"))
	for i, want := range []struct {
		instance string
		code     int16
	}{{"inst-1", 0}, {"inst-2", 0}, {"ghost", kerr.UnknownMemberID.Code}} {
		if rm := r.Members[i]; rm.ErrorCode != want.code || rm.InstanceID == nil || *rm.InstanceID != want.instance {
			t.Errorf("leave result %d: %+v, want %s code %d", i, rm, want.instance, want.code)
		}
	}
	if d := describeGroup(t, adm, group); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after the batched leave: state %s, %d members; want Empty", d.State, len(d.Members))
	}
	if err := s1.heartbeat(ctx); !errors.Is(err, kerr.UnknownMemberID) {
		t.Errorf("heartbeat of a removed static member: %v, want UNKNOWN_MEMBER_ID", err)
	}
}

// TestGroupSurvivesBrokerRestart restarts the broker on the same address
// under a live two-member group: the group comes back from
// __consumer_offsets with its members and generation, the members carry on
// (rejoining if they must), and every record is consumed at least once.
func TestGroupSurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	b := groupBroker(t)
	const topic, group, parts = "live", "live-g", int32(4)
	createTopic(t, b.addr(), topic, parts, nil)
	adm := newAdmin(t, b.addr())
	own, led := newOwners(), newLedger()
	phase1 := produceSpread(t, b.addr(), topic, "p1", parts, 10)
	startKgoMember(t, b.addr(), group, topic, "a", kgo.RangeBalancer(), own, led)
	startKgoMember(t, b.addr(), group, topic, "b", kgo.RangeBalancer(), own, led)
	own.waitNow(t, covering([]string{"a", "b"}, parts, 2), 20*time.Second)
	led.waitAll(t, "phase 1", phase1, 20*time.Second)
	waitCommitted(t, adm, group, topic, parts)
	before := describeGroup(t, adm, group)

	b.cfg.KafkaAddr = b.addr() // same address: the members reconnect to it
	b.restart()
	restored := describeGroup(t, newAdmin(t, b.addr()), group)
	if restored.State == "Empty" || len(restored.Members) != len(before.Members) {
		t.Errorf("after the restart: state %s with %d members, want the %d members back", restored.State, len(restored.Members), len(before.Members))
	}
	phase2 := produceSpread(t, b.addr(), topic, "p2", parts, 10)
	led.waitAll(t, "phase 2 (after the restart)", phase2, 30*time.Second)
	own.waitNow(t, covering([]string{"a", "b"}, parts, 2), 20*time.Second)
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 1", phase1)
	t.Logf("phase 2: %d of %d records consumed twice across the restart", led.duplicates(phase2), len(phase2))
}
