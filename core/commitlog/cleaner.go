package commitlog

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// EnforceRetention deletes the oldest whole segments that are past the
// retention time (their newest batch timestamp is older than now minus
// Options.Retention) or that make the log larger than
// Options.RetentionBytes. The active segment is rolled first when it alone
// is past the retention time, so an idle topic also empties. It returns the
// number of segments deleted. It does nothing unless the cleanup policy
// includes CleanupDelete.
func (l *Log) EnforceRetention() (int, error) {
	if l.opts.Cleanup&CleanupDelete == 0 {
		return 0, nil
	}
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	now := l.opts.Now()
	expired := func(s *segment) bool {
		ts := s.maxTimestamp()
		return l.opts.Retention > 0 && s.size.Load() > 0 && ts >= 0 && now.Sub(time.UnixMilli(ts)) > l.opts.Retention
	}

	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	l.mu.RLock()
	onlyActive := len(l.segs) == 1 || (len(l.segs) > 1 && !expired(l.segs[len(l.segs)-2]))
	act := l.segs[len(l.segs)-1]
	l.mu.RUnlock()
	// Only data below the high watermark may go: readers have not seen the rest.
	if onlyActive && expired(act) && l.Err() == nil && l.hw.Load() == l.leo.Load() {
		if err := l.roll(); err != nil {
			l.appendMu.Unlock()
			return 0, err
		}
	}
	l.appendMu.Unlock()

	var doomed []*segment
	l.mu.RLock()
	total := int64(0)
	for _, s := range l.segs {
		total += s.size.Load()
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		if !expired(s) && !(l.opts.RetentionBytes > 0 && total-s.size.Load() >= l.opts.RetentionBytes) {
			break
		}
		total -= s.size.Load()
		doomed = append(doomed, s)
	}
	l.mu.RUnlock()
	if len(doomed) == 0 {
		return 0, nil
	}
	// Remove the files oldest first, and only then drop the segments
	// (readers keep reading the open files). Whatever a crash keeps of
	// these removals is then a prefix, so the log on disk still starts at a
	// segment boundary with no hole after it; if a removal fails, that
	// segment and the later ones stay in the log. Removing files only on the
	// last unref would let a segment pinned by a reader outlive a later one.
	n := 0
	var rerr error
	for _, s := range doomed {
		if err := l.fs.Remove(s.path(logSuffix)); err != nil && !vfs.IsNotExist(err) {
			rerr = err
			break
		}
		for _, suf := range []string{indexSuffix, timeIndexSuffix} {
			l.fs.Remove(s.path(suf)) // an index without its .log is removed by Open
		}
		n++
	}
	l.mu.Lock()
	l.segs = l.segs[n:]
	l.mu.Unlock()
	for _, s := range doomed[:n] {
		l.log.Info("deleted segment past retention", "segment", s.path(logSuffix), "bytes", s.size.Load())
		s.unref()
	}
	if rerr != nil {
		return n, fmt.Errorf("commitlog: retention in %s: %w", l.dir, rerr)
	}
	// Until the directory is synced a crash may bring the oldest segments
	// back, which retention deletes again.
	if err := l.fs.SyncDir(l.dir); err != nil {
		return n, fmt.Errorf("commitlog: retention in %s: %w", l.dir, err)
	}
	return n, nil
}

// errStopScan ends an eachBatch walk early.
var errStopScan = errors.New("commitlog: stop scan")

// CompactStats describes one compaction pass.
type CompactStats struct {
	Segments       int // sealed segments rewritten
	RecordsRemoved int
	BytesBefore    int64
	BytesAfter     int64
}

