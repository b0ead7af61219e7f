package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestScaleSmall runs the whole scale benchmark with a few hundred
// partitions and a 64 MiB fill, and checks that every verification held
// and every figure was filled in.
func TestScaleSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := Scale(ctx, ScaleOptions{Partitions: 300, Topics: 2, LogBytes: 64 << 20, Dir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if res.Written != 300 || res.Read != 300 || res.Restart.PartitionsAtOne != 300 || !res.Restart.FillTailRead {
		t.Fatalf("checks: written %d, read %d, at one after restart %d, tail read %v", res.Written, res.Read, res.Restart.PartitionsAtOne, res.Restart.FillTailRead)
	}
	f := res.Fill
	wantRecs := int64(64<<20) / 1024
	if f == nil || f.Records != wantRecs || f.EndOffset != wantRecs || f.EndOffsetAfterRestart != wantRecs || f.ValueBytes != 64<<20 ||
		f.DiskBytes < f.ValueBytes || f.Segments != 1 || f.OpenAlone <= 0 || f.MBPerSec <= 0 {
		t.Fatalf("fill: %+v", f)
	}
	for _, name := range []string{"start", "create", "write", "read", "fill", "shutdown", "restart", "verify", "final shutdown", "open fill log alone"} {
		if st, ok := res.Stage(name); !ok || st.Elapsed <= 0 {
			t.Errorf("stage %q: %+v, %v", name, st, ok)
		}
	}
	for _, name := range []string{"baseline", "created", "written", "read", "filled", "restarted"} {
		s, ok := res.Snapshot(name)
		if !ok || s.RSSKiB <= 0 || s.PeakRSSKiB < s.RSSKiB || s.HeapInuseKiB <= 0 || s.FDs <= 0 || s.Goroutines <= 0 {
			t.Errorf("snapshot %q: %+v, %v", name, s, ok)
		}
	}
	// One open .log file per partition: the baseline has the 8 of
	// __consumer_offsets, later snapshots the 300 more (and the fill's).
	base, _ := res.Snapshot("baseline")
	written, _ := res.Snapshot("written")
	restarted, _ := res.Snapshot("restarted")
	if written.FDLogFiles-base.FDLogFiles != 300 || restarted.FDLogFiles-base.FDLogFiles != 301 {
		t.Errorf(".log files: baseline %d, written %d, restarted %d", base.FDLogFiles, written.FDLogFiles, restarted.FDLogFiles)
	}
	if res.Cost.LogFiles != 1 || res.Cost.FDs < 1 || res.Cost.RSSKiB == 0 || res.Restart.Start <= 0 || res.Restart.Metadata < res.Restart.Start || res.Restart.Shutdown <= 0 {
		t.Errorf("cost %+v, restart %+v", res.Cost, res.Restart)
	}
	for _, want := range []string{"scale: create took", "scale: fill took", "scale: restart took", "scale: restarted: RSS"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var out bytes.Buffer
	res.Format(&out)
	for _, want := range []string{"per partition:", "open files:", "restart after a clean shutdown", "checks: 300/300 written"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Format lacks %q:\n%s", want, out.String())
		}
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back ScaleResult
	if err := json.Unmarshal(raw, &back); err != nil || back.Restart.PartitionsAtOne != 300 || back.Fill == nil || back.Cost.LogFiles != 1 {
		t.Fatalf("JSON round trip: %v: %s", err, raw)
	}
	t.Logf("\n%s", out.String())
}

// TestScaleFDLimit checks that a partition count the open-file limit
// cannot hold fails before anything starts, naming the limit and the need.
func TestScaleFDLimit(t *testing.T) {
	soft, _ := fdLimit()
	if soft < 0 {
		t.Skip("no open-file limit here")
	}
	_, err := Scale(context.Background(), ScaleOptions{Partitions: int(soft) + 1, LogBytes: -1, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "ulimit -n") || !strings.Contains(err.Error(), "need about") {
		t.Fatalf("err = %v", err)
	}
}

func TestScaleOptionsDefaults(t *testing.T) {
	o := ScaleOptions{}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.Partitions != 10000 || o.Topics != 1 || o.LogBytes != 10_000_000_000 || o.RecordSize != 1024 || o.BatchBytes != 1<<20 {
		t.Fatalf("defaults: %+v", o)
	}
	o = ScaleOptions{Partitions: 25000}
	if err := o.defaults(); err != nil || o.Topics != 3 {
		t.Fatalf("25000 partitions: %v, %d topics", err, o.Topics)
	}
	o = ScaleOptions{Partitions: 25000, Topics: 2}
	if err := o.defaults(); err == nil {
		t.Fatal("12500 per topic accepted")
	}
	o = ScaleOptions{LogBytes: -1}
	if err := o.defaults(); err != nil || o.fillRecords() != 0 {
		t.Fatalf("skip fill: %v, %d records", err, o.fillRecords())
	}
}
