package broker

import (
	"errors"
	"math"
	"testing"
)

// TestProducerTable walks the idempotence state machine through a script of
// batches and checks each verdict.
func TestProducerTable(t *testing.T) {
	tab := producerTable{}
	type step struct {
		pid     int64
		epoch   int16
		seq, n  int32
		wantDup int64 // base offset of the duplicate, or -1
		wantErr error
		writeAt int64 // base offset to record when written
	}
	steps := []step{
		{pid: 7, epoch: 0, seq: 0, n: 3, wantDup: -1, writeAt: 0},
		{pid: 7, epoch: 0, seq: 3, n: 2, wantDup: -1, writeAt: 3},
		{pid: 7, epoch: 0, seq: 0, n: 3, wantDup: 0},                                  // retry of the first batch
		{pid: 7, epoch: 0, seq: 3, n: 2, wantDup: 3},                                  // retry of the second
		{pid: 7, epoch: 0, seq: 6, n: 1, wantDup: -1, wantErr: ErrOutOfOrderSequence}, // gap: 5 expected
		{pid: 7, epoch: 0, seq: 5, n: 1, wantDup: -1, writeAt: 10},
		{pid: 9, epoch: 0, seq: 4, n: 1, wantDup: -1, wantErr: ErrOutOfOrderSequence}, // unknown producer must start at 0
		{pid: 7, epoch: 1, seq: 2, n: 1, wantDup: -1, wantErr: ErrOutOfOrderSequence}, // new epoch must start at 0
		{pid: 7, epoch: 1, seq: 0, n: 1, wantDup: -1, writeAt: 11},
		{pid: 7, epoch: 0, seq: 6, n: 1, wantDup: -1, wantErr: ErrProducerFenced}, // stale epoch
		{pid: -1, epoch: -1, seq: -1, n: 5, wantDup: -1, writeAt: 12},             // not idempotent: always written
	}
	for i, s := range steps {
		dup, err := tab.check(s.pid, s.epoch, s.seq, s.n)
		if !errors.Is(err, s.wantErr) || (err == nil) != (s.wantErr == nil) {
			t.Fatalf("step %d: err %v, want %v", i, err, s.wantErr)
		}
		got := int64(-1)
		if dup != nil {
			got = dup.Base
		}
		if got != s.wantDup {
			t.Fatalf("step %d: duplicate of %d, want %d", i, got, s.wantDup)
		}
		if err == nil && dup == nil {
			tab.record(s.pid, s.epoch, s.seq, s.n, s.writeAt, s.writeAt+int64(s.n)-1)
		}
	}
}

func TestProducerTableKeepsFiveBatches(t *testing.T) {
	tab := producerTable{}
	for i := int32(0); i < 8; i++ {
		if dup, err := tab.check(1, 0, i, 1); dup != nil || err != nil {
			t.Fatalf("batch %d: %v %v", i, dup, err)
		}
		tab.record(1, 0, i, 1, int64(i), int64(i))
	}
	if dup, _ := tab.check(1, 0, 3, 1); dup == nil || dup.Base != 3 {
		t.Fatalf("batch 3 (5th newest) not detected as duplicate: %v", dup)
	}
	if dup, err := tab.check(1, 0, 2, 1); dup != nil || err == nil {
		t.Fatalf("batch 2 is older than the last 5: dup %v err %v; want out of order", dup, err)
	}
}

func TestSequenceWraps(t *testing.T) {
	if got := seqAdd(math.MaxInt32, 1); got != 0 {
		t.Fatalf("seqAdd(max, 1) = %d", got)
	}
	tab := producerTable{}
	tab.record(1, 0, math.MaxInt32-1, 2, 0, 1)
	if dup, err := tab.check(1, 0, 0, 1); dup != nil || err != nil {
		t.Fatalf("sequence after wrap: %v %v", dup, err)
	}
}
