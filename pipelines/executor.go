package pipelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/sdk"
)

// Provenance headers on dead-lettered records: the original record plus
// these.
const (
	HeaderPipeline  = "weir.pipeline"
	HeaderStage     = "weir.stage"
	HeaderError     = "weir.error"
	HeaderTopic     = "weir.source.topic"
	HeaderPartition = "weir.source.partition"
	HeaderOffset    = "weir.source.offset"
)

// RunOptions configure Run.
type RunOptions struct {
	// Brokers are the Kafka-protocol brokers to read from and write to.
	Brokers []string
	Logger  *slog.Logger
	// Metrics, shared by the pipelines of a process; nil for none.
	Metrics *Metrics
	// Replay, when set, moves the group's committed offsets of every input
	// partition to this position before the pipeline starts. The group
	// must have no members then.
	Replay *Start
	// Stats, when set, is kept up to date while the pipeline runs.
	Stats *Stats
	// Local, when set, is the broker of this process (one of Brokers):
	// records are read from and written to it directly.
	Local LocalBroker
	// CreateInputs creates input topics that do not exist (with the
	// broker's default partitions), as a Kafka consumer's subscription
	// does on a broker that creates topics on first use; otherwise a
	// missing input is an error.
	CreateInputs bool
}

// Stats are a running pipeline's counters, safe to read concurrently.
type Stats struct {
	In, Out, Filtered, Failed, Lag, Batches atomic.Int64
	// Committed counts input records whose offsets are committed.
	Committed atomic.Int64

	mu     sync.Mutex
	owned  map[string]bool // "topic/partition" of each input partition assigned to this run
	stages []StageCount
}

// StageCount is the records into and out of one stage since the run
// started.
type StageCount struct {
	Name    string
	In, Out int64
}

// Stages returns the records into and out of each stage, in order, as of
// the last batch.
func (s *Stats) Stages() []StageCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stages)
}

// Owned returns the input partitions the group gave this run and it has
// not given up, as "topic/partition", sorted.
func (s *Stats) Owned() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Keys(s.owned), comparePartitionNames)
}

// own records that the partitions named were assigned (true) or given up.
func (s *Stats) own(names []string, assigned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owned == nil {
		s.owned = map[string]bool{}
	}
	for _, n := range names {
		if assigned {
			s.owned[n] = true
		} else {
			delete(s.owned, n)
		}
	}
}

// partitionNames names the partitions of m "topic/partition", sorted.
func partitionNames(m map[string][]int32) []string {
	var names []string
	for t, ps := range m {
		for _, p := range ps {
			names = append(names, t+"/"+strconv.Itoa(int(p)))
		}
	}
	slices.SortFunc(names, comparePartitionNames)
	return names
}

// comparePartitionNames orders "topic/partition" names by topic, then by
// partition number.
func comparePartitionNames(a, b string) int {
	at, ap, _ := strings.Cut(a, "/")
	bt, bp, _ := strings.Cut(b, "/")
	if c := strings.Compare(at, bt); c != 0 {
		return c
	}
	an, _ := strconv.Atoi(ap)
	bn, _ := strconv.Atoi(bp)
	return an - bn
}

