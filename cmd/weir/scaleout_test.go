package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestScaleOut: a broker (weir serve --worker=false) and three weir worker
// processes run a pipeline deployed with weir pipeline apply over a
// 12-partition topic, their control plane a real NATS server this test
// runs (so it can kill and restart it). Each worker owns about 4
// partitions; a SIGKILLed worker's partitions move to the others within
// the session timeout (10 s) + 2 s; a fourth worker takes partitions and
// only the partitions it takes pause; NATS killed and restarted mid-run
// stops no processing and the workers come back to it; every input
// record comes out at least once (duplicates are reported), and no
// partition is ever owned by two workers at once, by the workers' own
// logs of what they own.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of processes: not with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildWeir(t)

	natsDir := t.TempDir()
	ns := startNATS(t, natsDir, -1)
	natsURL := ns.ClientURL()
	defer func() { ns.Shutdown() }()

	srv := startServeArgs(t, bin, t.TempDir(), "--nats", natsURL, "--worker=false")
	defer srv.stop(t, 30*time.Second)
	cl, _ := clientWithTopics(t, ctx, srv.kafka, 12, "clicks", "tagged")
	env := []string{"WEIR_NATS=" + natsURL, "WEIR_BROKERS=" + srv.kafka}
	spec := filepath.Join(t.TempDir(), "tag.yaml")
	if err := os.WriteFile(spec, []byte("pipeline: tag\ninput: {topics: [clicks], start: earliest}\nstages:\n  - map: '{\"n\": value.n}'\noutput: tagged\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runWeir(t, bin, env, "", "pipeline", "apply", spec); r.code != 0 {
		t.Fatalf("apply: %s%s", r.stdout, r.stderr)
	}

	workers := map[string]*bgProc{}
	var killedAt time.Time
	startWorker := func(id string) {
		workers[id] = startBg(t, bin, "worker", "--brokers", srv.kafka, "--nats", natsURL, "--id", id)
	}
	defer func() {
		for _, w := range workers {
			if !w.exited() {
				w.cmd.Process.Kill()
			}
		}
	}()
	for _, id := range []string{"w1", "w2", "w3"} {
		startWorker(id)
	}

	// Input: records n = 0, 1, ... keyed over the partitions, ~600/s.
	in := startNumberedInput(t, ctx, cl, "clicks", 12)
	out := startNumberedOutput(t, ctx, srv.kafka, "tagged")

	// Ownership, from the workers' logs.
	owners := func() map[string][]string {
		m := map[string][]string{}
		for id, w := range workers {
			if id == "w1" && !killedAt.IsZero() {
				continue
			}
			m[id] = ownedNow(parseOwnership(t, w.output.String()))
		}
		return m
	}
	balanced := func(ids ...string) func() bool {
		return func() bool {
			m := owners()
			total := 0
			for _, id := range ids {
				if n := len(m[id]); n < 12/len(ids)-1 || n > 12/len(ids)+1 {
					return false
				}
				total += len(m[id])
			}
			return total == 12
		}
	}
	waitFor(t, "three workers owning ~4 partitions each", 60*time.Second, balanced("w1", "w2", "w3"))
	t.Logf("owners: %v", owners())

	// weir pipeline status --deployed shows the three and what they own.
	var status cliResult
	waitFor(t, "pipeline status to show three workers with 12 partitions", 20*time.Second, func() bool {
		status = runWeir(t, bin, env, "", "pipeline", "status", "tag", "--deployed", "--wait", "1500ms")
		return status.code == 0 && strings.Contains(status.stdout, "workers:  3 ") && statusPartitions(status.stdout) == 12
	})
	t.Logf("pipeline status:\n%s", status.stdout)

	// SIGKILL w1: its partitions move to w2 and w3.
	killedAt = time.Now()
	if err := workers["w1"].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-workers["w1"].done
	waitFor(t, "w1's partitions to move to w2 and w3", 30*time.Second, balanced("w2", "w3"))
	moved := time.Since(killedAt)
	t.Logf("after SIGKILL of w1, its partitions moved in %v (session timeout 10 s): %v", moved.Round(time.Millisecond), owners())
	if moved > 12*time.Second {
		t.Errorf("w1's partitions moved %v after the kill; want within the session timeout (10 s) + 2 s", moved)
	}

	// A fourth worker: it receives partitions, and only those pause (are
	// revoked from their owners).
	before := owners()
	joinAt := time.Now()
	startWorker("w4")
	waitFor(t, "w4 to take a share", 30*time.Second, balanced("w2", "w3", "w4"))
	after := owners()
	t.Logf("w4 joined in %v: %v", time.Since(joinAt).Round(time.Millisecond), after)
	var revoked []string
	for _, id := range []string{"w2", "w3"} {
		for _, e := range parseOwnership(t, workers[id].output.String()) {
			if e.at.After(joinAt) && e.event != "assigned" {
				revoked = append(revoked, e.partitions...)
			}
		}
		for _, p := range before[id] {
			if !slices.Contains(after[id], p) && !slices.Contains(after["w4"], p) {
				t.Errorf("%s gave up %s, which w4 did not take", id, p)
			}
		}
	}
	slices.SortFunc(revoked, strings.Compare)
	w4 := slices.Clone(after["w4"])
	slices.SortFunc(w4, strings.Compare)
	if !slices.Equal(revoked, w4) {
		t.Errorf("when w4 joined, the partitions paused (revoked) were %v; want exactly those w4 took, %v", revoked, w4)
	}

	// NATS killed and restarted: processing goes on meanwhile, and the
	// workers come back to the control plane.
	natsPort := ns.Addr().(*net.TCPAddr).Port
	ns.Shutdown()
	ns.WaitForShutdown()
	down := out.count()
	waitFor(t, "records to keep coming out while NATS is down", 20*time.Second, func() bool { return out.count() > down+600 })
	ns = startNATS(t, natsDir, natsPort)
	waitFor(t, "pipeline status to show three workers after NATS restarted", 30*time.Second, func() bool {
		status = runWeir(t, bin, env, "", "pipeline", "status", "tag", "--deployed", "--wait", "1500ms")
		return status.code == 0 && strings.Contains(status.stdout, "workers:  3 ") && statusPartitions(status.stdout) == 12
	})

	// Everything in comes out.
	total := in.stop()
	waitFor(t, fmt.Sprintf("all %d records to come out", total), 60*time.Second, func() bool { return out.allOf(total) })
	t.Logf("%d records in, all out; %d duplicates (re-read after w1 was killed, at-least-once)", total, out.duplicates())

	// No partition owned by two workers at once.
	type interval struct {
		worker     string
		start, end time.Time
	}
	byPartition := map[string][]interval{}
	end := time.Now()
	for id, w := range workers {
		open := map[string]time.Time{}
		for _, e := range parseOwnership(t, w.output.String()) {
			for _, p := range e.partitions {
				if e.event == "assigned" {
					open[p] = e.at
				} else if s, ok := open[p]; ok {
					byPartition[p] = append(byPartition[p], interval{id, s, e.at})
					delete(open, p)
				}
			}
		}
		for p, s := range open {
			e := end
			if id == "w1" {
				e = killedAt
			}
			byPartition[p] = append(byPartition[p], interval{id, s, e})
		}
	}
	for p, ivs := range byPartition {
		slices.SortFunc(ivs, func(a, b interval) int { return a.start.Compare(b.start) })
		for i := 1; i < len(ivs); i++ {
			if ivs[i].start.Before(ivs[i-1].end) && ivs[i].worker != ivs[i-1].worker {
				t.Errorf("%s owned by %s from %s to %s and by %s from %s", p, ivs[i-1].worker, ivs[i-1].start.Format(time.StampMilli),
					ivs[i-1].end.Format(time.StampMilli), ivs[i].worker, ivs[i].start.Format(time.StampMilli))
			}
		}
	}
	if len(byPartition) != 12 {
		t.Errorf("ownership logged for %d partitions, want 12", len(byPartition))
	}
}

