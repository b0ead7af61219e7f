package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/record"
)

// dispatch runs one decoded request and returns its response (nil: none).
func (c *conn) dispatch(h header, req kmsg.Request) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ApiKeys = apiVersionKeys()
		return resp
	case *kmsg.MetadataRequest:
		return c.metadata(r)
	case *kmsg.ProduceRequest:
		return c.produce(r)
	case *kmsg.FetchRequest:
		return c.fetch(r)
	case *kmsg.ListOffsetsRequest:
		return c.listOffsets(r)
	case *kmsg.CreateTopicsRequest:
		return c.createTopics(r)
	case *kmsg.DeleteTopicsRequest:
		return c.deleteTopics(r)
	case *kmsg.CreatePartitionsRequest:
		return c.createPartitions(r)
	case *kmsg.DescribeConfigsRequest:
		return c.describeConfigs(r)
	case *kmsg.AlterConfigsRequest:
		return c.alterConfigs(r)
	case *kmsg.IncrementalAlterConfigsRequest:
		return c.incrementalAlterConfigs(r)
	case *kmsg.InitProducerIDRequest:
		resp := kmsg.NewPtrInitProducerIDResponse()
		if r.TransactionalID != nil {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			return resp
		}
		id, epoch, err := c.s.cfg.Broker.InitProducerID()
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = errorCode(err), id, epoch
		return resp
	case *kmsg.FindCoordinatorRequest:
		return c.findCoordinator(r)
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(r, h.clientID)
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(r)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r)
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(r)
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(r)
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(r)
	case *kmsg.ListGroupsRequest:
		return c.listGroups(r)
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(r)
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(r)
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(r)
	case *kmsg.OffsetForLeaderEpochRequest:
		return c.offsetForLeaderEpoch(r)
	case *kmsg.DescribeClusterRequest:
		resp := kmsg.NewPtrDescribeClusterResponse()
		resp.ClusterID = c.s.cfg.ClusterID
		resp.ControllerID = c.s.cfg.Broker.NodeID()
		resp.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: c.s.cfg.Broker.NodeID(), Host: c.s.cfg.AdvertisedHost, Port: c.s.cfg.AdvertisedPort}}
		return resp
	}
	panic(fmt.Sprintf("kafka: no handler for %T", req)) // supported and dispatch disagree: a bug
}

func (c *conn) metadata(r *kmsg.MetadataRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := kmsg.NewPtrMetadataResponse()
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: b.NodeID(), Host: c.s.cfg.AdvertisedHost, Port: c.s.cfg.AdvertisedPort}}
	resp.ClusterID = &c.s.cfg.ClusterID
	resp.ControllerID = b.NodeID()
	var infos []broker.TopicInfo
	var errs []kmsg.MetadataResponseTopic
	// v0: an empty list means all topics; v1+: null means all, empty none.
	all := r.Topics == nil || (r.Version == 0 && len(r.Topics) == 0)
	if all {
		infos = b.Topics()
	} else {
		autoCreate := r.Version < 4 || r.AllowAutoTopicCreation
		for _, t := range r.Topics {
			if t.Topic == nil {
				errs = append(errs, kmsg.MetadataResponseTopic{ErrorCode: kerr.UnknownTopicID.Code, TopicID: t.TopicID})
				continue
			}
			ti, err := b.Topic(*t.Topic, autoCreate)
			if err != nil {
				name := *t.Topic
				errs = append(errs, kmsg.MetadataResponseTopic{ErrorCode: errorCode(err), Topic: &name})
				continue
			}
			infos = append(infos, ti)
		}
	}
	for _, ti := range infos {
		name := ti.Name
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID, mt.IsInternal = &name, ti.ID, ti.Internal
		for p := int32(0); p < ti.Partitions; p++ {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Leader, mp.LeaderEpoch = p, b.NodeID(), 0
			mp.Replicas, mp.ISR = []int32{b.NodeID()}, []int32{b.NodeID()}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	resp.Topics = append(resp.Topics, errs...)
	return resp
}

// produceWorkers is how many partitions of one Produce request are
// written at once (they share fsyncs, so a few suffice).
const produceWorkers = 16

func (c *conn) produce(r *kmsg.ProduceRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	type job struct {
		t, p  int
		topic string
		part  int32
		data  []byte
	}
	var jobs []job
	for ti, t := range r.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for pi, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
			jobs = append(jobs, job{ti, pi, t.Topic, p.Partition, p.Records})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if r.TransactionID != nil {
		for _, j := range jobs {
			resp.Topics[j.t].Partitions[j.p].ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		}
		return c.produceAck(r, resp)
	}
	if r.Version < minProduceVersion {
		for _, j := range jobs {
			resp.Topics[j.t].Partitions[j.p].ErrorCode = kerr.UnsupportedVersion.Code
		}
		return c.produceAck(r, resp)
	}
	b := c.s.cfg.Broker
	run := func(j job) {
		rp := &resp.Topics[j.t].Partitions[j.p]
		ti, err := b.Topic(j.topic, true)
		if err != nil {
			rp.ErrorCode = errorCode(err)
			return
		}
		if ti.Internal {
			rp.ErrorCode = kerr.InvalidTopicException.Code
			return
		}
		// Produce v3+ carries exactly one RecordBatch v2 per partition.
		hdr, batch, rest, err := record.Next(j.data)
		if err == nil && len(rest) != 0 {
			err = fmt.Errorf("%w: more than one batch in a produce request", record.ErrLength)
			rp.ErrorCode = kerr.InvalidRecord.Code
			rp.ErrorMessage = errorMessage(err)
			return
		}
		if err == nil && hdr.Magic != 2 {
			err = record.ErrMagic
		}
		if err != nil {
			rp.ErrorCode, rp.ErrorMessage = errorCode(err), errorMessage(err)
			return
		}
		res, err := b.Produce(context.Background(), j.topic, j.part, batch)
		rp.ErrorCode = errorCode(err)
		if err != nil {
			if rp.ErrorCode == kerr.UnknownServerError.Code || rp.ErrorCode == kerr.KafkaStorageError.Code {
				c.s.log.Error("produce failed", "topic", j.topic, "partition", j.part, "err", err)
			}
			if r.Version >= 8 {
				rp.ErrorMessage = errorMessage(err)
			}
			return
		}
		rp.BaseOffset, rp.LogAppendTime, rp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
	}
	if len(jobs) == 1 {
		run(jobs[0])
	} else {
		var wg sync.WaitGroup
		var next atomic.Int64
		for range min(len(jobs), produceWorkers) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
					run(jobs[i])
				}
			}()
		}
		wg.Wait()
	}
	return c.produceAck(r, resp)
}