// Compact rewrites the sealed segments keeping, for each key, only the
// record with the highest offset among the records that are below the high
// watermark and durable (a newer record a crash could still take back
// supersedes nothing); records without a key are kept. A tombstone (null value) that is the latest for its key is removed
// once its timestamp is older than Options.DeleteRetention. Offsets never
// change: rewritten batches keep their base offset and offset range. The
// active segment is not touched. It does nothing unless the cleanup policy
// includes CleanupCompact.
func (l *Log) Compact() (CompactStats, error) {
	var st CompactStats
	if l.opts.Cleanup&CleanupCompact == 0 {
		return st, nil
	}
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	now := l.opts.Now()

	l.mu.RLock()
	if len(l.segs) < 2 || l.closed.Load() {
		l.mu.RUnlock()
		return st, nil
	}
	segs := append([]*segment(nil), l.segs...)
	for _, s := range segs {
		s.ref()
	}
	l.mu.RUnlock()
	defer func() {
		for _, s := range segs {
			s.unref()
		}
	}()

	// Pass 1: the latest offset of every key, over what is visible and
	// durable: a record a crash could take back must not supersede one it
	// cannot (the active segment's tail may not be fsynced yet).
	bound := min(l.hw.Load(), l.DurableOffset())
	latest := map[string]int64{}
	for _, s := range segs {
		err := s.eachBatch(func(h record.Header, b []byte) error {
			if h.LastOffset() >= bound {
				return errStopScan
			}
			if h.Control() {
				return nil
			}
			recs, err := record.Records(b, maxDecompressedPerBatch)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
			return nil
		})
		if err == errStopScan {
			break
		}
		if err != nil {
			return st, fmt.Errorf("commitlog: compact %s: %w", l.dir, err)
		}
	}

	// Pass 2: rewrite each sealed segment that has something to drop.
	tombstoneHorizon := now.Add(-l.opts.DeleteRetention).UnixMilli()
	hw := l.hw.Load()
	for i, s := range segs[:len(segs)-1] {
		if segs[i+1].base > hw { // not yet below the high watermark
			break
		}
		var out []byte
		removed := 0
		err := s.eachBatch(func(h record.Header, b []byte) error {
			if h.Control() {
				out = append(out, b...)
				return nil
			}
			recs, err := record.Records(b, maxDecompressedPerBatch)
			if err != nil {
				return err
			}
			keep := recs[:0:0]
			for _, r := range recs {
				if r.Key != nil {
					if latest[string(r.Key)] != r.Offset {
						continue
					}
					if r.Value == nil && r.Timestamp < tombstoneHorizon {
						continue
					}
				}
				keep = append(keep, r)
			}
			removed += len(recs) - len(keep)
			switch {
			case len(keep) == len(recs):
				out = append(out, b...)
			case len(keep) > 0:
				nb, err := record.Build(record.BuildOptions{
					BaseOffset: h.BaseOffset, PartitionLeaderEpoch: h.PartitionLeaderEpoch, Codec: h.Codec(),
					ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, BaseSequence: h.BaseSequence,
					Transactional: h.Transactional(), LogAppendTime: h.LogAppendTime(),
					LastOffsetDelta: new(h.LastOffsetDelta),
					BaseTimestamp:   new(h.BaseTimestamp), MaxTimestamp: new(h.MaxTimestamp),
				}, keep)
				if err != nil {
					return err
				}
				out = append(out, nb...)
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("commitlog: compact %s: %w", s.path(logSuffix), err)
		}
		if removed == 0 {
			continue
		}
		before := s.size.Load()
		if err := l.replaceSegment(s, out); err != nil {
			return st, fmt.Errorf("commitlog: compact %s: %w", s.path(logSuffix), err)
		}
		st.Segments++
		st.RecordsRemoved += removed
		st.BytesBefore += before
		st.BytesAfter += int64(len(out))
	}
	return st, nil
}

// replaceSegment swaps the data of the sealed segment old for data, crash
// safely: write data to <base>.log.cleaned and fsync it; remove the old
// indexes (so a crash can only leave a missing index, which Open rebuilds);
// rename the cleaned file over the .log; write fresh indexes.
func (l *Log) replaceSegment(old *segment, data []byte) error {
	logName := old.path(logSuffix)
	tmp := logName + cleanedSuffix
	if err := vfs.WriteFileSync(l.fs, tmp, data); err != nil {
		l.fs.Remove(tmp)
		return err
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(old.path(suf)); err != nil && !vfs.IsNotExist(err) {
			return err
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	if err := l.fs.Rename(tmp, logName); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	f, err := l.fs.OpenAppend(logName)
	if err != nil {
		return err
	}
	ns := newSegment(l.fs, l.dir, old.base, f)
	res, err := ns.scan(int64(len(data)), l.opts.IndexIntervalBytes)
	if err == nil && res.bad != nil {
		err = fmt.Errorf("%w: rewritten segment: %v", ErrCorrupt, res.bad)
	}
	if err == nil {
		err = ns.writeIndexes()
	}
	if err != nil {
		f.Close()
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	l.mu.Lock()
	swapped := false
	for i, s := range l.segs {
		if s == old {
			ns.next.Store(old.next.Load())
			l.segs[i] = ns
			swapped = true
		}
	}
	l.mu.Unlock()
	if !swapped { // deleted by retention meanwhile; cannot happen under cleanMu
		ns.unref()
		return nil
	}
	old.unref() // the log's reference; readers holding it keep the old inode
	return nil
}

// eachBatch calls fn for every batch of the segment, in order, reading the
// file sequentially. b is valid only during the call.
func (s *segment) eachBatch(fn func(h record.Header, b []byte) error) error {
	size := s.size.Load()
	r := chunkReader{f: s.file, size: size}
	for pos := int64(0); pos < size; {
		hb, err := r.at(pos, record.HeaderSize)
		if err != nil {
			return err
		}
		if len(hb) < record.HeaderSize {
			return fmt.Errorf("%w: short header at %d", io.ErrUnexpectedEOF, pos)
		}
		h, err := record.ParseHeader(hb)
		if err != nil {
			return err
		}
		b, err := r.at(pos, h.Size())
		if err != nil {
			return err
		}
		if len(b) < h.Size() {
			return fmt.Errorf("%w: short batch at %d", io.ErrUnexpectedEOF, pos)
		}
		if err := fn(h, b); err != nil {
			return err
		}
		pos += int64(h.Size())
	}
	return nil
}
