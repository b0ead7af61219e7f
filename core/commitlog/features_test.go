package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

func TestRetentionByTime(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_000_000_000)}
	l, err := Open(t.TempDir(), Options{SegmentBytes: 2048, Retention: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 30; i++ {
		if _, err := l.Append(testBatch(t, "old", 3, clock.Now().UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(30 * time.Minute)
	if n, err := l.EnforceRetention(); err != nil || n != 0 {
		t.Fatalf("deleted %d (%v) before retention passed", n, err)
	}
	clock.Advance(31 * time.Minute)
	keepFrom := l.LogEndOffset()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(testBatch(t, "new", 3, clock.Now().UnixMilli())); err != nil {
			t.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	n, err := l.EnforceRetention()
	if err != nil || n == 0 {
		t.Fatalf("retention deleted %d segments: %v", n, err)
	}
	// Only the segment holding the old/new boundary may keep old records.
	if start := l.LogStartOffset(); start > keepFrom {
		t.Fatalf("log start %d passed the first new record %d", start, keepFrom)
	}
	// An idle log whose records all expired empties (the active segment is rolled).
	clock.Advance(2 * time.Hour)
	if _, err := l.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != l.LogEndOffset() || l.Size() != 0 {
		t.Fatalf("expired log keeps [%d, %d) %d bytes", l.LogStartOffset(), l.LogEndOffset(), l.Size())
	}
	if b, err := l.Read(l.LogEndOffset(), 100); err != nil || len(b) != 0 {
		t.Fatalf("read at end of emptied log: %d bytes, %v", len(b), err)
	}
}

func TestCompaction(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(5_000_000_000)}
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, Cleanup: CleanupCompact, DeleteRetention: time.Hour, Now: clock.Now}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	old := clock.Now().UnixMilli()
	want := map[string]string{}
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("key%d", i%10)
		v := fmt.Sprintf("v%d", i)
		if _, err := l.Append(keyedBatch(t, k, []byte(v), old)); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	// key0 gets an old tombstone, key1 a fresh one.
	if _, err := l.Append(keyedBatch(t, "key0", nil, old)); err != nil {
		t.Fatal(err)
	}
	delete(want, "key0")
	clock.Advance(2 * time.Hour)
	if _, err := l.Append(keyedBatch(t, "key1", nil, clock.Now().UnixMilli())); err != nil {
		t.Fatal(err)
	}
	delete(want, "key1")
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	leo := l.LogEndOffset()
	l.SetHighWatermark(leo)
	sizeBefore := l.Size()
	st, err := l.Compact()
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordsRemoved < 190 || l.Size() >= sizeBefore {
		t.Fatalf("compaction removed %d records, size %d -> %d", st.RecordsRemoved, sizeBefore, l.Size())
	}
	check := func(l *Log) {
		t.Helper()
		got := map[string]string{}
		tombstones := map[string]bool{}
		prev := int64(-1)
		for _, b := range readAll(t, l, l.LogStartOffset()) {
			recs, err := record.Records(b, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset <= prev {
					t.Fatalf("offsets not increasing: %d after %d", r.Offset, prev)
				}
				prev = r.Offset
				if _, dup := got[string(r.Key)]; dup || tombstones[string(r.Key)] {
					t.Fatalf("key %s appears twice after compaction", r.Key)
				}
				if r.Value == nil {
					tombstones[string(r.Key)] = true
					continue
				}
				got[string(r.Key)] = string(r.Value)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after compaction: %v, want %v", got, want)
		}
		if tombstones["key0"] || !tombstones["key1"] {
			t.Fatalf("tombstones kept: %v; want only the fresh key1", tombstones)
		}
		if l.LogEndOffset() != leo {
			t.Fatalf("leo %d, want %d", l.LogEndOffset(), leo)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check(l)
}

func TestOffsetForTimestamp(t *testing.T) {
	l, err := Open(t.TempDir(), Options{SegmentBytes: 2048, IndexIntervalBytes: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Batch i holds 3 records at timestamps 100*i, +1, +2 (out of order inside).
	for i := 0; i < 60; i++ {
		recs := []record.Record{
			{Offset: 0, Timestamp: int64(100*i) + 2, Value: []byte("a")},
			{Offset: 1, Timestamp: int64(100 * i), Value: []byte("b")},
			{Offset: 2, Timestamp: int64(100*i) + 1, Value: []byte("c")},
		}
		b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	l.SetHighWatermark(l.LogEndOffset())
	for _, tc := range []struct {
		ts, off, recTS int64
		found          bool
	}{
		{0, 0, 2, true}, {1, 0, 2, true}, {3, 3, 102, true}, {100, 3, 102, true},
		{2501, 75, 2502, true}, {5902, 177, 5902, true}, {5903, 0, 0, false},
	} {
		off, ts, found, err := l.OffsetForTimestamp(tc.ts)
		if err != nil || found != tc.found || (found && (off != tc.off || ts != tc.recTS)) {
			t.Errorf("OffsetForTimestamp(%d) = %d, %d, %v, %v; want %d, %d, %v", tc.ts, off, ts, found, err, tc.off, tc.recTS, tc.found)
		}
	}
}

func TestGroupCommitConcurrentAppendersAndReaders(t *testing.T) {
	// fsync takes a millisecond, as on a disk, so appenders pile up behind it.
	var syncs atomic.Int64
	efs := vfs.NewErrorFS(vfs.NewMem(), func(op vfs.Op) error {
		if op.Kind == vfs.OpSync {
			syncs.Add(1)
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	l, err := Open("/gc", Options{FS: efs, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	syncsBefore := syncs.Load()
	const writers, each = 8, 100
	var wg sync.WaitGroup
	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() { // a reader that follows the high watermark and checks every batch
		defer close(readerErr)
		off := int64(0)
		for {
			select {
			case <-done:
				return
			default:
			}
			ch := l.HighWatermarkChanged()
			b, err := l.Read(off, 32<<10)
			if err != nil {
				readerErr <- err
				return
			}
			if len(b) == 0 {
				select {
				case <-ch:
				case <-done:
					return
				}
				continue
			}
			for len(b) > 0 {
				h, batch, rest, err := record.Next(b)
				if err == nil {
					_, err = record.ValidateStored(batch)
				}
				if err != nil || h.BaseOffset > off {
					readerErr <- fmt.Errorf("reader at %d: batch %d: %v", off, h.BaseOffset, err)
					return
				}
				off, b = h.LastOffset()+1, rest
			}
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				info, err := l.Append(testBatch(t, fmt.Sprintf("w%d-%d", w, i), 2, 1))
				if err != nil {
					t.Error(err)
					return
				}
				if l.DurableOffset() <= info.LastOffset {
					t.Errorf("append of %d returned before it was durable (%d)", info.LastOffset, l.DurableOffset())
				}
				l.SetHighWatermark(info.LastOffset + 1)
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != writers*each*2 {
		t.Fatalf("leo %d", l.LogEndOffset())
	}
	n := syncs.Load() - syncsBefore
	t.Logf("%d appends shared %d fsyncs", writers*each, n)
	if n > writers*each/2 {
		t.Fatalf("%d appends made %d fsyncs: appenders do not share fsyncs", writers*each, n)
	}
}

func TestFsyncErrorFailsLog(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailKind(vfs.OpSync, 2, vfs.EIO))
	l, err := Open("/l", Options{FS: efs})
	if err != nil {
		t.Fatal(err)
	}
	var failedAt int
	for i := 0; i < 10; i++ {
		_, err := l.Append(testBatch(t, "f", 1, 1))
		if err != nil {
			if !errors.Is(err, ErrFailed) || !errors.Is(err, vfs.EIO) {
				t.Fatalf("append %d: %v; want ErrFailed wrapping EIO", i, err)
			}
			if failedAt == 0 {
				failedAt = i
			}
		} else if failedAt != 0 {
			t.Fatalf("append %d succeeded after the log failed at %d", i, failedAt)
		}
	}
	if failedAt == 0 {
		t.Fatal("no append failed")
	}
	if err := l.Close(); err == nil {
		t.Fatal("close of a failed log reported success")
	}
}

func TestFullDiskLeavesLogUsable(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem, vfs.FailKind(vfs.OpWrite, 3, vfs.ENOSPC))
	efs.SetTornWrites(true)
	l, err := Open("/l", Options{FS: efs})
	if err != nil {
		t.Fatal(err)
	}
	var acked [][]byte
	for i := 0; i < 8; i++ {
		b := testBatch(t, fmt.Sprintf("d%d", i), 2, 1)
		if _, err := l.Append(b); err != nil {
			if !errors.Is(err, vfs.ENOSPC) {
				t.Fatalf("append %d: %v", i, err)
			}
			continue
		}
		acked = append(acked, bytes.Clone(b))
	}
	if len(acked) != 7 || l.Err() != nil {
		t.Fatalf("acked %d, log err %v; want 7 and a usable log", len(acked), l.Err())
	}
	l.SetHighWatermark(l.LogEndOffset())
	got := readAll(t, l, 0)
	for i := range acked {
		if !bytes.Equal(got[i], acked[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedIndexIsRebuilt(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{FS: mem, SegmentBytes: 2048, IndexIntervalBytes: 100}
	l, err := Open("/l", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := l.Append(testBatch(t, "i", 2, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Garbage in one index, another index missing, a time index truncated.
	f, err := mem.Create(path.Join("/l", segmentName(segs[0], indexSuffix)))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0})
	f.Close()
	if err := mem.Remove(path.Join("/l", segmentName(segs[1], indexSuffix))); err != nil {
		t.Fatal(err)
	}
	f, err = mem.OpenAppend(path.Join("/l", segmentName(segs[2], timeIndexSuffix)))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(5)
	f.Close()
	l, err = Open("/l", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for off := int64(0); off < l.LogEndOffset(); off++ {
		b, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.ParseHeader(b)
		if err != nil || off < h.BaseOffset || off > h.LastOffset() {
			t.Fatalf("read(%d) after index rebuild: %v %d..%d", off, err, h.BaseOffset, h.LastOffset())
		}
	}
	if off, _, found, err := l.OffsetForTimestamp(20); err != nil || !found || off != 40 {
		t.Fatalf("timestamp lookup after rebuild: %d %v %v", off, found, err)
	}
}

func TestFlushInterval(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	l, err := Open("/l", Options{FS: efs, Flush: FlushPolicy{Mode: FlushInterval, Batches: 5, Interval: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 4; i++ {
		if _, err := l.Append(testBatch(t, "n", 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(testBatch(t, "n", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if d := l.DurableOffset(); d != 5 {
		t.Fatalf("after 5 batches durable %d, want 5", d)
	}
	if _, err := l.Append(testBatch(t, "n", 1, 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.DurableOffset() != 6 {
		if time.Now().After(deadline) {
			t.Fatalf("interval flush did not happen: durable %d", l.DurableOffset())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRollBySegmentAge(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_000_000)}
	l, err := Open(t.TempDir(), Options{SegmentAge: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(testBatch(t, "a", 1, 1)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(20 * time.Second)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before the age limit", n)
	}
	clock.Advance(time.Minute)
	if _, err := l.Append(testBatch(t, "b", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if segs := l.Segments(); len(segs) != 2 || segs[1] != 3 {
		t.Fatalf("segments %v; want a new one at offset 3 after the age limit", segs)
	}
}

// TestCorruptionBelowRecoveryPointIsAnError: a batch that was fsynced (below
// the recovery point) and then damaged must stop Open, not be truncated
// away with everything after it.
func TestCorruptionBelowRecoveryPointIsAnError(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{FS: mem}
	l, err := Open("/l", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := l.Append(testBatch(t, "d", 2, 1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Reopen and close: the recovery point is now 10. Then tear the second
	// batch on "disk" and mark the shutdown unclean.
	l, err = Open("/l", opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, err := mem.OpenAppend(path.Join("/l", segmentName(0, logSuffix)))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	f.ReadAt(buf, 0)
	h, _ := record.ParseHeader(buf)
	damaged := mem.Crash(nil)
	g, _ := damaged.OpenAppend(path.Join("/l", segmentName(0, logSuffix)))
	g.Truncate(int64(h.Size()) + 30) // the second batch is torn below the recovery point
	g.Sync()
	g.Close()
	// Make the shutdown look unclean so recovery scans.
	if err := vfs.WriteFileAtomic(damaged, "/l", checkpointName, checkpoint{recoveryPoint: 10}.encode()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("/l", Options{FS: damaged}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open over damaged fsynced data: %v; want ErrCorrupt", err)
	}
}

// TestIdleOpenCloseWritesNothing: opening and closing a cleanly shut down,
// unchanged log costs no write and no fsync (a broker with thousands of idle
// partitions restarts fast); the first append marks it dirty first, so a
// crash after it still recovers.
func TestIdleOpenCloseWritesNothing(t *testing.T) {
	mem := vfs.NewMem()
	l, err := Open("/l", Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(testBatch(t, "a", 3, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var writes []string
	efs := vfs.NewErrorFS(mem, func(op vfs.Op) error {
		switch op.Kind {
		case vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpSyncDir, vfs.OpRename, vfs.OpRemove, vfs.OpTruncate:
			writes = append(writes, op.Kind.String()+" "+op.Name)
		}
		return nil
	})
	l, err = Open("/l", Options{FS: efs})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(writes) != 0 {
		t.Fatalf("idle open+close wrote: %v", writes)
	}
	// Now change it and crash: the append must survive.
	l, err = Open("/l", Options{FS: mem})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(testBatch(t, "b", 2, 1)); err != nil {
		t.Fatal(err)
	}
	crashed := mem.Crash(nil)
	l2, err := Open("/l", Options{FS: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.LogEndOffset() != 5 {
		t.Fatalf("after a crash following the first append: leo %d, want 5", l2.LogEndOffset())
	}
}
