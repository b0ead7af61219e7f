package commitlog

import (
	"testing"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// Compaction may drop a record only for a newer one with the same key that
// a crash cannot take back. With a lazy flush policy the newest record of a
// key can sit unsynced in the active segment; if compaction let it
// supersede the durable, sealed one, a crash would lose the key entirely
// and the recovered log would not be a prefix of what was appended.
func TestCompactionKeepsRecordsSupersededOnlyByUnsyncedOnes(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(5_000_000_000)}
	m := vfs.NewMem()
	opts := Options{FS: m, SegmentBytes: 1024, Cleanup: CleanupCompact, DeleteRetention: time.Hour, Now: clock.Now,
		Flush: FlushPolicy{Mode: FlushInterval, Batches: 1000}, Logger: discardLogger}
	l, err := Open(crashDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := clock.Now().UnixMilli()
	if _, err := l.Append(keyedBatch(t, "k", []byte("v1"), ts)); err != nil {
		t.Fatal(err)
	}
	if err := l.Roll(); err != nil { // seals v1: fsynced
		t.Fatal(err)
	}
	if _, err := l.Append(keyedBatch(t, "k", []byte("v2"), ts)); err != nil { // not fsynced yet
		t.Fatal(err)
	}
	l.SetHighWatermark(l.LogEndOffset()) // as the broker does once the flush policy is met
	if _, err := l.Compact(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(crashDir, Options{FS: m.Crash(nil), Logger: discardLogger, Cleanup: CleanupCompact})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var vals []string
	for _, b := range readAll(t, l, l.LogStartOffset()) {
		recs, err := record.Records(b, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			vals = append(vals, string(r.Key)+"="+string(r.Value))
		}
	}
	if len(vals) != 1 || vals[0] != "k=v1" {
		t.Fatalf("after compaction and a crash the log holds %v, want [k=v1] (v2 was never fsynced)", vals)
	}
}
