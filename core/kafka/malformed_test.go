package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/record"
)

const testMaxRequest = 1 << 20

// rawHeader is a request header with a non-null client id "x".
func rawHeader(key, version int16, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, 0, 1, 'x')
}

// allocated returns the bytes allocated by the process so far.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// startMalformedBroker starts a broker with a 1 MiB request limit and a
// baseline topic holding records produced by kgo; it returns the baseline
// log bytes and the values produced.
func startMalformedBroker(t *testing.T) (*testBroker, []byte, [][]byte) {
	tb := startBroker(t, func(_ *broker.Config, k *Config) { k.MaxRequestBytes = testMaxRequest })
	tb.createTopic(t, "baseline", 1)
	var recs []*kgo.Record
	var vals [][]byte
	for i := range 20 {
		v := append(fmt.Appendf(nil, "baseline-%d-", i), 0, 0xff, '\n', byte(i))
		vals = append(vals, v)
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v})
	}
	produceKgo(t, tb.addr, "baseline", recs)
	return tb, tb.logBytes(t, "baseline", 0), vals
}

// TestMalformedFrames sends one bad frame per connection and checks that
// the broker closes that connection (or answers as Kafka does), keeps
// serving others, and leaves the logs untouched.
func TestMalformedFrames(t *testing.T) {
	tb, baseline, vals := startMalformedBroker(t)

	closed := func(frames ...[]byte) func(t *testing.T, c *rawConn) {
		return func(t *testing.T, c *rawConn) {
			for _, f := range frames {
				c.write(f)
			}
			c.expectClosed()
		}
	}
	withBody := func(key, version int16, body ...byte) []byte {
		return frame(append(rawHeader(key, version, 7), body...))
	}
	// flexible Metadata v12 request with custom header tag bytes and an
	// otherwise valid body.
	metaBody := func() []byte {
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(12)
		return encodeRequest(req, 1)[4+8+2+len("weir-test")+1:]
	}()
	flexHeaderTags := func(tags ...byte) []byte {
		b := rawHeader(kmsg.Metadata.Int16(), 12, 3)
		b = append(b, tags...)
		return frame(append(b, metaBody...))
	}
	bigClaim := func(claim uint32) func(t *testing.T, c *rawConn) {
		return func(t *testing.T, c *rawConn) {
			runtime.GC()
			before := allocated()
			c.write(binary.BigEndian.AppendUint32(nil, claim))
			// The broker may close before these arrive.
			c.nc.Write(rawHeader(kmsg.Metadata.Int16(), 4, 1))
			c.nc.Write(bytes.Repeat([]byte{0}, 4096))
			c.expectClosed()
			if grew := allocated() - before; grew > 32<<20 {
				t.Fatalf("claiming a %d-byte frame made the process allocate %d bytes", claim, grew)
			}
		}
	}

	cases := []struct {
		name string
		run  func(t *testing.T, c *rawConn)
	}{
		{"size 2GiB over the limit", bigClaim(2<<30 - 1)},
		{"size 4GiB-1 (negative)", bigClaim(0xffffffff)},
		{"size one over the limit", bigClaim(testMaxRequest + 1)},
		{"size MinInt32", closed(binary.BigEndian.AppendUint32(nil, 0x80000000))},
		{"size 0", closed([]byte{0, 0, 0, 0})},
		{"size 9", closed(frame(rawHeader(kmsg.Metadata.Int16(), 4, 1)[:9]))},
		{"header only, no client id", closed(frame(rawHeader(kmsg.Metadata.Int16(), 4, 1)[:10]))},
		{"client id past the end", closed(frame(append(rawHeader(kmsg.Metadata.Int16(), 4, 1)[:8], 0, 100, 'a', 'b')))},
		{"unknown API key 32000", closed(withBody(32000, 0))},
		{"negative API key", closed(withBody(-1, 0))},
		{"known but unimplemented key (DescribeACLs)", closed(encodeRequest(kmsg.NewPtrDescribeACLsRequest(), 1))},
		{"Produce v99", closed(withBody(kmsg.Produce.Int16(), 99, 0, 0, 0, 0))},
		{"Metadata v99", closed(withBody(kmsg.Metadata.Int16(), 99))},
		{"Metadata v13 (one above max)", closed(withBody(kmsg.Metadata.Int16(), 13, 0, 0, 0))},
		{"Fetch v3 (below min)", closed(withBody(kmsg.Fetch.Int16(), 3, 0, 0, 0, 0))},
		{"Fetch negative version", closed(withBody(kmsg.Fetch.Int16(), -1))},
		{"ApiVersions negative version", closed(withBody(kmsg.ApiVersions.Int16(), -1))},
		{"Metadata v4 topics count MaxInt32", closed(withBody(kmsg.Metadata.Int16(), 4, 0x7f, 0xff, 0xff, 0xff, 0, 1, 'a', 1))},
		{"Metadata v12 compact topics count 2^31", closed(withBody(kmsg.Metadata.Int16(), 12, 0 /*header tags*/, 0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0))},
		{"Produce v7 topics count 10^9", closed(withBody(kmsg.Produce.Int16(), 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, 0, 1, 't'))},
		{"Produce v7 partitions count MaxInt32", closed(withBody(kmsg.Produce.Int16(), 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 't', 0x7f, 0xff, 0xff, 0xff, 0, 0))},
		{"Produce v7 records length 1GiB", closed(withBody(kmsg.Produce.Int16(), 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3))},
		{"Produce v9 compact records length 2^31", closed(withBody(kmsg.Produce.Int16(), 9, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 't', 2, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2))},
		{"header tag count 2^32-1", closed(flexHeaderTags(0xff, 0xff, 0xff, 0xff, 0x0f))},
		{"header tag count 2 with one tag", closed(flexHeaderTags(2, 0, 0))},
		{"header tag size past the end", closed(flexHeaderTags(1, 0, 0xff, 0xff, 0x03))},
		{"header tag size 2^31", closed(flexHeaderTags(1, 0, 0x80, 0x80, 0x80, 0x80, 0x08))},
		{"header tag varint too long", closed(flexHeaderTags(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))},
		{"header tags missing", closed(frame(rawHeader(kmsg.Metadata.Int16(), 12, 3)))},
		{"mid-frame disconnect", func(t *testing.T, c *rawConn) {
			c.write(binary.BigEndian.AppendUint32(nil, 1000))
			c.write(rawHeader(kmsg.Metadata.Int16(), 4, 1))
			c.nc.Close()
		}},
		{"valid header tags are skipped", func(t *testing.T, c *rawConn) {
			c.write(flexHeaderTags(2, 0, 3, 'a', 'b', 'c', 7, 0))
			b, err := c.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeResponse(b, kmsg.NewPtrMetadataRequest(), 12, 3); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, dialRaw(t, tb.addr))
			tb.checkHealthy(t, baseline)
		})
	}

	// Everything produced before the abuse still reads back exactly.
	got := consumeKgo(t, tb.addr, "baseline", 0, len(vals))
	for i, r := range got {
		if !bytes.Equal(r.Value, vals[i]) || r.Offset != int64(i) {
			t.Fatalf("baseline record %d: offset %d value %q, want %q", i, r.Offset, r.Value, vals[i])
		}
	}
}

