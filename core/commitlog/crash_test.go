package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// The crash tests run one deterministic workload (appends that roll
// segments, an explicit Roll, retention by time and by size, Close, a
// reopen, more appends, Close) over vfs.NewErrorFS(vfs.NewMem()), and for
// every operation index i of the fault-free run either kill the "process"
// at i (every operation from i on fails, then the filesystem crashes) or
// fail only operation i (the workload goes on), then reopen and check the
// recovered log against a model of what was appended.

const crashDir = "/data/topic-0"

var discardLogger = slog.New(slog.DiscardHandler)

var crashT0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// crashBatches are the producer batches of the workload: varying record
// counts and sizes, some large enough to roll a 2 KiB segment on their own.
// Batch i carries timestamps crashT0 + i minutes and values tagged "w<i>".
var crashBatches = sync.OnceValue(func() [][]byte {
	var out [][]byte
	for i := range 40 {
		n := 1 + (i*7)%6
		vlen := 8 + (i*53)%200
		if i%9 == 4 {
			n, vlen = 1, 1500
		}
		recs := make([]record.Record, n)
		for j := range recs {
			v := []byte(fmt.Sprintf("w%d-%d-", i, j))
			v = append(v, bytes.Repeat([]byte{byte('a' + i%26)}, vlen)...)
			recs[j] = record.Record{
				Offset:    int64(j),
				Timestamp: crashT0.Add(time.Duration(i) * time.Minute).UnixMilli(),
				Key:       []byte(fmt.Sprintf("k%d", (i+j)%7)),
				Value:     v,
			}
		}
		b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
})

func crashOptions(fsys vfs.FS, now func() time.Time) Options {
	return Options{
		FS:                 fsys,
		SegmentBytes:       2048,
		IndexIntervalBytes: 128,
		Flush:              FlushPolicy{Mode: FlushAlways}, // the workload may change it
		Retention:          30 * time.Minute,
		RetentionBytes:     5000,
		Now:                now,
		Logger:             discardLogger,
	}
}

// appended is a batch the log accepted (wrote and published), as stored.
type appended struct {
	base, last int64
	data       []byte
}

// outcome is what a workload run did, as far as its caller could observe.
type outcome struct {
	model      []appended // the log's batches in offset order, as the writer saw them
	acked      int64      // every offset below was acknowledged (Append returned nil) or reported durable
	maxStart   int64      // the log start offset never went above this
	violations []string   // broken promises seen during the run
}

func (o *outcome) violate(format string, args ...any) {
	o.violations = append(o.violations, fmt.Sprintf(format, args...))
}

// noteOpen syncs the model with a freshly opened log: nothing acknowledged
// may be gone, and batches past the recovered end are forgotten (their
// offsets will be reused).
func (o *outcome) noteOpen(l *Log) {
	leo := l.LogEndOffset()
	if leo < o.acked {
		o.violate("reopen: log end %d below acknowledged end %d", leo, o.acked)
	}
	n := len(o.model)
	for n > 0 && o.model[n-1].base >= leo {
		n--
	}
	o.model = o.model[:n]
	if n > 0 && o.model[n-1].last+1 != leo {
		o.violate("reopen: log end %d inside batch [%d, %d]", leo, o.model[n-1].base, o.model[n-1].last)
	}
	if d := l.DurableOffset(); d != leo {
		o.violate("reopen: durable offset %d, log end %d", d, leo)
	}
	o.acked = max(o.acked, leo) // Open made everything it recovered durable
	o.maxStart = max(o.maxStart, l.LogStartOffset())
}

// runWorkload runs the crash workload on fsys with FlushAlways.
func runWorkload(fsys vfs.FS, stopOnErr bool) *outcome {
	return runWorkloadFlush(fsys, stopOnErr, FlushPolicy{Mode: FlushAlways})
}

// runWorkloadFlush runs the crash workload on fsys. With stopOnErr, the
// first error ends it (the process died); otherwise errors are tolerated as
// a server would: a failed Append is just not acknowledged, a failed Open is
// retried once, a failed Close is followed by the reopen anyway. Besides
// successful Appends, whatever DurableOffset reports counts as acknowledged.
func runWorkloadFlush(fsys vfs.FS, stopOnErr bool, flush FlushPolicy) *outcome {
	batches := crashBatches()
	o := &outcome{}
	clk := &fakeClock{t: crashT0.Add(time.Minute)}
	var l *Log
	open := func() bool {
		for range 2 {
			var err error
			opts := crashOptions(fsys, clk.Now)
			opts.Flush = flush
			if l, err = Open(crashDir, opts); err == nil {
				o.noteOpen(l)
				return true
			}
			if stopOnErr {
				return false
			}
		}
		return false
	}
	appendBatches := func(from, to int) bool {
		for i := from; i < to; i++ {
			b := bytes.Clone(batches[i])
			before := l.LogEndOffset()
			info, err := l.Append(b)
			if after := l.LogEndOffset(); after > before {
				o.model = append(o.model, appended{base: before, last: after - 1, data: b})
			}
			clk.Advance(time.Minute)
			o.acked = max(o.acked, l.DurableOffset())
			if err != nil {
				if stopOnErr {
					return false
				}
				continue
			}
			if info.BaseOffset != before || info.LastOffset+1 != l.LogEndOffset() {
				o.violate("append %d: info %+v, log end before %d after %d", i, info, before, l.LogEndOffset())
			}
			if flush.Mode == FlushAlways {
				o.acked = max(o.acked, info.LastOffset+1)
			}
		}
		return true
	}
	ok := func(err error) bool { return err == nil || !stopOnErr }
	closeLog := func() bool {
		err := l.Close()
		if err == nil {
			o.acked = max(o.acked, l.LogEndOffset()) // a clean close made everything durable
		}
		return ok(err)
	}
	roll := func() bool {
		err := l.Roll()
		o.acked = max(o.acked, l.DurableOffset())
		return ok(err)
	}
	retention := func() bool {
		_, err := l.EnforceRetention()
		o.acked = max(o.acked, l.DurableOffset())
		o.maxStart = max(o.maxStart, l.LogStartOffset())
		return ok(err)
	}

	_ = open() &&
		appendBatches(0, 16) &&
		roll() &&
		appendBatches(16, 26) &&
		func() bool { clk.Advance(20 * time.Minute); return true }() &&
		retention() &&
		appendBatches(26, 32) &&
		closeLog() &&
		open() &&
		appendBatches(32, 38) &&
		retention() &&
		appendBatches(38, 40) &&
		closeLog()
	return o
}

// verifyRecovered opens the log on fsys (no faults) and checks it against
// o: Open succeeds; every batch from the log start passes ValidateStored;
// offsets are dense up to the log end; every batch equals, byte for byte,
// the batch the writer appended at that offset (so the log is a prefix of
// what was appended); nothing acknowledged is lost; retention never
// removed more than the writer saw it remove. Then the log must take an
// append and survive a clean close and reopen.
func verifyRecovered(fsys vfs.FS, o *outcome) error {
	if len(o.violations) > 0 {
		return fmt.Errorf("during the workload: %s", strings.Join(o.violations, "; "))
	}
	clk := &fakeClock{t: crashT0.Add(24 * time.Hour)}
	l, err := Open(crashDir, crashOptions(fsys, clk.Now))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	start, leo := l.LogStartOffset(), l.LogEndOffset()
	if err := checkLogAgainst(l, o); err != nil {
		return err
	}

	// The recovered log is a working log.
	b := bytes.Clone(crashBatches()[3])
	info, err := l.Append(b)
	if err != nil {
		return fmt.Errorf("append after recovery: %w", err)
	}
	if info.BaseOffset != leo {
		return fmt.Errorf("append after recovery got base %d, want %d", info.BaseOffset, leo)
	}
	closed = true
	if err := l.Close(); err != nil {
		return fmt.Errorf("close after recovery: %w", err)
	}
	l2, err := Open(crashDir, crashOptions(fsys, clk.Now))
	if err != nil {
		return fmt.Errorf("reopen after recovery: %w", err)
	}
	defer l2.Close()
	if l2.LogStartOffset() != start || l2.LogEndOffset() != info.LastOffset+1 {
		return fmt.Errorf("after append and clean reopen: log [%d, %d), want [%d, %d)", l2.LogStartOffset(), l2.LogEndOffset(), start, info.LastOffset+1)
	}
	o2 := &outcome{model: append(o.model[:len(o.model):len(o.model)], appended{info.BaseOffset, info.LastOffset, b}), acked: info.LastOffset + 1, maxStart: start}
	return checkLogAgainst(l2, o2)
}

// checkLogAgainst reads the whole log batch by batch (through the offset
// index) and checks it against the model o.
func checkLogAgainst(l *Log, o *outcome) error {
	start, leo, hw := l.LogStartOffset(), l.LogEndOffset(), l.HighWatermark()
	if hw != leo {
		return fmt.Errorf("high watermark %d after open, log end %d", hw, leo)
	}
	if leo < o.acked {
		return fmt.Errorf("acknowledged data lost: log end %d, acknowledged up to %d", leo, o.acked)
	}
	if start > o.maxStart {
		return fmt.Errorf("log start %d past the largest start %d the writer saw", start, o.maxStart)
	}
	byBase := make(map[int64]appended, len(o.model))
	for _, a := range o.model {
		byBase[a.base] = a
	}
	next := start
	for next < leo {
		buf, err := l.Read(next, 1)
		if err != nil {
			return fmt.Errorf("read at %d (log [%d, %d)): %w", next, start, leo, err)
		}
		if len(buf) == 0 {
			return fmt.Errorf("read at %d returned nothing, log end %d", next, leo)
		}
		h, batch, rest, err := record.Next(buf)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("read at %d: not one whole batch (%d bytes left): %v", next, len(rest), err)
		}
		if _, err := record.ValidateStored(batch); err != nil {
			return fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
		}
		if h.BaseOffset != next {
			return fmt.Errorf("offsets not dense: batch at %d, expected %d", h.BaseOffset, next)
		}
		a, ok := byBase[h.BaseOffset]
		if !ok {
			return fmt.Errorf("batch at %d (last %d) was never appended at that offset", h.BaseOffset, h.LastOffset())
		}
		if a.last != h.LastOffset() || !bytes.Equal(a.data, batch) {
			return fmt.Errorf("batch at %d differs from the one appended there", h.BaseOffset)
		}
		next = h.LastOffset() + 1
	}
	if next != leo {
		return fmt.Errorf("batches end at %d, log end %d", next, leo)
	}
	if b, err := l.Read(leo, 1<<20); err != nil || len(b) != 0 {
		return fmt.Errorf("read at the log end: %d bytes, %v", len(b), err)
	}
	return nil
}

