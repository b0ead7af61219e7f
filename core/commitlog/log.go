package commitlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// Log is one partition's log. All methods are safe for concurrent use.
type Log struct {
	dir  string
	fs   vfs.FS
	opts Options
	log  *slog.Logger

	cleanMu  sync.Mutex  // serializes retention and compaction
	appendMu sync.Mutex  // one appender at a time; guards the appender fields below
	closed   atomic.Bool // set under appendMu and mu
	epoch    int32
	flushT   *time.Timer
	// cleanOnDisk: the checkpoint on disk says clean and still describes
	// the log (nothing appended or rolled since a clean open). The first
	// change writes a dirty checkpoint first; Close of an unchanged log
	// writes nothing. Opening and closing idle partitions costs no fsync.
	cleanOnDisk bool

	mu   sync.RWMutex // guards segs
	segs []*segment   // by base offset; the last is the active segment

	leo      atomic.Int64
	hw       atomic.Int64
	failed   atomic.Pointer[error]
	pending  atomic.Int64 // batches appended since the last fsync (FlushInterval)
	notifyMu sync.Mutex
	notifyCh chan struct{}

	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool
	durable  int64 // every offset below it is fsynced; guarded by syncMu
}

// AppendInfo describes an appended batch.
type AppendInfo struct {
	BaseOffset int64 // offset of the batch's first record
	LastOffset int64 // offset of its last record
}

// Open opens the log in dir, creating it if needed, and recovers it (see
// the package doc). The high watermark starts at the log end offset:
// everything recovered is durable.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, fs: opts.FS, opts: opts, log: opts.Logger.With("log", dir), notifyCh: make(chan struct{})}
	l.syncCond = sync.NewCond(&l.syncMu)
	if err := l.open(); err != nil {
		for _, s := range l.segs {
			s.unref()
		}
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	return l, nil
}

