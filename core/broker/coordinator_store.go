package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/group"
	"github.com/weirstream/weir/core/record"
)

// __consumer_offsets records use Kafka's own schemas (kmsg has them):
//
//	key version 1: OffsetCommitKey{group, topic, partition} -> OffsetCommitValue v3 (null: deleted)
//	key version 2: GroupMetadataKey{group}                  -> GroupMetadataValue v3 (null: deleted)
//
// A group's records all go to one partition, abs(javaHashCode(group)) % n,
// so its history is ordered; compaction keeps the last record per key.

func groupKey(id string) []byte {
	k := kmsg.NewGroupMetadataKey()
	k.Version, k.Group = 2, id
	return k.AppendTo(nil)
}

// offsetRecord is the record for a commit; o == nil makes a tombstone.
func offsetRecord(groupID string, tp group.TopicPartition, o *group.Offset, now time.Time) record.Record {
	k := kmsg.NewOffsetCommitKey()
	k.Version, k.Group, k.Topic, k.Partition = 1, groupID, tp.Topic, tp.Partition
	r := record.Record{Key: k.AppendTo(nil), Timestamp: now.UnixMilli()}
	if o != nil {
		v := kmsg.NewOffsetCommitValue()
		v.Version, v.Offset, v.LeaderEpoch, v.Metadata, v.CommitTimestamp = 3, o.Offset, o.LeaderEpoch, o.Metadata, o.CommitTime.UnixMilli()
		r.Value = v.AppendTo(nil)
	}
	return r
}

func groupRecord(s group.Snapshot, now time.Time) record.Record {
	v := kmsg.NewGroupMetadataValue()
	v.Version, v.ProtocolType, v.Generation, v.CurrentStateTimestamp = 3, s.ProtocolType, s.Generation, s.StateSince.UnixMilli()
	if s.Protocol != "" {
		p := s.Protocol
		v.Protocol = &p
	}
	if s.Leader != "" {
		l := s.Leader
		v.Leader = &l
	}
	for _, m := range s.Members {
		mv := kmsg.NewGroupMetadataValueMember()
		mv.MemberID, mv.ClientID, mv.ClientHost = m.ID, m.ClientID, m.ClientHost
		if m.InstanceID != "" {
			in := m.InstanceID
			mv.InstanceID = &in
		}
		mv.SessionTimeoutMillis, mv.RebalanceTimeoutMillis = int32(m.SessionTimeout.Milliseconds()), int32(m.RebalanceTimeout.Milliseconds())
		mv.Subscription, mv.Assignment = m.Protocol.Metadata, m.Assignment
		v.Members = append(v.Members, mv)
	}
	return record.Record{Key: groupKey(s.ID), Value: v.AppendTo(nil), Timestamp: now.UnixMilli()}
}

// persistGroup writes the group's metadata (called under mu).
func (c *Coordinator) persistGroup(g *group.Group) error {
	return c.write(context.Background(), g.ID, []record.Record{groupRecord(g.Snapshot(), c.now())})
}

// write appends records for a group to its __consumer_offsets partition and
// waits until they are durable.
func (c *Coordinator) write(ctx context.Context, groupID string, recs []record.Record) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		recs[i].Offset = int64(i)
	}
	b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	if err != nil {
		return err
	}
	_, err = c.b.Produce(ctx, OffsetsTopic, c.partitionFor(groupID), b)
	return err
}

// load rebuilds every group from __consumer_offsets.
func (c *Coordinator) load() error {
	ti, err := c.b.Topic(OffsetsTopic, false)
	if err != nil {
		return err
	}
	snaps := map[string]*group.Snapshot{}
	offsets := map[string]map[group.TopicPartition]group.Offset{}
	for p := int32(0); p < ti.Partitions; p++ {
		part, err := c.b.partition(OffsetsTopic, p)
		if err != nil {
			return err
		}
		l := part.getLog()
		buf := make([]byte, 0, 1<<20)
		for off := l.LogStartOffset(); off < l.HighWatermark(); {
			data, err := l.ReadInto(buf, off, 1<<20, l.HighWatermark())
			if err != nil {
				return fmt.Errorf("broker: loading groups from %s/%d: %w", OffsetsTopic, p, err)
			}
			if len(data) == 0 {
				break
			}
			for len(data) > 0 {
				h, batch, rest, err := record.Next(data)
				if err != nil {
					return fmt.Errorf("broker: loading groups from %s/%d: %w", OffsetsTopic, p, err)
				}
				recs, err := record.Records(batch, 64<<20)
				if err != nil {
					return fmt.Errorf("broker: loading groups from %s/%d at %d: %w", OffsetsTopic, p, h.BaseOffset, err)
				}
				for _, r := range recs {
					c.loadRecord(r, snaps, offsets)
				}
				off, data = h.LastOffset()+1, rest
			}
		}
	}
	now := c.now()
	ids := map[string]bool{}
	for id := range snaps {
		ids[id] = true
	}
	for id, offs := range offsets {
		if len(offs) > 0 { // a group whose offsets were all deleted is gone unless it has metadata
			ids[id] = true
		}
	}
	for id := range ids {
		s := snaps[id]
		if s == nil {
			s = &group.Snapshot{ID: id}
		}
		c.groups[id] = group.Restore(*s, offsets[id], c.cfg.Group, now)
	}
	if len(ids) > 0 {
		c.log.Info("restored consumer groups", "groups", len(ids))
	}
	return nil
}

func (c *Coordinator) loadRecord(r record.Record, snaps map[string]*group.Snapshot, offsets map[string]map[group.TopicPartition]group.Offset) {
	if len(r.Key) < 2 {
		return
	}
	switch binary.BigEndian.Uint16(r.Key) {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(r.Key) != nil {
			return
		}
		tp := group.TopicPartition{Topic: k.Topic, Partition: k.Partition}
		if r.Value == nil {
			// A tombstone (deleted or expired offset) must not bring a
			// deleted group back: no map for a group it empties.
			delete(offsets[k.Group], tp)
			return
		}
		var v kmsg.OffsetCommitValue
		if v.ReadFrom(r.Value) != nil {
			return
		}
		if offsets[k.Group] == nil {
			offsets[k.Group] = map[group.TopicPartition]group.Offset{}
		}
		offsets[k.Group][tp] = group.Offset{Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitTime: time.UnixMilli(v.CommitTimestamp)}
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(r.Key) != nil {
			return
		}
		if r.Value == nil {
			delete(snaps, k.Group)
			delete(offsets, k.Group)
			return
		}
		var v kmsg.GroupMetadataValue
		if v.ReadFrom(r.Value) != nil {
			return
		}
		s := &group.Snapshot{ID: k.Group, ProtocolType: v.ProtocolType, Generation: v.Generation, StateSince: time.UnixMilli(v.CurrentStateTimestamp)}
		if v.Protocol != nil {
			s.Protocol = *v.Protocol
		}
		if v.Leader != nil {
			s.Leader = *v.Leader
		}
		for _, m := range v.Members {
			ms := group.MemberSnapshot{ID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost,
				SessionTimeout: time.Duration(m.SessionTimeoutMillis) * time.Millisecond, RebalanceTimeout: time.Duration(m.RebalanceTimeoutMillis) * time.Millisecond,
				Protocol: group.Protocol{Name: s.Protocol, Metadata: m.Subscription}, Assignment: m.Assignment}
			if m.InstanceID != nil {
				ms.InstanceID = *m.InstanceID
			}
			s.Members = append(s.Members, ms)
		}
		snaps[k.Group] = s
	}
}
