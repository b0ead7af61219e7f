package pipelines

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/sdk"
)

// LocalBroker is a broker in the same process as the pipeline (weir serve
// implements it over its broker). With RunOptions.Local set, the executor
// reads input partitions and appends outputs through it, without the
// Kafka protocol: stored batches are decoded straight into records, and
// outputs are built into batches and appended. Group membership and
// offset commits still go through the Kafka protocol, so the pipeline is
// an ordinary member of its consumer group (`weir group describe` shows
// it, a `weir pipeline run` elsewhere shares the partitions with it).
type LocalBroker interface {
	// Read returns whole stored record batches of the partition from
	// offset (the first may start before it), at most maxBytes but at least
	// one batch, and the partition's high watermark; nothing at the end.
	Read(buf []byte, topic string, partition int32, offset int64, maxBytes int) (batches []byte, highWatermark int64, err error)
	// Append writes one record batch (RecordBatch v2, producer id -1) and
	// returns once it is as durable as the topic requires and readable.
	Append(ctx context.Context, topic string, partition int32, batch []byte) error
	// Partitions is the topic's partition count.
	Partitions(topic string) (int32, error)
	// Bounds are the partition's log start offset and high watermark.
	Bounds(topic string, partition int32) (logStart, highWatermark int64, err error)
	// OffsetAfter is the first offset whose timestamp is at or after ms
	// (the high watermark when there is none).
	OffsetAfter(topic string, partition int32, ms int64) (int64, error)
	// Appended is closed the next time any partition's high watermark
	// advances.
	Appended() <-chan struct{}
}

// Bounds on what the local reader takes per batch.
const (
	localReadBytes  = 1 << 20 // per partition and read
	maxDecompressed = 64 << 20
	localBatchBytes = 512 << 10 // output records per appended batch
)

type tp struct {
	topic     string
	partition int32
}

// localSource tracks the assigned partitions and where to read next.
type localSource struct {
	lb     LocalBroker
	loopMu sync.Mutex // held by the loop while it reads, processes and commits a batch

	mu       sync.Mutex
	assigned map[tp]int64 // next offset; -1: not resolved yet

	// pending is the next batch, read ahead while the loop processed the
	// one before (guarded by loopMu).
	pending []partBatch
	// wake tells an idle loop that partitions were assigned.
	wake chan struct{}

	// Reuse, since a batch's allocations were most of a pipeline's
	// garbage: scratch is read's decoding space; freeRecs holds record
	// slices back from processed batches, freeBufs read buffers back from
	// finished ones (whose outputs no longer alias them).
	scratch  []record.Record
	freeRecs chan []sdk.Record
	freeBufs chan []byte
}

// recycle takes back a processed batch's record slices; its buffers come
// back through releaser once the batch is finished.
func (s *localSource) recycle(parts []partBatch) {
	for _, pb := range parts {
		select {
		case s.freeRecs <- pb.recs[:0]:
		default:
		}
	}
}

// releaser returns a func giving the batch's read buffers back.
func (s *localSource) releaser(parts []partBatch) func() {
	var bufs [][]byte
	for _, pb := range parts {
		bufs = append(bufs, pb.bufs...)
	}
	return func() {
		for _, b := range bufs {
			select {
			case s.freeBufs <- b[:0]:
			default:
			}
		}
	}
}

// discardPending drops the batch read ahead and moves its partitions'
// positions back to its first records (caller holds loopMu).
func (s *localSource) discardPending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pb := range s.pending {
		k := tp{pb.topic, pb.partition}
		if _, ok := s.assigned[k]; ok && len(pb.recs) > 0 {
			s.assigned[k] = pb.recs[0].Offset
		}
	}
	s.pending = nil
}

func (s *localSource) assign(m map[string][]int32) {
	s.mu.Lock()
	for t, ps := range m {
		for _, p := range ps {
			if _, ok := s.assigned[tp{t, p}]; !ok {
				s.assigned[tp{t, p}] = -1
			}
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *localSource) unassign(m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(s.assigned, tp{t, p})
		}
	}
}

// resolve sets the start of partitions without a position: the group's
// committed offset, else the spec's start.
func (s *localSource) resolve(ctx context.Context, r *runner, adm *kadm.Client) error {
	s.mu.Lock()
	var todo []tp
	for k, next := range s.assigned {
		if next < 0 {
			todo = append(todo, k)
		}
	}
	s.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	committed, err := adm.FetchOffsets(ctx, r.spec.Input.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("pipelines: %s: committed offsets of group %s: %w", r.spec.Name, r.spec.Input.Group, err)
	}
	for _, k := range todo {
		logStart, hw, err := s.lb.Bounds(k.topic, k.partition)
		if err != nil {
			return fmt.Errorf("pipelines: %s: %s/%d: %w", r.spec.Name, k.topic, k.partition, err)
		}
		var at int64
		if o, ok := committed.Lookup(k.topic, k.partition); ok && o.At >= 0 {
			at = o.At
		} else {
			switch st := r.spec.Input.Start; st.Kind {
			case StartEarliest:
				at = logStart
			case StartLatest:
				at = hw
			case StartOffset:
				at = st.Offset
			case StartTime:
				if at, err = s.lb.OffsetAfter(k.topic, k.partition, st.Time.UnixMilli()); err != nil {
					return err
				}
			}
		}
		// Out of range (retention moved the start, or a stale commit):
		// like a Kafka consumer with auto.offset.reset.
		if at < logStart || at > hw {
			if r.spec.Input.Start.Kind == StartLatest {
				at = hw
			} else {
				at = logStart
			}
		}
		s.mu.Lock()
		if cur, ok := s.assigned[k]; ok && cur < 0 {
			s.assigned[k] = at
		}
		s.mu.Unlock()
	}
	return nil
}