func (l *Log) open() error {
	fsys, dir := l.fs, l.dir
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	names, err := fsys.List(dir)
	if err != nil {
		return err
	}
	var bases []int64
	logs := map[int64]bool{}
	for _, name := range names {
		if base, ok := parseSegmentName(name, logSuffix); ok {
			bases = append(bases, base)
			logs[base] = true
		}
	}
	for _, name := range names {
		stale := strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, tmpSuffix)
		for _, suf := range []string{indexSuffix, timeIndexSuffix} {
			if base, ok := parseSegmentName(name, suf); ok && !logs[base] {
				stale = true
			}
		}
		if stale {
			if err := fsys.Remove(path.Join(dir, name)); err != nil && !vfs.IsNotExist(err) {
				return err
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	cp, haveCP, err := readCheckpoint(fsys, dir)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		if haveCP && cp.recoveryPoint > 0 {
			return fmt.Errorf("%w: checkpoint says offsets below %d are durable but there are no segments", ErrCorrupt, cp.recoveryPoint)
		}
		f, err := fsys.Create(path.Join(dir, segmentName(0, logSuffix)))
		if err != nil {
			return err
		}
		if err := fsys.SyncDir(dir); err != nil {
			f.Close()
			return err
		}
		l.segs = []*segment{newSegment(fsys, dir, 0, f)}
		return l.finishOpen(0)
	}

	sizes := make([]int64, len(bases))
	for i, base := range bases {
		f, err := fsys.OpenAppend(path.Join(dir, segmentName(base, logSuffix)))
		if err != nil {
			return err
		}
		l.segs = append(l.segs, newSegment(fsys, dir, base, f))
		if sizes[i], err = f.Size(); err != nil {
			return err
		}
	}
	last := len(bases) - 1

	// Segments before recoverFrom hold only durable data: trust them and
	// their indexes. From recoverFrom on, scan and truncate.
	recoverFrom := 0
	clean := haveCP && cp.clean && cp.activeBase == bases[last] && cp.activeSize == sizes[last]
	switch {
	case clean:
		recoverFrom = len(bases)
	case haveCP:
		for i, base := range bases {
			if base <= cp.recoveryPoint {
				recoverFrom = i
			}
		}
	}
	for i := 0; i < recoverFrom; i++ {
		s := l.segs[i]
		ok, err := s.loadIndexes(sizes[i])
		if err != nil {
			return err
		}
		if !ok {
			l.log.Info("rebuilding index", "segment", s.path(logSuffix))
			res, err := s.scan(sizes[i], l.opts.IndexIntervalBytes)
			if err != nil {
				return err
			}
			if res.bad != nil {
				return fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path(logSuffix), res.bad)
			}
			if err := s.writeIndexes(); err != nil {
				return err
			}
		}
		if i < last {
			s.next.Store(l.segs[i+1].base)
		} else {
			s.next.Store(cp.logEnd)
		}
	}
	if recoverFrom == len(bases) {
		s := l.segs[last]
		if s.next.Load() < s.base {
			return fmt.Errorf("%w: checkpoint log end %d below active segment base %d", ErrCorrupt, cp.logEnd, s.base)
		}
		s.sinceIndex, s.sinceTime = int(sizes[last]), int(sizes[last])
		l.cleanOnDisk = true
		return l.finishOpen(s.next.Load())
	}

	l.log.Info("recovering log after unclean shutdown", "from_segment", l.segs[recoverFrom].base, "segments", len(bases)-recoverFrom)
	for i := recoverFrom; i <= last; i++ {
		s := l.segs[i]
		res, err := s.scan(sizes[i], l.opts.IndexIntervalBytes)
		if err != nil {
			return err
		}
		if i < last && res.bad == nil && res.next > l.segs[i+1].base {
			return fmt.Errorf("%w: segment %s ends at offset %d, past the next segment's base %d", ErrCorrupt, s.path(logSuffix), res.next, l.segs[i+1].base)
		}
		if res.bad != nil && haveCP && res.next < cp.recoveryPoint {
			// Offsets below the recovery point were fsynced: damage there is
			// a disk fault, not a torn tail; truncating would drop
			// acknowledged data silently.
			return fmt.Errorf("%w: %s: %v, below the recovery point %d", ErrCorrupt, s.path(logSuffix), res.bad, cp.recoveryPoint)
		}
		if res.bad != nil {
			l.log.Warn("truncating log at invalid batch", "segment", s.path(logSuffix), "position", res.validEnd, "dropped_bytes", sizes[i]-res.validEnd, "reason", res.bad)
			// Drop the later segments first, newest first, and make that
			// durable before truncating: a crash in between must never
			// leave a later segment after a shorter s (a hole with data
			// past it). A removal that fails fails the open, which can be
			// retried.
			for k := last; k > i; k-- {
				later := l.segs[k]
				for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
					if err := fsys.Remove(later.path(suf)); err != nil && !vfs.IsNotExist(err) {
						return err
					}
				}
				l.segs = l.segs[:k]
				later.unref()
			}
			if last > i {
				if err := fsys.SyncDir(dir); err != nil {
					return err
				}
			}
			last = i
			if err := s.file.Truncate(res.validEnd); err != nil {
				return err
			}
		}
		if err := s.file.Sync(); err != nil {
			return err
		}
		if i < last {
			if err := s.writeIndexes(); err != nil {
				return err
			}
			s.next.Store(l.segs[i+1].base)
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return err
	}
	s := l.segs[last]
	s.sinceIndex, s.sinceTime = int(s.size.Load()), int(s.size.Load())
	return l.finishOpen(s.next.Load())
}

// finishOpen publishes the offsets. After a recovery it also advances the
// recovery point to leo (everything recovered was fsynced); after a clean
// open the clean checkpoint stays until the first change.
func (l *Log) finishOpen(leo int64) error {
	l.leo.Store(leo)
	l.hw.Store(leo)
	l.durable = leo
	if act := l.segs[len(l.segs)-1]; act.size.Load() > 0 {
		act.firstAppend = l.opts.Now() // unknown after a restart: age counts from now
	}
	if l.cleanOnDisk {
		return nil
	}
	return writeCheckpoint(l.fs, l.dir, checkpoint{recoveryPoint: leo})
}

// markDirty replaces a clean checkpoint with a dirty one before the log
// changes, so a crash after the change recovers. Called with appendMu held.
func (l *Log) markDirty() error {
	if !l.cleanOnDisk {
		return nil
	}
	if err := writeCheckpoint(l.fs, l.dir, checkpoint{recoveryPoint: l.leo.Load()}); err != nil {
		return err
	}
	l.cleanOnDisk = false
	return nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset is the first offset still in the log.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[0].base
}