// TestApiVersionsTooNew: ApiVersions above our maximum is answered in v0
// with UNSUPPORTED_VERSION and our ranges (KIP-511), the body is not parsed,
// and the connection stays open for the client's retry.
func TestApiVersionsTooNew(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	for _, v := range []int16{4, 99, 0x7fff} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			c.write(frame(append(rawHeader(kmsg.ApiVersions.Int16(), v, 41), 0xde, 0xad, 0xbe, 0xef)))
			b, err := c.readFrame()
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			// v0 header and body: correlation id, then the error code at once
			// (no tag byte).
			if len(b) < 6 || binary.BigEndian.Uint16(b[4:]) != uint16(kerr.UnsupportedVersion.Code) {
				t.Fatalf("response %x: want correlation id then error code 35", b[:min(len(b), 16)])
			}
			resp, err := decodeResponse(b, kmsg.NewPtrApiVersionsRequest(), 0, 41)
			if err != nil {
				t.Fatal(err)
			}
			av := resp.(*kmsg.ApiVersionsResponse)
			if av.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Fatalf("error code %d, want 35", av.ErrorCode)
			}
			checkRanges(t, av)

			// The retry at v3 on the same connection gets a full answer.
			req := kmsg.NewPtrApiVersionsRequest()
			req.SetVersion(3)
			req.ClientSoftwareName, req.ClientSoftwareVersion = "weir-test", "1.0"
			av = c.roundTrip(req).(*kmsg.ApiVersionsResponse)
			if av.ErrorCode != 0 {
				t.Fatalf("ApiVersions v3: error %d", av.ErrorCode)
			}
			checkRanges(t, av)
			tb.checkHealthy(t, baseline)
		})
	}
}

