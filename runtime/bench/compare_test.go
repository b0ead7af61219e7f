package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCompareTiny runs the whole comparison with small counts and checks
// that every figure is there, measured and positive, and that each ratio is
// the quotient of the two measured figures it names.
func TestCompareTiny(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var progress bytes.Buffer
	res, err := Compare(ctx, CompareOptions{Records: 2000, Sizes: []int{100, 1024}, Dir: dir,
		FsyncIterations: 20, MemCopyBytes: 4 << 20, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, size := range []string{"100 B", "1 KiB"} {
		want = append(want, "weir produce "+size+" acks=1", "weir produce "+size+" acks=all", "weir consume "+size,
			"JetStream publish "+size, "JetStream consume "+size)
	}
	want = append(want, "weir produce 100 B acks=all, 8 producers", "weir produce 100 B acks=all, one at a time",
		"weir produce 100 B acks=all, one at a time, plain connection",
		"weir roundtrip 100 B, max", "weir roundtrip 100 B at 50% of max", "JetStream roundtrip 100 B, max", "JetStream roundtrip 100 B at 50% of max",
		"sequential write + fdatasync", "memory copy", "4 KiB write+fdatasync")
	if len(res.Rows) != len(want) {
		t.Errorf("%d rows, want %d: %+v", len(res.Rows), len(want), res.Rows)
	}
	for _, name := range want {
		row, ok := res.Row(name)
		if !ok {
			t.Errorf("row %q missing", name)
			continue
		}
		if row.Bytes <= 0 || row.Elapsed <= 0 || row.MBPerSec <= 0 {
			t.Errorf("row %q not measured: %+v", name, row)
		}
		if strings.HasSuffix(name, "at 50% of max") {
			// About 5 s at half the maximum rate, between 1000 and all records.
			if row.Records < 1000 || row.Records > 2000 || row.Bytes != row.Records*int64(row.Size) {
				t.Errorf("row %q: %+v", name, row)
			}
		} else if row.System == "weir" || row.System == "jetstream" {
			if row.Records != 2000 || row.Bytes != 2000*int64(row.Size) || row.RecordsPerSec <= 0 {
				t.Errorf("row %q: %+v", name, row)
			}
			if got := float64(row.Records) / row.Elapsed.Seconds(); math.Abs(got-row.RecordsPerSec) > 1e-6*got {
				t.Errorf("row %q: records/s %v, want %v", name, row.RecordsPerSec, got)
			}
		}
		if row.Op == "produce" || row.Op == "publish" || row.Op == "fsync-4k" || row.Op == "roundtrip" {
			if l := row.Latency; l == nil || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
				t.Errorf("row %q latency: %+v", name, row.Latency)
			}
		}
	}
	// The sequential write covers the bytes of weir's 1 KiB produce run.
	if sw, _ := res.Row("sequential write + fdatasync"); sw.Bytes != 2000*1024 {
		t.Errorf("sequential write of %d bytes, want %d", sw.Bytes, 2000*1024)
	}

	wantRatios := map[string][3]string{}
	for _, size := range []string{"100 B", "1 KiB"} {
		for _, w := range []string{"produce " + size + " acks=1", "produce " + size + " acks=all"} {
			wantRatios["weir "+w+" / JetStream publish "+size] = [3]string{"weir " + w, "JetStream publish " + size, "records_per_sec"}
		}
		wantRatios["weir consume "+size+" / JetStream consume "+size] = [3]string{"weir consume " + size, "JetStream consume " + size, "records_per_sec"}
	}
	for _, acks := range []string{"1", "all"} {
		w := "weir produce 1 KiB acks=" + acks
		wantRatios[w+" / sequential write + fdatasync"] = [3]string{w, "sequential write + fdatasync", "mb_per_sec"}
	}
	wantRatios["weir produce 100 B acks=all, 8 producers / JetStream publish 100 B"] = [3]string{"weir produce 100 B acks=all, 8 producers", "JetStream publish 100 B", "records_per_sec"}
	wantRatios["weir produce 100 B acks=all, one at a time / 4 KiB write+fdatasync"] = [3]string{"weir produce 100 B acks=all, one at a time", "4 KiB write+fdatasync", "p50_us"}
	wantRatios["weir produce 100 B acks=all, one at a time, plain connection / 4 KiB write+fdatasync"] = [3]string{"weir produce 100 B acks=all, one at a time, plain connection", "4 KiB write+fdatasync", "p50_us"}
	wantRatios["weir roundtrip 100 B, max / JetStream roundtrip 100 B, max"] = [3]string{"weir roundtrip 100 B, max", "JetStream roundtrip 100 B, max", "records_per_sec"}
	wantRatios["weir roundtrip 100 B at 50% of max / JetStream roundtrip 100 B at 50% of max"] = [3]string{"weir roundtrip 100 B at 50% of max", "JetStream roundtrip 100 B at 50% of max", "p99_us"}
	if len(res.Ratios) != len(wantRatios) {
		t.Errorf("%d ratios, want %d: %+v", len(res.Ratios), len(wantRatios), res.Ratios)
	}
	for _, q := range res.Ratios {
		w, ok := wantRatios[q.Name]
		if !ok {
			t.Errorf("unexpected ratio %+v", q)
			continue
		}
		delete(wantRatios, q.Name)
		if q.Numerator != w[0] || q.Denominator != w[1] || q.Field != w[2] {
			t.Errorf("ratio %q: %+v, want %v", q.Name, q, w)
		}
		a, _ := res.Row(q.Numerator)
		b, _ := res.Row(q.Denominator)
		x, y := a.RecordsPerSec, b.RecordsPerSec
		switch q.Field {
		case "mb_per_sec":
			x, y = a.MBPerSec, b.MBPerSec
		case "p50_us":
			x, y = float64(a.Latency.P50), float64(b.Latency.P50)
		case "p99_us":
			x, y = float64(a.Latency.P99), float64(b.Latency.P99)
		}
		if want := x / y; q.Value <= 0 || math.Abs(q.Value-want) > 1e-9*want {
			t.Errorf("ratio %q = %v, want %v / %v = %v", q.Name, q.Value, x, y, want)
		}
	}
	for name := range wantRatios {
		t.Errorf("ratio %q missing", name)
	}

	var out bytes.Buffer
	res.Format(&out)
	for _, s := range append(want, "sync_interval=2m", "flush.messages=1", "PublishAsync with at most 4000 in flight", "ratio", "x\n") {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
	for _, q := range res.Ratios {
		if !strings.Contains(out.String(), fmt.Sprintf("%.2fx", q.Value)) {
			t.Errorf("table lacks ratio %q = %.2fx:\n%s", q.Name, q.Value, out.String())
		}
	}
	if !strings.Contains(progress.String(), "compare: JetStream publish and consume 2000 x 1 KiB") {
		t.Errorf("progress: %s", progress.String())
	}
	// Everything was written under Dir and removed afterwards.
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("left behind in %s: %v %v", dir, ents, err)
	}
}

func TestCompareOptionsValidate(t *testing.T) {
	ctx := context.Background()
	if _, err := Compare(ctx, CompareOptions{Sizes: []int{0}}); err == nil {
		t.Error("size 0 accepted")
	}
	if _, err := Compare(ctx, CompareOptions{JetStreamSync: "sometimes"}); err == nil {
		t.Error("JetStream sync 'sometimes' accepted")
	}
	o := CompareOptions{Records: 1_000_000}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if got := o.recordsFor(100); got != 1_000_000 {
		t.Errorf("100 B: %d records", got)
	}
	if got := o.recordsFor(4096); got != 1<<30/4096 {
		t.Errorf("4 KiB: %d records, want the 1 GiB cap", got)
	}
	o.MaxBytes = -1
	if got := o.recordsFor(4096); got != 1_000_000 {
		t.Errorf("no cap: %d records", got)
	}
}

// TestReferenceMeasurements checks that the machine's reference figures
// come out positive and within what any machine can do.
func TestReferenceMeasurements(t *testing.T) {
	dir := t.TempDir()
	sw, err := SeqWrite(dir, 8<<20+123)
	if err != nil {
		t.Fatal(err)
	}
	// Between 1 MB/s and 100 GB/s.
	if sw.Bytes != 8<<20+123 || sw.Elapsed <= 0 || sw.MBPerSec < 1 || sw.MBPerSec > 100_000 {
		t.Errorf("sequential write: %+v", sw)
	}
	if got := float64(sw.Bytes) / sw.Elapsed.Seconds() / 1e6; math.Abs(got-sw.MBPerSec) > 1e-6*got {
		t.Errorf("sequential write MB/s %v, want %v", sw.MBPerSec, got)
	}

	mc, err := MemCopy(8<<20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Between 100 MB/s and 1 TB/s, at least 4 whole copies, for at least 50ms.
	if mc.Elapsed < 50*time.Millisecond || mc.Bytes < 4*8<<20 || mc.Bytes%(8<<20) != 0 || mc.MBPerSec < 100 || mc.MBPerSec > 1e6 {
		t.Errorf("memory copy: %+v", mc)
	}
	if _, err := MemCopy(0, time.Millisecond); err == nil {
		t.Error("memory copy of 0 bytes accepted")
	}

	fl, err := FsyncLatency(dir, 4096, 30)
	if err != nil {
		t.Fatal(err)
	}
	l := fl.Latency
	// A write+fdatasync takes at least a microsecond and less than 10s.
	if fl.Records != 30 || fl.Bytes != 30*4096 || fl.RecordsPerSec <= 0 || l == nil ||
		l.P50 < 1 || l.P50 > l.P99 || l.P99 > l.Max || l.Max > 10_000_000 {
		t.Errorf("fsync latency: %+v %+v", fl, l)
	}
	// Each operation is at most the whole run.
	if time.Duration(l.P50)*time.Microsecond > fl.Elapsed+time.Millisecond {
		t.Errorf("p50 %dµs longer than the run %v", l.P50, fl.Elapsed)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}