// startNATS runs a NATS server with JetStream stored in dir, on port
// (-1: any free one).
func startNATS(t *testing.T, dir string, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return ns
}

type ownershipEvent struct {
	at         time.Time
	event      string // assigned, revoked, lost
	partitions []string
}

var ownershipLine = regexp.MustCompile(`^time=(\S+) level=INFO msg="partitions (assigned|revoked|lost)" .*partitions=(\S+)`)

// parseOwnership reads a worker's log for the partitions it was given and
// gave up.
func parseOwnership(t *testing.T, log string) []ownershipEvent {
	var es []ownershipEvent
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		m := ownershipLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("log time %q: %v", m[1], err)
		}
		es = append(es, ownershipEvent{at: at, event: m[2], partitions: strings.Split(m[3], ",")})
	}
	return es
}

// ownedNow is what a worker owns after its ownership events.
func ownedNow(es []ownershipEvent) []string {
	owned := map[string]bool{}
	for _, e := range es {
		for _, p := range e.partitions {
			owned[p] = e.event == "assigned"
		}
	}
	var out []string
	for p, ok := range owned {
		if ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, strings.Compare)
	return out
}

// statusPartitions sums the PARTITIONS column of weir pipeline status
// --deployed.
func statusPartitions(out string) int {
	total := 0
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "WORKER" {
			inTable = true
			continue
		}
		if inTable && len(f) >= 4 {
			var n int
			if _, err := fmt.Sscan(f[3], &n); err == nil {
				total += n
			}
		}
	}
	return total
}

