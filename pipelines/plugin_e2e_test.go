package pipelines_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/pipelines"
)

// TestMixedStagesEndToEnd runs a pipeline of an expr filter, a WASM stage
// (the example redactor) and a plugin stage (plugins' test plugin, which
// prefixes and upper-cases) inside a node, and compares every output with
// the expectation; a record that makes the plugin exit goes to the
// dead-letter topic while the others flow, and the plugin is restarted.
func TestMixedStagesEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	buildGo(t, "../examples/wasm-redact", filepath.Join(dir, "redact.wasm"), true)
	buildGo(t, "../plugins/testdata/testplugin", filepath.Join(dir, "bin", "shout"), false)
	s := loadSpecAt(t, filepath.Join(dir, "mixed.yaml"), `
pipeline: mixed
input: {topics: [signups]}
stages:
  - filter: 'key > "u000009"'
  - wasm: {module: redact.wasm, config: {mask: "*"}}
  - plugin: {path: bin/shout, config: {prefix: "> "}, timeout: 2s}
output: signups_out
on_error: {policy: dead_letter, topic: signups.dlq}
`)
	broker, lb := startNode(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("signups"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "signups"); err != nil {
		t.Fatal(err)
	}
	n := 20_000
	want := map[string]string{}
	poison := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		key := fmt.Sprintf("u%06d", i)
		v := fmt.Sprintf("signup %d by user%d@example.com", i, i)
		if i%5000 == 4321 {
			v = "exit" // the plugin exits on it
			poison[key] = true
		}
		recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(v)})
		if i < 10 || poison[key] {
			continue // filtered out, or dead-lettered
		}
		local := fmt.Sprintf("user%d", i)
		want[key] = "> " + strings.ToUpper(fmt.Sprintf("signup %d by %c%s%c@example.com", i, local[0], strings.Repeat("*", len(local)-2), local[len(local)-1]))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := collect(t, ctx, broker, "signups_out", "signups.dlq")
	runUntil(t, ctx, s, broker, lb, func() bool {
		return len(out.snapshot("signups_out")) >= len(want) && len(out.snapshot("signups.dlq")) >= len(poison)
	})
	got := out.snapshot("signups_out")
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
		if !poison[string(r.Key)] || h[pipelines.HeaderStage] != "plugin#1" || !strings.Contains(h[pipelines.HeaderError], "failed on this record") {
			t.Fatalf("dead letter %s: %v", r.Key, h)
		}
	}
}
