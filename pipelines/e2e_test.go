package pipelines_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/server"
)

const e2eSpec = `
pipeline: e2e
input: {topics: [clicks], start: earliest}
stages:
  - filter: 'value.country == "NZ"'
  - map: '{"user": key, "seq": value.seq, "amount": value.amount, "big": value.amount > 500}'
  - route: {big: 'value.big', default: true}
output: {big: big_clicks, default: small_clicks}
on_error: {policy: dead_letter, topic: e2e.dlq}
batch: {max_records: 500}
`

// B reads A's output.
const chainedSpec = `
pipeline: huge
input: {topics: [big_clicks]}
stages:
  - filter: 'value.amount > 900'
  - map: {value: '{"seq": value.seq, "tier": "huge"}'}
output: huge_clicks
`

// startNode runs a weir node for the test and returns its address and
// its broker for in-process pipelines.
func startNode(t *testing.T) (string, pipelines.LocalBroker) {
	t.Helper()
	ctx := context.Background()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off", GroupInitialRebalanceDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.KafkaAddr(), srv.LocalBroker()
}

func loadSpec(t *testing.T, text string) *pipelines.Spec {
	t.Helper()
	return loadSpecAt(t, filepath.Join(t.TempDir(), "p.yaml"), text)
}

// loadSpecAt writes a pipeline file (where its module and plugin paths
// resolve) and loads it.
func loadSpecAt(t *testing.T, file, body string) *pipelines.Spec {
	t.Helper()
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := pipelines.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// collector reads topics from the start and keeps every record.
type collector struct {
	mu   sync.Mutex
	recs map[string][]*kgo.Record
}

func collect(t *testing.T, ctx context.Context, broker string, topics ...string) *collector {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{recs: map[string][]*kgo.Record{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				c.mu.Lock()
				c.recs[r.Topic] = append(c.recs[r.Topic], r)
				c.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { <-done; cl.Close() })
	return c
}

func (c *collector) snapshot(topic string) []*kgo.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*kgo.Record(nil), c.recs[topic]...)
}

// distinct counts the distinct seqs of a topic's JSON records.
func distinct(t *testing.T, recs []*kgo.Record) map[int]int {
	seen := map[int]int{}
	for _, r := range recs {
		var v struct{ Seq int }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("%s: value %q: %v", r.Topic, r.Value, err)
		}
		seen[v.Seq]++
	}
	return seen
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEndToEndKillAndRestart runs filter -> map -> route over a 6-partition
// topic of 100k keyed JSON records (with poison records among them),
// stops the pipeline abruptly mid-stream, restarts it, and checks the
// outputs: every expected record present, none unexpected, order per key
// kept, duplicates only within the uncommitted window; poison records in
// the dead-letter topic with their provenance; and a second pipeline
// chained on the first one's output.
func TestEndToEndKillAndRestart(t *testing.T) {
	t.Run("kafka protocol", func(t *testing.T) { testEndToEnd(t, false) })
	t.Run("in process", func(t *testing.T) { testEndToEnd(t, true) })
}

