package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	cleanedSuffix   = ".cleaned"
	tmpSuffix       = ".tmp"
)

func segmentName(base int64, suffix string) string { return fmt.Sprintf("%020d%s", base, suffix) }

// parseSegmentName returns the base offset of a segment file name with the
// given suffix.
func parseSegmentName(name, suffix string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, suffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

// segment is one .log file and its indexes. The appender owns the fields
// marked "appender"; readers use size, next and the indexes under mu.
type segment struct {
	fs   vfs.FS
	dir  string
	base int64
	file vfs.File

	size atomic.Int64 // bytes of whole batches published to readers
	next atomic.Int64 // offset after the last batch; base when empty

	mu    sync.RWMutex
	idx   []offsetEntry
	tidx  []timeEntry
	maxTS int64 // largest batch MaxTimestamp; -1 when none
	// position and relative offset of the batch that first reached maxTS
	maxTSRel, maxTSPos uint32

	// appender
	sinceIndex  int
	sinceTime   int
	firstAppend time.Time

	refs atomic.Int32 // the log's reference plus readers'
}

func (s *segment) path(suffix string) string { return path.Join(s.dir, segmentName(s.base, suffix)) }

func newSegment(fsys vfs.FS, dir string, base int64, f vfs.File) *segment {
	s := &segment{fs: fsys, dir: dir, base: base, file: f, maxTS: -1}
	s.next.Store(base)
	s.refs.Store(1)
	return s
}

// ref pins the segment so its file stays open; callers hold l.mu.
func (s *segment) ref() { s.refs.Add(1) }

// unref drops a pin; the last one closes the file. Deleted segments have
// their files removed by whoever deletes them; an open file keeps working.
func (s *segment) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.file.Close()
}

// noteBatch updates the in-memory indexes for a batch of n bytes written at
// pos. interval is the index interval in bytes.
func (s *segment) noteBatch(h record.Header, pos int64, n int, interval int) {
	rel := uint32(h.BaseOffset - s.base)
	s.mu.Lock()
	if pos > 0 && s.sinceIndex >= interval {
		s.idx = append(s.idx, offsetEntry{rel: rel, pos: uint32(pos)})
		s.sinceIndex = 0
	}
	s.sinceIndex += n
	if h.MaxTimestamp > s.maxTS {
		s.maxTS, s.maxTSRel, s.maxTSPos = h.MaxTimestamp, rel, uint32(pos)
	}
	if s.sinceTime >= interval || len(s.tidx) == 0 {
		s.addTimeEntryLocked()
		s.sinceTime = 0
	}
	s.sinceTime += n
	s.mu.Unlock()
}

// addTimeEntryLocked records the running maximum if it grew since the last
// entry.
func (s *segment) addTimeEntryLocked() {
	if s.maxTS < 0 {
		return
	}
	if n := len(s.tidx); n > 0 && s.tidx[n-1].ts >= s.maxTS {
		return
	}
	s.tidx = append(s.tidx, timeEntry{ts: s.maxTS, rel: s.maxTSRel, pos: s.maxTSPos})
}

func (s *segment) maxTimestamp() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxTS
}

// writeIndexes writes both index files from memory and fsyncs them. The
// final time entry (the segment's maximum) is added first.
func (s *segment) writeIndexes() error {
	s.mu.Lock()
	s.addTimeEntryLocked()
	ib := make([]byte, 0, len(s.idx)*offsetEntrySize)
	for _, e := range s.idx {
		ib = appendOffsetEntry(ib, e)
	}
	tb := make([]byte, 0, len(s.tidx)*timeEntrySize)
	for _, e := range s.tidx {
		tb = appendTimeEntry(tb, e)
	}
	s.mu.Unlock()
	if err := vfs.WriteFileSync(s.fs, s.path(indexSuffix), ib); err != nil {
		return err
	}
	return vfs.WriteFileSync(s.fs, s.path(timeIndexSuffix), tb)
}