// produceAck returns nil for acks=0: Kafka sends no response at all. A
// partition that failed then closes the connection, as Kafka does, since
// the close is the only way an acks=0 producer can learn of it (it
// refreshes its metadata and reconnects).
func (c *conn) produceAck(r *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) kmsg.Response {
	if r.Acks != 0 {
		return resp
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				c.closeErr = fmt.Errorf("%w: %s/%d: %v", errAcks0Failed, t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				return nil
			}
		}
	}
	return nil
}

func (c *conn) fetch(r *kmsg.FetchRequest) kmsg.Response {
	b := c.s.cfg.Broker
	deadline := time.Now().Add(time.Duration(max(r.MaxWaitMillis, 0)) * time.Millisecond)
	if r.SessionID != 0 || r.SessionEpoch > 0 {
		// We answer every fetch as sessionless (session id 0); a client
		// that still names a session gets told it is gone and starts over.
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return resp
	}
	for {
		wake := b.Appended()
		c.releaseHeld() // a previous attempt's buffers
		resp, size, hasErr := c.fetchOnce(r)
		if hasErr || size >= int(r.MinBytes) || !time.Now().Before(deadline) {
			return resp
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		case <-c.stopping():
		}
		t.Stop()
		select {
		case <-c.stopping():
			c.releaseHeld()
			resp, _, _ := c.fetchOnce(r)
			return resp
		default:
		}
	}
}