// LogEndOffset is the offset the next appended record gets.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// HighWatermark is the offset below which records are visible to readers.
func (l *Log) HighWatermark() int64 { return l.hw.Load() }

// DurableOffset is the offset below which every record has been fsynced.
func (l *Log) DurableOffset() int64 {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.durable
}

// SetHighWatermark advances the high watermark to hw (clamped to the log end
// offset); it never moves backwards. Waiters from HighWatermarkChanged are
// woken when it moves.
func (l *Log) SetHighWatermark(hw int64) {
	for {
		cur := l.hw.Load()
		hw = min(hw, l.leo.Load())
		if hw <= cur {
			return
		}
		if l.hw.CompareAndSwap(cur, hw) {
			break
		}
	}
	l.notifyMu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.notifyMu.Unlock()
}

// HighWatermarkChanged returns a channel that is closed the next time the
// high watermark advances. Long-polling readers select on it.
func (l *Log) HighWatermarkChanged() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notifyCh
}

// SetLeaderEpoch sets the partitionLeaderEpoch written into appended batches.
func (l *Log) SetLeaderEpoch(epoch int32) {
	l.appendMu.Lock()
	l.epoch = epoch
	l.appendMu.Unlock()
}

// Err returns the error that failed the log, or nil.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Log) fail(err error) error {
	err = fmt.Errorf("%w: %s: %w", ErrFailed, l.dir, err)
	if l.failed.CompareAndSwap(nil, &err) {
		l.log.Error("log failed; appends are refused until it is reopened", "err", err)
	}
	return *l.failed.Load()
}

func (l *Log) active() *segment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[len(l.segs)-1]
}

// Append validates a producer's batch, assigns it the next offsets, writes
// it and makes it durable per the flush policy. Append rewrites the batch's
// baseOffset and partitionLeaderEpoch in place. A batch that fails
// validation, is larger than MaxMessageBytes or cannot be written in full
// leaves the log unchanged.
func (l *Log) Append(batch []byte) (AppendInfo, error) {
	info, err := l.Write(batch)
	if err != nil {
		return info, err
	}
	return info, l.WaitDurable(info.LastOffset + 1)
}

// Write is the first half of Append: it validates and writes the batch but
// does not wait for the flush policy (with FlushInterval it may fsync when
// the batch count is reached). Callers that must check and write atomically
// under their own lock (idempotent producers) call Write under it and
// WaitDurable after releasing it, so concurrent writers still share fsyncs.
func (l *Log) Write(batch []byte) (AppendInfo, error) {
	h, err := record.Validate(batch)
	if err != nil {
		return AppendInfo{}, fmt.Errorf("commitlog: append to %s: %w", l.dir, err)
	}
	return l.append(batch, h)
}

// WriteValidated is Write for a caller that has just run record.Validate on
// batch itself (the broker does, to check idempotence before writing): h
// must be that result, so the CRC is not computed twice on the produce path.
func (l *Log) WriteValidated(batch []byte, h record.Header) (AppendInfo, error) {
	return l.append(batch, h)
}

// WaitDurable returns once every offset below end is as durable as the flush
// policy promises: fsynced with FlushAlways (sharing an fsync with
// concurrent callers), at once otherwise. It returns the log's error when
// the log failed.
func (l *Log) WaitDurable(end int64) error {
	if l.opts.Flush.Mode == FlushAlways {
		return l.syncTo(end)
	}
	return l.Err()
}

// AppendStored appends a batch the broker built itself (control batches,
// compacted or replicated data): it is checked with record.ValidateStored
// instead of the stricter producer rules.
func (l *Log) AppendStored(batch []byte) (AppendInfo, error) {
	h, err := record.ValidateStored(batch)
	if err != nil {
		return AppendInfo{}, fmt.Errorf("commitlog: append to %s: %w", l.dir, err)
	}
	info, err := l.append(batch, h)
	if err != nil {
		return info, err
	}
	return info, l.WaitDurable(info.LastOffset + 1)
}