func checkRanges(t *testing.T, av *kmsg.ApiVersionsResponse) {
	t.Helper()
	if len(av.ApiKeys) != len(supported) {
		t.Fatalf("%d API keys, want %d", len(av.ApiKeys), len(supported))
	}
	for _, k := range av.ApiKeys {
		r, ok := supported[k.ApiKey]
		if !ok || r.min != k.MinVersion || r.max != k.MaxVersion {
			t.Fatalf("key %d advertised %d-%d, want %+v (supported %v)", k.ApiKey, k.MinVersion, k.MaxVersion, r, ok)
		}
	}
}

// sampleRequests returns one populated request per supported key, at the
// given version (clamped to the key's range).
func sampleRequests(t testing.TB, pick func(versionRange) int16) []kmsg.Request {
	var out []kmsg.Request
	keys := make([]int16, 0, len(supported))
	for k := range supported {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		req := kmsg.RequestForKey(k)
		fillRequest(t, req)
		req.SetVersion(pick(supported[k]))
		out = append(out, req)
	}
	return out
}

// fillRequest puts plausible content into a request so encodings have
// arrays, strings and record bytes to corrupt.
func fillRequest(t testing.TB, req kmsg.Request) {
	topic := "fz"
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		r.ClientSoftwareName, r.ClientSoftwareVersion = "weir-test", "1.0"
	case *kmsg.MetadataRequest:
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = &topic
		r.Topics = append(r.Topics, mt)
		r.AllowAutoTopicCreation = true
	case *kmsg.ProduceRequest:
		*r = *produceRequest(r.Version, topic, 0, testBatch(t, record.CodecNone, 2, "fill"))
	case *kmsg.FetchRequest:
		r.ReplicaID, r.MaxWaitMillis, r.MinBytes, r.MaxBytes = -1, 10, 0, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
		r.Topics = append(r.Topics, ft)
	case *kmsg.ListOffsetsRequest:
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = topic
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -2
		lt.Partitions = append(lt.Partitions, lp)
		r.Topics = append(r.Topics, lt)
	case *kmsg.CreateTopicsRequest:
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "fz-created", 2, 1
		v := "86400000"
		ct.Configs = append(ct.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: "retention.ms", Value: &v})
		r.Topics = append(r.Topics, ct)
		r.TimeoutMillis = 1000
	case *kmsg.DeleteTopicsRequest:
		name := "fz-deleted"
		r.TopicNames = []string{name}
		dt := kmsg.NewDeleteTopicsRequestTopic()
		dt.Topic = &name
		r.Topics = append(r.Topics, dt)
	case *kmsg.InitProducerIDRequest:
		r.TransactionTimeoutMillis = 1000
		r.ProducerID, r.ProducerEpoch = -1, -1
	case *kmsg.DescribeConfigsRequest:
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		r.Resources = append(r.Resources, rr)
	case *kmsg.AlterConfigsRequest:
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		v := "604800000"
		rr.Configs = append(rr.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: "retention.ms", Value: &v})
		r.Resources = append(r.Resources, rr)
	case *kmsg.CreatePartitionsRequest:
		ct := kmsg.NewCreatePartitionsRequestTopic()
		ct.Topic, ct.Count = topic, 2
		r.Topics = append(r.Topics, ct)
		r.TimeoutMillis = 1000
	case *kmsg.IncrementalAlterConfigsRequest:
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		v := "604800000"
		rr.Configs = append(rr.Configs, kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: &v})
		r.Resources = append(r.Resources, rr)
	case *kmsg.DescribeClusterRequest:
		r.IncludeClusterAuthorizedOperations = true
	case *kmsg.FindCoordinatorRequest:
		r.CoordinatorKey, r.CoordinatorKeys = "fzg", []string{"fzg", "other"}
	case *kmsg.JoinGroupRequest:
		r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "fzg", 10000, 10000, "consumer"
		r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1, 0, 0, 0, 1, 0, 2, 'f', 'z', 0, 0, 0, 0}}}
	case *kmsg.SyncGroupRequest:
		pt, p := "consumer", "range"
		r.Group, r.Generation, r.MemberID, r.ProtocolType, r.Protocol = "fzg", 1, "m-1", &pt, &p
		r.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: "m-1", MemberAssignment: []byte{0, 1, 0, 0, 0, 0}}}
	case *kmsg.HeartbeatRequest:
		r.Group, r.Generation, r.MemberID = "fzg", 1, "m-1"
	case *kmsg.LeaveGroupRequest:
		r.Group, r.MemberID = "fzg", "m-1"
		r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m-1"}}
	case *kmsg.OffsetCommitRequest:
		r.Group, r.Generation, r.MemberID = "fzg", -1, ""
		md := "meta"
		r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, Metadata: &md, LeaderEpoch: -1}}}}
	case *kmsg.OffsetFetchRequest:
		r.Group = "fzg"
		r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0}}}
		r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "fzg", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{0}}}}}
	case *kmsg.ListGroupsRequest:
		r.StatesFilter = []string{"Stable"}
	case *kmsg.DescribeGroupsRequest:
		r.Groups = []string{"fzg", "none"}
	case *kmsg.DeleteGroupsRequest:
		r.Groups = []string{"fz-deleted-group"}
	case *kmsg.OffsetDeleteRequest:
		r.Group = "fzg"
		r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	case *kmsg.OffsetForLeaderEpochRequest:
		r.ReplicaID = -1
		r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
	}
}