// fetchOnce builds a fetch response from what is in the logs now; it
// returns its record bytes and whether any partition had an error.
func (c *conn) fetchOnce(r *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool) {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	budget := c.s.cfg.MaxFetchBytes
	if r.MaxBytes > 0 {
		budget = min(budget, int(r.MaxBytes))
	}
	total, hasErr := 0, false
	for _, t := range r.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.RecordBatches = []byte{} // librdkafka rejects a null record set
			limit := min(int(p.PartitionMaxBytes), budget-total)
			buf := fetchPool.get()
			res, err := b.FetchInto(buf, t.Topic, p.Partition, p.FetchOffset, limit, total == 0)
			if res.Records != nil {
				buf = res.Records // the buffer the log read into (buf's, or a larger one)
			}
			c.held = append(c.held, buf[:cap(buf)])
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = res.HighWatermark, res.LastStable, res.LogStart
			if err != nil {
				rp.ErrorCode = errorCode(err)
				if errors.Is(err, broker.ErrUnknownTopic) {
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				}
				hasErr = true
			} else {
				if res.Records != nil {
					rp.RecordBatches = res.Records
				}
				total += len(res.Records)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, total, hasErr
}

func (c *conn) listOffsets(r *kmsg.ListOffsetsRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			off, ts, found, err := b.ListOffset(t.Topic, p.Partition, p.Timestamp)
			rp.ErrorCode = errorCode(err)
			if err == nil {
				rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, 0
				if found {
					rp.Timestamp, rp.Offset = ts, off
				}
				if r.Version == 0 {
					rp.OldStyleOffsets = []int64{max(off, 0)}
					if !found {
						rp.OldStyleOffsets = nil
					}
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) createTopics(r *kmsg.CreateTopicsRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		var err error
		configs := map[string]string{}
		for _, cfg := range t.Configs {
			if cfg.Value != nil {
				configs[cfg.Name] = *cfg.Value
			}
		}
		switch {
		case t.ReplicationFactor > 1:
			err = fmt.Errorf("%w: replication factor %d on a single node", kerr.InvalidReplicationFactor, t.ReplicationFactor)
		case len(t.ReplicaAssignment) > 0:
			err = fmt.Errorf("%w: manual replica assignment is not supported", kerr.InvalidReplicaAssignment)
		}
		var ti broker.TopicInfo
		if err == nil {
			ti, err = b.CreateTopic(t.Topic, t.NumPartitions, configs, r.ValidateOnly)
		}
		rt.ErrorCode = errorCode(err)
		if r.Version >= 1 {
			rt.ErrorMessage = errorMessage(err)
		}
		if err == nil {
			rt.TopicID, rt.NumPartitions, rt.ReplicationFactor = ti.ID, ti.Partitions, 1
			if eff, overridden, cerr := b.TopicConfigs(t.Topic); cerr == nil {
				for _, k := range sortedKeys(eff) {
					v := eff[k]
					src := kmsg.ConfigSourceDefaultConfig
					if overridden[k] {
						src = kmsg.ConfigSourceDynamicTopicConfig
					}
					rt.Configs = append(rt.Configs, kmsg.CreateTopicsResponseTopicConfig{Name: k, Value: &v, Source: int8(src)})
				}
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) deleteTopics(r *kmsg.DeleteTopicsRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := r.TopicNames
	for _, t := range r.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		} else {
			resp.Topics = append(resp.Topics, kmsg.DeleteTopicsResponseTopic{TopicID: t.TopicID, ErrorCode: kerr.UnknownTopicID.Code})
		}
	}
	for _, name := range names {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &name
		if ti, err := b.Topic(name, false); err == nil {
			rt.TopicID = ti.ID
		}
		err := b.DeleteTopic(name)
		rt.ErrorCode = errorCode(err)
		if r.Version >= 5 {
			rt.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) createPartitions(r *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		err := c.s.cfg.Broker.CreatePartitions(t.Topic, t.Count, r.ValidateOnly)
		rt.ErrorCode, rt.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) describeConfigs(r *kmsg.DescribeConfigsRequest) kmsg.Response {
	b := c.s.cfg.Broker
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, res := range r.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var eff map[string]string
		overridden := map[string]bool{}
		var err error
		switch res.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			eff, overridden, err = b.TopicConfigs(res.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			eff = map[string]string{}
		default:
			err = fmt.Errorf("%w: resource type %v", kerr.InvalidRequest, res.ResourceType)
		}
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		want := map[string]bool{}
		for _, n := range res.ConfigNames {
			want[n] = true
		}
		for _, k := range sortedKeys(eff) {
			if res.ConfigNames != nil && !want[k] {
				continue
			}
			v := eff[k]
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value = k, &v
			rc.IsDefault = !overridden[k]
			rc.Source = kmsg.ConfigSourceDefaultConfig
			if overridden[k] {
				rc.Source = kmsg.ConfigSourceDynamicTopicConfig
			}
			rr.Configs = append(rr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func (c *conn) alterConfigs(r *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, res := range r.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var err error
		if res.ResourceType != kmsg.ConfigResourceTypeTopic {
			err = fmt.Errorf("%w: only topic configs can be altered", kerr.InvalidRequest)
		} else {
			set := map[string]string{}
			for _, cfg := range res.Configs {
				if cfg.Value != nil {
					set[cfg.Name] = *cfg.Value
				}
			}
			err = c.s.cfg.Broker.AlterTopicConfigs(res.ResourceName, set, nil, true, r.ValidateOnly)
		}
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func (c *conn) incrementalAlterConfigs(r *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := r.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, res := range r.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = res.ResourceType, res.ResourceName
		var err error
		if res.ResourceType != kmsg.ConfigResourceTypeTopic {
			err = fmt.Errorf("%w: only topic configs can be altered", kerr.InvalidRequest)
		} else {
			set := map[string]string{}
			var remove []string
			for _, cfg := range res.Configs {
				switch cfg.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if cfg.Value == nil {
						err = fmt.Errorf("%w: SET %s without a value", kerr.InvalidRequest, cfg.Name)
					} else {
						set[cfg.Name] = *cfg.Value
					}
				case kmsg.IncrementalAlterConfigOpDelete:
					remove = append(remove, cfg.Name)
				default:
					err = fmt.Errorf("%w: %v on %s: weir's topic configs are not lists", kerr.InvalidRequest, cfg.Op, cfg.Name)
				}
			}
			if err == nil {
				err = c.s.cfg.Broker.AlterTopicConfigs(res.ResourceName, set, remove, false, r.ValidateOnly)
			}
		}
		rr.ErrorCode, rr.ErrorMessage = errorCode(err), errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