// Run runs the pipeline until ctx is done (returning nil) or it fails. It
// joins the input's consumer group, and for each batch of records read:
// runs them through the stages, applies the error policies, writes the
// outputs (and dead letters), waits until every one is acknowledged, and
// only then commits the batch's input offsets. A crash at any point
// therefore re-reads at most the uncommitted batch: at-least-once, with no
// gaps. Outputs of one input partition are written in input order; keyed
// outputs go to the partition murmur2(key) picks (as Kafka's producers
// do), unkeyed ones to the input partition's number modulo the output
// topic's partitions, so one input partition's order holds in each output
// partition.
//
// At most one batch (BatchLimits.Records input records and their outputs)
// is held at a time: a slow stage or a slow broker slows the reading.
func Run(ctx context.Context, s *Spec, o RunOptions) error {
	if len(o.Brokers) == 0 {
		return errors.New("pipelines: no brokers to run against")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("pipeline", s.Name)
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	st := o.Stats
	if st == nil {
		st = new(Stats)
	}
	if err := prepareTopics(ctx, s, o.Brokers, o.CreateInputs, log); err != nil {
		return err
	}
	if o.Replay != nil {
		if err := resetGroup(ctx, s, o.Brokers, *o.Replay); err != nil {
			return err
		}
	}
	reset := kgo.NewOffset().AtStart()
	switch s.Input.Start.Kind {
	case StartLatest:
		reset = kgo.NewOffset().AtEnd()
	case StartOffset:
		reset = kgo.NewOffset().At(s.Input.Start.Offset)
	case StartTime:
		reset = kgo.NewOffset().AfterMilli(s.Input.Start.Time.UnixMilli())
	}
	// This run's own copy of the stages: another Run of the same Spec
	// (another member of the group in this process) must not share them.
	stages, err := s.compileStages()
	if err != nil {
		return fmt.Errorf("pipelines: %s: %w", s.Name, err)
	}
	defer closeStages(stages)
	r := &runner{spec: s, log: log, m: m, st: st, chain: newChain(stages), outTopic: map[string]string{}}
	for _, out := range s.Outputs {
		r.outTopic[out.Name] = out.Topic
	}
	st.mu.Lock()
	st.stages = st.stages[:0]
	for _, stage := range s.Stages {
		st.stages = append(st.stages, StageCount{Name: stage.Name})
	}
	st.mu.Unlock()
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ClientID("weir-pipeline-" + s.Name),
		kgo.ConsumerGroup(s.Input.Group),
		kgo.ConsumeTopics(s.Input.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(outputPartitioner{keyed: kgo.StickyKeyPartitioner(nil)}),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(30 * time.Second),
		// A member that died is replaced after 10 s, not Kafka's 45 s.
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}
	// ownership logs each change of the partitions this member owns (a
	// partition's owner is the member between its "assigned" and its
	// "revoked" or "lost": a revoke is logged after the batch in flight
	// is committed) and keeps Stats.Owned.
	ownership := func(cl *kgo.Client, event string, m map[string][]int32) {
		if len(m) == 0 {
			return
		}
		names := partitionNames(m)
		st.own(names, event == "assigned")
		member, gen := cl.GroupMetadata()
		log.Info("partitions "+event, "member", member, "generation", gen, "partitions", strings.Join(names, ","))
	}
	var src *localSource
	if o.Local != nil {
		// Membership and commits over the Kafka protocol; records read
		// and written in process. Partitions leaving in a rebalance have
		// their batch in flight acknowledged and committed first.
		src = &localSource{lb: o.Local, assigned: map[tp]int64{}, wake: make(chan struct{}, 1),
			freeRecs: make(chan []sdk.Record, 4), freeBufs: make(chan []byte, 16)}
		opts = append(opts,
			kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
				ownership(cl, "assigned", m)
				src.assign(m)
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
				src.loopMu.Lock()
				defer src.loopMu.Unlock()
				src.discardPending()
				if b := r.takeInflight(); b != nil {
					if err := r.finish(ctx, b); err != nil {
						r.log.Warn("committing the batch in flight at a rebalance", "err", err)
					}
				}
				src.unassign(m)
				ownership(cl, "revoked", m)
			}),
			kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
				src.loopMu.Lock()
				defer src.loopMu.Unlock()
				src.discardPending()
				if b := r.takeInflight(); b != nil {
					b.pending.Wait() // written, but no longer ours to commit
				}
				src.unassign(m)
				ownership(cl, "lost", m)
			}),
		)
	} else {
		// Partitions leaving in a rebalance: their batch in flight is
		// acknowledged and committed first, by this member. Partitions
		// lost (the group moved on without this member) go the same way:
		// the broker refuses the commit of a member it no longer knows.
		leaving := func(event string) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
				if b := r.takeInflight(); b != nil {
					if err := r.finish(ctx, b); err != nil {
						r.log.Warn("committing the batch in flight at a rebalance", "err", err)
					}
				}
				ownership(cl, event, m)
			}
		}
		opts = append(opts, kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) { ownership(cl, "assigned", m) }),
			kgo.OnPartitionsRevoked(leaving("revoked")),
			kgo.OnPartitionsLost(leaving("lost")))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("pipelines: %s: %w", s.Name, err)
	}
	r.cl, r.sink = cl, kgoSink{cl}
	defer cl.Close()
	log.Info("pipeline started", "group", s.Input.Group, "inputs", s.Input.Topics, "stages", len(s.Stages), "local", o.Local != nil)
	defer log.Info("pipeline stopped")
	// While one batch's outputs are being acknowledged and its offsets
	// committed, the next batch is read and processed: at most two
	// batches are held. A stop (ctx done) still finishes the batches
	// already written: their acknowledgements are awaited and their
	// offsets committed with a context of their own.
	finishCtx := context.WithoutCancel(ctx)
	finishInflight := func() error {
		if b := r.takeInflight(); b != nil {
			fctx, cancel := context.WithTimeout(finishCtx, 45*time.Second)
			defer cancel()
			return r.finish(fctx, b)
		}
		return nil
	}
	if src != nil {
		cl.PauseFetchTopics(s.Input.Topics...)
		r.sink = newLocalSink(o.Local)
		return r.runLocal(ctx, src, kadm.NewClient(cl), finishInflight)
	}
	for {
		// With a batch in flight, wait for more records only briefly: an
		// idle input must not leave the last batch uncommitted.
		pollCtx, cancelPoll := ctx, context.CancelFunc(func() {})
		if r.hasInflight() {
			pollCtx, cancelPoll = context.WithTimeout(ctx, 20*time.Millisecond)
		}
		fetches := cl.PollRecords(pollCtx, s.Batch.Records)
		idle := pollCtx.Err() != nil && ctx.Err() == nil
		cancelPoll()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			err := finishInflight()
			cl.AllowRebalance()
			return err
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			log.Warn("fetch", "topic", t, "partition", p, "err", err)
			if !kerr.IsRetriable(err) && fetchErr == nil {
				fetchErr = fmt.Errorf("pipelines: %s: reading %s/%d: %w", s.Name, t, p, err)
			}
		})
		if fetchErr != nil {
			finishInflight()
			cl.AllowRebalance()
			return fetchErr
		}
		if idle && fetches.NumRecords() == 0 {
			err := finishInflight()
			cl.AllowRebalance()
			if err != nil {
				return err
			}
			continue
		}
		cur, halted := r.start(ctx, fromFetches(fetches))
		err := finishInflight()
		r.setInflight(cur)
		if err == nil && halted != nil && ctx.Err() != nil && !errors.Is(halted, ErrHalted) {
			// Stopped mid-batch (a retry's backoff): keep what is done.
			err = finishInflight()
			cl.AllowRebalance()
			return err
		}
		if err == nil && halted != nil {
			// Write and commit what came before the halting record.
			if err = finishInflight(); err == nil {
				err = halted
			}
		}
		cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

