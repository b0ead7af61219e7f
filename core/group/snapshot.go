package group

import (
	"slices"
	"time"
)

// Snapshot is a group's durable metadata: what survives a coordinator
// restart. Offsets are persisted separately, one record per partition.
type Snapshot struct {
	ID           string
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string
	Members      []MemberSnapshot
	StateSince   time.Time
	NextID       int
}

// MemberSnapshot is one member in a Snapshot.
type MemberSnapshot struct {
	ID, InstanceID, ClientID, ClientHost string
	SessionTimeout, RebalanceTimeout     time.Duration
	Protocol                             Protocol // the member's metadata for the group's protocol
	Assignment                           []byte
}

// Snapshot returns the group's metadata for persistence. A group in a
// join phase is saved as of its last completed generation's membership.
func (g *Group) Snapshot() Snapshot {
	s := Snapshot{ID: g.ID, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Generation: g.Generation,
		Leader: g.Leader, StateSince: g.StateSince, NextID: g.nextID}
	for _, id := range g.sortedMemberIDs() {
		m := g.Members[id]
		s.Members = append(s.Members, MemberSnapshot{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
			SessionTimeout: m.SessionTimeout, RebalanceTimeout: m.RebalanceTimeout,
			Protocol: Protocol{Name: g.Protocol, Metadata: slices.Clone(m.metadataFor(g.Protocol))}, Assignment: slices.Clone(m.Assignment)})
	}
	return s
}

// Restore rebuilds a group from a snapshot after a restart. Members come
// back Stable with their assignments and a fresh session (they must
// heartbeat within their session timeout, as after any coordinator move).
func Restore(s Snapshot, offsets map[TopicPartition]Offset, cfg Config, now time.Time) *Group {
	g := New(s.ID, cfg, now)
	g.ProtocolType, g.Protocol, g.Generation, g.Leader, g.nextID = s.ProtocolType, s.Protocol, s.Generation, s.Leader, s.NextID
	for tp, o := range offsets {
		g.offsets[tp] = o
	}
	for _, ms := range s.Members {
		m := &Member{ID: ms.ID, InstanceID: ms.InstanceID, ClientID: ms.ClientID, ClientHost: ms.ClientHost,
			SessionTimeout: ms.SessionTimeout, RebalanceTimeout: ms.RebalanceTimeout,
			Protocols: []Protocol{ms.Protocol}, Assignment: ms.Assignment, lastSeen: now}
		g.Members[m.ID] = m
		if m.InstanceID != "" {
			g.static[m.InstanceID] = m.ID
		}
	}
	g.StateSince = s.StateSince
	if len(g.Members) > 0 {
		g.State = Stable
	}
	return g
}

// IsEmpty reports whether the group has no members and no offsets: the
// coordinator may forget it.
func (g *Group) IsEmpty() bool { return len(g.Members) == 0 && len(g.offsets) == 0 }

// Idle reports whether the group holds nothing at all: no members, no member
// id handed out with MEMBER_ID_REQUIRED and not yet expired, no offsets, and
// no completed generation (so nothing of it was ever persisted). A host may
// forget an idle group without writing anything: it is what a failed first
// request to a new group id leaves behind.
func (g *Group) Idle() bool {
	return g.State == Empty && g.Generation == 0 && len(g.pending) == 0 && g.IsEmpty()
}
