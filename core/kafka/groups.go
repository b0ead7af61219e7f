package kafka

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/group"
)

// requestContext is canceled when the server shuts down, so parked group
// requests return.
func (c *conn) requestContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.s.shutdown:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (c *conn) findCoordinator(r *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	node, host, port := c.s.cfg.Broker.NodeID(), c.s.cfg.AdvertisedHost, c.s.cfg.AdvertisedPort
	code := int16(0)
	if r.CoordinatorType != 0 { // only group coordinators; transactions are not implemented
		code = kerr.CoordinatorNotAvailable.Code
	}
	if r.Version >= 4 {
		for _, k := range r.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, kmsg.FindCoordinatorResponseCoordinator{Key: k, NodeID: node, Host: host, Port: port, ErrorCode: code})
		}
		return resp
	}
	resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = code, node, host, port
	return resp
}

func (c *conn) joinGroup(r *kmsg.JoinGroupRequest, clientID *string) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	protos := make([]group.Protocol, len(r.Protocols))
	for i, p := range r.Protocols {
		// Cloned: kmsg aliases the request buffer, which the connection reuses for its next request.
		protos[i] = group.Protocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	jr, err := c.s.cfg.Broker.Coordinator().Join(ctx, r.Group, group.JoinRequest{
		MemberID: r.MemberID, InstanceID: strOr(r.InstanceID), ClientID: strOr(clientID), ClientHost: c.remoteHost(),
		SessionTimeout:       time.Duration(r.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:         r.ProtocolType,
		Protocols:            protos,
		RequireKnownMemberID: r.Version >= 4,
	})
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ErrorCode, resp.Generation, resp.MemberID, resp.LeaderID = int16(jr.Code), jr.Generation, jr.MemberID, jr.Leader
	resp.SkipAssignment = jr.SkipAssignment
	if jr.Code == group.None {
		pt, p := jr.ProtocolType, jr.Protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
	}
	for _, m := range jr.Members {
		resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{MemberID: m.MemberID, InstanceID: strPtr(m.InstanceID), ProtocolMetadata: m.Metadata})
	}
	return resp
}

func (c *conn) remoteHost() string {
	if c.nc == nil {
		return ""
	}
	if a := c.nc.RemoteAddr(); a != nil {
		return "/" + a.String()
	}
	return ""
}

func (c *conn) syncGroup(r *kmsg.SyncGroupRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	as := make(map[string][]byte, len(r.GroupAssignment))
	for _, a := range r.GroupAssignment {
		as[a.MemberID] = slices.Clone(a.MemberAssignment) // the request buffer is reused, see joinGroup
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	sr, err := c.s.cfg.Broker.Coordinator().Sync(ctx, r.Group, group.SyncRequest{
		MemberID: r.MemberID, InstanceID: strOr(r.InstanceID), Generation: r.Generation,
		ProtocolType: strOr(r.ProtocolType), Protocol: strOr(r.Protocol), Assignments: as,
	})
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ErrorCode, resp.MemberAssignment = int16(sr.Code), sr.Assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	if sr.Code == group.None {
		pt, p := sr.ProtocolType, sr.Protocol
		resp.ProtocolType, resp.Protocol = &pt, &p
	}
	return resp
}

func (c *conn) heartbeat(r *kmsg.HeartbeatRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = int16(c.s.cfg.Broker.Coordinator().Heartbeat(r.Group, r.MemberID, strOr(r.InstanceID), r.Generation))
	return resp
}

func (c *conn) leaveGroup(r *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
	var lms []group.LeaveMember
	if r.Version < 3 {
		lms = []group.LeaveMember{{MemberID: r.MemberID}}
	} else {
		for _, m := range r.Members {
			lms = append(lms, group.LeaveMember{MemberID: m.MemberID, InstanceID: strOr(m.InstanceID)})
		}
	}
	top, codes := c.s.cfg.Broker.Coordinator().Leave(r.Group, lms)
	if r.Version < 3 {
		resp.ErrorCode = int16(codes[0])
		return resp
	}
	resp.ErrorCode = int16(top)
	for i, m := range r.Members {
		resp.Members = append(resp.Members, kmsg.LeaveGroupResponseMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ErrorCode: int16(codes[i])})
	}
	return resp
}

func (c *conn) offsetCommit(r *kmsg.OffsetCommitRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	offs := map[group.TopicPartition]group.Offset{}
	partCodes := map[group.TopicPartition]int16{}
	for _, t := range r.Topics {
		ti, terr := b.Topic(t.Topic, false)
		for _, p := range t.Partitions {
			tp := group.TopicPartition{Topic: t.Topic, Partition: p.Partition}
			if terr != nil || p.Partition < 0 || p.Partition >= ti.Partitions {
				partCodes[tp] = kerr.UnknownTopicOrPartition.Code
				continue
			}
			offs[tp] = group.Offset{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: strOr(p.Metadata)}
		}
	}
	gen, member := r.Generation, r.MemberID
	if r.Version == 0 {
		gen = -1
	}
	code := int16(0)
	if len(offs) > 0 {
		ctx, cancel := c.requestContext()
		gc, err := b.Coordinator().CommitOffsets(ctx, r.Group, member, strOr(r.InstanceID), gen, offs)
		cancel()
		code = int16(gc)
		if err != nil {
			c.s.log.Error("offset commit failed", "group", r.Group, "err", err)
			code = errorCode(err)
		}
	}
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			pc, bad := partCodes[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
			if !bad {
				pc = code
			}
			rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: pc})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// fetchGroupOffsets answers one group of an OffsetFetch: the requested