// TestTruncatedRequests cuts valid requests of every key short: each
// strict prefix must be refused (connection closed) and never reach the
// broker half-parsed. One pass runs over TCP; the exhaustive pass runs every
// cut point through the connection's request handler.
func TestTruncatedRequests(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	for _, pick := range []func(versionRange) int16{
		func(r versionRange) int16 { return r.min },
		func(r versionRange) int16 { return (r.min + r.max) / 2 },
		func(r versionRange) int16 { return r.max },
	} {
		for _, req := range sampleRequests(t, pick) {
			full := encodeRequest(req, 9)[4:]
			name := fmt.Sprintf("%s v%d", kmsg.NameForKey(req.Key()), req.GetVersion())
			if _, _, err := handleOnce(tb.b, bytes.Clone(full), 10*time.Millisecond); err != nil {
				t.Fatalf("%s: the full request fails: %v", name, err)
			}
			for cut := 10; cut < len(full); cut++ {
				resp, _, err := handleOnce(tb.b, bytes.Clone(full[:cut]), 10*time.Millisecond)
				if err == nil {
					t.Errorf("%s cut to %d of %d bytes: accepted (response %d bytes)", name, cut, len(full), len(resp))
				}
			}
			// Over the wire: the first half of the body.
			rc := dialRaw(t, tb.addr)
			rc.write(frame(full[:10+(len(full)-10)/2]))
			rc.expectClosed()
		}
	}
	tb.checkHealthy(t, baseline)
}