// read takes about limit records (whole stored batches, so up to one batch
// more) from the assigned partitions, in a fixed order, and advances their
// positions.
func (s *localSource) read(limit int) ([]partBatch, error) {
	s.mu.Lock()
	keys := make([]tp, 0, len(s.assigned))
	for k, next := range s.assigned {
		if next >= 0 {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(keys, func(a, b tp) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.partition - b.partition)
	})
	var parts []partBatch
	total := 0
	for _, k := range keys {
		if total >= limit {
			break
		}
		s.mu.Lock()
		next, ok := s.assigned[k]
		s.mu.Unlock()
		if !ok || next < 0 {
			continue
		}
		pb := partBatch{topic: k.topic, partition: k.partition}
		select {
		case pb.recs = <-s.freeRecs:
		default:
			pb.recs = make([]sdk.Record, 0, min(limit-total, 1<<16))
		}
		for total < limit {
			var buf []byte
			select {
			case buf = <-s.freeBufs:
			default:
			}
			data, hw, err := s.lb.Read(buf, k.topic, k.partition, next, localReadBytes)
			if err != nil {
				return nil, fmt.Errorf("%s/%d at %d: %w", k.topic, k.partition, next, err)
			}
			pb.hw = hw
			if len(data) == 0 {
				break
			}
			// The records alias data until their outputs are acknowledged:
			// it goes back to freeBufs when the batch is finished.
			pb.bufs = append(pb.bufs, data)
			for len(data) > 0 {
				h, batch, rest, err := record.Next(data)
				if err != nil {
					return nil, fmt.Errorf("%s/%d at %d: %w", k.topic, k.partition, next, err)
				}
				data = rest
				if h.Control() || h.LastOffset() < next {
					continue
				}
				recs, err := record.AppendRecords(s.scratch[:0], batch, maxDecompressed)
				if err != nil {
					return nil, fmt.Errorf("%s/%d batch at %d: %w", k.topic, k.partition, h.BaseOffset, err)
				}
				s.scratch = recs
				for _, rr := range recs {
					if rr.Offset < next {
						continue
					}
					rec := sdk.Record{Key: rr.Key, Value: rr.Value, Timestamp: time.UnixMilli(rr.Timestamp), Topic: k.topic, Partition: k.partition, Offset: rr.Offset}
					if len(rr.Headers) > 0 {
						rec.Headers = make([]sdk.Header, len(rr.Headers))
						for i, hh := range rr.Headers {
							rec.Headers[i] = sdk.Header{Key: hh.Key, Value: hh.Value}
						}
					}
					pb.recs = append(pb.recs, rec)
					total++
				}
				// Past the whole batch, also past records compaction removed.
				next = max(next, h.LastOffset()+1)
			}
		}
		s.mu.Lock()
		if _, ok := s.assigned[k]; ok {
			s.assigned[k] = next
		}
		s.mu.Unlock()
		if len(pb.recs) > 0 {
			parts = append(parts, pb)
		}
	}
	return parts, nil
}

// localSink buffers one batch's outputs per output partition and appends
// them as record batches when the batch ends. Appends of one batch run in
// the background (overlapping the next batch's processing), after those
// of the batch before, so each output partition keeps its order.
type localSink struct {
	lb     LocalBroker
	keyed  map[string]kgo.TopicPartitioner
	counts map[string]int32
	bufs   map[tp]*localOut
	order  []tp
	prev   chan struct{} // closed when the previous batch's appends are done

	// The last output topic and partition written, to skip map lookups
	// for runs of records going the same way.
	lastTopic string
	lastCount int32
	lastKeyed kgo.TopicPartitioner
	last      *localOut
	lastKey   tp
	keyRec    kgo.Record
}

type localOut struct {
	recs []record.Record
	done []func(error)
}

func newLocalSink(lb LocalBroker) *localSink {
	prev := make(chan struct{})
	close(prev)
	return &localSink{lb: lb, keyed: map[string]kgo.TopicPartitioner{}, counts: map[string]int32{}, bufs: map[tp]*localOut{}, prev: prev}
}

