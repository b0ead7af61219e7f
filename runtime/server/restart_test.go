package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRestartKeepsAcknowledgedRecords produces with acks=all, restarts the
// broker on the same data directory and checks that every acknowledged
// record is there at its acknowledged offset, byte for byte, and that
// offsets continue after the restart.
func TestRestartKeepsAcknowledgedRecords(t *testing.T) {
	b := startBroker(t)
	const topic, partitions = "durable", 2
	// Small segments: the log spans several segment files across the restart.
	createTopic(t, b.addr(), topic, partitions, map[string]*string{"segment.bytes": kadm.StringPtr("16384")})

	type acked struct {
		m   msg
		off int64
	}
	logged := make([][]acked, partitions) // per partition, in offset order
	produce := func(cl *kgo.Client, round string, n int) {
		t.Helper()
		ctx := testCtx(t, 30*time.Second)
		want := testMessages(round, n)
		var recs []*kgo.Record
		for i, m := range want {
			recs = append(recs, toKgo(topic, int32(i%partitions), m))
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", round, err)
		}
		index := map[*kgo.Record]int{}
		for i, r := range recs {
			index[r] = i
		}
		var start [partitions]int
		for p := range start {
			start[p] = len(logged[p])
		}
		for _, r := range res { // results come in completion order
			p := r.Record.Partition
			i := int(r.Record.Offset) - start[p]
			if i < 0 || i >= n {
				t.Fatalf("%s: record acknowledged at %d/%d, before the round's start %d", round, p, r.Record.Offset, start[p])
			}
			for len(logged[p]) <= start[p]+i {
				logged[p] = append(logged[p], acked{off: -1})
			}
			if logged[p][start[p]+i].off != -1 {
				t.Fatalf("%s: two records acknowledged at %d/%d", round, p, r.Record.Offset)
			}
			logged[p][start[p]+i] = acked{want[index[r.Record]], r.Record.Offset}
		}
		for p := range logged {
			for i, a := range logged[p] {
				if a.off != int64(i) {
					t.Fatalf("%s: partition %d: no record acknowledged at offset %d", round, p, i)
				}
			}
		}
	}
	check := func(cl *kgo.Client, when string) {
		t.Helper()
		for p := range int32(partitions) {
			recs := logRecords(readLog(t, cl, topic, p))
			if len(recs) != len(logged[p]) {
				t.Fatalf("%s: partition %d has %d records, %d were acknowledged", when, p, len(recs), len(logged[p]))
			}
			for i, r := range recs {
				if r.Offset != logged[p][i].off || !sameMsg(logged[p][i].m, fromStored(r)) {
					t.Fatalf("%s: partition %d offset %d: got %v, acknowledged %v at %d", when, p, r.Offset, fromStored(r), logged[p][i].m, logged[p][i].off)
				}
			}
		}
	}
	opts := []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(8 << 10)}

	cl := newClient(t, b.addr(), opts...)
	produce(cl, "before", 200)
	check(cl, "before restart")
	cl.Close()

	b.restart()
	cl = newClient(t, b.addr(), opts...)
	check(cl, "after restart")
	produce(cl, "after", 60)
	check(cl, "after restart and more produce")

	// A consumer from the start sees the whole history in order.
	consumer := newClient(t, b.addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
	got := pollRecords(t, consumer, len(logged[0])+len(logged[1]))
	next := map[int32]int64{}
	for _, r := range got {
		if r.Offset != next[r.Partition] {
			t.Fatalf("consumer: partition %d offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		if a := logged[r.Partition][r.Offset]; !sameMsg(a.m, fromKgo(r)) {
			t.Fatalf("consumer: partition %d offset %d: got %v, want %v", r.Partition, r.Offset, fromKgo(r), a.m)
		}
		next[r.Partition]++
	}

	// And a second restart, with no produce in between, changes nothing.
	b.restart()
	check(newClient(t, b.addr()), "after the second restart")
}

// TestTopicConfigsPersistAcrossRestart sets configs at creation, alters
// them incrementally and wholesale, grows a topic, restarts and checks
// that DescribeTopicConfigs and the metadata show the same.
func TestTopicConfigsPersistAcrossRestart(t *testing.T) {
	b := startBroker(t)
	adm := newAdmin(t, b.addr())
	ctx := testCtx(t, 30*time.Second)
	resp, err := adm.CreateTopics(ctx, 2, 1, map[string]*string{
		"retention.ms":   kadm.StringPtr("3600000"),
		"cleanup.policy": kadm.StringPtr("compact"),
	}, "cfg-a")
	if err != nil || resp["cfg-a"].Err != nil {
		t.Fatalf("create: %v %v", err, resp["cfg-a"].Err)
	}
	createTopic(t, b.addr(), "cfg-b", 1, map[string]*string{"max.message.bytes": kadm.StringPtr("2000000")})

	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("1048576")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "cfg-a")
	if err == nil {
		_, err = alter.On("cfg-a", nil)
	}
	if err != nil {
		t.Fatalf("alter cfg-a: %v", err)
	}
	// AlterConfigs (not incremental) replaces the whole override set.
	alter, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "message.timestamp.type", Value: kadm.StringPtr("LogAppendTime")}}, "cfg-b")
	if err == nil {
		_, err = alter.On("cfg-b", nil)
	}
	if err != nil {
		t.Fatalf("alter cfg-b: %v", err)
	}
	if cp, err := adm.UpdatePartitions(ctx, 4, "cfg-a"); err != nil || cp["cfg-a"].Err != nil {
		t.Fatalf("grow cfg-a: %v %+v", err, cp)
	}

	wantOverrides := map[string]map[string]string{
		"cfg-a": {"cleanup.policy": "compact", "segment.bytes": "1048576"},
		"cfg-b": {"message.timestamp.type": "LogAppendTime"},
	}
	wantDefaults := map[string]map[string]string{
		"cfg-a": {"retention.ms": "604800000", "message.timestamp.type": "CreateTime"},
		"cfg-b": {"max.message.bytes": "1048588", "cleanup.policy": "delete"},
	}
	verify := func(when string) {
		t.Helper()
		adm := newAdmin(t, b.addr())
		rcs, err := adm.DescribeTopicConfigs(ctx, "cfg-a", "cfg-b")
		if err != nil {
			t.Fatalf("%s: describe: %v", when, err)
		}
		for _, rc := range rcs {
			if rc.Err != nil {
				t.Fatalf("%s: describe %s: %v", when, rc.Name, rc.Err)
			}
			got := map[string]kadm.Config{}
			for _, c := range rc.Configs {
				got[c.Key] = c
			}
			for k, v := range wantOverrides[rc.Name] {
				c := got[k]
				if c.Value == nil || *c.Value != v || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
					t.Errorf("%s: %s %s = %v (source %v), want override %s", when, rc.Name, k, cfgValue(c), c.Source, v)
				}
			}
			for k, v := range wantDefaults[rc.Name] {
				c := got[k]
				if c.Value == nil || *c.Value != v || c.Source != kmsg.ConfigSourceDefaultConfig {
					t.Errorf("%s: %s %s = %v (source %v), want default %s", when, rc.Name, k, cfgValue(c), c.Source, v)
				}
			}
		}
		td, err := adm.ListTopics(ctx, "cfg-a", "cfg-b")
		if err != nil {
			t.Fatal(err)
		}
		if n := len(td["cfg-a"].Partitions); n != 4 {
			t.Errorf("%s: cfg-a has %d partitions, want 4", when, n)
		}
		if n := len(td["cfg-b"].Partitions); n != 1 {
			t.Errorf("%s: cfg-b has %d partitions, want 1", when, n)
		}
	}
	verify("before restart")

	// The overrides are in force, not just remembered: cfg-b stamps
	// log-append time.
	cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	old := time.Now().Add(-48 * time.Hour)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "cfg-b", Value: []byte("x"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	batches := readLog(t, cl, "cfg-b", 0)
	if len(batches) != 1 || !batches[0].Header.LogAppendTime() || batches[0].Records[0].Timestamp <= old.UnixMilli()+3600_000 {
		t.Fatalf("cfg-b with LogAppendTime stored %+v", batches)
	}

	b.restart()
	verify("after restart")
	for p := range int32(4) { // the grown partitions exist on disk and accept writes
		cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "cfg-a", Partition: p, Key: []byte("k"), Value: fmt.Appendf(nil, "p%d", p)}).FirstErr(); err != nil {
			t.Fatalf("produce to cfg-a/%d after restart: %v", p, err)
		}
	}
}

// TestShutdownReleasesParkedFetch parks a long-poll Fetch (MaxWait 10s)
// and shuts the server down: Shutdown must not wait for MaxWait.
func TestShutdownReleasesParkedFetch(t *testing.T) {
	b := startBroker(t)
	createTopic(t, b.addr(), "parked", 1, nil)
	cl := newClient(t, b.addr())
	ctx := testCtx(t, 30*time.Second)
	if _, err := fetchRaw(ctx, cl, "parked", 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	w := &fetchWatch{}
	parked := newClient(t, b.addr(), kgo.WithHooks(w), kgo.RequestRetries(0))
	done := make(chan error, 1)
	go func() {
		_, err := fetchRaw(ctx, parked, "parked", 0, 0, 10_000)
		done <- err
	}()
	w.wait(t) // the Fetch is written; the broker parks it
	start := time.Now()
	b.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v with a parked Fetch (MaxWait 10s)", d)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the parked Fetch did not return after Shutdown")
	}
}