// TestGarbageBodies sends valid headers for every supported key and
// version followed by random bytes: each connection is either answered
// with a well-formed response or closed; the broker survives.
func TestGarbageBodies(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []int16
	for k := range supported {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	answered, closed, parked, unanswered := 0, 0, 0, 0
	for _, k := range keys {
		r := supported[k]
		for v := r.min; v <= r.max; v++ {
			for _, n := range []int{0, 1, 7, 64, 512} {
				body := make([]byte, n)
				for i := range body {
					body[i] = byte(rng.UintN(256))
				}
				hdr := rawHeader(k, v, 77)
				req := kmsg.RequestForKey(k)
				req.SetVersion(v)
				if req.IsFlexible() {
					hdr = append(hdr, 0)
				}
				if fr, ok := req.(*kmsg.FetchRequest); ok && fr.ReadFrom(body) == nil && fr.MinBytes > 0 && fr.MaxWaitMillis > 1000 {
					// A well-formed long poll: it parks for MaxWait, as Kafka's does.
					parked++
					continue
				}
				// The garbage, then an ApiVersions v0 pipelined behind it.
				c := dialRaw(t, tb.addr)
				c.write(append(frame(append(hdr, body...)), encodeRequest(kmsg.NewPtrApiVersionsRequest(), 78)...))
				b, err := c.readFrame()
				if err != nil {
					c.expectClosed()
					closed++
					continue
				}
				if corr := int32(binary.BigEndian.Uint32(b)); corr == 77 {
					answered++
					if _, err := decodeResponse(b, req, v, 77); err != nil {
						t.Fatalf("%s v%d with %d garbage bytes: %v", kmsg.NameForKey(k), v, n, err)
					}
					if b, err = c.readFrame(); err != nil {
						t.Fatalf("%s v%d with %d garbage bytes: answered, then: %v", kmsg.NameForKey(k), v, n, err)
					}
				} else if pr, ok := req.(*kmsg.ProduceRequest); !ok || pr.ReadFrom(body) != nil || pr.Acks != 0 {
					t.Fatalf("%s v%d with %d garbage bytes: not answered, but the next request was", kmsg.NameForKey(k), v, n)
				} else {
					unanswered++ // acks=0 produce
				}
				if _, err := decodeResponse(b, kmsg.NewPtrApiVersionsRequest(), 0, 78); err != nil {
					t.Fatalf("%s v%d with %d garbage bytes: ApiVersions after it: %v", kmsg.NameForKey(k), v, n, err)
				}
			}
		}
	}
	t.Logf("garbage requests: %d answered, %d closed their connection, %d acks=0 produces, %d long polls skipped", answered, closed, unanswered, parked)
	tb.checkHealthy(t, baseline)
}

// TestProduceBadBatches: batch-level errors are per-partition error codes
// on an open connection, and nothing reaches the log.
func TestProduceBadBatches(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	tb.createTopic(t, "bad", 2)
	produceKgo(t, tb.addr, "bad", []*kgo.Record{{Value: []byte("before-0")}, {Value: []byte("before-1")}})
	before0, before1 := tb.logBytes(t, "bad", 0), tb.logBytes(t, "bad", 1)
	c := dialRaw(t, tb.addr)

	good := testBatch(t, record.CodecNone, 3, "good")
	flip := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0x40
		return b
	}
	partErr := func(resp kmsg.Response) int16 {
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("produce response shape: %+v", pr)
		}
		return pr.Topics[0].Partitions[0].ErrorCode
	}
	cases := []struct {
		name    string
		version int16
		records []byte
		want    *kerr.Error
	}{
		{"corrupt record bytes", 9, flip(good, len(good)-2), kerr.CorruptMessage},
		{"corrupt attributes", 7, flip(good, 22), kerr.CorruptMessage},
		{"corrupt crc", 11, flip(good, 18), kerr.CorruptMessage},
		{"corrupt gzip batch", 9, flip(testBatch(t, record.CodecGzip, 5, "gz"), 70), kerr.CorruptMessage},
		{"two batches", 9, append(bytes.Clone(good), good...), kerr.InvalidRecord},
		{"batch and a partial one", 9, append(bytes.Clone(good), good[:30]...), kerr.InvalidRecord},
		{"truncated batch", 9, good[:len(good)-1], kerr.CorruptMessage},
		{"magic 1", 9, func() []byte { b := bytes.Clone(good); b[16] = 1; return b }(), kerr.UnsupportedForMessageFormat},
		{"empty records", 9, []byte{}, kerr.CorruptMessage},
		{"produce v2", 2, good, kerr.UnsupportedVersion},
		{"produce v1", 1, good, kerr.UnsupportedVersion},
		{"produce v0", 0, good, kerr.UnsupportedVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := partErr(c.roundTrip(produceRequest(tc.version, "bad", 0, tc.records)))
			if got != tc.want.Code {
				t.Errorf("error code %d (%v), want %d (%v)", got, kerr.ErrorForCode(got), tc.want.Code, tc.want)
			}
			if now := tb.logBytes(t, "bad", 0); !bytes.Equal(now, before0) {
				t.Fatalf("log changed by a refused batch")
			}
		})
	}
	// Produce v2 with several topics and partitions: every one refused.
	req := produceRequest(2, "bad", 0, good)
	req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.ProduceRequestTopicPartition{Partition: 1, Records: good})
	req.Topics = append(req.Topics, produceRequest(2, "baseline", 0, good).Topics...)
	pr := c.roundTrip(req).(*kmsg.ProduceResponse)
	n := 0
	for _, rt := range pr.Topics {
		for _, rp := range rt.Partitions {
			n++
			if rp.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Errorf("produce v2 %s/%d: error %d, want 35", rt.Topic, rp.Partition, rp.ErrorCode)
			}
		}
	}
	if n != 3 {
		t.Fatalf("produce v2: %d partitions answered, want 3", n)
	}
	// The connection is still good: a valid produce on it succeeds.
	if code := partErr(c.roundTrip(produceRequest(9, "bad", 0, good))); code != 0 {
		t.Fatalf("valid produce after refusals: error %d", code)
	}
	if now := tb.logBytes(t, "bad", 1); !bytes.Equal(now, before1) {
		t.Fatalf("partition 1 changed")
	}
	// kgo's manual partitioner sent both earlier records to partition 0.
	want := []string{"before-0", "before-1", "good-v0", "good-v1", "good-v2"}
	for i, r := range consumeKgo(t, tb.addr, "bad", 0, len(want)) {
		if string(r.Value) != want[i] || r.Offset != int64(i) {
			t.Fatalf("bad/0 record %d: offset %d value %q, want %q", i, r.Offset, r.Value, want[i])
		}
	}
	tb.checkHealthy(t, baseline)
}