func (l *Log) append(batch []byte, h record.Header) (AppendInfo, error) {
	if len(batch) > l.opts.MaxMessageBytes {
		return AppendInfo{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, len(batch), l.opts.MaxMessageBytes)
	}
	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return AppendInfo{}, ErrClosed
	}
	if err := l.Err(); err != nil {
		l.appendMu.Unlock()
		return AppendInfo{}, err
	}
	if err := l.markDirty(); err != nil {
		l.appendMu.Unlock()
		return AppendInfo{}, fmt.Errorf("commitlog: append to %s: %w", l.dir, err)
	}
	s := l.active()
	now := l.opts.Now()
	if size := s.size.Load(); size > 0 && (size+int64(len(batch)) > l.opts.SegmentBytes ||
		(l.opts.SegmentAge > 0 && now.Sub(s.firstAppend) >= l.opts.SegmentAge)) {
		if err := l.roll(); err != nil {
			l.appendMu.Unlock()
			return AppendInfo{}, fmt.Errorf("commitlog: roll %s: %w", l.dir, err)
		}
		s = l.active()
	}
	base := l.leo.Load()
	record.SetBaseOffset(batch, base)
	record.SetPartitionLeaderEpoch(batch, l.epoch)
	h.BaseOffset, h.PartitionLeaderEpoch = base, l.epoch
	pos := s.size.Load()
	if _, err := s.file.Write(batch); err != nil {
		// Take back whatever part of the batch reached the file, so the
		// next append starts at a batch boundary.
		if terr := s.file.Truncate(pos); terr != nil {
			l.fail(fmt.Errorf("write failed (%v) and truncating it away failed: %w", err, terr))
		}
		l.appendMu.Unlock()
		return AppendInfo{}, fmt.Errorf("commitlog: append to %s: %w", l.dir, err)
	}
	s.noteBatch(h, pos, len(batch), l.opts.IndexIntervalBytes)
	if pos == 0 {
		s.firstAppend = now
	}
	s.next.Store(h.LastOffset() + 1)
	s.size.Store(pos + int64(len(batch)))
	l.leo.Store(h.LastOffset() + 1)
	info := AppendInfo{BaseOffset: base, LastOffset: h.LastOffset()}

	sync := false
	if l.opts.Flush.Mode == FlushInterval {
		n := l.pending.Add(1)
		if l.opts.Flush.Batches > 0 && n >= int64(l.opts.Flush.Batches) {
			sync = true
		} else if l.opts.Flush.Interval > 0 && l.flushT == nil {
			l.flushT = time.AfterFunc(l.opts.Flush.Interval, l.flushTick)
		}
	}
	l.appendMu.Unlock()
	if sync {
		if err := l.syncTo(info.LastOffset + 1); err != nil {
			return info, err
		}
	}
	return info, nil
}

func (l *Log) flushTick() {
	l.appendMu.Lock()
	l.flushT = nil
	closed := l.closed.Load()
	l.appendMu.Unlock()
	if !closed {
		if err := l.Sync(); err != nil {
			l.log.Error("periodic flush failed", "err", err)
		}
	}
}

// Sync fsyncs everything appended so far.
func (l *Log) Sync() error { return l.syncTo(l.leo.Load()) }

// syncTo returns once every offset below target is durable. Callers that
// arrive while an fsync runs wait for it and then either find their data
// covered or run the next fsync for everyone waiting (group commit).
func (l *Log) syncTo(target int64) error {
	l.syncMu.Lock()
	for {
		if err := l.Err(); err != nil {
			l.syncMu.Unlock()
			return err
		}
		if l.durable >= target {
			l.syncMu.Unlock()
			return nil
		}
		if !l.syncing {
			break
		}
		l.syncCond.Wait()
	}
	l.syncing = true
	l.syncMu.Unlock()

	// Everything below end is in s or in sealed segments, which roll
	// fsynced before s became active.
	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		l.syncMu.Lock()
		l.syncing = false
		l.syncCond.Broadcast()
		l.syncMu.Unlock()
		return ErrClosed
	}
	s, end := l.active(), l.leo.Load()
	s.ref()
	l.pending.Store(0)
	l.appendMu.Unlock()
	err := s.file.Sync()
	s.unref()

	l.syncMu.Lock()
	l.syncing = false
	if err != nil {
		err = l.fail(fmt.Errorf("fsync %s: %w", s.path(logSuffix), err))
	} else if end > l.durable {
		l.durable = end
	}
	l.syncCond.Broadcast()
	l.syncMu.Unlock()
	return err
}

