package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/runtime/server"
)

// The tests of this file drive `weir pipeline ...` and `weir serve
// --pipelines` as real processes built from this command.

// ordersSpec is a valid pipeline with two passing test cases.
const ordersSpec = `pipeline: orders
input:
  topics: [orders]
stages:
  - filter: 'value.amount > 100'
  - map: '{"id": value.id, "big": value.amount > 1000}'
  - route: {huge: 'value.big', default: true}
output:
  default: big-orders
  huge: huge-orders
on_error:
  policy: dead_letter
  topic: orders.dlq
tests:
  - name: keeps big
    input:
      - {key: a, value: {id: 1, amount: 500}}
      - {key: b, value: {id: 2, amount: 5}}
      - {key: c, value: {id: 3, amount: 5000}}
    expect:
      default:
        - {key: a, value: {id: 1, big: false}}
      huge:
        - {key: c, value: {id: 3, big: true}}
  - name: poison fails
    input:
      - {value: "not json"}
      - {value: {amount: 1}}
    failed: 1
`

// badSpec has four problems at known positions.
const badSpec = `pipeline: orders
input:
  topics: [orders]
  grup: x
stages:
  - filtr: 'value.amount > 100'
  - map: 'value.amount +'
output: big-orders
on_error: explode
`

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeAtomic replaces path in one step (a hidden temporary file renamed
// over it), so a directory watcher never reads a half-written file.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineCLI builds weir once and drives `weir pipeline ...` and
// `weir serve --pipelines` with it as real processes.
func TestPipelineCLI(t *testing.T) {
	bin := buildWeir(t)
	t.Run("offline", func(t *testing.T) { testPipelineOffline(t, bin) })
	t.Run("serve_hot_reload", func(t *testing.T) { testPipelineServeHotReload(t, bin) })
	t.Run("serve_dead_letters", func(t *testing.T) { testPipelineServeDeadLetters(t, bin) })
	t.Run("run_kill_restart", func(t *testing.T) { testPipelineRunKillRestart(t, bin) })
}

// testPipelineOffline: validate, explain and test, which need no broker.
func testPipelineOffline(t *testing.T, bin string) {
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "orders.yaml"), ordersSpec)
	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), badSpec)
	syntax := writeFile(t, filepath.Join(dir, "syntax.yaml"), "pipeline: x\ninput: {topics: [a]\noutput: b\n")

	t.Run("validate", func(t *testing.T) {
		r := runWeir(t, bin, nil, "", "pipeline", "validate", good)
		if r.code != 0 || r.stdout != good+": pipeline orders is valid (3 stages, 2 outputs, 2 tests)\n" || r.stderr != "" {
			t.Fatalf("validate good: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}

		r = runWeir(t, bin, nil, "", "pipeline", "validate", bad)
		if r.code == 0 || strings.Contains(r.stdout, "is valid") {
			t.Fatalf("validate bad: exit %d stdout %q", r.code, r.stdout)
		}
		// Every problem, in file order, each as file:line:col.
		wantLines := []string{
			bad + `:4:3: input: unknown field "grup" (hint: did you mean "group"?)`,
			bad + `:6:5: stage: unknown stage kind "filtr" (hint: did you mean "filter"?)`,
			bad + `:7:24: map: unexpected token EOF`,
			bad + `:9:11: on_error: unknown policy "explode"`,
		}
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if len(lines) < len(wantLines) {
			t.Fatalf("validate bad: stderr has %d lines, want at least %d:\n%s", len(lines), len(wantLines), r.stderr)
		}
		for i, w := range wantLines {
			if !strings.HasPrefix(lines[i], w) {
				t.Fatalf("validate bad: stderr line %d is\n  %q\nwant it to start with\n  %q\nstderr:\n%s", i+1, lines[i], w, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, "1 of 1 files invalid") {
			t.Fatalf("validate bad: no summary in stderr:\n%s", r.stderr)
		}

		// A YAML syntax error is positioned too.
		r = runWeir(t, bin, nil, "", "pipeline", "validate", syntax)
		if r.code == 0 || !regexp.MustCompile(regexp.QuoteMeta(syntax)+`:[1-9][0-9]*:1: YAML: `).MatchString(r.stderr) {
			t.Fatalf("validate syntax error: exit %d stderr %q", r.code, r.stderr)
		}

		// Several files: one bad fails the run, the good one is still reported.
		r = runWeir(t, bin, nil, "", "pipeline", "validate", bad, good, syntax)
		if r.code == 0 {
			t.Fatalf("validate bad good syntax: exit 0\nstdout %q\nstderr %q", r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, good+": pipeline orders is valid") || strings.Contains(r.stdout, bad) {
			t.Fatalf("validate bad good syntax: stdout %q", r.stdout)
		}
		for _, w := range []string{bad + ":4:3: ", bad + ":9:11: ", syntax + ":", "2 of 3 files invalid"} {
			if !strings.Contains(r.stderr, w) {
				t.Fatalf("validate bad good syntax: stderr lacks %q:\n%s", w, r.stderr)
			}
		}
	})

	t.Run("explain", func(t *testing.T) {
		r := runWeir(t, bin, nil, "", "pipeline", "explain", good)
		if r.code != 0 {
			t.Fatalf("explain: exit %d stderr %q", r.code, r.stderr)
		}
		for _, re := range []string{
			`(?m)^pipeline orders \(` + regexp.QuoteMeta(good) + `\)$`,
			`input: +topics orders, consumer group weir-pipeline-orders, start earliest`,
			`batches: +up to 10000 records`,
			`on error: dead_letter to orders\.dlq`,
			`stage 1 +filter#1 +filter: keep records where value\.amount > 100`,
			`stage 2 +map#1 +map: value = \{"id": value\.id, "big": value\.amount > 1000\}`,
			`stage 3 +route#1 +route: first of: huge if value\.big, default always`,
			`output +default +-> topic big-orders`,
			`output +huge +-> topic huge-orders \(records routed to huge`,
			`tests: +2 `,
		} {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Fatalf("explain output does not match %s:\n%s", re, r.stdout)
			}
		}
		// Stages in order.
		if i1, i2, i3 := strings.Index(r.stdout, "stage 1"), strings.Index(r.stdout, "stage 2"), strings.Index(r.stdout, "stage 3"); !(i1 < i2 && i2 < i3) {
			t.Fatalf("explain: stages out of order:\n%s", r.stdout)
		}

		r = runWeir(t, bin, nil, "", "pipeline", "explain", "--kinds")
		if r.code != 0 {
			t.Fatalf("explain --kinds: exit %d stderr %q", r.code, r.stderr)
		}
		for _, k := range []string{"filter", "map", "key", "route"} {
			if !regexp.MustCompile(`(?m)^` + k + `: \S`).MatchString(r.stdout) {
				t.Fatalf("explain --kinds: no summary line for %s:\n%s", k, r.stdout)
			}
			if !regexp.MustCompile(`(?m)^ +example: - ` + k + `: \S`).MatchString(r.stdout) {
				t.Fatalf("explain --kinds: no example for %s:\n%s", k, r.stdout)
			}
		}
		// Every example is itself a valid stage (but the wasm and plugin
		// ones, which name a module file and a binary; the wasm and
		// plugins package tests, and TestWasmExamples and
		// TestPluginExamples, build and load those).
		var stages []string
		for _, m := range regexp.MustCompile(`(?m)^ +example: (- .*)$`).FindAllStringSubmatch(r.stdout, -1) {
			if strings.HasPrefix(m[1], "- wasm:") || strings.HasPrefix(m[1], "- plugin:") {
				continue
			}
			stages = append(stages, "  "+m[1])
		}
		ex := writeFile(t, filepath.Join(dir, "examples.yaml"), "pipeline: examples\ninput: {topics: [in]}\nstages:\n"+
			strings.Join(stages, "\n")+"\noutput: {default: out, high_value: hv}\n")
		if r := runWeir(t, bin, nil, "", "pipeline", "validate", ex); r.code != 0 {
			t.Fatalf("the examples of explain --kinds do not validate together: %s\n%s", r.stderr, stages)
		}
		// No file: the kinds too.
		if r2 := runWeir(t, bin, nil, "", "pipeline", "explain"); r2.code != 0 || r2.stdout != r.stdout {
			t.Fatalf("explain without a file: exit %d, output differs from --kinds:\n%s", r2.code, r2.stdout)
		}
		// A bad file: its errors, non-zero.
		if r := runWeir(t, bin, nil, "", "pipeline", "explain", bad); r.code == 0 || !strings.Contains(r.stderr, bad+":4:3: ") {
			t.Fatalf("explain bad: exit %d stderr %q", r.code, r.stderr)
		}
	})

	t.Run("test", func(t *testing.T) {
		r := runWeir(t, bin, nil, "", "pipeline", "test", good)
		want := "ok    " + good + ":15:5: keeps big\nok    " + good + ":25:5: poison fails\n2 test cases passed\n"
		if r.code != 0 || r.stdout != want {
			t.Fatalf("test: exit %d\nstdout %q\nwant   %q\nstderr %q", r.code, r.stdout, want, r.stderr)
		}

		// A wrong expectation: FAIL with the differing record, non-zero.
		wrong := writeFile(t, filepath.Join(dir, "wrong.yaml"), strings.Replace(ordersSpec, "{id: 1, big: false}", "{id: 1, big: true}", 1))
		r = runWeir(t, bin, nil, "", "pipeline", "test", wrong)
		if r.code == 0 {
			t.Fatalf("test wrong: exit 0\n%s", r.stdout)
		}
		for _, w := range []string{
			"FAIL  " + wrong + ":15:5: keeps big\n",
			`output default record 1 (` + wrong + `:22:11): value "{\"big\":false,\"id\":1}", want "{\"big\":true,\"id\":1}"`,
			"ok    " + wrong + ":25:5: poison fails\n",
		} {
			if !strings.Contains(r.stdout, w) {
				t.Fatalf("test wrong: stdout lacks %q:\n%s", w, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "1 of 2 test cases failed") {
			t.Fatalf("test wrong: stderr %q", r.stderr)
		}

		// Too many outputs: the records it got are listed.
		extra := writeFile(t, filepath.Join(dir, "extra.yaml"), strings.Replace(ordersSpec,
			"      huge:\n        - {key: c, value: {id: 3, big: true}}\n", "", 1))
		r = runWeir(t, bin, nil, "", "pipeline", "test", extra)
		if r.code == 0 || !strings.Contains(r.stdout, "output huge: 1 records, want 0") || !strings.Contains(r.stdout, `got 1: key "c" value "{\"big\":true,\"id\":3}"`) {
			t.Fatalf("test extra output: exit %d stdout:\n%s", r.code, r.stdout)
		}

		// No tests: an error.
		noTests := writeFile(t, filepath.Join(dir, "notests.yaml"), ordersSpec[:strings.Index(ordersSpec, "tests:")])
		r = runWeir(t, bin, nil, "", "pipeline", "test", noTests)
		if r.code == 0 || !strings.Contains(r.stderr, noTests+": no test cases") {
			t.Fatalf("test without tests: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
		// An invalid file: its errors.
		r = runWeir(t, bin, nil, "", "pipeline", "test", bad)
		if r.code == 0 || !strings.Contains(r.stderr, bad+":6:5: ") {
			t.Fatalf("test bad: exit %d stderr %q", r.code, r.stderr)
		}
	})
}

// startPipelineServe runs weir serve with no initial rebalance delay (a
// pipeline's group forms at once) and, when pipesDir is set, the pipelines
// of pipesDir checked every 100ms.
func startPipelineServe(t *testing.T, bin, pipesDir string) *weirProc {
	t.Helper()
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "weir.yaml"), "group_initial_rebalance_delay: -1ms\npipelines_reload_interval: 100ms\n")
	args := []string{"--config", cfg}
	if pipesDir != "" {
		args = append(args, "--pipelines", pipesDir)
	}
	return startServeArgs(t, bin, filepath.Join(dir, "data"), args...)
}

// bgProc is a `weir` subprocess running in the background.
type bgProc struct {
	cmd    *exec.Cmd
	output *serveStderr
	done   chan struct{}
	err    error
}

func startBg(t *testing.T, bin string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(bin, args...), output: &serveStderr{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start weir %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("weir %s output:\n%s", strings.Join(args, " "), p.output.String())
		}
	})
	return p
}

// signal sends sig and waits for the exit.
func (p *bgProc) signal(t *testing.T, sig os.Signal, within time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		t.Fatalf("weir %s did not exit within %v of %v", strings.Join(p.cmd.Args[1:], " "), within, sig)
		return nil
	}
}

func (p *bgProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pollAdmin is an admin client for polling offsets: franz-go keeps what
// it learnt of a topic's metadata for at least MetadataMinAge (5s by
// default), so a client that asked before a topic existed would not see
// it for that long.
func pollAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// endOffsets is the end offset of each partition of topic (none when it
// does not exist).
func endOffsets(ctx context.Context, adm *kadm.Client, topic string) map[int32]int64 {
	out := map[int32]int64{}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return out
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// readPartitions reads every partition of topic from the start to its end
// offset, as it is now.
func readPartitions(t *testing.T, addr, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	ends := endOffsets(ctx, kadm.NewClient(acl), topic)
	acl.Close()
	out := map[int32][]*kgo.Record{}
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		out[p] = nil
		if end > 0 {
			parts[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(parts) == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	done := func() bool {
		for p, end := range ends {
			if int64(len(out[p])) < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: deadline passed", topic)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("reading %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
			}
		})
	}
	for p, rs := range out {
		for i, r := range rs {
			if r.Offset != int64(i) {
				t.Fatalf("%s/%d: record %d has offset %d", topic, p, i, r.Offset)
			}
		}
	}
	return out
}

// pipelineStatuses reads /pipelines from a node.
func pipelineStatuses(t *testing.T, httpAddr string) []server.PipelineStatus {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/pipelines")
	if err != nil {
		t.Fatalf("GET /pipelines: %v", err)
	}
	defer resp.Body.Close()
	var st []server.PipelineStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /pipelines: %v", err)
	}
	return st
}

func pipelineStatus(t *testing.T, httpAddr, name string) (server.PipelineStatus, bool) {
	t.Helper()
	for _, s := range pipelineStatuses(t, httpAddr) {
		if s.Name == name {
			return s, true
		}
	}
	return server.PipelineStatus{}, false
}

// listRow is the row of `weir pipeline list` naming the pipeline, split in
// fields: NAME STATE IN OUT FILTERED ERRORED LAG FILE.
func listRow(t *testing.T, bin, httpAddr, name string) []string {
	t.Helper()
	r := runWeir(t, bin, nil, "", "pipeline", "list", "--http-addr", httpAddr)
	if r.code != 0 {
		t.Fatalf("pipeline list: exit %d stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME ") {
		t.Fatalf("pipeline list: no header:\n%s", r.stdout)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) == 8 && f[0] == name {
			return f
		}
	}
	return nil
}

// waitStatus polls `weir pipeline status NAME` until its output holds
// every one of wants.
func waitStatus(t *testing.T, bin, httpAddr, name string, wants ...string) cliResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := runWeir(t, bin, nil, "", "pipeline", "status", name, "--http-addr", httpAddr)
		ok := r.code == 0
		for _, w := range wants {
			ok = ok && strings.Contains(r.stdout, w)
		}
		if ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s, pipeline status %s (exit %d) still lacks %q:\n%s%s", name, r.code, wants, r.stdout, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type numbered struct {
	N   int `json:"n"`
	Ver int `json:"ver"`
}

// testPipelineServeHotReload: weir serve --pipelines runs a pipeline file,
// list and status show it, an invalid change is refused while the running
// version carries on, a valid change takes over without losing a record,
// and removing the file stops it.
func testPipelineServeHotReload(t *testing.T, bin string) {
	start := time.Now()
	pipes := t.TempDir()
	srv := startPipelineServe(t, bin, pipes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := runWeir(t, bin, nil, "", "topic", "create", "hr-in", "-p", "1", "-b", srv.kafka); r.code != 0 {
		t.Fatalf("topic create: %s", r.stderr)
	}
	if row := listRow(t, bin, srv.http, "hr"); row != nil {
		t.Fatalf("pipeline listed before its file exists: %q", row)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := pollAdmin(t, srv.kafka)
	produce := func(from, to int) {
		t.Helper()
		var rs []*kgo.Record
		for n := from; n < to; n++ {
			rs = append(rs, &kgo.Record{Topic: "hr-in", Value: fmt.Appendf(nil, `{"n":%d}`, n)})
		}
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	// output reads hr-out once every record n < want is in it.
	output := func(want int, what string) []numbered {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var out []numbered
			seen := map[int]bool{}
			if sumOffsets(endOffsets(ctx, adm, "hr-out")) >= int64(want) {
				for _, r := range readPartitions(t, srv.kafka, "hr-out")[0] {
					var x numbered
					if err := json.Unmarshal(r.Value, &x); err != nil {
						t.Fatalf("hr-out offset %d: %q: %v", r.Offset, r.Value, err)
					}
					out = append(out, x)
					seen[x.N] = true
				}
			}
			var missing []int
			for n := range want {
				if !seen[n] {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: after 20s hr-out (%d records) lacks n = %v", what, len(out), missing)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	spec := func(ver string) string {
		return "pipeline: hr\ninput:\n  topics: [hr-in]\nstages:\n  - map: '{\"n\": value.n, \"ver\": " + ver + "}'\noutput: hr-out\n"
	}
	file := filepath.Join(pipes, "hr.yaml")

	// v1 runs.
	writeAtomic(t, file, spec("1"))
	produce(0, 50)
	out := output(50, "v1 to write 50 records")
	for i, x := range out[:50] {
		if x != (numbered{N: i, Ver: 1}) {
			t.Fatalf("hr-out record %d: %+v, want n %d ver 1", i, x, i)
		}
	}
	r := waitStatus(t, bin, srv.http, "hr", "records:  50 in, 50 out, 0 filtered, 0 errored,")
	for _, w := range []string{"pipeline hr\n", "file:     " + file + " (version ", "state:    running\n", "started:  ", "lag:      0\n"} {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("status lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "error:") {
		t.Fatalf("status of a healthy pipeline shows an error:\n%s", r.stdout)
	}
	if row := listRow(t, bin, srv.http, "hr"); row == nil || row[1] != "running" || row[2] != "50" || row[3] != "50" || row[4] != "0" || row[5] != "0" || row[7] != file {
		t.Fatalf("pipeline list row for hr: %q", row)
	}
	// status finds it by file too; an unknown name is an error.
	if r := runWeir(t, bin, nil, "", "pipeline", "status", file, "--http-addr", srv.http); r.code != 0 || !strings.HasPrefix(r.stdout, "pipeline hr\n") {
		t.Fatalf("status by file: exit %d %q", r.code, r.stdout)
	}
	if r := runWeir(t, bin, nil, "", "pipeline", "status", "nope", "--http-addr", srv.http); r.code == 0 || !strings.Contains(r.stderr, `no pipeline "nope"`) {
		t.Fatalf("status nope: exit %d stderr %q", r.code, r.stderr)
	}
	v1, _ := pipelineStatus(t, srv.http, "hr")
	t.Logf("v1 running (version %s) after %v", v1.Version, time.Since(start).Round(time.Millisecond))

	// (a) An invalid change is refused; v1 carries on.
	writeAtomic(t, file, strings.Replace(spec("2"), "2}'", "2'", 1))
	waitFor(t, "status to show the refused change", 10*time.Second, func() bool {
		st, _ := pipelineStatus(t, srv.http, "hr")
		return strings.Contains(st.Error, "change refused")
	})
	st, _ := pipelineStatus(t, srv.http, "hr")
	if st.State != "running" || st.Version != v1.Version || !strings.Contains(st.Error, file+":5:") {
		t.Fatalf("after an invalid change: %+v", st)
	}
	r = runWeir(t, bin, nil, "", "pipeline", "status", "hr", "--http-addr", srv.http)
	if !strings.Contains(r.stdout, "state:    running\n") || !strings.Contains(r.stdout, "error:    change refused: "+file+":5:") {
		t.Fatalf("status after an invalid change:\n%s", r.stdout)
	}
	produce(50, 100)
	out = output(100, "v1 to go on after the refused change")
	for i, x := range out[:100] {
		if x != (numbered{N: i, Ver: 1}) {
			t.Fatalf("after the refused change, hr-out record %d: %+v, want n %d ver 1 (old logic)", i, x, i)
		}
	}
	t.Logf("invalid change refused, v1 carried on, after %v", time.Since(start).Round(time.Millisecond))

	// (b) A valid change replaces v1 while records keep coming.
	var (
		switched atomic.Bool
		mu       sync.Mutex
		last     = 99
		after    []int // produced once the switch was visible
		prodErr  error
	)
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for n := 100; ctx.Err() == nil; n++ {
			post := switched.Load()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "hr-in", Value: fmt.Appendf(nil, `{"n":%d}`, n)}).FirstErr(); err != nil {
				mu.Lock()
				prodErr = err
				mu.Unlock()
				return
			}
			mu.Lock()
			last = n
			if post {
				after = append(after, n)
			}
			enough := len(after) >= 50
			mu.Unlock()
			if enough {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	writeAtomic(t, file, spec("2"))
	switchStart := time.Now()
	waitFor(t, "v2 to replace v1", 20*time.Second, func() bool {
		st, ok := pipelineStatus(t, srv.http, "hr")
		return ok && st.Version != v1.Version && st.Error == "" && st.State == "running"
	})
	switched.Store(true)
	switchTook := time.Since(switchStart)
	select {
	case <-prodDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the producer did not finish")
	}
	mu.Lock()
	if prodErr != nil {
		t.Fatalf("produce: %v", prodErr)
	}
	total := last + 1
	postSwitch := map[int]bool{}
	for _, n := range after {
		postSwitch[n] = true
	}
	mu.Unlock()
	out = output(total, "every record through the switch")
	firstV2 := -1
	seen := map[int]int{}
	var dups []string
	for i, x := range out {
		if x.N < 0 || x.N >= total || x.Ver != 1 && x.Ver != 2 {
			t.Fatalf("hr-out record %d: unexpected %+v", i, x)
		}
		seen[x.N]++
		if seen[x.N] > 1 {
			dups = append(dups, fmt.Sprintf("n=%d (ver %d, offset %d)", x.N, x.Ver, i))
		}
		if x.Ver == 2 && firstV2 < 0 {
			firstV2 = i
		}
		if x.Ver == 1 && firstV2 >= 0 {
			t.Fatalf("hr-out record %d: %+v written by v1 after v2 wrote record %d", i, x, firstV2)
		}
		if postSwitch[x.N] && x.Ver != 2 {
			t.Fatalf("hr-out record %d: %+v was produced after v2 took over, but v1 processed it", i, x)
		}
	}
	for n := range total {
		if seen[n] == 0 {
			t.Fatalf("record n=%d was lost across the switch", n)
		}
	}
	if firstV2 < 0 {
		t.Fatal("no record written by v2")
	}
	t.Logf("valid change took over in %v; %d records in, %d out (%d duplicates %s); v2 wrote from hr-out offset %d; %d records produced after the switch, all by v2",
		switchTook.Round(time.Millisecond), total, len(out), len(dups), dups, firstV2, len(postSwitch))
	if row := listRow(t, bin, srv.http, "hr"); row == nil || row[1] != "running" {
		t.Fatalf("pipeline list row for hr after the change: %q", row)
	}

	// (c) Removing the file stops it.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hr to leave the list", 10*time.Second, func() bool { return listRow(t, bin, srv.http, "hr") == nil })
	if r := runWeir(t, bin, nil, "", "pipeline", "status", "hr", "--http-addr", srv.http); r.code == 0 {
		t.Fatalf("status of a removed pipeline: exit 0\n%s", r.stdout)
	}
	// Its consumer group is left.
	waitFor(t, "the pipeline's group to have no members", 10*time.Second, func() bool {
		gs, err := adm.DescribeGroups(ctx, "weir-pipeline-hr")
		if err != nil {
			return false
		}
		g, ok := gs["weir-pipeline-hr"]
		return ok && g.Err == nil && len(g.Members) == 0
	})
	srv.stop(t, 20*time.Second)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// testPipelineServeDeadLetters: a record the filter fails on goes to the
// dead-letter topic with its provenance headers; its neighbours flow.
func testPipelineServeDeadLetters(t *testing.T, bin string) {
	pipes := t.TempDir()
	srv := startPipelineServe(t, bin, pipes)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r := runWeir(t, bin, nil, "", "topic", "create", "dl-in", "-p", "2", "-b", srv.kafka); r.code != 0 {
		t.Fatalf("topic create: %s", r.stderr)
	}
	writeAtomic(t, filepath.Join(pipes, "dl.yaml"), `pipeline: dl
input:
  topics: [dl-in]
stages:
  - filter: 'value.x > 0'
output: dl-out
on_error:
  policy: dead_letter
  topic: dl-dlq
`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	values := []string{`{"x":1}`, `{"x":2}`, `not json`, `{"x":-1}`, `{"x":3}`}
	var rs []*kgo.Record
	for _, v := range values {
		r := &kgo.Record{Topic: "dl-in", Partition: 1, Value: []byte(v)}
		if v == "not json" {
			r.Key = []byte("poison")
			r.Headers = []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}
		}
		rs = append(rs, r)
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	adm := pollAdmin(t, srv.kafka)
	waitFor(t, "the outputs and the dead letter", 20*time.Second, func() bool {
		return sumOffsets(endOffsets(ctx, adm, "dl-out")) >= 3 && sumOffsets(endOffsets(ctx, adm, "dl-dlq")) >= 1
	})
	var got []string
	for _, rs := range readPartitions(t, srv.kafka, "dl-out") {
		for _, r := range rs {
			if r.Partition != 1 {
				t.Fatalf("dl-out: unkeyed-by-input record %q on partition %d, want 1 (the input's)", r.Value, r.Partition)
			}
			if r.Key != nil {
				t.Fatalf("dl-out: record %q has key %q", r.Value, r.Key)
			}
			got = append(got, string(r.Value))
		}
	}
	if want := []string{`{"x":1}`, `{"x":2}`, `{"x":3}`}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("dl-out: %q, want %q", got, want)
	}
	var dead []*kgo.Record
	for _, rs := range readPartitions(t, srv.kafka, "dl-dlq") {
		dead = append(dead, rs...)
	}
	if len(dead) != 1 {
		t.Fatalf("dl-dlq holds %d records, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Key) != "poison" || string(d.Value) != "not json" {
		t.Fatalf("dead letter: key %q value %q", d.Key, d.Value)
	}
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	for k, v := range map[string]string{
		"origin": "test", "weir.pipeline": "dl", "weir.stage": "filter#1",
		"weir.source.topic": "dl-in", "weir.source.partition": "1", "weir.source.offset": "2",
	} {
		if h[k] != v {
			t.Fatalf("dead letter header %s = %q, want %q (headers %q)", k, h[k], v, h)
		}
	}
	if !strings.HasPrefix(h["weir.error"], "filter value.x > 0: ") || len(h["weir.error"]) <= len("filter value.x > 0: ") {
		t.Fatalf("dead letter header weir.error = %q", h["weir.error"])
	}
	t.Logf("dead letter headers: %q", h)
	waitStatus(t, bin, srv.http, "dl", "records:  5 in, 3 out, 1 filtered, 1 errored,", "state:    running")
	srv.stop(t, 20*time.Second)
}

// testPipelineRunKillRestart: `weir pipeline run` against a weir serve
// process, SIGKILLed mid-stream and started again, writes every expected
// output at least once, nothing unexpected, each key in order; a replay
// --from earliest writes it all again.
func testPipelineRunKillRestart(t *testing.T, bin string) {
	start := time.Now()
	srv := startPipelineServe(t, bin, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r := runWeir(t, bin, nil, "", "topic", "create", "rk-in", "-p", "4", "-b", srv.kafka); r.code != 0 {
		t.Fatalf("topic create: %s", r.stderr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := pollAdmin(t, srv.kafka)

	const records, keys = 20000, 64
	var rs []*kgo.Record
	for n := range records {
		k := "k" + strconv.Itoa(n%keys)
		rs = append(rs, &kgo.Record{Topic: "rk-in", Key: []byte(k), Value: fmt.Appendf(nil, `{"k":%q,"n":%d}`, k, n)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	inEnds := endOffsets(ctx, adm, "rk-in")
	if len(inEnds) != 4 || sumOffsets(inEnds) != records {
		t.Fatalf("rk-in end offsets %v", inEnds)
	}
	for p, e := range inEnds {
		if e == 0 {
			t.Fatalf("rk-in partition %d is empty: %v", p, inEnds)
		}
	}
	// Drop every n ending in 3, re-key, rewrite the value. Small batches, so
	// the run lasts long enough to be killed in the middle.
	spec := writeFile(t, filepath.Join(t.TempDir(), "rk.yaml"), `pipeline: rk
input:
  topics: [rk-in]
stages:
  - filter: 'int(value.n) % 10 != 3'
  - key: 'value.k + "-out"'
  - map: '{"k": value.k, "n": value.n, "double": value.n * 2}'
output: rk-out
batch:
  max_records: 20
`)
	expected := map[int]bool{}
	for n := range records {
		if n%10 != 3 {
			expected[n] = true
		}
	}
	want := int64(len(expected))
	const group = "weir-pipeline-rk"
	committedOffsets := func() map[int32]int64 {
		out := map[int32]int64{}
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return out
		}
		committed.Each(func(o kadm.OffsetResponse) {
			if o.Topic == "rk-in" && o.Err == nil {
				out[o.Partition] = o.At
			}
		})
		return out
	}
	// waitDone waits until rk-out holds outputs records and the group has
	// committed the whole input.
	waitDone := func(p *bgProc, outputs int64, what string) {
		t.Helper()
		waitFor(t, what+" to write every output", 20*time.Second, func() bool {
			if p.exited() {
				t.Fatalf("%s: pipeline run exited: %v", what, p.err)
			}
			return sumOffsets(endOffsets(ctx, adm, "rk-out")) >= outputs
		})
		deadline := time.Now().Add(10 * time.Second)
		for {
			c := committedOffsets()
			done := true
			for p, end := range inEnds {
				if c[p] < end {
					done = false
				}
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: every output is written, but 10s later the group %s has committed input offsets %v of %v: "+
					"the last batch is not committed while the input is idle", what, group, c, inEnds)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	run := func(extra ...string) *bgProc {
		return startBg(t, bin, append([]string{"pipeline", "run", spec, "--brokers", srv.kafka}, extra...)...)
	}

	// 1. Run, and SIGKILL it once some but not all outputs are written.
	t1 := time.Now()
	p := run()
	deadline := time.Now().Add(30 * time.Second)
	for sumOffsets(endOffsets(ctx, adm, "rk-out")) < 2000 {
		if p.exited() {
			t.Fatalf("pipeline run exited: %v", p.err)
		}
		if time.Now().After(deadline) {
			t.Fatal("pipeline run wrote fewer than 2000 records in 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	p.signal(t, syscall.SIGKILL, 10*time.Second)
	atKill := endOffsets(ctx, adm, "rk-out")
	if n := sumOffsets(atKill); n >= want {
		t.Fatalf("pipeline run wrote all %d records before it was killed; slow it down", n)
	}
	t.Logf("killed pipeline run after %v with %d of %d outputs written", time.Since(t1).Round(time.Millisecond), sumOffsets(atKill), want)

	// The killed member stays in the group until its session times out
	// (45s, franz-go's default, which a pipeline cannot change), and a new
	// member's join waits for that. Remove it as an operator would (a
	// LeaveGroup naming its member id, KIP-345), so the restart joins at once.
	evictMembers(t, ctx, cl, adm, group)

	// 2. Run again until everything is committed.
	t2 := time.Now()
	p = run()
	waitDone(p, want, "the restarted run")
	t.Logf("restarted run finished in %v", time.Since(t2).Round(time.Millisecond))
	if err := p.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("pipeline run after SIGTERM: %v", err)
	}
	out := readPartitions(t, srv.kafka, "rk-out")
	dups := checkRunOutput(t, out, expected, func(part int32, off int64) bool { return off >= atKill[part] })
	total := int64(0)
	for _, rs := range out {
		total += int64(len(rs))
	}
	t.Logf("after kill and restart: %d outputs for %d expected, %d duplicates (at-least-once re-delivery after the kill)", total, want, dups)

	// 3. Replay from earliest: every output again, once more.
	before := endOffsets(ctx, adm, "rk-out")
	t3 := time.Now()
	p = run("--from", "earliest")
	waitDone(p, sumOffsets(before)+want, "the replay --from earliest")
	if err := p.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatalf("pipeline run --from earliest after SIGTERM: %v", err)
	}
	after := readPartitions(t, srv.kafka, "rk-out")
	replayed := map[int32][]*kgo.Record{}
	var n int64
	for part, rs := range after {
		replayed[part] = rs[before[part]:]
		n += int64(len(rs))
	}
	if n != total+want {
		t.Fatalf("after the replay rk-out holds %d records, want %d + %d", n, total, want)
	}
	if d := checkRunOutput(t, replayed, expected, nil); d != 0 {
		t.Fatalf("the replay wrote %d duplicates", d)
	}
	t.Logf("replay --from earliest wrote all %d outputs again in %v (rk-out %d -> %d)", want, time.Since(t3).Round(time.Millisecond), total, n)
	srv.stop(t, 20*time.Second)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// checkRunOutput checks the outputs of the rk pipeline: each record is an
// expected one (re-keyed, rewritten), every expected one is there, a key's
// records are in input order (first occurrences), and a repeat is only
// where redelivery may put one (nil: nowhere). It returns the repeats.
func checkRunOutput(t *testing.T, out map[int32][]*kgo.Record, expected map[int]bool, mayRepeat func(int32, int64) bool) int {
	t.Helper()
	type val struct {
		K      string `json:"k"`
		N      int    `json:"n"`
		Double int    `json:"double"`
	}
	seen := map[int]bool{}
	lastOf := map[string]int{}
	keyPart := map[string]int32{}
	dups := 0
	for part, rs := range out {
		for _, r := range rs {
			var v val
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("rk-out %d/%d: %q: %v", part, r.Offset, r.Value, err)
			}
			if !expected[v.N] || string(r.Key) != v.K+"-out" || v.K != "k"+strconv.Itoa(v.N%64) || v.Double != 2*v.N {
				t.Fatalf("rk-out %d/%d: unexpected record key %q value %q", part, r.Offset, r.Key, r.Value)
			}
			key := string(r.Key)
			if p, ok := keyPart[key]; ok && p != part {
				t.Fatalf("key %s in rk-out partitions %d and %d", key, p, part)
			}
			keyPart[key] = part
			if seen[v.N] {
				dups++
				if mayRepeat == nil || !mayRepeat(part, r.Offset) {
					t.Fatalf("rk-out %d/%d: n=%d written again where no redelivery could be", part, r.Offset, v.N)
				}
				continue
			}
			seen[v.N] = true
			if last, ok := lastOf[key]; ok && v.N <= last {
				t.Fatalf("rk-out %d/%d: key %s has n=%d after n=%d", part, r.Offset, key, v.N, last)
			}
			lastOf[key] = v.N
		}
	}
	for n := range expected {
		if !seen[n] {
			t.Fatalf("n=%d is missing from rk-out", n)
		}
	}
	return dups
}

// evictMembers removes every member of group with a LeaveGroup naming
// their member ids.
func evictMembers(t *testing.T, ctx context.Context, cl *kgo.Client, adm *kadm.Client, group string) {
	t.Helper()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	g := gs[group]
	if len(g.Members) == 0 {
		return
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, m := range g.Members {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.MemberID
		req.Members = append(req.Members, lm)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("leave group: %v", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("leave group: error code %d", resp.ErrorCode)
	}
	for _, m := range resp.Members {
		if m.ErrorCode != 0 {
			t.Fatalf("leave group: member %s: error code %d", m.MemberID, m.ErrorCode)
		}
	}
	t.Logf("removed %d dead member(s) from group %s", len(req.Members), group)
}

// TestPipelineRunStopCommitsBatchInFlight: `weir pipeline run` says
// "Ctrl-C stops after the batch in flight is written and committed" (and
// the node's pipeline host relies on the same when it replaces or stops a
// pipeline), so after SIGTERM the group's committed input offset covers
// every output written: a restart writes nothing twice.
func TestPipelineRunStopCommitsBatchInFlight(t *testing.T) {
	bin := buildWeir(t)
	srv := startPipelineServe(t, bin, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r := runWeir(t, bin, nil, "", "topic", "create", "stop-in", "-p", "1", "-b", srv.kafka); r.code != 0 {
		t.Fatalf("topic create: %s", r.stderr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const records = 50000
	var rs []*kgo.Record
	for n := range records {
		rs = append(rs, &kgo.Record{Topic: "stop-in", Value: []byte(strconv.Itoa(n))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	adm := pollAdmin(t, srv.kafka)
	dir := t.TempDir()
	// The signal lands at different points of a batch: right after some
	// outputs are acknowledged, and then a little later each time.
	for trial := 1; trial <= 6; trial++ {
		name := "stop" + strconv.Itoa(trial)
		spec := writeFile(t, filepath.Join(dir, name+".yaml"), "pipeline: "+name+"\ninput:\n  topics: [stop-in]\nstages:\n  - map: 'value'\noutput: "+name+"-out\n")
		p := startBg(t, bin, "pipeline", "run", spec, "--brokers", srv.kafka)
		waitFor(t, name+" to write 3000 outputs", 20*time.Second, func() bool {
			if p.exited() {
				t.Fatalf("pipeline run exited: %v", p.err)
			}
			return sumOffsets(endOffsets(ctx, adm, name+"-out")) >= 3000
		})
		time.Sleep(time.Duration(trial-1) * 4 * time.Millisecond) // not synchronisation: moves the signal within a batch
		if err := p.signal(t, syscall.SIGTERM, 20*time.Second); err != nil {
			t.Fatalf("%s: pipeline run after SIGTERM: %v", name, err)
		}
		written := sumOffsets(endOffsets(ctx, adm, name+"-out"))
		committed, err := adm.FetchOffsets(ctx, "weir-pipeline-"+name)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := committed.Lookup("stop-in", 0)
		t.Logf("%s: SIGTERM after %d outputs written; committed input offset %d", name, written, c.At)
		if c.At != written {
			t.Errorf("%s: after SIGTERM (exit 0) %d outputs are written but the group committed input offset %d: "+
				"%d outputs of the batch in flight were written without their commit, so a restart writes them again",
				name, written, c.At, written-c.At)
		}
	}
}
