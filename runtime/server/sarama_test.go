package server_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/runtime/server"
)

// saramaVersions are the sarama protocol levels the produce/consume tests
// run at: sarama's default, the newest (every request clamped through
// ApiVersions) and an old pre-flexible one.
var saramaVersions = []struct {
	name string
	v    sarama.KafkaVersion
}{
	{"v2.8", sarama.V2_8_0_0},
	{"max", sarama.MaxVersion},
	{"v1.0", sarama.V1_0_0_0},
}

var saramaCodecs = []struct {
	name  string
	c     sarama.CompressionCodec
	codec record.Codec
}{
	{"none", sarama.CompressionNone, record.CodecNone},
	{"gzip", sarama.CompressionGZIP, record.CodecGzip},
	{"snappy", sarama.CompressionSnappy, record.CodecSnappy},
	{"lz4", sarama.CompressionLZ4, record.CodecLZ4},
	{"zstd", sarama.CompressionZSTD, record.CodecZstd},
}

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "weir-test"
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Retry.Backoff = 50 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 100 * time.Millisecond // Close waits for a parked fetch
	c.Admin.Retry.Backoff = 50 * time.Millisecond
	return c
}

func toSarama(topic string, m msg) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: topic, Partition: 0}
	if m.Key != nil {
		pm.Key = sarama.ByteEncoder(m.Key)
	}
	if m.Value != nil {
		pm.Value = sarama.ByteEncoder(m.Value)
	}
	for _, h := range m.Headers {
		pm.Headers = append(pm.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	if m.Timestamp != 0 {
		pm.Timestamp = time.UnixMilli(m.Timestamp)
	}
	return pm
}

func fromSarama(cm *sarama.ConsumerMessage) msg {
	m := msg{Key: cm.Key, Value: cm.Value, Timestamp: cm.Timestamp.UnixMilli()}
	for _, h := range cm.Headers {
		m.Headers = append(m.Headers, hdr{string(h.Key), h.Value})
	}
	return m
}

// consumeSarama reads n messages from a partition consumer.
func consumeSarama(t *testing.T, pc sarama.PartitionConsumer, n int) []*sarama.ConsumerMessage {
	t.Helper()
	var out []*sarama.ConsumerMessage
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case err := <-pc.Errors():
			t.Fatalf("sarama consumer: %v", err)
		case <-timeout:
			t.Fatalf("sarama consumer: %d messages of %d before the deadline", len(out), n)
		}
	}
	return out
}

// TestSaramaProduceAcksCodecs produces with sarama's SyncProducer under
// every RequiredAcks and codec (sarama's snappy is a raw block, not xerial
// framing; the broker reads both) and checks the stored batches and the
// records read back with sarama's partition consumer.
func TestSaramaProduceAcksCodecs(t *testing.T) {
	b := startBroker(t)
	adm := newAdmin(t, b.addr())
	kcl := newClient(t, b.addr())
	for _, sv := range saramaVersions {
		for _, acks := range []struct {
			name string
			a    sarama.RequiredAcks
		}{{"all", sarama.WaitForAll}, {"local", sarama.WaitForLocal}, {"none", sarama.NoResponse}} {
			for _, c := range saramaCodecs {
				if c.c == sarama.CompressionZSTD && !sv.v.IsAtLeast(sarama.V2_1_0_0) {
					continue // zstd needs Kafka 2.1's Produce v7
				}
				t.Run(sv.name+"/"+acks.name+"/"+c.name, func(t *testing.T) {
					t.Parallel()
					topic := fmt.Sprintf("sarama-%s-%s-%s", sv.name, acks.name, c.name)
					createTopic(t, b.addr(), topic, 1, nil)
					cfg := saramaConfig(sv.v)
					cfg.Producer.RequiredAcks = acks.a
					cfg.Producer.Compression = c.c
					p, err := sarama.NewSyncProducer([]string{b.addr()}, cfg)
					if err != nil {
						t.Fatalf("sarama producer: %v", err)
					}
					defer p.Close()
					want := testMessages(topic, 30)
					var pms []*sarama.ProducerMessage
					for _, m := range want {
						pms = append(pms, toSarama(topic, m))
					}
					if err := p.SendMessages(pms); err != nil {
						t.Fatalf("send: %v", err)
					}
					if acks.a != sarama.NoResponse {
						for i, pm := range pms {
							if pm.Offset != int64(i) {
								t.Fatalf("message %d acknowledged at offset %d", i, pm.Offset)
							}
						}
					}
					waitHW(t, adm, topic, 0, int64(len(want)))

					batches := readLog(t, kcl, topic, 0)
					for _, sb := range batches {
						if sb.Header.Codec() != c.codec {
							t.Errorf("batch at %d stored with codec %v, want %v", sb.Header.BaseOffset, sb.Header.Codec(), c.codec)
						}
						if c.codec == record.CodecSnappy && !isXerial(sb) {
							t.Errorf("sarama snappy batch at %d is not in xerial framing", sb.Header.BaseOffset)
						}
					}
					checkMessages(t, "raw fetch", want, storedMessages(logRecords(batches)))

					consumer, err := sarama.NewConsumer([]string{b.addr()}, saramaConfig(sv.v))
					if err != nil {
						t.Fatal(err)
					}
					defer consumer.Close()
					pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
					if err != nil {
						t.Fatal(err)
					}
					defer pc.Close()
					var got []msg
					for i, cm := range consumeSarama(t, pc, len(want)) {
						if cm.Offset != int64(i) {
							t.Fatalf("consumed offset %d at position %d", cm.Offset, i)
						}
						got = append(got, fromSarama(cm))
					}
					checkMessages(t, "sarama consume", want, got)
				})
			}
		}
	}
}

