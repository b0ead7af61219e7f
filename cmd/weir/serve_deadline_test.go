package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestServeShutdownDeadline: shutdown_timeout bounds a shutdown whose
// partitions cannot all be closed in time. weir serve exits at the
// deadline saying how many partitions it closed (status 1: the shutdown
// was not clean), and the next start recovers the others with every
// acknowledged record.
func TestServeShutdownDeadline(t *testing.T) {
	bin := buildWeir(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeFile(t, filepath.Join(dir, "weir.yaml"), "shutdown_timeout: 30ms\n")
	p := startServeArgs(t, bin, data, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	// Each partition's clean close writes and fsyncs its producer state:
	// 2000 of them take far longer than 30 ms.
	const parts = 2000
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, parts, 1, nil, "many"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range parts {
		recs = append(recs, &kgo.Record{Topic: "many", Partition: int32(i), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("weir serve did not exit within 20s of SIGTERM")
	}
	took := time.Since(start)
	out := p.stderr.String()
	if p.waitErr == nil || !strings.Contains(out, "close deadline passed") || !strings.Contains(out, "the next start recovers") {
		t.Fatalf("exit %v after %v; want status 1 and the deadline named:\n%s", p.waitErr, took, out)
	}
	t.Logf("stopped %v after SIGTERM: %s", took.Round(time.Millisecond), lastLine(out, "close deadline passed"))

	p = startServe(t, bin, data)
	cl, err = kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.ConsumeTopics("many"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 1 {
			t.Errorf("partition %d after the restart: end offset %d, %v; want 1", o.Partition, o.Offset, o.Err)
		}
	})
	seen := map[int32]string{}
	for len(seen) < parts && ctx.Err() == nil && !t.Failed() {
		fs := cl.PollFetches(ctx)
		for _, e := range fs.Errors() {
			t.Fatalf("consume: %v", e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, dup := seen[r.Partition]; dup || string(r.Value) != strconv.Itoa(int(r.Partition)) {
				t.Errorf("partition %d: record %q at offset %d (seen before: %v)", r.Partition, r.Value, r.Offset, dup)
			}
			seen[r.Partition] = string(r.Value)
		})
	}
	if len(seen) != parts {
		t.Fatalf("records of %d partitions after the restart, want %d", len(seen), parts)
	}
	p.stop(t, 60*time.Second)
}

// lastLine is the last line of s containing sub.
func lastLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}