type runner struct {
	spec     *Spec
	cl       *kgo.Client
	log      *slog.Logger
	m        *Metrics
	st       *Stats
	chain    *chain
	outTopic map[string]string
	sink     sink
	in       []sdk.Record
	handled  []bool
	lastCnt  []stageCount

	mu       sync.Mutex
	inflight *batchInFlight // written, not yet acknowledged and committed
}

// batchInFlight is a processed batch whose outputs are on their way.
type batchInFlight struct {
	start     time.Time
	pending   sync.WaitGroup
	mu        sync.Mutex
	firstErr  error
	outCount  map[string]int64
	offsets   map[string]map[int32]int64 // next offset to read, per input partition
	committed int64
	// release, when set, is called once every output is acknowledged
	// (nothing aliases the batch's input buffers any more).
	release func()
}

// commit commits the group's offsets of the given partitions and checks
// every partition's answer.
func (r *runner) commit(ctx context.Context, offsets map[string]map[int32]int64) error {
	eo := make(map[string]map[int32]kgo.EpochOffset, len(offsets))
	for t, ps := range offsets {
		eo[t] = make(map[int32]kgo.EpochOffset, len(ps))
		for p, o := range ps {
			eo[t][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	var err error
	r.cl.CommitOffsetsSync(ctx, eo, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if cerr != nil {
			err = cerr
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && err == nil {
					err = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, e)
				}
			}
		}
	})
	return err
}