// TestSaramaConsumeStartOffsets consumes with sarama's partition consumer
// from OffsetOldest, OffsetNewest (then only new records), an exact offset
// and an offset looked up by time.
func TestSaramaConsumeStartOffsets(t *testing.T) {
	b := startBroker(t)
	const topic = "sarama-starts"
	createTopic(t, b.addr(), topic, 1, nil)
	cfg := saramaConfig(sarama.V2_8_0_0)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	want := testMessages(topic, 12)
	for i := range want {
		want[i].Timestamp = base + int64(i)*1000
	}
	p, err := sarama.NewSyncProducer([]string{b.addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, m := range want {
		if _, _, err := p.SendMessage(toSarama(topic, m)); err != nil {
			t.Fatal(err)
		}
	}
	client, err := sarama.NewClient([]string{b.addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()

	check := func(t *testing.T, start int64, from int) {
		t.Helper()
		pc, err := consumer.ConsumePartition(topic, 0, start)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var got []msg
		for i, cm := range consumeSarama(t, pc, len(want)-from) {
			if cm.Offset != int64(from+i) {
				t.Fatalf("message %d has offset %d, want %d", i, cm.Offset, from+i)
			}
			got = append(got, fromSarama(cm))
		}
		checkMessages(t, "consume", want[from:], got)
	}
	t.Run("oldest", func(t *testing.T) { check(t, sarama.OffsetOldest, 0) })
	t.Run("exact", func(t *testing.T) { check(t, 5, 5) })
	t.Run("timestamp", func(t *testing.T) {
		off, err := client.GetOffset(topic, 0, base+3500)
		if err != nil {
			t.Fatal(err)
		}
		if off != 4 {
			t.Fatalf("GetOffset(base+3.5s) = %d, want 4", off)
		}
		check(t, off, 4)
	})
	t.Run("newest", func(t *testing.T) {
		// ConsumePartition resolves OffsetNewest before it returns.
		pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		more := testMessages("late", 3)
		for _, m := range more {
			if _, _, err := p.SendMessage(toSarama(topic, m)); err != nil {
				t.Fatal(err)
			}
		}
		var got []msg
		for i, cm := range consumeSarama(t, pc, len(more)) {
			if cm.Offset != int64(len(want)+i) {
				t.Fatalf("newest consumer got offset %d, want %d", cm.Offset, len(want)+i)
			}
			got = append(got, fromSarama(cm))
		}
		checkMessages(t, "newest", more, got)
	})
	t.Run("out-of-range", func(t *testing.T) {
		_, err := consumer.ConsumePartition(topic, 0, 1000)
		if !errors.Is(err, sarama.ErrOffsetOutOfRange) {
			t.Fatalf("ConsumePartition(1000) = %v, want ErrOffsetOutOfRange", err)
		}
	})
}

// TestSaramaClusterAdmin drives every topic admin call of sarama's
// ClusterAdmin against weir.
func TestSaramaClusterAdmin(t *testing.T) {
	b := startBroker(t)
	cfg := saramaConfig(sarama.V2_8_0_0)
	ca, err := sarama.NewClusterAdmin([]string{b.addr()}, cfg)
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	defer ca.Close()
	const topic = "sarama-admin"
	retention := "3600000"
	err = ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}, false)
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	err = ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Fatalf("CreateTopic again = %v, want ErrTopicAlreadyExists", err)
	}
	if err := ca.CreateTopic("validate-only", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, true); err != nil {
		t.Fatalf("CreateTopic validate-only: %v", err)
	}
	if err := ca.CreateTopic("bad/name", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); !errors.Is(err, sarama.ErrInvalidTopic) {
		t.Fatalf("CreateTopic(bad/name) = %v, want ErrInvalidTopic", err)
	}

	topics, err := ca.ListTopics()
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	d, ok := topics[topic]
	if !ok || d.NumPartitions != 2 || d.ReplicationFactor != 1 {
		t.Fatalf("ListTopics: %s = %+v (present %v)", topic, d, ok)
	}
	if _, ok := topics["validate-only"]; ok {
		t.Fatal("ListTopics shows the validate-only topic")
	}
	if v := d.ConfigEntries["retention.ms"]; v == nil || *v != retention || len(d.ConfigEntries) != 1 {
		t.Fatalf("ListTopics config entries %v, want only retention.ms=%s", d.ConfigEntries, retention)
	}

	describe := func() map[string]sarama.ConfigEntry {
		t.Helper()
		entries, err := ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			t.Fatalf("DescribeConfig: %v", err)
		}
		out := map[string]sarama.ConfigEntry{}
		for _, e := range entries {
			out[e.Name] = e
		}
		return out
	}
	got := describe()
	if e := got["retention.ms"]; e.Value != retention || e.Default || e.Source != sarama.SourceTopic {
		t.Fatalf("retention.ms described as %+v", e)
	}
	if e := got["cleanup.policy"]; e.Value != "delete" || !e.Default {
		t.Fatalf("cleanup.policy described as %+v", e)
	}

	// AlterConfig replaces the whole set of overrides.
	seg := "1048576"
	if err := ca.AlterConfig(sarama.TopicResource, topic, map[string]*string{"segment.bytes": &seg}, false); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	got = describe()
	if got["segment.bytes"].Value != seg || !got["retention.ms"].Default {
		t.Fatalf("after AlterConfig: segment.bytes %+v retention.ms %+v", got["segment.bytes"], got["retention.ms"])
	}
	// IncrementalAlterConfig edits in place.
	compact := "compact"
	err = ca.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &compact},
		"segment.bytes":  {Operation: sarama.IncrementalAlterConfigsOperationDelete},
	}, false)
	if err != nil {
		t.Fatalf("IncrementalAlterConfig: %v", err)
	}
	got = describe()
	if got["cleanup.policy"].Value != "compact" || !got["segment.bytes"].Default {
		t.Fatalf("after IncrementalAlterConfig: cleanup.policy %+v segment.bytes %+v", got["cleanup.policy"], got["segment.bytes"])
	}
	bad := "sometimes"
	err = ca.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &bad},
	}, false)
	if !errors.Is(err, sarama.ErrInvalidConfig) {
		t.Fatalf("IncrementalAlterConfig(bad value) = %v, want ErrInvalidConfig", err)
	}

	if err := ca.CreatePartitions(topic, 5, nil, false); err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	if err := ca.CreatePartitions(topic, 3, nil, false); !errors.Is(err, sarama.ErrInvalidPartitions) {
		t.Fatalf("CreatePartitions(shrink) = %v, want ErrInvalidPartitions", err)
	}
	md, err := ca.DescribeTopics([]string{topic})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 5 {
		t.Fatalf("DescribeTopics after CreatePartitions: %v %+v", err, md)
	}

	if err := ca.DeleteTopic(topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if err := ca.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("DeleteTopic again = %v, want ErrUnknownTopicOrPartition", err)
	}
	topics, err = ca.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	if names := slices.Collect(func(yield func(string) bool) {
		for n := range topics {
			if !yield(n) {
				return
			}
		}
	}); slices.Contains(names, topic) {
		t.Fatalf("ListTopics after delete: %v", names)
	}
}

