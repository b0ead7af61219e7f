package broker

import (
	"fmt"
	"math"
)

// producerBatch is one batch an idempotent producer wrote to a partition.
type producerBatch struct {
	FirstSeq int32 `json:"first_seq"`
	LastSeq  int32 `json:"last_seq"`
	Base     int64 `json:"base"`
	Last     int64 `json:"last"`
}

// producerEntry is what a partition remembers of one producer id: its epoch
// and its last few batches (newest last).
type producerEntry struct {
	Epoch   int16           `json:"epoch"`
	Batches []producerBatch `json:"batches"`
}

// maxProducerBatches is how many batches per producer are kept for
// duplicate detection; Kafka clients keep at most 5 in flight.
const maxProducerBatches = 5

// producerTable is the idempotence state machine of one partition. It does
// no I/O; the partition calls check before a write and record after it.
type producerTable map[int64]*producerEntry

// check decides what to do with a batch from producer pid: dup != nil means
// it is an exact retry of a batch already written (answer with its
// offsets), err means reject it, neither means write it.
func (t producerTable) check(pid int64, epoch int16, firstSeq, count int32) (dup *producerBatch, err error) {
	if pid < 0 {
		return nil, nil
	}
	lastSeq := seqAdd(firstSeq, count-1)
	e := t[pid]
	switch {
	case e == nil:
		// A producer we have no state for starts at sequence 0. (Kafka also
		// accepts later sequences when the state was lost to retention; we
		// keep producer state with the log, so we do not need to.)
		if firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d starts at sequence %d, want 0", ErrOutOfOrderSequence, pid, firstSeq)
		}
		return nil, nil
	case epoch < e.Epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrProducerFenced, pid, epoch, e.Epoch)
	case epoch > e.Epoch:
		if firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d, want 0", ErrOutOfOrderSequence, pid, epoch, firstSeq)
		}
		return nil, nil
	}
	for i := range e.Batches {
		if b := &e.Batches[i]; b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			return b, nil
		}
	}
	if len(e.Batches) > 0 {
		if want := seqAdd(e.Batches[len(e.Batches)-1].LastSeq, 1); firstSeq != want {
			return nil, fmt.Errorf("%w: producer %d sent sequence %d, want %d", ErrOutOfOrderSequence, pid, firstSeq, want)
		}
	}
	return nil, nil
}

// record notes a written batch.
func (t producerTable) record(pid int64, epoch int16, firstSeq, count int32, base, last int64) {
	if pid < 0 {
		return
	}
	e := t[pid]
	if e == nil || epoch > e.Epoch {
		e = &producerEntry{Epoch: epoch}
		t[pid] = e
	}
	e.Batches = append(e.Batches, producerBatch{FirstSeq: firstSeq, LastSeq: seqAdd(firstSeq, count-1), Base: base, Last: last})
	if n := len(e.Batches); n > maxProducerBatches {
		e.Batches = append(e.Batches[:0], e.Batches[n-maxProducerBatches:]...)
	}
}

// seqAdd adds to a sequence number, wrapping from MaxInt32 to 0 as Kafka does.
func seqAdd(seq, n int32) int32 {
	if v := int64(seq) + int64(n); v > math.MaxInt32 {
		return int32(v - math.MaxInt32 - 1)
	} else {
		return int32(v)
	}
}