// loadIndexes reads the index files of a segment whose data is trusted and
// checks them against the data: sizes, ordering and, for the last offset
// entry, the batch header it points at. It reports false when they must be
// rebuilt.
func (s *segment) loadIndexes(size int64) (bool, error) {
	ib, err := vfs.ReadFile(s.fs, s.path(indexSuffix))
	if err != nil {
		if vfs.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	tb, err := vfs.ReadFile(s.fs, s.path(timeIndexSuffix))
	if err != nil {
		if vfs.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	idx, err := decodeOffsetIndex(ib, size)
	if err != nil {
		return false, nil
	}
	tidx, err := decodeTimeIndex(tb, size)
	if err != nil {
		return false, nil
	}
	if size > 0 && len(tidx) == 0 {
		// Every non-empty segment with timestamps has an entry; an empty
		// time index with data means the file was lost or never written.
		// Segments whose batches all carry timestamp -1 are rare; rebuilding
		// them is cheap and correct.
		return false, nil
	}
	if n := len(idx); n > 0 {
		var hdr [record.HeaderSize]byte
		if _, err := s.file.ReadAt(hdr[:], int64(idx[n-1].pos)); err != nil {
			return false, nil
		}
		if int64(binary.BigEndian.Uint64(hdr[:8])) != s.base+int64(idx[n-1].rel) {
			return false, nil
		}
	}
	s.mu.Lock()
	s.idx, s.tidx = idx, tidx
	if n := len(tidx); n > 0 {
		s.maxTS, s.maxTSRel, s.maxTSPos = tidx[n-1].ts, tidx[n-1].rel, tidx[n-1].pos
	}
	s.mu.Unlock()
	s.size.Store(size)
	return true, nil
}

// scanResult is what a scan of a segment's data found.
type scanResult struct {
	validEnd int64 // bytes of valid batches from the start
	next     int64 // offset after the last valid batch
	bad      error // why scanning stopped before the file's end; nil when it reached it
}

// scan reads the segment from the start, validates every batch and rebuilds
// the in-memory indexes. It stops at the first invalid or torn batch.
func (s *segment) scan(fileSize int64, interval int) (scanResult, error) {
	s.mu.Lock()
	s.idx, s.tidx, s.maxTS, s.sinceIndex, s.sinceTime = nil, nil, -1, 0, 0
	s.mu.Unlock()
	r := chunkReader{f: s.file, size: fileSize}
	res := scanResult{next: s.base}
	pos := int64(0)
	for pos < fileSize {
		hb, err := r.at(pos, record.HeaderSize)
		if err != nil {
			return res, err
		}
		if len(hb) < record.HeaderSize {
			res.bad = fmt.Errorf("torn batch header at position %d (%d of %d bytes)", pos, len(hb), record.HeaderSize)
			break
		}
		h, err := record.ParseHeader(hb)
		if err != nil {
			res.bad = fmt.Errorf("batch at position %d: %w", pos, err)
			break
		}
		bb, err := r.at(pos, h.Size())
		if err != nil {
			return res, err
		}
		if len(bb) < h.Size() {
			res.bad = fmt.Errorf("torn batch at position %d (%d of %d bytes)", pos, len(bb), h.Size())
			break
		}
		if _, err := record.ValidateStored(bb); err != nil {
			res.bad = fmt.Errorf("batch at position %d: %w", pos, err)
			break
		}
		if h.BaseOffset < res.next || h.LastOffset()-s.base > int64(^uint32(0)) {
			res.bad = fmt.Errorf("batch at position %d has offset %d, expected at least %d", pos, h.BaseOffset, res.next)
			break
		}
		s.noteBatch(h, pos, h.Size(), interval)
		pos += int64(h.Size())
		res.next = h.LastOffset() + 1
		res.validEnd = pos
	}
	s.size.Store(res.validEnd)
	s.next.Store(res.next)
	return res, nil
}

// chunkReader reads a file through a window of at least 1 MiB so scans make
// few system calls.
type chunkReader struct {
	f     vfs.File
	size  int64
	buf   []byte
	start int64
}

// at returns up to n bytes at pos (fewer only at the end of the file). The
// slice is valid until the next call.
func (r *chunkReader) at(pos int64, n int) ([]byte, error) {
	if pos >= r.start && pos+int64(n) <= r.start+int64(len(r.buf)) {
		return r.buf[pos-r.start : pos-r.start+int64(n)], nil
	}
	want := max(n, 1<<20)
	if rem := r.size - pos; int64(want) > rem {
		want = int(rem)
	}
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r.buf, r.start = r.buf[:m], pos
	return r.buf[:min(n, m)], nil
}

// scanHeaders walks batch headers from pos until match returns true.
func (s *segment) scanHeaders(pos, limit int64, match func(record.Header) bool) (int64, record.Header, bool, error) {
	var buf [16 << 10]byte
	var bufStart, bufLen int64 = 0, 0
	for pos+record.HeaderSize <= limit {
		if pos < bufStart || pos+record.HeaderSize > bufStart+bufLen {
			n := min(int64(len(buf)), limit-pos)
			m, err := s.file.ReadAt(buf[:n], pos)
			if int64(m) < record.HeaderSize {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return 0, record.Header{}, false, fmt.Errorf("commitlog: read %s at %d: %w", s.path(logSuffix), pos, err)
			}
			bufStart, bufLen = pos, int64(m)
		}
		h, err := record.ParseHeader(buf[pos-bufStart : pos-bufStart+record.HeaderSize])
		if err != nil {
			return 0, record.Header{}, false, fmt.Errorf("commitlog: %s at %d: %w", s.path(logSuffix), pos, err)
		}
		if match(h) {
			return pos, h, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, record.Header{}, false, nil
}