// TestSaramaIdempotentProducerThroughFaults runs sarama's idempotent
// producer through the response-dropping proxy: every message must be
// stored exactly once, in order.
func TestSaramaIdempotentProducerThroughFaults(t *testing.T) {
	proxy := newDropProxy(t, 3)
	b := startBroker(t, func(c *server.Config) { c.AdvertisedAddr = proxy.addr() })
	proxy.serve(b.addr())
	const topic, n = "sarama-idem", 300
	createTopic(t, b.addr(), topic, 1, nil)
	cfg := saramaConfig(sarama.V2_8_0_0)
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 50
	cfg.Producer.Retry.Backoff = 10 * time.Millisecond
	cfg.Producer.Flush.MaxMessages = 10 // many small batches
	cfg.Producer.Flush.Frequency = time.Millisecond
	p, err := sarama.NewSyncProducer([]string{proxy.addr()}, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	var pms []*sarama.ProducerMessage
	for i := range n {
		pms = append(pms, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strconv.Itoa(i))})
	}
	if err := p.SendMessages(pms); err != nil {
		t.Fatalf("send: %v", err)
	}
	if proxy.drops.Load() == 0 {
		t.Fatalf("the proxy dropped no responses (%d produces)", proxy.produces.Load())
	}
	t.Logf("%d produce requests through the proxy, %d responses dropped", proxy.produces.Load(), proxy.drops.Load())
	vals := logValues(t, newClient(t, b.addr()), topic)
	if len(vals) != n {
		t.Fatalf("log has %d records, want %d", len(vals), n)
	}
	for i, v := range vals {
		if v != strconv.Itoa(i) {
			t.Fatalf("offset %d holds %q, want %d", i, v, i)
		}
	}
}