func (r *runner) takeInflight() *batchInFlight {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.inflight
	r.inflight = nil
	return b
}

func (r *runner) hasInflight() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight != nil
}

func (r *runner) setInflight(b *batchInFlight) {
	r.mu.Lock()
	r.inflight = b
	r.mu.Unlock()
}

// finish waits until every output and dead letter of b is acknowledged,
// then commits b's input offsets.
func (r *runner) finish(ctx context.Context, b *batchInFlight) error {
	b.pending.Wait()
	if b.release != nil {
		b.release()
	}
	b.mu.Lock()
	err := b.firstErr
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("pipelines: %s: writing outputs: %w", r.spec.Name, err)
	}
	for name, n := range b.outCount {
		r.m.out.WithLabelValues(r.spec.Name, name).Add(float64(n))
		r.st.Out.Add(n)
	}
	if len(b.offsets) > 0 {
		if err := r.commit(ctx, b.offsets); err != nil {
			if !movedOn(err) {
				return fmt.Errorf("pipelines: %s: committing offsets: %w", r.spec.Name, err)
			}
			// This member was frozen or cut off past its session: the
			// broker fenced the commit, its partitions have another owner,
			// which reads this batch again (at least once), and the client
			// rejoins the group on its next heartbeat.
			r.log.Warn("batch not committed: the group moved on without this member; the partitions' new owner reads it again", "err", err)
			return nil
		}
	}
	r.m.batch.WithLabelValues(r.spec.Name).Observe(time.Since(b.start).Seconds())
	r.st.Batches.Add(1)
	r.st.Committed.Add(b.committed)
	return nil
}

// movedOn reports whether a commit was refused because the group went on
// without this member (its session expired, or a rebalance it missed).
func movedOn(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, kerr.RebalanceInProgress)
}

// finalFailure is a failed input after retries: the policy that applies.
type finalFailure struct {
	chainFailure
	policy Policy
}

// partBatch is one input partition's records of a batch, in offset order.
type partBatch struct {
	topic     string
	partition int32
	recs      []sdk.Record
	hw        int64    // the partition's high watermark when read
	bufs      [][]byte // read buffers the records alias (local source)
}

// sink writes output records; done is called once each is acknowledged
// (or failed). inPart is the input partition the record came from, which
// places unkeyed records. flush is called at the end of each batch.
type sink interface {
	write(ctx context.Context, topic string, inPart int32, rec sdk.Record, done func(error))
	flush(ctx context.Context)
}

// kgoSink writes through the franz-go client (the outputPartitioner places
// records).
type kgoSink struct{ cl *kgo.Client }

func (k kgoSink) write(ctx context.Context, topic string, inPart int32, rec sdk.Record, done func(error)) {
	kr := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp, Partition: inPart}
	for _, h := range rec.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	k.cl.Produce(ctx, kr, func(_ *kgo.Record, err error) { done(err) })
}

func (kgoSink) flush(context.Context) {}