// TestSlowPartialFrames: many connections trickling partial frames that
// claim the maximum size neither block other clients nor make the broker
// allocate the claimed sizes up front.
func TestSlowPartialFrames(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	const conns = 64
	runtime.GC()
	before := allocated()
	var slow []*rawConn
	for range conns {
		c := dialRaw(t, tb.addr)
		c.write(binary.BigEndian.AppendUint32(nil, testMaxRequest))
		c.write(rawHeader(kmsg.Metadata.Int16(), 4, 1))
		slow = append(slow, c)
	}
	// Wait until every slow connection is parked reading its body.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n := goroutinesIn("kafka.readBody("); n >= conns {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("only %d of %d connections are reading a body", n, conns)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
	if grew := allocated() - before; grew > conns*testMaxRequest/2 {
		t.Fatalf("%d partial frames claiming %d bytes each made the process allocate %d bytes", conns, testMaxRequest, grew)
	} else {
		t.Logf("%d partial frames claiming %d MiB in all: %d KiB allocated", conns, conns*testMaxRequest>>20, grew>>10)
	}

	// Trickle bytes into every slow connection while a good client works.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, c := range slow {
				c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				c.nc.Write([]byte{0})
			}
		}
	}()
	start := time.Now()
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "while-slow-%d", i)})
	}
	tb.createTopic(t, "fast", 1)
	produceKgo(t, tb.addr, "fast", recs)
	got := consumeKgo(t, tb.addr, "fast", 0, len(recs))
	for i, r := range got {
		if !bytes.Equal(r.Value, recs[i].Value) {
			t.Fatalf("record %d: %q, want %q", i, r.Value, recs[i].Value)
		}
	}
	tb.checkHealthy(t, baseline)
	t.Logf("good client produced and consumed 100 records in %v beside %d slow connections", time.Since(start), conns)
	cancel()
	wg.Wait()
}

// goroutinesIn counts goroutines whose stack mentions fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// TestAcks0FailureClosesConnection: an acks=0 produce gets no response, so
// when a partition of it fails the broker closes the connection, as Kafka
// does: the only signal such a producer gets. A good acks=0 produce leaves
// the connection open, and the records of a failed one are not written.
func TestAcks0FailureClosesConnection(t *testing.T) {
	tb, baseline, _ := startMalformedBroker(t)
	tb.createTopic(t, "zero", 1)
	good := testBatch(t, record.CodecNone, 2, "zero")
	acks0 := func(topic string, part int32, records []byte) *kmsg.ProduceRequest {
		req := produceRequest(9, topic, part, records)
		req.Acks = 0
		return req
	}
	c := dialRaw(t, tb.addr)
	// A good one: no answer, and the connection still serves requests.
	c.corr++
	c.write(encodeRequest(acks0("zero", 0, good), c.corr))
	if _, ok := c.roundTrip(kmsg.NewPtrApiVersionsRequest()).(*kmsg.ApiVersionsResponse); !ok {
		t.Fatal("no ApiVersions answer after a good acks=0 produce")
	}
	before := tb.logBytes(t, "zero", 0)
	for _, tc := range []struct {
		name  string
		topic string
		part  int32
		recs  []byte
	}{
		{"unknown partition", "zero", 7, good},
		{"corrupt batch", "zero", 0, good[:len(good)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, tb.addr)
			c.corr++
			c.write(encodeRequest(acks0(tc.topic, tc.part, tc.recs), c.corr))
			c.corr++
			c.write(encodeRequest(kmsg.NewPtrApiVersionsRequest(), c.corr))
			if b, err := c.readFrame(); err == nil {
				t.Fatalf("the connection answered (%d bytes) after a failed acks=0 produce; want it closed", len(b))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("reading after a failed acks=0 produce: %v; want the connection closed", err)
			}
		})
	}
	if now := tb.logBytes(t, "zero", 0); !bytes.Equal(now, before) {
		t.Fatal("a failed acks=0 produce changed the log")
	}
	tb.checkHealthy(t, baseline)
}
