package commitlog

import (
	"encoding/binary"
	"fmt"
	"sort"
)

const (
	offsetEntrySize = 8
	timeEntrySize   = 16
)

// offsetEntry locates the batch whose baseOffset is segment base + rel.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry: ts is the running maximum batch MaxTimestamp of the segment up
// to the batch at pos (relative offset rel), which is the batch that first
// reached it.
type timeEntry struct {
	ts  int64
	rel uint32
	pos uint32
}

func appendOffsetEntry(b []byte, e offsetEntry) []byte {
	b = binary.BigEndian.AppendUint32(b, e.rel)
	return binary.BigEndian.AppendUint32(b, e.pos)
}

func appendTimeEntry(b []byte, e timeEntry) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
	b = binary.BigEndian.AppendUint32(b, e.rel)
	return binary.BigEndian.AppendUint32(b, e.pos)
}

// decodeOffsetIndex parses an .index file and checks that entries strictly
// increase and point inside a segment of size bytes.
func decodeOffsetIndex(b []byte, size int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("offset index length %d is not a multiple of %d", len(b), offsetEntrySize)
	}
	out := make([]offsetEntry, 0, len(b)/offsetEntrySize)
	for i := 0; i < len(b); i += offsetEntrySize {
		e := offsetEntry{rel: binary.BigEndian.Uint32(b[i:]), pos: binary.BigEndian.Uint32(b[i+4:])}
		if int64(e.pos) >= size {
			return nil, fmt.Errorf("offset index entry %d points at %d, past segment size %d", i/offsetEntrySize, e.pos, size)
		}
		if n := len(out); n > 0 && (e.rel <= out[n-1].rel || e.pos <= out[n-1].pos) {
			return nil, fmt.Errorf("offset index entry %d does not increase", i/offsetEntrySize)
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeTimeIndex parses a .timeindex file with the same checks, and
// timestamps that never decrease.
func decodeTimeIndex(b []byte, size int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index length %d is not a multiple of %d", len(b), timeEntrySize)
	}
	out := make([]timeEntry, 0, len(b)/timeEntrySize)
	for i := 0; i < len(b); i += timeEntrySize {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i:])),
			rel: binary.BigEndian.Uint32(b[i+8:]),
			pos: binary.BigEndian.Uint32(b[i+12:]),
		}
		if int64(e.pos) >= size {
			return nil, fmt.Errorf("time index entry %d points at %d, past segment size %d", i/timeEntrySize, e.pos, size)
		}
		if n := len(out); n > 0 && (e.ts < out[n-1].ts || e.rel < out[n-1].rel || e.pos < out[n-1].pos) {
			return nil, fmt.Errorf("time index entry %d decreases", i/timeEntrySize)
		}
		out = append(out, e)
	}
	return out, nil
}

// floorOffset returns the position of the last indexed batch whose relative
// offset is <= rel, or 0.
func floorOffset(idx []offsetEntry, rel uint32) uint32 {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].rel > rel })
	if i == 0 {
		return 0
	}
	return idx[i-1].pos
}

// floorTime returns the position of the last time entry with ts < target:
// no batch before it can hold a timestamp >= target. 0 when none.
func floorTime(idx []timeEntry, target int64) uint32 {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].ts >= target })
	if i == 0 {
		return 0
	}
	return idx[i-1].pos
}