// fromFetches turns a poll's records into partition batches.
func fromFetches(fetches kgo.Fetches) []partBatch {
	var parts []partBatch
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		pb := partBatch{topic: p.Topic, partition: p.Partition, hw: p.HighWatermark, recs: make([]sdk.Record, 0, len(p.Records))}
		for _, kr := range p.Records {
			rec := sdk.Record{Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset}
			if len(kr.Headers) > 0 {
				rec.Headers = make([]sdk.Header, len(kr.Headers))
				for i, h := range kr.Headers {
					rec.Headers[i] = sdk.Header{Key: h.Key, Value: h.Value}
				}
			}
			pb.recs = append(pb.recs, rec)
		}
		parts = append(parts, pb)
	})
	return parts
}

// start processes one batch, partition by partition, and writes the
// outputs and dead letters; finish waits for them and commits. halted is
// set when a record failed under the halt policy: the batch then ends
// before it.
func (r *runner) start(ctx context.Context, parts []partBatch) (b *batchInFlight, halted error) {
	b = &batchInFlight{start: time.Now(), outCount: map[string]int64{}, offsets: map[string]map[int32]int64{}}
	pending := &b.pending
	// Not ctx: a stop lets the batch in flight finish.
	wctx := context.WithoutCancel(ctx)
	dones := map[string]func(error){}
	done := func(name string) func(error) {
		if d, ok := dones[name]; ok {
			return d
		}
		d := func(err error) {
			b.mu.Lock()
			if err != nil && b.firstErr == nil {
				b.firstErr = err
			}
			if err == nil && name != "" {
				b.outCount[name]++
			}
			b.mu.Unlock()
			pending.Done()
		}
		dones[name] = d
		return d
	}
	for _, p := range parts {
		if halted != nil || len(p.recs) == 0 {
			break
		}
		r.in = p.recs
		r.m.in.WithLabelValues(r.spec.Name).Add(float64(len(r.in)))
		r.st.In.Add(int64(len(r.in)))
		outs, fails, err := r.process(ctx, r.in)
		if err != nil {
			halted = err
			break
		}
		// A halt stops the partition at the failed record: the records
		// before it are written and committed, it and those after are not.
		limit := len(r.in)
		for _, f := range fails {
			if f.policy.Kind == PolicyHalt {
				limit = f.Source
				halted = fmt.Errorf("%w: pipeline %s, stage %s, %s/%d offset %d: %v", ErrHalted, r.spec.Name, f.Stage.Name,
					p.topic, p.partition, r.in[f.Source].Offset, f.Err)
				r.m.failed.WithLabelValues(r.spec.Name, f.Stage.Name, string(PolicyHalt)).Inc()
				break
			}
		}
		fi := 0
		// handled[i]: input i produced an output or failed.
		handled := r.handled[:0]
		for range r.in {
			handled = append(handled, false)
		}
		r.handled = handled
		for _, o := range outs {
			if o.Source >= limit {
				break
			}
			// Dead letters of earlier inputs go first: one partition's
			// records keep their order across outputs and errors.
			for fi < len(fails) && fails[fi].Source < o.Source {
				r.deadLetter(wctx, fails[fi], p.partition, pending, done)
				fi++
			}
			handled[o.Source] = true
			name := o.Record.Output
			if name == "" {
				name = "default"
			}
			pending.Add(1)
			r.sink.write(wctx, r.outTopic[name], p.partition, o.Record, done(name))
		}
		for ; fi < len(fails) && fails[fi].Source < limit; fi++ {
			r.deadLetter(wctx, fails[fi], p.partition, pending, done)
		}
		for _, f := range fails {
			handled[f.Source] = true
		}
		var filtered int64
		for i := range limit {
			if !handled[i] {
				filtered++
			}
		}
		r.m.filtered.WithLabelValues(r.spec.Name).Add(float64(filtered))
		r.st.Filtered.Add(filtered)
		if limit > 0 {
			if b.offsets[p.topic] == nil {
				b.offsets[p.topic] = map[int32]int64{}
			}
			b.offsets[p.topic][p.partition] = r.in[limit-1].Offset + 1
			b.committed += int64(limit)
		}
		lag := max(p.hw-(r.in[len(r.in)-1].Offset+1), 0)
		r.m.lag.WithLabelValues(r.spec.Name, p.topic, strconv.Itoa(int(p.partition))).Set(float64(lag))
		r.st.Lag.Store(lag)
	}
	r.sink.flush(wctx)
	counts := r.chain.counts
	for i, c := range counts {
		var last stageCount
		if i < len(r.lastCnt) {
			last = r.lastCnt[i]
		}
		name := r.spec.Stages[i].Name
		r.m.stageIn.WithLabelValues(r.spec.Name, name).Add(float64(c.in - last.in))
		r.m.stageOut.WithLabelValues(r.spec.Name, name).Add(float64(c.out - last.out))
	}
	r.lastCnt = append(r.lastCnt[:0], counts...)
	r.st.mu.Lock()
	r.st.stages = r.st.stages[:0]
	for i, c := range counts {
		r.st.stages = append(r.st.stages, StageCount{Name: r.spec.Stages[i].Name, In: c.in, Out: c.out})
	}
	r.st.mu.Unlock()
	return b, halted
}

