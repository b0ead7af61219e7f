package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

const producersFile = "producers.json"

// partition is one topic partition: a log plus idempotence state.
type partition struct {
	b     *Broker
	topic string
	id    int32
	dir   string

	mu            sync.Mutex // guards producers and serializes check+write
	producers     producerTable
	snapshotAt    int64 // log end offset of the producer snapshot on disk; -1: none
	logAppendTime bool

	logMu sync.RWMutex // guards log (swapped by reconfigure)
	log   *commitlog.Log
}

type producerSnapshot struct {
	Offset    int64                    `json:"offset"`
	Producers map[int64]*producerEntry `json:"producers"`
}

// openPartition opens partition id of topic with the topic's config
// overrides.
func openPartition(b *Broker, topic string, id int32, overrides map[string]string) (*partition, error) {
	p := &partition{b: b, topic: topic, id: id, dir: b.partDir(topic, id), producers: producerTable{}, snapshotAt: -1}
	opts, lat, err := b.logOptionsFor(overrides)
	if err != nil {
		return nil, err
	}
	p.logAppendTime = lat
	l, err := commitlog.Open(p.dir, opts)
	if err != nil {
		return nil, fmt.Errorf("broker: partition %s/%d: %w", topic, id, err)
	}
	p.log = l
	if err := p.loadProducers(); err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// loadProducers restores idempotence state: the snapshot written at the
// last clean close, then the batches appended after it.
func (p *partition) loadProducers() error {
	from := p.log.LogStartOffset()
	raw, err := vfs.ReadFile(p.b.fs, path.Join(p.dir, producersFile))
	switch {
	case err == nil:
		var snap producerSnapshot
		if jerr := json.Unmarshal(raw, &snap); jerr == nil && snap.Offset <= p.log.LogEndOffset() {
			if snap.Producers != nil {
				p.producers = snap.Producers
			}
			from = max(from, snap.Offset)
			p.snapshotAt = snap.Offset
		} else {
			p.b.log.Warn("ignoring bad producer snapshot; rebuilding from the log", "dir", p.dir, "err", jerr)
		}
	case !vfs.IsNotExist(err):
		return fmt.Errorf("broker: partition %s/%d: %w", p.topic, p.id, err)
	}
	var buf []byte // ReadInto allocates what the first read needs; later reads reuse it
	for off := from; off < p.log.LogEndOffset(); {
		data, err := p.log.ReadInto(buf, off, 1<<20, p.log.LogEndOffset())
		buf = data[:0:cap(data)]
		if err != nil {
			return fmt.Errorf("broker: partition %s/%d: rebuilding producer state: %w", p.topic, p.id, err)
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, _, rest, err := record.Next(data)
			if err != nil {
				return fmt.Errorf("broker: partition %s/%d: rebuilding producer state: %w", p.topic, p.id, err)
			}
			p.producers.record(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.LastOffsetDelta+1, h.BaseOffset, h.LastOffset())
			off, data = h.LastOffset()+1, rest
		}
	}
	return nil
}

func (p *partition) getLog() *commitlog.Log {
	p.logMu.RLock()
	defer p.logMu.RUnlock()
	return p.log
}

// ProduceResult is the outcome of one partition's produce.
type ProduceResult struct {
	BaseOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
}

// Produce appends one producer batch to a partition. It returns once the
// batch is durable per the topic's flush policy and visible to consumers.
// Exact retries of an idempotent producer's recent batches are not written
// again; they get the original offsets.
func (b *Broker) Produce(ctx context.Context, topic string, part int32, batch []byte) (ProduceResult, error) {
	p, err := b.partition(topic, part)
	if err != nil {
		return ProduceResult{}, err
	}
	h, err := record.Validate(batch)
	if err != nil {
		return ProduceResult{}, err
	}
	if h.Transactional() {
		return ProduceResult{}, fmt.Errorf("%w: transactional batches are not supported yet", ErrUnsupportedForMessageFormat)
	}
	res := ProduceResult{LogAppendTime: -1}
	p.mu.Lock()
	l := p.getLog()
	dup, err := p.producers.check(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.NumRecords)
	if err != nil {
		p.mu.Unlock()
		return res, err
	}
	var info commitlog.AppendInfo
	if dup != nil {
		info = commitlog.AppendInfo{BaseOffset: dup.Base, LastOffset: dup.Last}
	} else {
		if p.logAppendTime {
			res.LogAppendTime = b.cfg.Now().UnixMilli()
			record.SetLogAppendTime(batch, res.LogAppendTime)
			h, _ = record.ParseHeader(batch) // attributes and max timestamp changed; no CRC to redo
		}
		info, err = l.WriteValidated(batch, h) // validated above
		if err != nil {
			p.mu.Unlock()
			return res, err
		}
		p.producers.record(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.NumRecords, info.BaseOffset, info.LastOffset)
	}
	p.mu.Unlock()
	if err := l.WaitDurable(info.LastOffset + 1); err != nil {
		return res, err
	}
	if l.HighWatermark() <= info.LastOffset {
		l.SetHighWatermark(info.LastOffset + 1)
		b.notifyAppended()
	}
	res.BaseOffset = info.BaseOffset
	res.LogStartOffset = l.LogStartOffset()
	return res, nil
}

// PartitionOffsets are a partition's offsets.
type PartitionOffsets struct {
	LogStart, HighWatermark, LastStable int64
}

// FetchResult is what Fetch returns for one partition.
type FetchResult struct {
	PartitionOffsets
	Records []byte // whole batches, as stored
}

// Fetch reads whole batches from offset, at most maxBytes (but at least one
// batch when minOneBatch), below the high watermark. An offset outside
// [log start, high watermark] returns commitlog.ErrOffsetOutOfRange with
// the offsets filled in.
func (b *Broker) Fetch(topic string, part int32, offset int64, maxBytes int, minOneBatch bool) (FetchResult, error) {
	return b.FetchInto(nil, topic, part, offset, maxBytes, minOneBatch)
}

// FetchInto is Fetch reading into buf's storage when it is large enough;
// the returned Records may alias buf.
func (b *Broker) FetchInto(buf []byte, topic string, part int32, offset int64, maxBytes int, minOneBatch bool) (FetchResult, error) {
	p, err := b.partition(topic, part)
	if err != nil {
		return FetchResult{}, err
	}
	l := p.getLog()
	var res FetchResult
	res.HighWatermark = l.HighWatermark()
	res.LastStable = res.HighWatermark
	res.LogStart = l.LogStartOffset()
	// Offsets between the high watermark and the log end are valid but not
	// yet readable (a write waiting for its fsync): answer empty.
	if leo := l.LogEndOffset(); offset < res.LogStart || offset > leo {
		return res, fmt.Errorf("%w: %d not in [%d, %d]", commitlog.ErrOffsetOutOfRange, offset, res.LogStart, leo)
	}
	if offset >= res.HighWatermark {
		return res, nil
	}
	if maxBytes <= 0 && !minOneBatch {
		return res, nil
	}
	budget := maxBytes
	if !minOneBatch && budget < record.HeaderSize {
		return res, nil
	}
	data, err := l.ReadInto(buf, offset, budget, res.HighWatermark)
	if err != nil {
		return res, err
	}
	if !minOneBatch && len(data) > maxBytes {
		return res, nil // the first batch alone is over the budget and this partition may not exceed it
	}
	res.Records = data
	return res, nil
}

// Offsets returns a partition's offsets.
func (b *Broker) Offsets(topic string, part int32) (PartitionOffsets, error) {
	p, err := b.partition(topic, part)
	if err != nil {
		return PartitionOffsets{}, err
	}
	l := p.getLog()
	hw := l.HighWatermark()
	return PartitionOffsets{LogStart: l.LogStartOffset(), HighWatermark: hw, LastStable: hw}, nil
}

// Special ListOffsets timestamps.
const (
	TimestampLatest   = -1
	TimestampEarliest = -2
)

// ListOffset returns the offset for a timestamp: TimestampLatest (the high
// watermark), TimestampEarliest (the log start) or the first record with a
// timestamp >= ts. found is false when no record is that new.
func (b *Broker) ListOffset(topic string, part int32, ts int64) (offset, timestamp int64, found bool, err error) {
	p, err := b.partition(topic, part)
	if err != nil {
		return 0, 0, false, err
	}
	l := p.getLog()
	switch ts {
	case TimestampLatest:
		return l.HighWatermark(), -1, true, nil
	case TimestampEarliest:
		return l.LogStartOffset(), -1, true, nil
	}
	if ts < 0 {
		return 0, 0, false, fmt.Errorf("%w: special timestamp %d (only -1 latest and -2 earliest)", ErrInvalidRequest, ts)
	}
	return l.OffsetForTimestamp(ts)
}

// PartitionStats describe a partition for metrics.
type PartitionStats struct {
	Topic                string
	Partition            int32
	LogStart, LogEnd, HW int64
	SizeBytes            int64
}

// Stats lists every partition's offsets and size.
func (b *Broker) Stats() []PartitionStats {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []PartitionStats
	for _, t := range b.topics {
		for _, p := range t.parts {
			l := p.getLog()
			out = append(out, PartitionStats{Topic: t.Name, Partition: p.id, LogStart: l.LogStartOffset(), LogEnd: l.LogEndOffset(), HW: l.HighWatermark(), SizeBytes: l.Size()})
		}
	}
	return out
}

// reconfigure reopens the partition's log with new options (segment size,
// retention, flush policy ...). Produces wait while it happens.
func (p *partition) reconfigure(overrides map[string]string) error {
	opts, lat, err := p.b.logOptionsFor(overrides)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if err := p.log.Close(); err != nil {
		return err
	}
	l, err := commitlog.Open(p.dir, opts)
	if err != nil {
		return fmt.Errorf("broker: reopen %s/%d with new config: %w", p.topic, p.id, err)
	}
	p.log, p.logAppendTime = l, lat
	return nil
}

func (p *partition) housekeep() {
	l := p.getLog()
	if _, err := l.EnforceRetention(); err != nil && !errors.Is(err, commitlog.ErrClosed) {
		p.b.log.Warn("retention failed", "topic", p.topic, "partition", p.id, "err", err)
	}
	if _, err := l.Compact(); err != nil && !errors.Is(err, commitlog.ErrClosed) {
		p.b.log.Warn("compaction failed", "topic", p.topic, "partition", p.id, "err", err)
	}
}

// close writes the producer snapshot (unless the one on disk is already
// current) and closes the log cleanly.
func (p *partition) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.getLog()
	var err error
	if leo := l.LogEndOffset(); leo != p.snapshotAt {
		snap := producerSnapshot{Offset: leo, Producers: p.producers}
		var raw []byte
		raw, err = json.Marshal(snap)
		if err == nil {
			err = vfs.WriteFileAtomic(p.b.fs, p.dir, producersFile, raw)
		}
	}
	if cerr := l.Close(); cerr != nil && !errors.Is(cerr, commitlog.ErrClosed) && err == nil {
		err = cerr
	}
	return err
}

func (p *partition) closeForDelete() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.getLog().Close()
}