// TestStaleWorkerFenced: a worker frozen (SIGSTOP) past the session
// timeout loses its partitions to the other worker; when it runs again
// (SIGCONT) whatever it tries to commit for them is refused by the
// broker, which fences commits by member and generation: the group's
// committed offsets never go back, the frozen worker logs its partitions
// lost, and every record comes out.
func TestStaleWorkerFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a session timeout: not with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildWeir(t)
	srv := startServeArgs(t, bin, t.TempDir(), "--worker=false")
	defer srv.stop(t, 30*time.Second)
	natsURL := controlPlaneURL(t, srv)
	cl, adm := clientWithTopics(t, ctx, srv.kafka, 4, "clicks", "copied")
	spec := filepath.Join(t.TempDir(), "copy.yaml")
	if err := os.WriteFile(spec, []byte("pipeline: copy\ninput: {topics: [clicks], start: earliest}\nstages:\n  - map: '{\"n\": value.n}'\noutput: copied\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runWeir(t, bin, []string{"WEIR_NATS=" + natsURL}, "", "pipeline", "apply", spec); r.code != 0 {
		t.Fatalf("apply: %s%s", r.stdout, r.stderr)
	}
	w1 := startBg(t, bin, "worker", "--brokers", srv.kafka, "--nats", natsURL, "--id", "w1")
	w2 := startBg(t, bin, "worker", "--brokers", srv.kafka, "--nats", natsURL, "--id", "w2")
	defer func() {
		for _, w := range []*bgProc{w1, w2} {
			w.cmd.Process.Signal(syscall.SIGCONT)
			w.cmd.Process.Kill()
		}
	}()

	// Input: ~400 records/s until told to stop.
	in := startNumberedInput(t, ctx, cl, "clicks", 8)
	out := startNumberedOutput(t, ctx, srv.kafka, "copied")
	stop := make(chan struct{})
	// The group's committed offsets, polled: they must never go back.
	var offMu sync.Mutex
	highest := map[int32]int64{}
	var wentBack []string
	offDone := make(chan struct{})
	go func() {
		defer close(offDone)
		for ctx.Err() == nil {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := adm.FetchOffsets(ctx, "weir-pipeline-copy")
			if err != nil {
				continue
			}
			offMu.Lock()
			resp.Each(func(o kadm.OffsetResponse) {
				if o.Err != nil || o.Topic != "clicks" {
					return
				}
				if o.At < highest[o.Partition] {
					wentBack = append(wentBack, fmt.Sprintf("clicks/%d: %d after %d", o.Partition, o.At, highest[o.Partition]))
				}
				highest[o.Partition] = max(highest[o.Partition], o.At)
			})
			offMu.Unlock()
		}
	}()
	owned := func(w *bgProc) int { return len(ownedNow(parseOwnership(t, w.output.String()))) }
	waitFor(t, "both workers to own 2 partitions", 60*time.Second, func() bool { return owned(w1) == 2 && owned(w2) == 2 })
	waitFor(t, "commits on every partition", 30*time.Second, func() bool {
		offMu.Lock()
		defer offMu.Unlock()
		return len(highest) == 4
	})

	// Freeze w1 past the session timeout: w2 takes everything.
	if err := w1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	waitFor(t, "w2 to own all 4 partitions while w1 is frozen", 30*time.Second, func() bool { return owned(w2) == 4 })
	t.Logf("w2 took w1's partitions %v after w1 froze", time.Since(frozen).Round(time.Millisecond))
	// Let w2 commit past where w1 stopped, then wake w1.
	offMu.Lock()
	before := maps.Clone(highest)
	offMu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		offMu.Lock()
		further := true
		for p := range int32(4) {
			further = further && highest[p] > before[p]
		}
		now := maps.Clone(highest)
		offMu.Unlock()
		if further {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("w2 did not commit further on every partition in 30 s: committed %v, when w1 froze %v\nw2:\n%s", now, before, w2.output.String())
		}
	}
	if err := w1.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w1 to log its partitions lost and rejoin with a share", 60*time.Second, func() bool {
		lost := false
		for _, e := range parseOwnership(t, w1.output.String()) {
			lost = lost || e.event == "lost"
		}
		return lost && owned(w1) == 2 && owned(w2) == 2
	})

	total := in.stop()
	close(stop)
	<-offDone
	waitFor(t, fmt.Sprintf("all %d records to come out", total), 60*time.Second, func() bool { return out.allOf(total) })
	offMu.Lock()
	defer offMu.Unlock()
	if len(wentBack) > 0 {
		t.Errorf("committed offsets went back (a stale member's commit was accepted): %v", wentBack)
	}
	var refused []string
	for _, l := range strings.Split(w1.output.String(), "\n") {
		if strings.Contains(l, "committing the batch in flight at a rebalance") {
			refused = append(refused, l)
		}
	}
	t.Logf("%d records in, all out (%d duplicates); committed offsets never went back; w1's commits refused after it woke: %d %q",
		total, out.duplicates(), len(refused), refused)
}