// process runs in through the chain, retries the failures whose policy
// says so, and returns the outputs in input order and the failures with
// the policy that finally applies.
func (r *runner) process(ctx context.Context, in []sdk.Record) ([]sdk.Output, []finalFailure, error) {
	out, failed, err := r.chain.run(ctx, in)
	if err != nil {
		return nil, nil, fmt.Errorf("pipelines: %s: %w", r.spec.Name, err)
	}
	outs := slices.Clone(out)
	var final []finalFailure
	var retry []chainFailure
	for _, f := range failed {
		p := r.policyOf(f.Stage)
		if p.Kind == PolicyRetry {
			retry = append(retry, f)
			continue
		}
		final = append(final, finalFailure{f, p})
	}
	for _, f := range retry {
		p := r.policyOf(f.Stage)
		backoff := p.Backoff
		cur := f
		ok := false
		for attempt := 2; attempt <= p.Attempts; attempt++ {
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, p.MaxBackoff)
			o, fs, err := r.chain.run(ctx, in[f.Source:f.Source+1])
			if err != nil {
				return nil, nil, fmt.Errorf("pipelines: %s: %w", r.spec.Name, err)
			}
			if len(fs) == 0 {
				for _, x := range o {
					x.Source = f.Source
					outs = append(outs, x)
				}
				ok = true
				break
			}
			cur = chainFailure{Source: f.Source, Stage: fs[0].Stage, Err: fs[0].Err}
			r.log.Debug("retry failed", "attempt", attempt, "stage", cur.Stage.Name, "err", cur.Err)
		}
		if !ok {
			then := Policy{Kind: p.Then, Topic: p.Topic}
			final = append(final, finalFailure{cur, then})
		}
	}
	if len(retry) > 0 {
		slices.SortStableFunc(outs, func(a, b sdk.Output) int { return a.Source - b.Source })
		slices.SortFunc(final, func(a, b finalFailure) int { return a.Source - b.Source })
	}
	return outs, final, nil
}

func (r *runner) policyOf(st *Stage) Policy {
	if st.OnError != nil {
		return *st.OnError
	}
	return r.spec.OnError
}

