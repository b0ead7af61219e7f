package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/group"
	"github.com/weirstream/weir/core/record"
)

// OffsetsTopic is the internal compacted topic holding committed offsets
// and group metadata, in Kafka's record format (so Kafka tools can read it).
const OffsetsTopic = "__consumer_offsets"

// CoordinatorConfig configures the group coordinator.
type CoordinatorConfig struct {
	// OffsetsPartitions is the partition count of __consumer_offsets when
	// it is created; default 8 (Kafka's 50 is sized for clusters).
	OffsetsPartitions int32
	// OffsetsRetention drops the offsets of groups that have been empty this
	// long (offsets.retention.minutes); default 7 days.
	OffsetsRetention time.Duration
	// TickInterval is how often session and rebalance deadlines are
	// checked; default 100ms.
	TickInterval time.Duration
	Group        group.Config
}

// Coordinator serves consumer groups: it drives one group.Group state
// machine per group, parks join and sync requests until their responses
// appear in the machine's effects, and persists group metadata and offsets
// to __consumer_offsets. Every group input happens under mu.
type Coordinator struct {
	b   *Broker
	cfg CoordinatorConfig
	log *slog.Logger

	mu       sync.Mutex
	groups   map[string]*group.Group
	joinW    map[uint64]chan group.JoinResponse
	syncW    map[uint64]chan group.SyncResponse
	handle   uint64
	lastExp  time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func newCoordinator(b *Broker, cfg CoordinatorConfig) (*Coordinator, error) {
	if cfg.OffsetsPartitions <= 0 {
		cfg.OffsetsPartitions = 8
	}
	if cfg.OffsetsRetention <= 0 {
		cfg.OffsetsRetention = 7 * 24 * time.Hour
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	// Member ids carry a salt that is new at every start, so an id handed
	// out before a restart is never handed out again to another member.
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	cfg.Group.MemberIDSalt = hex.EncodeToString(salt[:])
	c := &Coordinator{b: b, cfg: cfg, log: b.log, groups: map[string]*group.Group{},
		joinW: map[uint64]chan group.JoinResponse{}, syncW: map[uint64]chan group.SyncResponse{}, stop: make(chan struct{})}
	if _, err := b.Topic(OffsetsTopic, false); errors.Is(err, ErrUnknownTopic) {
		if _, err := b.createTopic(OffsetsTopic, cfg.OffsetsPartitions, map[string]string{CfgCleanupPolicy: "compact"}, false, true); err != nil {
			return nil, fmt.Errorf("broker: creating %s: %w", OffsetsTopic, err)
		}
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.ticker()
	return c, nil
}

func (c *Coordinator) now() time.Time { return c.b.cfg.Now() }

// partitionFor is Kafka's placement of a group in __consumer_offsets:
// abs(javaHashCode(group)) % partitions.
func (c *Coordinator) partitionFor(groupID string) int32 {
	ti, err := c.b.Topic(OffsetsTopic, false)
	n := c.cfg.OffsetsPartitions
	if err == nil {
		n = ti.Partitions
	}
	var h int32
	for _, r := range groupID { // Java's String.hashCode over UTF-16 units
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	}
	if h < 0 {
		h = -h
	}
	return h % n
}

func (c *Coordinator) getGroup(id string, create bool) *group.Group {
	g := c.groups[id]
	if g == nil && create {
		g = group.New(id, c.cfg.Group, c.now())
		c.groups[id] = g
	}
	return g
}

// apply delivers an input's effects: responses to parked requests, and the
// group's metadata to the log when it changed.
func (c *Coordinator) apply(g *group.Group, eff group.Effects) {
	for _, j := range eff.Joins {
		if ch, ok := c.joinW[j.Handle]; ok {
			ch <- j
			delete(c.joinW, j.Handle)
		}
	}
	for _, s := range eff.Syncs {
		if ch, ok := c.syncW[s.Handle]; ok {
			ch <- s
			delete(c.syncW, s.Handle)
		}
	}
	if eff.Persist {
		if err := c.persistGroup(g); err != nil {
			c.log.Error("persisting group metadata failed", "group", g.ID, "err", err)
		}
	}
}

// forgetIfIdle drops a group that holds nothing (see group.Group.Idle),
// such as one a failed first request created; called under mu.
func (c *Coordinator) forgetIfIdle(g *group.Group) {
	if g.Idle() && c.groups[g.ID] == g {
		delete(c.groups, g.ID)
	}
}

// ErrCoordinatorClosed is returned by group calls after Close.
var ErrCoordinatorClosed = errors.New("broker: coordinator closed")

// Join handles a JoinGroup, waiting until the join phase completes.
func (c *Coordinator) Join(ctx context.Context, groupID string, r group.JoinRequest) (group.JoinResponse, error) {
	c.mu.Lock()
	c.handle++
	r.Handle = c.handle
	ch := make(chan group.JoinResponse, 1)
	c.joinW[r.Handle] = ch
	g := c.getGroup(groupID, true)
	c.apply(g, g.Join(c.now(), r))
	c.forgetIfIdle(g)
	c.mu.Unlock()
	return awaitResponse(c, ctx, ch, func() { delete(c.joinW, r.Handle) })
}

// Sync handles a SyncGroup, waiting for the leader's assignment.
func (c *Coordinator) Sync(ctx context.Context, groupID string, r group.SyncRequest) (group.SyncResponse, error) {
	c.mu.Lock()
	g := c.getGroup(groupID, false)
	if g == nil {
		c.mu.Unlock()
		return group.SyncResponse{Code: group.UnknownMemberID}, nil
	}
	c.handle++
	r.Handle = c.handle
	ch := make(chan group.SyncResponse, 1)
	c.syncW[r.Handle] = ch
	c.apply(g, g.Sync(c.now(), r))
	c.mu.Unlock()
	return awaitResponse(c, ctx, ch, func() { delete(c.syncW, r.Handle) })
}

// awaitResponse waits for a parked request's response. When ctx ends or the
// coordinator stops first, forget removes the waiter (under mu), and a
// response that raced in is still returned.
func awaitResponse[T any](c *Coordinator, ctx context.Context, ch chan T, forget func()) (T, error) {
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
	case <-c.stop:
	}
	c.mu.Lock()
	forget()
	c.mu.Unlock()
	select {
	case resp := <-ch:
		return resp, nil
	default:
		var zero T
		return zero, ErrCoordinatorClosed
	}
}

// Heartbeat handles a Heartbeat.
func (c *Coordinator) Heartbeat(groupID, memberID, instanceID string, generation int32) group.Code {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(groupID, false)
	if g == nil {
		return group.UnknownMemberID
	}
	return g.Heartbeat(c.now(), memberID, instanceID, generation)
}

// Leave handles a LeaveGroup.
func (c *Coordinator) Leave(groupID string, members []group.LeaveMember) (group.Code, []group.Code) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(groupID, false)
	if g == nil {
		codes := make([]group.Code, len(members))
		for i := range codes {
			codes[i] = group.UnknownMemberID
		}
		return group.UnknownMemberID, codes
	}
	codes, eff := g.Leave(c.now(), members)
	c.apply(g, eff)
	return group.None, codes
}

// CommitOffsets validates and durably stores offsets; the returned code
// applies to every partition.
func (c *Coordinator) CommitOffsets(ctx context.Context, groupID, memberID, instanceID string, generation int32, offsets map[group.TopicPartition]group.Offset) (group.Code, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(groupID, true)
	defer c.forgetIfIdle(g) // a refused or failed commit to a new group id leaves no group
	if code := g.CheckCommit(memberID, instanceID, generation); code != group.None {
		return code, nil
	}
	now := c.now()
	var recs []record.Record
	for _, tp := range sortedTPs(offsets) {
		o := offsets[tp]
		o.CommitTime = now
		offsets[tp] = o
		recs = append(recs, offsetRecord(groupID, tp, &o, now))
	}
	if err := c.write(ctx, groupID, recs); err != nil {
		return group.UnknownServerError, err
	}
	g.Commit(now, offsets)
	return group.None, nil
}

// FetchOffsets returns committed offsets of a group: for the given
// partitions, or all when tps is nil.
func (c *Coordinator) FetchOffsets(groupID string, tps []group.TopicPartition) map[group.TopicPartition]group.Offset {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[group.TopicPartition]group.Offset{}
	g := c.getGroup(groupID, false)
	if g == nil {
		return out
	}
	if tps == nil {
		for _, o := range g.Offsets() {
			out[o.TopicPartition] = o.Offset
		}
		return out
	}
	for _, tp := range tps {
		if o, ok := g.Offset(tp); ok {
			out[tp] = o
		}
	}
	return out
}

// GroupSummary describes a group for ListGroups and DescribeGroups.
type GroupSummary struct {
	ID           string
	State        string
	ProtocolType string
	Protocol     string
	Generation   int32
	Members      []GroupMemberSummary
}

// GroupMemberSummary is a member in a GroupSummary.
type GroupMemberSummary struct {
	ID, InstanceID, ClientID, ClientHost string
	Metadata, Assignment                 []byte
}

// Groups lists the groups the coordinator knows.
func (c *Coordinator) Groups() []GroupSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []GroupSummary
	for _, g := range c.groups {
		if g.State == group.Dead {
			continue
		}
		out = append(out, summarize(g))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DescribeGroup describes one group; ok is false for an unknown group.
func (c *Coordinator) DescribeGroup(id string) (GroupSummary, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(id, false)
	if g == nil || g.State == group.Dead {
		return GroupSummary{ID: id, State: "Dead"}, false
	}
	return summarize(g), true
}

func summarize(g *group.Group) GroupSummary {
	s := GroupSummary{ID: g.ID, State: g.State.String(), ProtocolType: g.ProtocolType, Protocol: g.Protocol, Generation: g.Generation}
	snap := g.Snapshot()
	for _, m := range snap.Members {
		s.Members = append(s.Members, GroupMemberSummary{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			Metadata: m.Protocol.Metadata, Assignment: m.Assignment})
	}
	return s
}

// DeleteGroup deletes an empty group and its offsets.
func (c *Coordinator) DeleteGroup(ctx context.Context, id string) (group.Code, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(id, false)
	if g == nil {
		return group.GroupIDNotFound, nil
	}
	offs := g.Offsets()
	if code := g.Delete(c.now()); code != group.None {
		return code, nil
	}
	recs := []record.Record{{Key: groupKey(id), Value: nil, Timestamp: c.now().UnixMilli()}}
	for _, o := range offs {
		recs = append(recs, offsetRecord(id, o.TopicPartition, nil, c.now()))
	}
	delete(c.groups, id)
	return group.None, c.write(ctx, id, recs)
}

// DeleteOffsets deletes committed offsets of a group for partitions of
// topics it is not subscribed to. It returns per-partition results: true
// when refused because the group consumes the topic.
func (c *Coordinator) DeleteOffsets(ctx context.Context, id string, tps []group.TopicPartition) (group.Code, map[group.TopicPartition]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.getGroup(id, false)
	if g == nil {
		return group.GroupIDNotFound, nil, nil
	}
	subscribed := map[string]bool{}
	if g.ProtocolType == "consumer" {
		for _, m := range g.Snapshot().Members {
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(m.Protocol.Metadata) == nil {
				for _, t := range meta.Topics {
					subscribed[t] = true
				}
			}
		}
	} else if len(g.Members) > 0 {
		return group.NonEmptyGroup, nil, nil
	}
	refused := map[group.TopicPartition]bool{}
	var del []group.TopicPartition
	var recs []record.Record
	for _, tp := range tps {
		if subscribed[tp.Topic] {
			refused[tp] = true
			continue
		}
		if _, ok := g.Offset(tp); ok {
			del = append(del, tp)
			recs = append(recs, offsetRecord(id, tp, nil, c.now()))
		}
	}
	if len(recs) > 0 {
		if err := c.write(ctx, id, recs); err != nil {
			return group.UnknownServerError, nil, err
		}
	}
	g.DeleteOffsets(del)
	return group.None, refused, nil
}

func sortedTPs(m map[group.TopicPartition]group.Offset) []group.TopicPartition {
	tps := make([]group.TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	return tps
}

func (c *Coordinator) ticker() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		now := c.now()
		for _, g := range c.groups {
			c.apply(g, g.Tick(now))
			c.forgetIfIdle(g)
		}
		if now.Sub(c.lastExp) >= 10*time.Second {
			c.lastExp = now
			c.expireOffsets(now)
		}
		c.mu.Unlock()
	}
}

// expireOffsets drops offsets of long-empty groups; called under mu.
func (c *Coordinator) expireOffsets(now time.Time) {
	for id, g := range c.groups {
		gone := g.ExpireOffsets(now, c.cfg.OffsetsRetention)
		if len(gone) == 0 {
			continue
		}
		var recs []record.Record
		for _, tp := range gone {
			recs = append(recs, offsetRecord(id, tp, nil, now))
		}
		forget := g.IsEmpty()
		if forget { // and its metadata, or a restart brings the group back
			recs = append(recs, record.Record{Key: groupKey(id), Value: nil, Timestamp: now.UnixMilli()})
		}
		if err := c.write(context.Background(), id, recs); err != nil {
			c.log.Warn("writing offset expiry failed", "group", id, "err", err)
		}
		if forget {
			delete(c.groups, id)
		}
	}
}

func (c *Coordinator) close() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.wg.Wait()
}
