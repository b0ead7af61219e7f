package pipelines

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/kafka"
)

// logBuffer is a slog handler's writer that tests can read.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFinishFencedCommit: a batch whose commit the broker refuses because
// the group went on without this member (a worker frozen past its
// session) is not a pipeline failure: it is logged, its offsets stay
// where the group's current members put them, and the pipeline goes on
// (its client rejoins). Any other commit error still fails the pipeline.
func TestFinishFencedCommit(t *testing.T) {
	b, err := broker.Open(broker.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv := kafka.NewServer(kafka.Config{Broker: b})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.CreateTopic("in", 1, nil, false); err != nil {
		t.Fatal(err)
	}

	// The group's current member.
	member, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	adm := kadm.NewClient(member)
	for {
		groups, err := adm.DescribeGroups(ctx, "g")
		if err == nil && groups["g"].State == "Stable" && len(groups["g"].Members) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the member did not join: %v %+v", err, groups)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A runner whose client the group does not know: its commit is
	// refused as a frozen member's is.
	stale, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	var logs logBuffer
	r := &runner{spec: &Spec{Name: "p"}, cl: stale, log: slog.New(slog.NewTextHandler(&logs, nil)), st: &Stats{}}
	batch := &batchInFlight{start: time.Now(), offsets: map[string]map[int32]int64{"in": {0: 5}}, committed: 5}
	if err := r.finish(ctx, batch); err != nil {
		t.Fatalf("finish of a fenced batch: %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "the group moved on without this member") || !strings.Contains(logs.String(), "UNKNOWN_MEMBER_ID") {
		t.Fatalf("log: %s", logs.String())
	}
	if r.st.Committed.Load() != 0 || r.st.Batches.Load() != 0 {
		t.Fatalf("a fenced batch counted as committed: %d records, %d batches", r.st.Committed.Load(), r.st.Batches.Load())
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("in", 0); ok && o.At == 5 {
		t.Fatalf("the fenced commit moved the group's offset: %+v", o)
	}

	// Another commit error (a topic the broker does not have) still fails.
	batch = &batchInFlight{start: time.Now(), offsets: map[string]map[int32]int64{"no-such-topic": {0: 1}}}
	r.cl = member
	if err := r.finish(ctx, batch); err == nil || movedOn(err) {
		t.Fatalf("finish with an unknown topic: %v, want a failure", err)
	}
	if !movedOn(errors.Join(errors.New("in/0"), kerr.IllegalGeneration)) || movedOn(kerr.UnknownTopicOrPartition) {
		t.Fatal("movedOn misclassifies")
	}
}