func testEndToEnd(t *testing.T, inProcess bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	broker, lb := startNode(t)
	if !inProcess {
		lb = nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("clicks"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "clicks"); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	wantBig, wantSmall, wantHuge := map[int]string{}, map[int]string{}, map[int]bool{}
	poison := map[int]bool{}
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		key := "u" + strconv.Itoa(i%777)
		country := "NZ"
		if i%3 == 0 {
			country = "AU"
		}
		amount := i % 1000
		value := fmt.Sprintf(`{"country":%q,"seq":%d,"amount":%d}`, country, i, amount)
		if i%9973 == 5 {
			value = "not json " + strconv.Itoa(i)
			poison[i] = true
		}
		recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(value)})
		switch {
		case poison[i] || country != "NZ":
		case amount > 500:
			wantBig[i] = key
			if amount > 900 {
				wantHuge[i] = true
			}
		default:
			wantSmall[i] = key
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := collect(t, ctx, broker, "big_clicks", "small_clicks", "e2e.dlq", "huge_clicks")

	spec := loadSpec(t, e2eSpec)
	runCtx, stop := context.WithCancel(ctx)
	stats := new(pipelines.Stats)
	first := make(chan error, 1)
	go func() {
		first <- pipelines.Run(runCtx, spec, pipelines.RunOptions{Brokers: []string{broker}, Local: lb, Stats: stats})
	}()
	// Stop it abruptly once a good part of the output is there.
	waitFor(t, time.Minute, "30% of the output", func() bool {
		return len(out.snapshot("big_clicks"))+len(out.snapshot("small_clicks")) >= (len(wantBig)+len(wantSmall))*3/10
	})
	stop()
	if err := <-first; err != nil {
		t.Fatalf("first run: %v", err)
	}
	t.Logf("first run stopped after %d records in, %d out", stats.In.Load(), stats.Out.Load())

	// Restart, with the chained pipeline alongside.
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 3)
	go func() {
		errs <- pipelines.Run(runCtx, spec, pipelines.RunOptions{Brokers: []string{broker}, Local: lb})
	}()
	go func() {
		errs <- pipelines.Run(runCtx, loadSpec(t, chainedSpec), pipelines.RunOptions{Brokers: []string{broker}, Local: lb})
	}()
	// A second member of the same group (over the Kafka protocol) joins
	// once the restarted one writes: the partitions are rebalanced between
	// the two, usually while records flow.
	waitFor(t, time.Minute, "the restarted pipeline to write", func() bool {
		return len(out.snapshot("big_clicks"))+len(out.snapshot("small_clicks")) > (len(wantBig)+len(wantSmall))*4/10
	})
	go func() { errs <- pipelines.Run(runCtx, spec, pipelines.RunOptions{Brokers: []string{broker}}) }()
	waitFor(t, 2*time.Minute, "every expected output", func() bool {
		return len(distinct(t, out.snapshot("big_clicks"))) >= len(wantBig) &&
			len(distinct(t, out.snapshot("small_clicks"))) >= len(wantSmall) &&
			len(distinct(t, out.snapshot("huge_clicks"))) >= len(wantHuge) &&
			len(out.snapshot("e2e.dlq")) >= len(poison)
	})
	stop()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	dups := 0
	for _, tc := range []struct {
		topic string
		want  map[int]string
	}{{"big_clicks", wantBig}, {"small_clicks", wantSmall}} {
		got := out.snapshot(tc.topic)
		seen := map[int]bool{}
		lastSeq := map[string]int{}
		for _, r := range got {
			var v struct {
				User        string
				Seq, Amount int
				Big         bool
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("%s: %q: %v", tc.topic, r.Value, err)
			}
			key, ok := tc.want[v.Seq]
			if !ok {
				t.Fatalf("%s: unexpected record seq %d: %s", tc.topic, v.Seq, r.Value)
			}
			if string(r.Key) != key || v.User != key || v.Amount != v.Seq%1000 || v.Big != (tc.topic == "big_clicks") {
				t.Fatalf("%s: record %q %s, want key %s", tc.topic, r.Key, r.Value, key)
			}
			if seen[v.Seq] {
				dups++
				continue
			}
			seen[v.Seq] = true
			// First deliveries of one key come in input order.
			if last, ok := lastSeq[key]; ok && v.Seq < last {
				t.Fatalf("%s: key %s: seq %d after %d", tc.topic, key, v.Seq, last)
			}
			lastSeq[key] = v.Seq
		}
		if len(seen) != len(tc.want) {
			t.Fatalf("%s: %d distinct records, want %d", tc.topic, len(seen), len(tc.want))
		}
	}
	// Only the batch in flight when the first run stopped can repeat: at
	// most one batch (500 records) per input partition.
	if dups > 6*500 {
		t.Fatalf("%d duplicates, more than the uncommitted window of 6 x 500", dups)
	}
	t.Logf("%d expected outputs, %d duplicates after the restart", len(wantBig)+len(wantSmall), dups)

	// Dead letters: the original record and where it came from.
	dlq := out.snapshot("e2e.dlq")
	got := map[int]bool{}
	for _, r := range dlq {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		var seq int
		if _, err := fmt.Sscanf(string(r.Value), "not json %d", &seq); err != nil || !poison[seq] {
			t.Fatalf("dead letter %q is not a poison record", r.Value)
		}
		got[seq] = true
		off, _ := strconv.ParseInt(h[pipelines.HeaderOffset], 10, 64)
		if h[pipelines.HeaderPipeline] != "e2e" || h[pipelines.HeaderStage] != "filter#1" || h[pipelines.HeaderError] == "" ||
			h[pipelines.HeaderTopic] != "clicks" || h[pipelines.HeaderPartition] == "" || off < 0 {
			t.Fatalf("dead letter %q headers %v", r.Value, h)
		}
	}
	if len(got) != len(poison) {
		t.Fatalf("%d poison records dead-lettered, want %d", len(got), len(poison))
	}

	// The chained pipeline saw exactly the big records over 900.
	huge := distinct(t, out.snapshot("huge_clicks"))
	for seq := range huge {
		if !wantHuge[seq] {
			t.Fatalf("huge_clicks: unexpected seq %d", seq)
		}
	}
	if len(huge) != len(wantHuge) {
		t.Fatalf("huge_clicks: %d distinct, want %d", len(huge), len(wantHuge))
	}
}