// faultRun is one workload run under an injector, with the crash images to
// check afterwards.
type faultRun struct {
	name     string
	injector func(i int64) vfs.Injector
	torn     bool
	stop     bool        // crash at i: the workload ends at the first error
	flush    FlushPolicy // zero: FlushAlways
}

func countWorkloadOps(t *testing.T) int64 {
	t.Helper()
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	o := runWorkload(efs, true)
	n := efs.Ops()
	mem := vfs.NewMem()
	if o2 := runWorkload(mem, true); len(o2.model) != 40 || o2.acked != o.acked {
		t.Fatalf("fault-free workload: %d batches, acked %d", len(o2.model), o2.acked)
	}
	if err := verifyRecovered(mem, o); err != nil {
		t.Fatalf("fault-free workload: %v", err)
	}
	return n
}

// TestCrashWorkload checks the log for every operation index of the
// workload: crashed at i (all later operations fail, then a power cut with
// and without torn tails and partly applied directory operations), or with
// only operation i failing (EIO; ENOSPC with a torn write), then reopened
// on the same filesystem and on a crash image of it.
func TestCrashWorkload(t *testing.T) {
	t.Parallel()
	n := countWorkloadOps(t)
	t.Logf("workload: %d filesystem operations", n)
	if n < 200 {
		t.Fatalf("workload did only %d operations; expected rolls, retention and reopen", n)
	}
	runs := []faultRun{
		{name: "crash-at", injector: func(i int64) vfs.Injector { return vfs.FailFrom(i, vfs.EIO) }, stop: true},
		{name: "crash-at-flush-interval", injector: func(i int64) vfs.Injector { return vfs.FailFrom(i, vfs.EIO) }, stop: true, flush: FlushPolicy{Mode: FlushInterval, Batches: 3}},
		{name: "crash-at-flush-never", injector: func(i int64) vfs.Injector { return vfs.FailFrom(i, vfs.EIO) }, stop: true, flush: FlushPolicy{Mode: FlushNever}},
		{name: "fail-at-EIO", injector: func(i int64) vfs.Injector { return vfs.FailAt(i, vfs.EIO) }},
		{name: "fail-at-ENOSPC-torn", injector: func(i int64) vfs.Injector { return vfs.FailAt(i, vfs.ENOSPC) }, torn: true},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ops := workloadOps(r.flush)
			failures := 0
			for i := range int64(len(ops)) {
				mem := vfs.NewMem()
				efs := vfs.NewErrorFS(mem, r.injector(i))
				efs.SetTornWrites(r.torn)
				o := runWorkloadFlush(efs, r.stop, r.flush)
				images := []struct {
					name string
					fs   vfs.FS
				}{
					{"power cut", mem.Crash(nil)},
					{"power cut with torn tails", mem.Crash(rand.New(rand.NewPCG(1, uint64(i))))},
				}
				if !r.stop {
					// The process lives on: reopen what it left.
					images = append(images, struct {
						name string
						fs   vfs.FS
					}{"same filesystem", mem})
				}
				for _, img := range images {
					if err := verifyRecovered(img.fs, o); err != nil {
						t.Errorf("fault at op %d (%s %s), %s: %v", i, ops[i].Kind, ops[i].Name, img.name, err)
						if failures++; failures >= 5 {
							t.FailNow()
						}
					}
				}
			}
		})
	}
}

