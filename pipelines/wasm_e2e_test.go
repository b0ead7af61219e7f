package pipelines_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/pipelines"
)

// TestWasmStageEndToEnd runs a pipeline with a WASM stage (the example
// redactor, built here with GOOS=wasip1) inside a node over 100k records
// and compares every output with the expectation; records that are not
// UTF-8 go to the dead-letter topic. (20k records under the race
// detector.)
func TestWasmStageEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	buildGo(t, "../examples/wasm-redact", filepath.Join(dir, "redact.wasm"), true)
	s := loadSpecAt(t, filepath.Join(dir, "redact.yaml"), `
pipeline: redact
input: {topics: [signups]}
stages:
  - wasm: {module: redact.wasm, config: {mask: "*"}}
output: signups_redacted
on_error: {policy: dead_letter, topic: signups.dlq}
`)
	broker, lb := startNode(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("signups"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, "signups"); err != nil {
		t.Fatal(err)
	}
	n := 100_000
	if raceEnabled {
		n = 20_000
	}
	want := map[string]string{}
	bad := 0
	var recs []*kgo.Record
	for i := range n {
		key := fmt.Sprintf("u%06d", i)
		v := fmt.Sprintf("signup %d by user%d.name@example.com", i, i)
		if i%997 == 0 {
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte{0xff, 'x'}})
			bad++
			continue
		}
		recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(v)})
		local := fmt.Sprintf("user%d.name", i)
		want[key] = fmt.Sprintf("signup %d by %c%s%c@example.com", i, local[0], strings.Repeat("*", len(local)-2), local[len(local)-1])
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := collect(t, ctx, broker, "signups_redacted", "signups.dlq")
	elapsed := runUntil(t, ctx, s, broker, lb, func() bool {
		return len(out.snapshot("signups_redacted")) >= len(want) && len(out.snapshot("signups.dlq")) >= bad
	})
	got := out.snapshot("signups_redacted")
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for _, r := range got {
		if w, ok := want[string(r.Key)]; !ok || string(r.Value) != w {
			t.Fatalf("output %s=%q, want %q", r.Key, r.Value, w)
		}
	}
	for _, r := range out.snapshot("signups.dlq") {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[pipelines.HeaderStage] != "wasm#1" || !strings.Contains(h[pipelines.HeaderError], "not UTF-8") {
			t.Fatalf("dead letter %s: %v", r.Key, h)
		}
	}
	t.Logf("%d records through the WASM stage in %v (including startup), %d dead-lettered", n, elapsed.Round(time.Millisecond), bad)
}

// TestWasmFaultsDeadLettered: records that make a WASM module panic, exit,
// run out of memory or loop forever go to the dead-letter topic with
// their provenance, each alone, while every neighbour is delivered in
// order and the pipeline goes on.
func TestWasmFaultsDeadLettered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	buildGo(t, "../wasm/testdata/misbehave", filepath.Join(dir, "misbehave.wasm"), true)
	s := loadSpecAt(t, filepath.Join(dir, "faults.yaml"), `
pipeline: faults
input: {topics: [in]}
stages:
  - wasm: {module: misbehave.wasm, timeout: 300ms}
output: out
on_error: {policy: dead_letter, topic: in.dlq}
`)
	broker, lb := startNode(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "in"); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{"panic": "panic: asked to", "exit": "failed on this record", "oom": "its memory at", "loop": "stage timeout"}
	var recs []*kgo.Record
	var want []string
	for i := range 200 {
		v := fmt.Sprintf("r%03d", i)
		switch i {
		case 20:
			v = "panic"
		case 70:
			v = "exit"
		case 120:
			v = "oom"
		case 170:
			v = "loop"
		default:
			want = append(want, strings.ToUpper(v))
		}
		recs = append(recs, &kgo.Record{Key: []byte(v), Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := collect(t, ctx, broker, "out", "in.dlq")
	runUntil(t, ctx, s, broker, lb, func() bool {
		return len(out.snapshot("out")) >= len(want) && len(out.snapshot("in.dlq")) >= len(bad)
	})
	var got []string
	for _, r := range out.snapshot("out") {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("outputs (in order) %v, want %v", got, want)
	}
	dl := out.snapshot("in.dlq")
	if len(dl) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(bad))
	}
	for _, r := range dl {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if msg, ok := bad[string(r.Value)]; !ok || !strings.Contains(h[pipelines.HeaderError], msg) || h[pipelines.HeaderTopic] != "in" {
			t.Fatalf("dead letter %q: %v", r.Value, h)
		}
	}
}

// buildGo builds the Go package pkg into out: a WASM module (wasip1,
// c-shared) or a binary for this machine.
func buildGo(t *testing.T, pkg, out string, wasm bool) {
	t.Helper()
	args := []string{"build", "-o", out, pkg}
	if wasm {
		args = []string{"build", "-buildmode=c-shared", "-o", out, pkg}
	}
	cmd := exec.Command("go", args...)
	if wasm {
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, msg)
	}
}

// runUntil runs s in process against the node until every output and
// dead letter expected is there (done), stops it, and returns how long
// that took.
func runUntil(t *testing.T, ctx context.Context, s *pipelines.Spec, broker string, lb pipelines.LocalBroker, done func() bool) time.Duration {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	start := time.Now()
	go func() { exited <- pipelines.Run(runCtx, s, pipelines.RunOptions{Brokers: []string{broker}, Local: lb}) }()
	waitFor(t, 2*time.Minute, "every output and dead letter", done)
	took := time.Since(start)
	stop()
	if err := <-exited; err != nil {
		t.Fatal(err)
	}
	return took
}