func (l *Log) markDurable(off int64) {
	l.syncMu.Lock()
	if off > l.durable {
		l.durable = off
	}
	l.syncCond.Broadcast()
	l.syncMu.Unlock()
}

// Roll seals the active segment and starts a new one at the log end, if the
// active segment is not empty.
func (l *Log) Roll() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.Err(); err != nil {
		return err
	}
	if l.active().size.Load() == 0 {
		return nil
	}
	return l.roll()
}

// roll seals the active segment: fsync its data, write its indexes, create
// the next segment, make the directory durable, and advance the recovery
// point. Called with appendMu held.
func (l *Log) roll() error {
	if err := l.markDirty(); err != nil {
		return err
	}
	old := l.active()
	if err := old.file.Sync(); err != nil {
		return l.fail(fmt.Errorf("fsync %s: %w", old.path(logSuffix), err))
	}
	if err := old.writeIndexes(); err != nil {
		return err
	}
	base := l.leo.Load()
	name := path.Join(l.dir, segmentName(base, logSuffix))
	f, err := l.fs.Create(name)
	if err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		l.fs.Remove(name)
		return l.fail(fmt.Errorf("fsync directory: %w", err))
	}
	l.mu.Lock()
	l.segs = append(l.segs, newSegment(l.fs, l.dir, base, f))
	l.mu.Unlock()
	l.markDurable(base)
	if err := writeCheckpoint(l.fs, l.dir, checkpoint{recoveryPoint: base}); err != nil {
		l.log.Warn("could not advance the recovery point; recovery will scan more", "err", err)
	}
	return nil
}

// Read returns whole batches starting with the one that holds offset, up to
// maxBytes and below the high watermark. When the first batch alone is
// larger than maxBytes it is returned whole, so a reader always progresses.
// At the high watermark it returns no bytes and no error. A read returns
// batches of one segment only; the next read continues in the next.
func (l *Log) Read(offset int64, maxBytes int) ([]byte, error) {
	return l.ReadInto(nil, offset, maxBytes, l.hw.Load())
}

