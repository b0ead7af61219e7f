package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/control"
	"github.com/weirstream/weir/runtime/server"
	"github.com/weirstream/weir/runtime/worker"
)

// TestRunAnnounces: two workers in this process (so -race sees their
// heartbeats read the pipelines' counters while the pipelines run) run a
// deployed pipeline against a node with an embedded NATS server: every
// record comes out once, each worker's heartbeats name the revision and
// the partitions it owns (together all of them, none twice), and a
// worker that stops says goodbye and hands its partitions to the other.
func TestRunAnnounces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := false
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off",
		NATS: "embedded", NATSListen: "127.0.0.1:0", Worker: &f})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf(`{"i": %d}`, i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	plane := srv.Control()
	rev, _, err := plane.Apply(ctx, "copy", []byte("pipeline: copy\ninput: {topics: [in], start: earliest}\nstages:\n  - filter: 'value.i >= 0'\noutput: out\n"))
	if err != nil {
		t.Fatal(err)
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(id string) (stop func()) {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- worker.Run(wctx, worker.Options{Plane: plane, ID: id, HeartbeatInterval: 200 * time.Millisecond,
				Run: pipelines.RunOptions{Brokers: []string{srv.KafkaAddr()}, Logger: quiet}})
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker %s: %v", id, err)
			}
		}
	}
	stopA := run("a")
	stopB := run("b")
	defer stopB()

	// Heartbeats: both run revision rev and own the 6 partitions between
	// them, once all records are through.
	owned := func(h map[string]control.Heard, id string) []string { return h[id].Last.Running["copy"].Partitions }
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := plane.CollectHeartbeats(ctx, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		a, b := owned(h, "a"), owned(h, "b")
		all := slices.Concat(a, b)
		slices.Sort(all)
		in := h["a"].Last.Running["copy"].In + h["b"].Last.Running["copy"].In
		if len(a) > 0 && len(b) > 0 && len(slices.Compact(all)) == 6 && len(a)+len(b) == 6 && in == n &&
			h["a"].Last.Running["copy"].Revision == rev && h["b"].Last.Running["copy"].State == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats never showed both workers sharing the 6 partitions with all %d records in: %+v", n, h)
		}
	}

	// a stops: its goodbye leaves b, which takes all 6.
	stopA()
	for {
		h, err := plane.CollectHeartbeats(ctx, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h["a"]; !ok && len(owned(h, "b")) == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a stopped, heartbeats: %+v", h)
		}
	}

	// Every record came out, once (nothing was killed).
	rd, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	seen := map[string]int{}
	for len(seen) < n && time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
		pcancel()
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	if len(seen) != n || dups != 0 {
		t.Fatalf("%d of %d records out, %d duplicates", len(seen), n, dups)
	}
}