// partitions (all committed ones when topics is nil), -1 where none.
func (c *conn) fetchGroupOffsets(groupID string, topics map[string][]int32, order []string) []kmsg.OffsetFetchResponseGroupTopic {
	coord := c.s.cfg.Broker.Coordinator()
	var out []kmsg.OffsetFetchResponseGroupTopic
	if topics == nil {
		all := coord.FetchOffsets(groupID, nil)
		for _, tp := range sortedOffsetKeys(all) {
			if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
				out = append(out, kmsg.OffsetFetchResponseGroupTopic{Topic: tp.Topic})
			}
			o := all[tp]
			md := o.Metadata
			last := &out[len(out)-1]
			last.Partitions = append(last.Partitions, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: tp.Partition, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: &md})
		}
		return out
	}
	var tps []group.TopicPartition
	for _, t := range order {
		for _, p := range topics[t] {
			tps = append(tps, group.TopicPartition{Topic: t, Partition: p})
		}
	}
	got := coord.FetchOffsets(groupID, tps)
	for _, t := range order {
		rt := kmsg.OffsetFetchResponseGroupTopic{Topic: t}
		for _, p := range topics[t] {
			rp := kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p, Offset: -1, LeaderEpoch: -1}
			empty := ""
			rp.Metadata = &empty
			if o, ok := got[group.TopicPartition{Topic: t, Partition: p}]; ok {
				md := o.Metadata
				rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, &md
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out
}

func sortedOffsetKeys(m map[group.TopicPartition]group.Offset) []group.TopicPartition {
	tps := make([]group.TopicPartition, 0, len(m))
	for tp := range m {
		tps = append(tps, tp)
	}
	for i := 1; i < len(tps); i++ {
		for j := i; j > 0; j-- {
			a, b := tps[j-1], tps[j]
			if a.Topic < b.Topic || (a.Topic == b.Topic && a.Partition < b.Partition) {
				break
			}
			tps[j-1], tps[j] = b, a
		}
	}
	return tps
}

func (c *conn) offsetFetch(r *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	if r.Version >= 8 {
		for _, g := range r.Groups {
			var topics map[string][]int32
			var order []string
			if g.Topics != nil {
				topics = map[string][]int32{}
				for _, t := range g.Topics {
					topics[t.Topic] = t.Partitions
					order = append(order, t.Topic)
				}
			}
			resp.Groups = append(resp.Groups, kmsg.OffsetFetchResponseGroup{Group: g.Group, Topics: c.fetchGroupOffsets(g.Group, topics, order)})
		}
		return resp
	}
	var topics map[string][]int32
	var order []string
	if r.Topics != nil || r.Version < 2 {
		topics = map[string][]int32{}
		for _, t := range r.Topics {
			topics[t.Topic] = t.Partitions
			order = append(order, t.Topic)
		}
	}
	for _, t := range c.fetchGroupOffsets(r.Group, topics, order) {
		rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetFetchResponseTopicPartition{Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) listGroups(r *kmsg.ListGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	want := map[string]bool{}
	for _, s := range r.StatesFilter {
		want[s] = true
	}
	for _, g := range c.s.cfg.Broker.Coordinator().Groups() {
		if len(want) > 0 && !want[g.State] {
			continue
		}
		resp.Groups = append(resp.Groups, kmsg.ListGroupsResponseGroup{Group: g.ID, ProtocolType: g.ProtocolType, GroupState: g.State})
	}
	return resp
}

func (c *conn) describeGroups(r *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range r.Groups {
		g, _ := c.s.cfg.Broker.Coordinator().DescribeGroup(id)
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.State, rg.ProtocolType, rg.Protocol = id, g.State, g.ProtocolType, g.Protocol
		for _, m := range g.Members {
			rg.Members = append(rg.Members, kmsg.DescribeGroupsResponseGroupMember{MemberID: m.ID, InstanceID: strPtr(m.InstanceID),
				ClientID: m.ClientID, ClientHost: m.ClientHost, ProtocolMetadata: m.Metadata, MemberAssignment: m.Assignment})
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *conn) deleteGroups(r *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	for _, id := range r.Groups {
		code, err := c.s.cfg.Broker.Coordinator().DeleteGroup(ctx, id)
		ec := int16(code)
		if err != nil {
			ec = errorCode(err)
		}
		resp.Groups = append(resp.Groups, kmsg.DeleteGroupsResponseGroup{Group: id, ErrorCode: ec})
	}
	return resp
}

func (c *conn) offsetDelete(r *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var tps []group.TopicPartition
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	code, refused, err := c.s.cfg.Broker.Coordinator().DeleteOffsets(ctx, r.Group, tps)
	resp.ErrorCode = int16(code)
	if err != nil {
		resp.ErrorCode = errorCode(err)
	}
	for _, t := range r.Topics {
		rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			pc := int16(0)
			if refused[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}] {
				pc = kerr.GroupSubscribedToTopic.Code
			}
			rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: pc})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// offsetForLeaderEpoch: a single node has one leader epoch (0), which ends
// at the log end offset.
func (c *conn) offsetForLeaderEpoch(r *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			offs, err := c.s.cfg.Broker.Offsets(t.Topic, p.Partition)
			switch {
			case err != nil:
				rp.ErrorCode = errorCode(err)
			case p.CurrentLeaderEpoch > 0:
				rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case p.LeaderEpoch > 0:
				rp.LeaderEpoch, rp.EndOffset = -1, -1
			default:
				rp.LeaderEpoch, rp.EndOffset = 0, offs.HighWatermark
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