// deadLetter writes a failed input to its dead-letter topic (or counts a
// skip).
func (r *runner) deadLetter(ctx context.Context, f finalFailure, partition int32, pending *sync.WaitGroup, done func(string) func(error)) {
	r.m.failed.WithLabelValues(r.spec.Name, f.Stage.Name, string(f.policy.Kind)).Inc()
	r.st.Failed.Add(1)
	if f.policy.Kind == PolicySkip {
		r.log.Debug("skipped a failed record", "stage", f.Stage.Name, "err", f.Err)
		return
	}
	rec := r.in[f.Source]
	dl := sdk.Record{Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
	dl.Headers = append(slices.Clip(rec.Headers),
		sdk.Header{Key: HeaderPipeline, Value: []byte(r.spec.Name)},
		sdk.Header{Key: HeaderStage, Value: []byte(f.Stage.Name)},
		sdk.Header{Key: HeaderError, Value: []byte(f.Err.Error())},
		sdk.Header{Key: HeaderTopic, Value: []byte(rec.Topic)},
		sdk.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		sdk.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
	)
	pending.Add(1)
	r.sink.write(ctx, f.policy.Topic, partition, dl, done(""))
}

// outputPartitioner places keyed records by murmur2 (Kafka's default) and
// unkeyed ones on their input partition modulo the topic's partitions
// (the executor sets Record.Partition to the input partition).
type outputPartitioner struct{ keyed kgo.Partitioner }

func (p outputPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return outputTopicPartitioner{keyed: p.keyed.ForTopic(t)}
}

type outputTopicPartitioner struct{ keyed kgo.TopicPartitioner }

func (p outputTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p outputTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key != nil {
		return p.keyed.Partition(r, n)
	}
	return int(r.Partition) % n
}

// prepareTopics checks that the inputs exist (or creates them, with
// createInputs) and creates missing outputs and dead-letter topics with as
// many partitions as the first input.
func prepareTopics(ctx context.Context, s *Spec, brokers []string, createInputs bool, log *slog.Logger) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("pipelines: %s: listing topics: %w", s.Name, err)
	}
	partitions := int32(1)
	for i, t := range s.Input.Topics {
		d, ok := topics[t]
		if (!ok || d.Err != nil) && createInputs {
			resp, err := adm.CreateTopic(ctx, -1, -1, nil, t)
			if err == nil {
				err = resp.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("pipelines: %s: creating input topic %q: %w", s.Name, t, err)
			}
			log.Info("created input topic", "topic", t)
			if topics, err = adm.ListTopics(ctx, t); err != nil {
				return fmt.Errorf("pipelines: %s: listing topics: %w", s.Name, err)
			}
			d, ok = topics[t]
		}
		if !ok || d.Err != nil {
			return fmt.Errorf("pipelines: %s: input topic %q does not exist (create it with weir topic create %s)", s.File, t, t)
		}
		if i == 0 {
			partitions = int32(len(d.Partitions))
		}
	}
	want := map[string]bool{}
	for _, o := range s.Outputs {
		want[o.Topic] = true
	}
	for _, p := range append([]Policy{s.OnError}, stagePolicies(s)...) {
		if p.Topic != "" {
			want[p.Topic] = true
		}
	}
	for t := range want {
		if _, ok := topics[t]; ok {
			continue
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("pipelines: %s: creating output topic %q: %w", s.Name, t, err)
		}
		log.Info("created output topic", "topic", t, "partitions", partitions)
	}
	return nil
}

func stagePolicies(s *Spec) []Policy {
	var ps []Policy
	for _, st := range s.Stages {
		if st.OnError != nil {
			ps = append(ps, *st.OnError)
		}
	}
	return ps
}

// resetGroup commits, for the group, the offsets of start on every input
// partition.
func resetGroup(ctx context.Context, s *Spec, brokers []string, start Start) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var listed kadm.ListedOffsets
	switch start.Kind {
	case StartEarliest, StartOffset:
		listed, err = adm.ListStartOffsets(ctx, s.Input.Topics...)
	case StartLatest:
		listed, err = adm.ListEndOffsets(ctx, s.Input.Topics...)
	case StartTime:
		listed, err = adm.ListOffsetsAfterMilli(ctx, start.Time.UnixMilli(), s.Input.Topics...)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("pipelines: %s: replay from %s: %w", s.Name, start, err)
	}
	offsets := kadm.Offsets{}
	listed.Each(func(l kadm.ListedOffset) {
		at := l.Offset
		if start.Kind == StartOffset {
			at = max(start.Offset, l.Offset)
		}
		offsets.Add(kadm.Offset{Topic: l.Topic, Partition: l.Partition, At: at, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(ctx, s.Input.Group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("pipelines: %s: replay from %s: committing offsets for group %s (is another instance running?): %w", s.Name, start, s.Input.Group, err)
	}
	return nil
}
