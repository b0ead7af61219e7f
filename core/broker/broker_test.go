package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

func batch(t *testing.T, pid int64, epoch int16, seq int32, vals ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(vals))
	for i, v := range vals {
		recs[i] = record.Record{Offset: int64(i), Timestamp: 1000 + int64(i), Value: []byte(v)}
	}
	b, err := record.Build(record.BuildOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTopicsPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ti, err := b.CreateTopic("orders", 3, map[string]string{CfgRetentionMs: "1000", CfgCleanupPolicy: "compact"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("orders", 1, nil, false); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	for _, bad := range []string{"", "a/b", "..", string(make([]byte, 250))} {
		if _, err := b.CreateTopic(bad, 1, nil, false); !errors.Is(err, ErrInvalidTopic) {
			t.Fatalf("create %q: %v", bad, err)
		}
	}
	if _, err := b.CreateTopic("x", 1, map[string]string{"retention.ms": "soon"}, false); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config value: %v", err)
	}
	if _, err := b.CreateTopic("x", 1, map[string]string{"no.such.key": "1"}, false); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unknown config key: %v", err)
	}
	if _, err := b.CreateTopic("v", 1, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePartitions("orders", 5, false); err != nil {
		t.Fatal(err)
	}
	if err := b.AlterTopicConfigs("orders", map[string]string{CfgSegmentBytes: "1048576"}, []string{CfgRetentionMs}, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Produce(context.Background(), "orders", 4, batch(t, -1, -1, -1, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var topics []TopicInfo
	for _, ti := range b.Topics() {
		if !ti.Internal {
			topics = append(topics, ti)
		}
	}
	if len(topics) != 1 || topics[0].Name != "orders" || topics[0].Partitions != 5 || topics[0].ID != ti.ID {
		t.Fatalf("after restart: %+v (validate-only topic must not exist)", topics)
	}
	eff, over, err := b.TopicConfigs("orders")
	if err != nil {
		t.Fatal(err)
	}
	if eff[CfgSegmentBytes] != "1048576" || !over[CfgSegmentBytes] || over[CfgRetentionMs] || eff[CfgCleanupPolicy] != "compact" {
		t.Fatalf("configs after restart: %v overridden %v", eff, over)
	}
	res, err := b.Fetch("orders", 4, 0, 1<<20, true)
	if err != nil || res.HighWatermark != 2 {
		t.Fatalf("fetch after restart: %+v %v", res, err)
	}
	if err := b.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fetch("orders", 4, 0, 1<<20, true); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("fetch from deleted topic: %v", err)
	}
}

func TestIdempotentProduceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := b.InitProducerID()
	if err != nil {
		t.Fatal(err)
	}
	r1, err := b.Produce(context.Background(), "t", 0, batch(t, pid, epoch, 0, "a", "b"))
	if !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("produce to a missing topic without auto-create in Produce: %v %v", r1, err)
	}
	if _, err := b.Topic("t", true); err != nil {
		t.Fatal(err)
	}
	r1, err = b.Produce(context.Background(), "t", 0, batch(t, pid, epoch, 0, "a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Produce(context.Background(), "t", 0, batch(t, pid, epoch, 0, "a", "b"))
	if err != nil || r2.BaseOffset != r1.BaseOffset {
		t.Fatalf("retry: %+v %v; want base %d", r2, err, r1.BaseOffset)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Twice: once from the clean-close snapshot, once rebuilt from the log
	// (snapshot removed, as after a crash).
	for round := 0; round < 2; round++ {
		b, err = Open(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		pid2, _, err := b.InitProducerID()
		if err != nil || pid2 == pid {
			t.Fatalf("producer id reused after restart: %d %v", pid2, err)
		}
		r3, err := b.Produce(context.Background(), "t", 0, batch(t, pid, epoch, 0, "a", "b"))
		if err != nil || r3.BaseOffset != r1.BaseOffset {
			t.Fatalf("round %d: retry after restart: %+v %v", round, r3, err)
		}
		if _, err := b.Produce(context.Background(), "t", 0, batch(t, pid, epoch, 5, "c")); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("round %d: gap after restart: %v", round, err)
		}
		off, _ := b.Offsets("t", 0)
		if off.HighWatermark != 2 {
			t.Fatalf("round %d: high watermark %d, want 2 (no duplicate written)", round, off.HighWatermark)
		}
		if round == 0 {
			b.Close()
			if err := vfs.OS.Remove(b.partDir("t", 0) + "/" + producersFile); err != nil {
				t.Fatal(err)
			}
		} else {
			b.Close()
		}
	}
}

func TestFetchLimits(t *testing.T) {
	b, err := Open(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Topic("f", true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := b.Produce(context.Background(), "f", 0, batch(t, -1, -1, -1, fmt.Sprintf("value-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	one, err := b.Fetch("f", 0, 0, 1, true)
	if err != nil || len(one.Records) == 0 {
		t.Fatalf("min-one-batch fetch with a 1-byte budget: %d bytes, %v", len(one.Records), err)
	}
	none, err := b.Fetch("f", 0, 0, 1, false)
	if err != nil || len(none.Records) != 0 {
		t.Fatalf("fetch over budget without min-one-batch: %d bytes, %v", len(none.Records), err)
	}
	if _, err := b.Fetch("f", 0, 11, 100, true); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the end: %v", err)
	}
	if off, _, found, err := b.ListOffset("f", 0, 1000); err != nil || !found || off != 0 {
		t.Fatalf("list offset by time: %d %v %v", off, found, err)
	}
}

func TestLogAppendTime(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	b, err := Open(Config{DataDir: t.TempDir(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.CreateTopic("lat", 1, map[string]string{CfgMessageTimestamp: "LogAppendTime"}, false); err != nil {
		t.Fatal(err)
	}
	res, err := b.Produce(context.Background(), "lat", 0, batch(t, -1, -1, -1, "a", "b"))
	if err != nil || res.LogAppendTime != now.UnixMilli() {
		t.Fatalf("produce: %+v %v", res, err)
	}
	f, err := b.Fetch("lat", 0, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	h, err := record.ValidateStored(f.Records)
	if err != nil || !h.LogAppendTime() || h.MaxTimestamp != now.UnixMilli() {
		t.Fatalf("stored batch: %+v %v", h, err)
	}
	recs, err := record.Records(f.Records, 1<<20)
	if err != nil || recs[1].Timestamp != now.UnixMilli() {
		t.Fatalf("records carry %v, %v; want the append time", recs, err)
	}
}
