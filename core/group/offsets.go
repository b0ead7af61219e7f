package group

import (
	"sort"
	"time"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is a committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitTime  time.Time
}

// CheckCommit validates an OffsetCommit's member and generation. A commit
// from outside the group (empty member id, generation -1) is allowed only
// while the group has no members, as Kafka allows for consumers that
// assign partitions themselves. Commits are refused while the leader's
// assignment is awaited (REBALANCE_IN_PROGRESS) but allowed during the
// join phase, so eager consumers can commit before they rejoin.
func (g *Group) CheckCommit(memberID, instanceID string, generation int32) Code {
	if g.State == Dead {
		return CoordinatorNotAvailable
	}
	if memberID == "" && generation < 0 {
		if len(g.Members) > 0 {
			return UnknownMemberID
		}
		return None
	}
	_, ok := g.Members[memberID]
	switch {
	case g.fenced(instanceID, memberID):
		return FencedInstanceID
	case !ok:
		return UnknownMemberID
	case generation != g.Generation:
		return IllegalGeneration
	case g.State == CompletingRebalance:
		return RebalanceInProgress
	}
	return None
}

// Commit stores offsets (after CheckCommit said None).
func (g *Group) Commit(now time.Time, offsets map[TopicPartition]Offset) {
	for tp, o := range offsets {
		if o.CommitTime.IsZero() {
			o.CommitTime = now
		}
		g.offsets[tp] = o
	}
}

// Offset returns a committed offset.
func (g *Group) Offset(tp TopicPartition) (Offset, bool) {
	o, ok := g.offsets[tp]
	return o, ok
}

// Offsets returns every committed offset, sorted by topic and partition.
func (g *Group) Offsets() []TopicPartitionOffset {
	out := make([]TopicPartitionOffset, 0, len(g.offsets))
	for tp, o := range g.offsets {
		out = append(out, TopicPartitionOffset{tp, o})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// TopicPartitionOffset pairs a partition and its committed offset.
type TopicPartitionOffset struct {
	TopicPartition
	Offset
}

// DeleteOffsets removes committed offsets (OffsetDelete); it is refused for
// partitions of topics the group is consuming right now — the host decides
// that and passes only the deletable ones.
func (g *Group) DeleteOffsets(tps []TopicPartition) {
	for _, tp := range tps {
		delete(g.offsets, tp)
	}
}

// ExpireOffsets removes the offsets of an empty group that were committed
// longer ago than retention (offsets.retention.minutes), and reports the
// removed partitions. Groups with members keep their offsets.
func (g *Group) ExpireOffsets(now time.Time, retention time.Duration) []TopicPartition {
	if g.State != Empty || retention <= 0 {
		return nil
	}
	if now.Sub(g.StateSince) < retention {
		return nil
	}
	var gone []TopicPartition
	for tp, o := range g.offsets {
		if now.Sub(o.CommitTime) >= retention {
			gone = append(gone, tp)
			delete(g.offsets, tp)
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		if gone[i].Topic != gone[j].Topic {
			return gone[i].Topic < gone[j].Topic
		}
		return gone[i].Partition < gone[j].Partition
	})
	return gone
}

// Delete marks an empty group dead (DeleteGroups). NON_EMPTY_GROUP while it
// has members.
func (g *Group) Delete(now time.Time) Code {
	if g.State == Dead {
		return GroupIDNotFound
	}
	if len(g.Members) > 0 {
		return NonEmptyGroup
	}
	g.setState(Dead, now)
	g.offsets = map[TopicPartition]Offset{}
	return None
}