// ReadInto is Read with a reusable buffer and an explicit bound instead of
// the high watermark: only batches whose base offset is below maxOffset are
// returned. The result may alias buf's storage; callers that keep it must
// not pass the same buf again.
func (l *Log) ReadInto(buf []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	l.mu.RLock()
	if l.closed.Load() {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	start, end := l.segs[0].base, l.leo.Load()
	if offset < start || offset > end {
		l.mu.RUnlock()
		return nil, fmt.Errorf("%w: %d not in [%d, %d] of %s", ErrOffsetOutOfRange, offset, start, end, l.dir)
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	for ; i < len(l.segs); i++ {
		s := l.segs[i]
		if s.base >= maxOffset {
			break
		}
		s.ref()
		l.mu.RUnlock()
		b, found, err := s.read(buf, offset, maxBytes, maxOffset, l.opts.IndexIntervalBytes)
		s.unref()
		if err != nil || found {
			return b, err
		}
		l.mu.RLock() // offset fell in a gap at the end of s: go on with the next segment
	}
	l.mu.RUnlock()
	return nil, nil
}

// read returns whole batches from s, starting with the first whose last
// offset is >= offset; found is false when s has no such batch. It reads
// from the index entry at or before offset with one pread sized to skip
// the batches before offset (at most about one index interval) and still
// return maxBytes.
func (s *segment) read(buf []byte, offset int64, maxBytes int, maxOffset int64, interval int) ([]byte, bool, error) {
	limit := s.size.Load()
	rel := max(offset-s.base, 0)
	s.mu.RLock()
	pos := int64(floorOffset(s.idx, uint32(min(rel, int64(^uint32(0))))))
	s.mu.RUnlock()
	maxBytes = max(maxBytes, 0)
	for pos < limit {
		n := min(int64(maxBytes)+int64(interval)+record.HeaderSize, limit-pos)
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if m, err := s.file.ReadAt(b, pos); int64(m) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, fmt.Errorf("commitlog: read %s at %d: %w", s.path(logSuffix), pos, err)
		}
		first := -1 // start in b of the first batch to return
		cut := 0
		for cut+record.HeaderSize <= len(b) {
			h, err := record.ParseHeader(b[cut:])
			if err != nil {
				return nil, false, fmt.Errorf("commitlog: %s at %d: %w", s.path(logSuffix), pos+int64(cut), err)
			}
			if first < 0 {
				if h.LastOffset() < offset {
					cut += h.Size()
					continue
				}
				if h.BaseOffset >= maxOffset {
					return nil, true, nil
				}
				first = cut
				if cut+h.Size() > len(b) {
					// The first batch is larger than the budget (or than
					// what was read): return it whole.
					whole := make([]byte, h.Size())
					if _, err := s.file.ReadAt(whole, pos+int64(cut)); err != nil && !errors.Is(err, io.EOF) {
						return nil, false, fmt.Errorf("commitlog: read %s at %d: %w", s.path(logSuffix), pos+int64(cut), err)
					}
					return whole, true, nil
				}
				cut += h.Size()
				continue
			}
			if h.BaseOffset >= maxOffset || cut+h.Size() > len(b) || cut+h.Size()-first > maxBytes {
				break
			}
			cut += h.Size()
		}
		if first >= 0 {
			return b[first:cut], true, nil
		}
		if cut == 0 {
			return nil, false, fmt.Errorf("%w: %s: partial batch at %d", ErrCorrupt, s.path(logSuffix), pos)
		}
		pos += int64(cut) // the batches before offset were longer than expected: read on
	}
	return nil, false, nil
}

// OffsetForTimestamp returns the offset and timestamp of the first record
// below the high watermark whose timestamp is >= ts; found is false when
// there is none.
func (l *Log) OffsetForTimestamp(ts int64) (offset, recordTS int64, found bool, err error) {
	hw := l.hw.Load()
	l.mu.RLock()
	if l.closed.Load() {
		l.mu.RUnlock()
		return 0, 0, false, ErrClosed
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
	for _, s := range segs {
		if s.base >= hw {
			break
		}
		if s.maxTimestamp() < ts {
			continue
		}
		s.mu.RLock()
		pos := int64(floorTime(s.tidx, ts))
		s.mu.RUnlock()
		limit := s.size.Load()
		for {
			p, h, ok, err := s.scanHeaders(pos, limit, func(h record.Header) bool { return h.MaxTimestamp >= ts || h.BaseOffset >= hw })
			if err != nil {
				return 0, 0, false, err
			}
			if !ok {
				break
			}
			if h.BaseOffset >= hw {
				return 0, 0, false, nil
			}
			b := make([]byte, h.Size())
			if _, err := s.file.ReadAt(b, p); err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, false, err
			}
			recs, err := record.Records(b, maxDecompressedPerBatch)
			if err != nil {
				return 0, 0, false, fmt.Errorf("commitlog: %s at %d: %w", s.path(logSuffix), p, err)
			}
			for _, r := range recs {
				if r.Timestamp >= ts {
					return r.Offset, r.Timestamp, true, nil
				}
			}
			pos = p + int64(h.Size())
		}
	}
	return 0, 0, false, nil
}

// Size is the number of bytes in the log's segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// Segments returns the base offsets of the segments, oldest first.
func (l *Log) Segments() []int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]int64, len(l.segs))
	for i, s := range l.segs {
		out[i] = s.base
	}
	return out
}

// Close fsyncs the log, writes the active segment's indexes and marks the
// shutdown clean, so the next Open reads no data. A failed log is closed
// without the clean mark.
func (l *Log) Close() error {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	if l.flushT != nil {
		l.flushT.Stop()
	}
	err := l.Err()
	s := l.active()
	if err == nil && !l.cleanOnDisk { // an unchanged clean log is already clean on disk
		if serr := s.file.Sync(); serr != nil {
			err = l.fail(fmt.Errorf("fsync %s: %w", s.path(logSuffix), serr))
		}
	}
	if err == nil && !l.cleanOnDisk {
		err = s.writeIndexes()
		if err == nil {
			err = l.fs.SyncDir(l.dir)
		}
		if err == nil {
			leo := l.leo.Load()
			err = writeCheckpoint(l.fs, l.dir, checkpoint{clean: true, recoveryPoint: leo, logEnd: leo, activeBase: s.base, activeSize: s.size.Load()})
		}
	}
	l.mu.Lock()
	l.closed.Store(true)
	for _, s := range l.segs {
		s.unref()
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("commitlog: close %s: %w", l.dir, err)
	}
	return nil
}