// workloadOps lists the operations of the fault-free workload.
func workloadOps(flush FlushPolicy) []vfs.Op {
	var ops []vfs.Op
	var mu sync.Mutex
	efs := vfs.NewErrorFS(vfs.NewMem(), func(op vfs.Op) error {
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
		return nil
	})
	runWorkloadFlush(efs, true, flush)
	return ops
}

// TestCrashDuringRecovery takes crash images that need recovery (torn tails,
// partly applied directory operations) and crashes again at every operation
// of the recovering Open, or fails just that operation and opens again.
func TestCrashDuringRecovery(t *testing.T) {
	t.Parallel()
	n := countWorkloadOps(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var points []int64
	for k := range int64(16) {
		points = append(points, (n*k)/16+rng.Int64N(max(n/16, 1)))
	}
	for _, i := range points {
		t.Run(fmt.Sprint("crash-at-", i), func(t *testing.T) {
			t.Parallel()
			mem := vfs.NewMem()
			o := runWorkload(vfs.NewErrorFS(mem, vfs.FailFrom(i, vfs.EIO)), true)
			img := mem.Crash(rand.New(rand.NewPCG(2, uint64(i))))

			// Count the operations of a recovering Open.
			probe := vfs.NewErrorFS(img.Crash(nil), nil)
			l, err := Open(crashDir, crashOptions(probe, time.Now))
			if err != nil {
				t.Fatalf("open of crash image: %v", err)
			}
			ops := probe.Ops()
			l.Close()
			t.Logf("recovery: %d operations", ops)

			failures := 0
			report := func(j int64, what string, err error) {
				t.Errorf("recovery op %d of %d, %s: %v", j, ops, what, err)
				if failures++; failures >= 5 {
					t.FailNow()
				}
			}
			for j := range ops {
				// Crash at j: the recovering process dies.
				c := img.Crash(nil)
				if l, err := Open(crashDir, crashOptions(vfs.NewErrorFS(c, vfs.FailFrom(j, vfs.EIO)), time.Now)); err == nil {
					l.Close() // a fault the open tolerates; the close fails too
				}
				if err := verifyRecovered(c.Crash(nil), o); err != nil {
					report(j, "crashed, power cut", err)
				}
				if err := verifyRecovered(c.Crash(rand.New(rand.NewPCG(3, uint64(j)))), o); err != nil {
					report(j, "crashed, power cut with torn tails", err)
				}

				// Fail only j, with a torn write if it is one, then open again.
				for _, torn := range []bool{false, true} {
					c := img.Crash(nil)
					efs := vfs.NewErrorFS(c, vfs.FailAt(j, vfs.EIO))
					efs.SetTornWrites(torn)
					if l, err := Open(crashDir, crashOptions(efs, time.Now)); err == nil {
						if err := l.Close(); err != nil && !errors.Is(err, ErrFailed) && !errors.Is(err, vfs.ErrInjected) {
							report(j, "failed once, close", err)
						}
					}
					if err := verifyRecovered(c.Crash(nil), o); err != nil {
						report(j, fmt.Sprintf("failed once (torn %v), power cut", torn), err)
					}
					if err := verifyRecovered(c, o); err != nil {
						report(j, fmt.Sprintf("failed once (torn %v), open again", torn), err)
					}
				}
			}
		})
	}
}

// TestCrashDuringTruncatingRecovery damages a batch in the middle of the
// log (a sealed segment with later segments after it, no checkpoint, so
// recovery scans everything) and crashes, or fails once, at every operation
// of the Open that truncates the log there and drops the later segments.
// Whatever survives must be the log up to the damaged batch: never the
// shortened segment followed by a later one (a hole with data after it).
func TestCrashDuringTruncatingRecovery(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	o := runWorkload(mem, true)
	if len(o.violations) > 0 {
		t.Fatal(o.violations)
	}
	names, err := mem.List(crashDir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, name := range names {
		if _, ok := parseSegmentName(name, logSuffix); ok {
			logs = append(logs, crashDir+"/"+name)
		}
	}
	if len(logs) < 3 {
		t.Fatalf("want at least 3 segments, have %v", logs)
	}
	// Flip a byte in the records of the last batch of the second segment.
	damaged := logs[1]
	f, err := mem.OpenAppend(damaged)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	var pos int
	var badBase int64
	for rest := data; len(rest) > 0; {
		h, batch, r, err := record.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) == 0 {
			pos, badBase = len(data)-len(batch), h.BaseOffset
		}
		rest = r
	}
	data[len(data)-5] ^= 0xff
	if err := f.Truncate(int64(pos)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[pos:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := mem.Remove(crashDir + "/" + checkpointName); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir(crashDir); err != nil {
		t.Fatal(err)
	}
	img := mem.Crash(nil)

	// The recovered log ends exactly before the damaged batch.
	want := &outcome{acked: badBase, maxStart: o.maxStart}
	for _, a := range o.model {
		if a.base < badBase {
			want.model = append(want.model, a)
		}
	}
	check := func(fsys vfs.FS) error {
		if err := verifyRecovered(fsys, want); err != nil {
			return err
		}
		l, err := Open(crashDir, crashOptions(fsys, time.Now))
		if err != nil {
			return err
		}
		defer l.Close()
		// verifyRecovered appended one batch after the recovered end.
		h, _ := record.ParseHeader(crashBatches()[3])
		if got := l.LogEndOffset() - int64(h.LastOffsetDelta+1); got != badBase {
			return fmt.Errorf("recovered log ended at %d, want %d (the damaged batch)", got, badBase)
		}
		return nil
	}

	probe := vfs.NewErrorFS(img.Crash(nil), nil)
	l, err := Open(crashDir, crashOptions(probe, time.Now))
	if err != nil {
		t.Fatalf("recovering open: %v", err)
	}
	ops := probe.Ops()
	if l.LogEndOffset() != badBase {
		t.Fatalf("recovered log end %d, want %d", l.LogEndOffset(), badBase)
	}
	l.Close()

	failures := 0
	report := func(j int64, what string, err error) {
		t.Errorf("recovery op %d of %d, %s: %v", j, ops, what, err)
		if failures++; failures >= 5 {
			t.FailNow()
		}
	}
	for j := range ops {
		c := img.Crash(nil)
		if l, err := Open(crashDir, crashOptions(vfs.NewErrorFS(c, vfs.FailFrom(j, vfs.EIO)), time.Now)); err == nil {
			l.Close()
		}
		for k, crashed := range []*vfs.Mem{c.Crash(nil), c.Crash(rand.New(rand.NewPCG(4, uint64(j))))} {
			if err := check(crashed); err != nil {
				report(j, fmt.Sprintf("crashed (image %d)", k), err)
			}
		}
		c = img.Crash(nil)
		if l, err := Open(crashDir, crashOptions(vfs.NewErrorFS(c, vfs.FailAt(j, vfs.EIO)), time.Now)); err == nil {
			l.Close()
		}
		if err := check(c); err != nil {
			report(j, "failed once, open again", err)
		}
	}
}

// TestCrashAfterRetentionWithReader deletes segments by retention while a
// reader has the oldest one pinned, then cuts the power: the log must not
// come back with the pinned segment and a hole after it.
func TestCrashAfterRetentionWithReader(t *testing.T) {
	t.Parallel()
	mem := vfs.NewMem()
	clk := &fakeClock{t: crashT0}
	opts := crashOptions(mem, clk.Now)
	opts.RetentionBytes = 1
	l, err := Open(crashDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	o := &outcome{}
	for i, b := range crashBatches()[:20] {
		b = bytes.Clone(b)
		info, err := l.Append(b)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		o.model = append(o.model, appended{info.BaseOffset, info.LastOffset, b})
		o.acked = info.LastOffset + 1
	}
	if len(l.Segments()) < 4 {
		t.Fatalf("want at least 4 segments, have %v", l.Segments())
	}
	l.mu.RLock()
	pinned := l.segs[0]
	pinned.ref() // as Read does while it reads the segment
	l.mu.RUnlock()
	n, err := l.EnforceRetention()
	if err != nil || n < 2 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	o.maxStart = l.LogStartOffset()
	img := mem.Crash(nil) // the reader still holds the oldest segment
	pinned.unref()
	l.Close()
	if err := verifyRecovered(img, o); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(crashDir, crashOptions(img.Crash(nil), clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.LogStartOffset() != o.maxStart {
		t.Fatalf("log start %d after crash, retention had moved it to %d", l2.LogStartOffset(), o.maxStart)
	}
}