// clientWithTopics returns a client of the broker at addr (closed when the
// test ends) and its admin, after creating the topics with partitions
// each.
func clientWithTopics(t *testing.T, ctx context.Context, addr string, partitions int32, topics ...string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	for _, topic := range topics {
		if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	return cl, adm
}

// numberedInput produces records {"n": N} keyed N, N = 0, 1, ..., perTick
// of them every 20 ms, until stop.
type numberedInput struct {
	mu       sync.Mutex
	produced int
	quit     chan struct{}
	done     chan struct{}
}

func startNumberedInput(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, perTick int) *numberedInput {
	in := &numberedInput{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		for n := 0; ; {
			select {
			case <-in.quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var recs []*kgo.Record
			for range perTick {
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(n)), Value: []byte(fmt.Sprintf(`{"n": %d}`, n))})
				n++
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			in.mu.Lock()
			in.produced = n
			in.mu.Unlock()
		}
	}()
	return in
}

// stop ends the input and returns how many records it produced (0 to
// that number - 1, every one acknowledged).
func (in *numberedInput) stop() int {
	close(in.quit)
	<-in.done
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.produced
}

// numberedOutput reads a topic of records {"n": N} from its start for the
// rest of the test, counting how often each N comes out.
type numberedOutput struct {
	mu    sync.Mutex
	times map[int]int
	total int
}

func startNumberedOutput(t *testing.T, ctx context.Context, addr, topic string) *numberedOutput {
	out := &numberedOutput{times: map[int]int{}}
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; rd.Close() })
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			rd.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
				var v struct{ N int }
				if json.Unmarshal(r.Value, &v) == nil {
					out.mu.Lock()
					out.times[v.N]++
					out.total++
					out.mu.Unlock()
				}
			})
		}
	}()
	return out
}

// count is how many records came out so far.
func (o *numberedOutput) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.total
}

// allOf reports whether every N below total came out.
func (o *numberedOutput) allOf(total int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for n := range total {
		if o.times[n] == 0 {
			return false
		}
	}
	return true
}

// duplicates is how many records came out more than once, counting each
// extra time.
func (o *numberedOutput) duplicates() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := 0
	for _, c := range o.times {
		d += c - 1
	}
	return d
}
