package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestWorkerRunsDeployed: weir serve (which runs a worker) and a weir
// worker process run a pipeline deployed with weir pipeline apply, as two
// members of its group; a new revision replaces the old one on both, and
// every input record comes out; delete stops it.
func TestWorkerRunsDeployed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildWeir(t)
	srv := startServe(t, bin, t.TempDir())
	defer srv.stop(t, 30*time.Second)
	url := controlPlaneURL(t, srv)
	cl, adm := clientWithTopics(t, ctx, srv.kafka, 4, "events")
	w := startBg(t, bin, "worker", "--brokers", srv.kafka, "--nats", url)

	spec := filepath.Join(t.TempDir(), "tag.yaml")
	apply := func(version int) {
		t.Helper()
		body := fmt.Sprintf("pipeline: tag\ninput: {topics: [events], start: earliest}\nstages:\n  - map: '{\"n\": value.n, \"v\": %d}'\noutput: tagged\n", version)
		if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := runWeir(t, bin, []string{"WEIR_NATS=" + url}, "", "pipeline", "apply", spec); r.code != 0 {
			t.Fatalf("apply v%d: %s%s", version, r.stdout, r.stderr)
		}
	}
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for n := from; n < to; n++ {
			recs = append(recs, &kgo.Record{Topic: "events", Key: []byte(fmt.Sprint(n)), Value: []byte(fmt.Sprintf(`{"n": %d}`, n))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Outputs: n -> the versions seen.
	var mu sync.Mutex
	seen := map[int][]int{}
	go func() {
		rd, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.ConsumeTopics("tagged"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			return
		}
		defer rd.Close()
		for ctx.Err() == nil {
			rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var v struct{ N, V int }
				if json.Unmarshal(r.Value, &v) == nil {
					mu.Lock()
					seen[v.N] = append(seen[v.N], v.V)
					mu.Unlock()
				}
			})
		}
	}()
	waitAll := func(what string, from, to int, ok func(vs []int) bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			missing := -1
			for n := from; n < to && missing < 0; n++ {
				if !ok(seen[n]) {
					missing = n
				}
			}
			mu.Unlock()
			if missing < 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: record %d not (yet) as expected: %v\nworker:\n%s", what, missing, seen[missing], w.output.String())
			}
		}
	}
	seenOnce := func(vs []int) bool { return len(vs) > 0 }
	produce(0, 1000)
	apply(1)
	waitAll("v1", 0, 1000, seenOnce)
	d, err := adm.DescribeGroups(ctx, "weir-pipeline-tag")
	if err != nil {
		t.Fatal(err)
	}
	if g := d["weir-pipeline-tag"]; len(g.Members) != 2 {
		t.Fatalf("group members: %+v (want the node's worker and weir worker)", g.Members)
	}

	// v2: probe until both workers run it (a probe in each partition comes
	// out as v2), then every new record must be v2.
	apply(2)
	probe := 100000
	for deadline := time.Now().Add(60 * time.Second); ; probe += 4 {
		produce(probe, probe+4) // keys spread over the partitions
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		v2 := 0
		for n := 100000; n < probe+4; n++ {
			if vs := seen[n]; len(vs) > 0 && vs[len(vs)-1] == 2 {
				v2++
			}
		}
		last := seen[probe]
		mu.Unlock()
		if len(last) > 0 && last[len(last)-1] == 2 && v2 >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 never took over\nworker:\n%s", w.output.String())
		}
	}
	waitAll("probes", 100000, probe+4, seenOnce)
	produce(1000, 2000)
	waitAll("after v2", 1000, 2000, seenOnce)
	mu.Lock()
	v1After := 0
	for n := 1000; n < 2000; n++ {
		if vs := seen[n]; vs[len(vs)-1] != 2 {
			v1After++
		}
	}
	mu.Unlock()
	if v1After != 0 {
		t.Fatalf("after both workers switched, %d of 1000 new records came out of v1", v1After)
	}

	if r := runWeir(t, bin, []string{"WEIR_NATS=" + url}, "", "pipeline", "delete", "tag"); r.code != 0 {
		t.Fatalf("delete: %s%s", r.stdout, r.stderr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d, err := adm.DescribeGroups(ctx, "weir-pipeline-tag")
		if err == nil && len(d["weir-pipeline-tag"].Members) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group still has members after delete: %+v", d)
		}
	}
	if !strings.Contains(w.output.String(), "running deployed pipeline") {
		t.Fatalf("worker output:\n%s", w.output.String())
	}
}