func (s *localSink) write(ctx context.Context, topic string, inPart int32, rec sdk.Record, done func(error)) {
	if topic != s.lastTopic {
		s.lastTopic, s.lastCount, s.lastKeyed = "", 0, nil
	}
	n, ok := s.lastCount, s.lastKeyed != nil
	if !ok {
		n, ok = s.counts[topic]
	}
	if !ok {
		var err error
		if n, err = s.lb.Partitions(topic); err != nil || n <= 0 {
			done(fmt.Errorf("output topic %s: %w", topic, errors.Join(err, errors.New("no partitions"))))
			return
		}
		s.counts[topic] = n
		s.keyed[topic] = kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	}
	s.lastTopic, s.lastCount, s.lastKeyed = topic, n, s.keyed[topic]
	part := inPart % n
	if rec.Key != nil {
		// murmur2, as Kafka's producers place keys (franz-go's hasher).
		s.keyRec.Key = rec.Key
		part = int32(s.lastKeyed.Partition(&s.keyRec, int(n)))
	}
	k := tp{topic, part}
	o := s.last
	if o == nil || s.lastKey != k {
		if o = s.bufs[k]; o == nil {
			o = &localOut{}
			s.bufs[k] = o
			s.order = append(s.order, k)
		}
		s.last, s.lastKey = o, k
	}
	rr := record.Record{Offset: int64(len(o.recs)), Timestamp: rec.Timestamp.UnixMilli(), Key: rec.Key, Value: rec.Value}
	for _, h := range rec.Headers {
		rr.Headers = append(rr.Headers, record.RecordHeader{Key: h.Key, Value: h.Value})
	}
	o.recs = append(o.recs, rr)
	o.done = append(o.done, done)
}

func (s *localSink) flush(ctx context.Context) {
	bufs, order, prev := s.bufs, s.order, s.prev
	s.bufs, s.order = map[tp]*localOut{}, nil
	s.last, s.lastTopic, s.lastCount, s.lastKeyed = nil, "", 0, nil
	next := make(chan struct{})
	s.prev = next
	// Partition counts may change between batches.
	clear(s.counts)
	go func() {
		defer close(next)
		<-prev
		for _, k := range order {
			o := bufs[k]
			for start := 0; start < len(o.recs); {
				end, size := start, 0
				for end < len(o.recs) && (end == start || size < localBatchBytes) {
					size += len(o.recs[end].Key) + len(o.recs[end].Value) + 32
					end++
				}
				err := s.append(ctx, k, o.recs[start:end])
				for _, d := range o.done[start:end] {
					d(err)
				}
				start = end
			}
		}
	}()
}

func (s *localSink) append(ctx context.Context, k tp, recs []record.Record) error {
	base := recs[0].Offset
	for i := range recs {
		recs[i].Offset -= base
	}
	batch, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	if err != nil {
		return err
	}
	return s.lb.Append(ctx, k.topic, k.partition, batch)
}

// runLocal is Run's loop with a local source: read what the assigned
// partitions hold, process and write it, and finish (acknowledge and
// commit) the batch before while this one's appends run.
func (r *runner) runLocal(ctx context.Context, src *localSource, adm *kadm.Client, finishInflight func() error) error {
	for {
		if ctx.Err() != nil {
			src.loopMu.Lock()
			err := finishInflight()
			src.loopMu.Unlock()
			return err
		}
		src.loopMu.Lock()
		if err := src.resolve(ctx, r, adm); err != nil {
			finishInflight()
			src.loopMu.Unlock()
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		appended := src.lb.Appended() // before reading: no wake-up is missed
		parts := src.pending
		src.pending = nil
		var err error
		if parts == nil {
			if parts, err = src.read(r.spec.Batch.Records); err != nil {
				finishInflight()
				src.loopMu.Unlock()
				return fmt.Errorf("pipelines: %s: reading %w", r.spec.Name, err)
			}
		}
		if len(parts) == 0 {
			err := finishInflight()
			src.loopMu.Unlock()
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
			case <-appended:
			case <-src.wake:
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		// Read (and decode) the next batch on the other core while this
		// one is processed.
		type readAhead struct {
			parts []partBatch
			err   error
		}
		next := make(chan readAhead, 1)
		go func() {
			p, err := src.read(r.spec.Batch.Records)
			next <- readAhead{p, err}
		}()
		cur, halted := r.start(ctx, parts)
		src.recycle(parts)
		cur.release = src.releaser(parts)
		err = finishInflight()
		r.setInflight(cur)
		ahead := <-next
		src.pending = ahead.parts
		if err == nil && ahead.err != nil {
			err = fmt.Errorf("pipelines: %s: reading %w", r.spec.Name, ahead.err)
		}
		if err == nil && halted != nil && ctx.Err() != nil && !errors.Is(halted, ErrHalted) {
			src.discardPending()
			err = finishInflight()
			src.loopMu.Unlock()
			return err
		}
		if err == nil && halted != nil {
			src.discardPending()
			if err = finishInflight(); err == nil {
				err = halted
			}
		}
		src.loopMu.Unlock()
		if err != nil {
			return err
		}
	}
}
