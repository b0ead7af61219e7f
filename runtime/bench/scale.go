package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/runtime/server"
)

// ScaleOptions describe `weir bench scale`: many partitions on one embedded
// node, each created, written once and read once, with the process's RSS
// and open file descriptors measured after every stage; then one large log,
// a clean shutdown and a timed restart on the same data directory.
type ScaleOptions struct {
	// Partitions to create, write once and read once; default 10,000.
	Partitions int
	// Topics the partitions are spread over evenly (topics weir-scale-0,
	// weir-scale-1, ...); default ceil(Partitions/10,000), the broker's
	// per-topic limit.
	Topics int
	// LogBytes of record values produced into one extra single-partition
	// topic (weir-scale-fill) before the shutdown; default 10 GB (10^10);
	// negative skips the fill.
	LogBytes int64
	// RecordSize is the value size of the fill's records; default 1 KiB.
	RecordSize int
	// BatchBytes is the fill producer's largest batch; default 1 MiB.
	BatchBytes int32
	// Dir is where the temporary data directory is made (removed
	// afterwards); default os.TempDir().
	Dir string
	// DropCaches syncs and drops the kernel's page cache (needs root)
	// before the restart and before the fill log is opened alone, so they
	// read from the disk instead of memory.
	DropCaches bool
	// Progress receives a line per stage and per-second lines during the
	// long ones; nil for none.
	Progress io.Writer
}

const (
	scaleTopicPrefix  = "weir-scale-"
	scaleFillTopic    = "weir-scale-fill"
	scaleMaxPerTopic  = 10000 // broker.Config.MaxPartitions' default
	scaleFetchChunk   = 1000  // partitions per Fetch request when reading back
	scaleDefaultBytes = 10_000_000_000
	// scaleSegmentBytes is the default segment.bytes, used to estimate the
	// fill's segments (one open file each).
	scaleSegmentBytes = 1 << 30
)

func (o *ScaleOptions) defaults() error {
	if o.Partitions <= 0 {
		o.Partitions = 10000
	}
	if o.Topics <= 0 {
		o.Topics = (o.Partitions + scaleMaxPerTopic - 1) / scaleMaxPerTopic
	}
	if o.Topics > o.Partitions {
		return fmt.Errorf("bench: %d topics for %d partitions: want at most one topic per partition", o.Topics, o.Partitions)
	}
	if per := (o.Partitions + o.Topics - 1) / o.Topics; per > scaleMaxPerTopic {
		return fmt.Errorf("bench: %d partitions in %d topics is %d per topic, over the broker's limit of %d; use more topics", o.Partitions, o.Topics, per, scaleMaxPerTopic)
	}
	if o.LogBytes == 0 {
		o.LogBytes = scaleDefaultBytes
	}
	if o.RecordSize <= 0 {
		o.RecordSize = 1024
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 1 << 20
	}
	if o.RecordSize > int(o.BatchBytes)-128 {
		return fmt.Errorf("bench: fill record size %d does not fit a %d-byte batch", o.RecordSize, o.BatchBytes)
	}
	return nil
}

// fillRecords is the number of fill records: LogBytes of values, rounded up.
func (o *ScaleOptions) fillRecords() int64 {
	if o.LogBytes <= 0 {
		return 0
	}
	return (o.LogBytes + int64(o.RecordSize) - 1) / int64(o.RecordSize)
}

// ScaleStage is one timed stage.
type ScaleStage struct {
	Name    string        `json:"name"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Detail  string        `json:"detail,omitempty"`
}

// ScaleSnapshot is the process's memory and file descriptors at one point.
// RSS is read after a garbage collection that returns freed memory to the
// operating system (debug.FreeOSMemory), so it is what the process keeps,
// not what the collector has not got round to; RSSBeforeGC is the figure
// before it. The client of the benchmark runs in the same process; its
// connections are closed before each snapshot.
type ScaleSnapshot struct {
	Name           string        `json:"name"`
	RSSKiB         int64         `json:"rss_kib"`           // VmRSS after the GC
	RSSBeforeGCKiB int64         `json:"rss_before_gc_kib"` // VmRSS as found
	PeakRSSKiB     int64         `json:"peak_rss_kib"`      // VmHWM: the largest RSS since the process started
	HeapInuseKiB   int64         `json:"heap_inuse_kib"`    // Go heap spans in use after the GC
	Goroutines     int           `json:"goroutines"`
	FDs            int           `json:"fds"`            // every open file descriptor
	FDLogFiles     int           `json:"fd_log_files"`   // of which segment .log files in the data directory
	FDOtherData    int           `json:"fd_other_data"`  // other files and directories in the data directory
	FDSockets      int           `json:"fd_sockets"`     // sockets: listeners and connections
	FDOther        int           `json:"fd_other"`       // the rest: epoll, pipes, the terminal...
	At             time.Duration `json:"at_ns"`          // since the run started
	Note           string        `json:"note,omitempty"` // what was open at the time
}

// ScaleFill describes the large log.
type ScaleFill struct {
	Topic      string  `json:"topic"`
	Records    int64   `json:"records"`     // acknowledged
	ValueBytes int64   `json:"value_bytes"` // bytes of record values
	DiskBytes  int64   `json:"disk_bytes"`  // bytes of the partition's .log files
	Segments   int     `json:"segments"`
	EndOffset  int64   `json:"end_offset"` // one past the highest acknowledged offset
	MBPerSec   float64 `json:"mb_per_sec"` // values, 10^6 bytes/s
	// EndOffsetAfterRestart is the partition's end offset (ListOffsets
	// latest) after the restart; it must equal EndOffset.
	EndOffsetAfterRestart int64 `json:"end_offset_after_restart"`
	// OpenAlone is commitlog.Open of this partition's directory by itself,
	// after the final shutdown: the cost of the large log alone, without the
	// thousands of small ones.
	OpenAlone time.Duration `json:"open_alone_ns"`
}

// ScaleRestart is the clean shutdown and restart.
type ScaleRestart struct {
	Shutdown time.Duration `json:"shutdown_ns"` // server.Shutdown: connections, then every log closed cleanly
	// Start is server.Start on the same data directory: every topic's logs
	// opened and the listener bound, ready to serve.
	Start time.Duration `json:"start_ns"`
	// Metadata is from the start of server.Start until a new client's first
	// Metadata request (all topics) was answered.
	Metadata      time.Duration `json:"metadata_ns"`
	ColdCache     bool          `json:"cold_cache"`        // the page cache was dropped before it
	FinalShutdown time.Duration `json:"final_shutdown_ns"` // the restarted node's shutdown (nothing changed since its start)
	// PartitionsAtOne counts partitions whose end offset after the restart
	// is 1, as written; it must equal the partition count.
	PartitionsAtOne int `json:"partitions_at_one"`
	// FillTailRead: the fill's last record was fetched after the restart.
	FillTailRead bool `json:"fill_tail_read"`
}

// ScaleCost is what one partition costs, from the snapshots before the
// partitions were created and after each was written once.
type ScaleCost struct {
	FDs          float64 `json:"fds"`            // (fds after writes - baseline) / partitions
	LogFiles     float64 `json:"log_files"`      // the same, counting only .log files
	RSSKiB       float64 `json:"rss_kib"`        // (RSS after writes - baseline) / partitions
	HeapKiB      float64 `json:"heap_kib"`       // the same for the Go heap in use
	Goroutines   float64 `json:"goroutines"`     // the same for goroutines
	RSSKiBReopen float64 `json:"rss_kib_reopen"` // (RSS after the restart - baseline) / partitions
}

// ScaleResult is the outcome of Scale.
type ScaleResult struct {
	Started    time.Time     `json:"started"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Machine    string        `json:"machine"`
	Dir        string        `json:"dir"`
	Partitions int           `json:"partitions"`
	Topics     int           `json:"topics"`
	// FDLimit is the soft RLIMIT_NOFILE (-1: unknown); FDNeeded is the
	// estimate checked against it before starting.
	FDLimit  int64 `json:"fd_limit"`
	FDNeeded int64 `json:"fd_needed"`

	Stages    []ScaleStage    `json:"stages"`
	Snapshots []ScaleSnapshot `json:"snapshots"`

	Written int `json:"written"` // partitions whose one record was acknowledged at offset 0
	Read    int `json:"read"`    // partitions read back with exactly that record and high watermark 1
	// CreateStall is the slowest ListOffsets of __consumer_offsets/0 sent
	// every 100 ms while the partitions were being created: how long other
	// topics' requests wait behind a large CreateTopics.
	CreateStall time.Duration `json:"create_stall_ns"`

	Fill    *ScaleFill   `json:"fill,omitempty"`
	Restart ScaleRestart `json:"restart"`
	Cost    ScaleCost    `json:"per_partition"`
}

// Stage returns the stage with the given name.
func (r *ScaleResult) Stage(name string) (ScaleStage, bool) {
	for _, s := range r.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return ScaleStage{}, false
}

// Snapshot returns the snapshot with the given name.
func (r *ScaleResult) Snapshot(name string) (ScaleSnapshot, bool) {
	for _, s := range r.Snapshots {
		if s.Name == name {
			return s, true
		}
	}
	return ScaleSnapshot{}, false
}

// scaleTopic is one topic of the run and its partition count.
type scaleTopic struct {
	name       string
	partitions int32
}

type scaleRun struct {
	o       ScaleOptions
	res     *ScaleResult
	dataDir string
	cfg     server.Config
	srv     *server.Server
	topics  []scaleTopic
	started time.Time
	sockets int // sockets open with the node idle (its listener)
}

// Scale runs the scale benchmark (see ScaleOptions) in a temporary data
// directory and removes it afterwards. It returns an error when any check
// fails: a record not acknowledged, read back wrong, or an offset other
// than expected after the restart.
func Scale(ctx context.Context, o ScaleOptions) (*ScaleResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	soft, hard := fdLimit()
	need := int64(o.Partitions) + 8 /* __consumer_offsets */ + 256 /* sockets, the runtime, margin */
	if n := o.fillRecords(); n > 0 {
		// Record overhead is a few bytes per record: 5% covers it.
		need += int64(float64(n*int64(o.RecordSize))*1.05/scaleSegmentBytes) + 1
	}
	if soft >= 0 && soft < need {
		return nil, fmt.Errorf("bench: %d partitions (plus the fill's segments) need about %d open files, one per log segment, but the soft open-file limit (ulimit -n) is %d (hard limit %d); raise it or use fewer partitions", o.Partitions, need, soft, hard)
	}
	tmp, err := os.MkdirTemp(o.Dir, "weir-bench-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	s := &scaleRun{o: o, dataDir: tmp, started: time.Now()}
	s.res = &ScaleResult{Started: s.started, Machine: machine(), Dir: tmp, Partitions: o.Partitions, Topics: o.Topics, FDLimit: soft, FDNeeded: need}
	for i := range o.Topics {
		n := o.Partitions / o.Topics
		if i < o.Partitions%o.Topics {
			n++
		}
		s.topics = append(s.topics, scaleTopic{name: scaleTopicPrefix + strconv.Itoa(i), partitions: int32(n)})
	}
	s.cfg = server.Config{DataDir: tmp, KafkaAddr: "127.0.0.1:0", HTTPAddr: "off", GroupInitialRebalanceDelay: -1}
	defer func() {
		if s.srv != nil {
			s.srv.Shutdown(context.Background())
		}
	}()
	if err := s.run(ctx); err != nil {
		return s.res, err
	}
	s.res.Elapsed = time.Since(s.started)
	return s.res, nil
}

func (s *scaleRun) progress(format string, args ...any) {
	if s.o.Progress != nil {
		fmt.Fprintf(s.o.Progress, "scale: "+format+"\n", args...)
	}
}

// ticker calls line every second until the returned stop is called, and
// prints what it returns.
func (s *scaleRun) ticker(stage string, line func() string) (stop func()) {
	if s.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				s.progress("%s %5.1fs: %s", stage, now.Sub(start).Seconds(), line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *scaleRun) stage(name string, elapsed time.Duration, detail string) {
	s.res.Stages = append(s.res.Stages, ScaleStage{Name: name, Elapsed: elapsed, Detail: detail})
	if detail != "" {
		detail = ": " + detail
	}
	s.progress("%s took %v%s", name, roundDur(elapsed), detail)
}

// snapshot records memory and descriptors, first waiting (up to 2 s) for
// the node to close the sockets of clients that have just gone.
func (s *scaleRun) snapshot(name, note string) ScaleSnapshot {
	deadline := time.Now().Add(2 * time.Second)
	for s.sockets > 0 && time.Now().Before(deadline) {
		if countFDs(s.dataDir).FDSockets <= s.sockets {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := procStatusKiB("VmRSS")
	debug.FreeOSMemory()
	snap := countFDs(s.dataDir)
	snap.Name, snap.Note = name, note
	snap.RSSBeforeGCKiB = before
	snap.RSSKiB = procStatusKiB("VmRSS")
	snap.PeakRSSKiB = procStatusKiB("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	snap.HeapInuseKiB = int64(ms.HeapInuse >> 10)
	snap.Goroutines = runtime.NumGoroutine()
	snap.At = time.Since(s.started)
	s.res.Snapshots = append(s.res.Snapshots, snap)
	s.progress("%s: RSS %s (peak %s), heap %s, %d goroutines, %d fds (%d .log files, %d sockets)", name,
		kib(snap.RSSKiB), kib(snap.PeakRSSKiB), kib(snap.HeapInuseKiB), snap.Goroutines, snap.FDs, snap.FDLogFiles, snap.FDSockets)
	return snap
}

func (s *scaleRun) client(opts ...kgo.Opt) (*kgo.Client, error) {
	// A large CreateTopics or Produce can hold a request for tens of
	// seconds on a slow disk; the client must not give up and retry.
	base := []kgo.Opt{kgo.SeedBrokers(s.srv.KafkaAddr()), kgo.RequestTimeoutOverhead(5 * time.Minute), kgo.DialTimeout(10 * time.Second)}
	return kgo.NewClient(append(base, opts...)...)
}

func (s *scaleRun) run(ctx context.Context) error {
	o := &s.o
	t0 := time.Now()
	srv, err := server.Start(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("bench: embedded node: %w", err)
	}
	s.srv = srv
	s.stage("start", time.Since(t0), "empty data directory "+s.dataDir)
	s.sockets = countFDs(s.dataDir).FDSockets
	base := s.snapshot("baseline", "node started, no topics but __consumer_offsets")

	if err := s.create(ctx); err != nil {
		return err
	}
	s.snapshot("created", fmt.Sprintf("%d partitions created", o.Partitions))
	if err := s.write(ctx); err != nil {
		return err
	}
	written := s.snapshot("written", "one record in every partition")
	if err := s.read(ctx); err != nil {
		return err
	}
	s.snapshot("read", "every partition read back once")
	p := float64(o.Partitions)
	s.res.Cost = ScaleCost{
		FDs:        float64(written.FDs-base.FDs) / p,
		LogFiles:   float64(written.FDLogFiles-base.FDLogFiles) / p,
		RSSKiB:     float64(written.RSSKiB-base.RSSKiB) / p,
		HeapKiB:    float64(written.HeapInuseKiB-base.HeapInuseKiB) / p,
		Goroutines: float64(written.Goroutines-base.Goroutines) / p,
	}

	if o.LogBytes > 0 {
		if err := s.fill(ctx); err != nil {
			return err
		}
		s.snapshot("filled", fmt.Sprintf("%s of values in %s/0", gb(s.res.Fill.ValueBytes), scaleFillTopic))
	}

	if err := s.restart(ctx); err != nil {
		return err
	}
	reopened := s.snapshot("restarted", "after the restart and its checks")
	s.res.Cost.RSSKiBReopen = float64(reopened.RSSKiB-base.RSSKiB) / p

	t0 = time.Now()
	err = s.srv.Shutdown(ctx)
	s.res.Restart.FinalShutdown = time.Since(t0)
	s.srv = nil
	s.stage("final shutdown", s.res.Restart.FinalShutdown, "the restarted node, nothing written since its start")
	if err != nil {
		return fmt.Errorf("bench: final shutdown: %w", err)
	}
	if f := s.res.Fill; f != nil {
		if o.DropCaches {
			if err := dropCaches(); err != nil {
				return fmt.Errorf("bench: drop caches: %w", err)
			}
		}
		dir := filepath.Join(s.dataDir, "topics", scaleFillTopic, "0")
		t0 = time.Now()
		l, err := commitlog.Open(dir, commitlog.Options{})
		f.OpenAlone = time.Since(t0)
		if err != nil {
			return fmt.Errorf("bench: open %s alone: %w", dir, err)
		}
		leo := l.LogEndOffset()
		l.Close()
		if leo != f.EndOffset {
			return fmt.Errorf("bench: %s opened alone ends at offset %d, want %d", dir, leo, f.EndOffset)
		}
		s.stage("open fill log alone", f.OpenAlone, fmt.Sprintf("commitlog.Open of %s/0 (%s in %d segments), end offset %d", scaleFillTopic, gb(f.DiskBytes), f.Segments, leo))
	}
	return nil
}

// create creates the topics while a probe measures how long a request to
// another topic waits.
func (s *scaleRun) create(ctx context.Context) error {
	cl, err := s.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32((10 * time.Minute).Milliseconds()))
	probe, err := s.client()
	if err != nil {
		return err
	}
	defer probe.Close()
	if err := listOffsetsOnce(ctx, probe); err != nil { // connect and warm up first
		return fmt.Errorf("bench: probe: %w", err)
	}
	// The probe's request in flight when the create finishes is let finish
	// (not cancelled): it is the one that waited longest.
	var stall atomic.Int64
	var probeErr error
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			t := time.Now()
			if err := listOffsetsOnce(ctx, probe); err != nil {
				probeErr = err
				return
			}
			if d := time.Since(t); int64(d) > stall.Load() {
				stall.Store(int64(d))
			}
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	s.progress("creating %d partitions in %d topic(s)", s.o.Partitions, len(s.topics))
	stop := s.ticker("create", func() string {
		return fmt.Sprintf("%d .log files open", countFDs(s.dataDir).FDLogFiles)
	})
	t0 := time.Now()
	for _, t := range s.topics {
		var resp kadm.CreateTopicResponse
		resp, err = adm.CreateTopic(ctx, t.partitions, 1, nil, t.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			err = fmt.Errorf("bench: create topic %s with %d partitions: %w", t.name, t.partitions, err)
			break
		}
	}
	elapsed := time.Since(t0)
	stop()
	close(done)
	wg.Wait()
	if err != nil {
		return err
	}
	if probeErr != nil {
		return fmt.Errorf("bench: probe during create: %w", probeErr)
	}
	s.res.CreateStall = time.Duration(stall.Load())
	s.stage("create", elapsed, fmt.Sprintf("%d partitions in %d topic(s), default topic config; slowest request to another topic meanwhile: %v",
		s.o.Partitions, len(s.topics), s.res.CreateStall.Round(time.Millisecond)))
	return nil
}

// listOffsetsOnce asks for the end offset of __consumer_offsets/0.
func listOffsetsOnce(ctx context.Context, cl *kgo.Client) error {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "__consumer_offsets"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	_, err := req.RequestWith(ctx, cl)
	return err
}

func scaleValue(topic string, p int32) []byte {
	return []byte(topic + "/" + strconv.Itoa(int(p)))
}

// write produces one record to every partition (acks=all, idempotent: the
// client's defaults) and checks every acknowledgement.
func (s *scaleRun) write(ctx context.Context) error {
	cl, err := s.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(s.o.Partitions+1),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var (
		acked, failed atomic.Int64
		mu            sync.Mutex
		first         error
		wg            sync.WaitGroup
	)
	stop := s.ticker("write", func() string { return fmt.Sprintf("%d of %d acknowledged", acked.Load(), s.o.Partitions) })
	t0 := time.Now()
	for _, t := range s.topics {
		for p := range t.partitions {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: t.name, Partition: p, Value: scaleValue(t.name, p)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err == nil && r.Offset != 0 {
					err = fmt.Errorf("acknowledged at offset %d, want 0", r.Offset)
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s/%d: %w", r.Topic, r.Partition, err)
					}
					mu.Unlock()
					return
				}
				acked.Add(1)
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stop()
	s.res.Written = int(acked.Load())
	if first != nil {
		return fmt.Errorf("bench: write: %d of %d records failed, first: %w", failed.Load(), s.o.Partitions, first)
	}
	s.stage("write", elapsed, fmt.Sprintf("%d records, one per partition, each acknowledged at offset 0 (acks=all, flush.messages=1: fsync per batch)", acked.Load()))
	return nil
}

// read fetches every partition from offset 0 with sessionless Fetch
// requests of scaleFetchChunk partitions and checks that each holds exactly
// its one record.
func (s *scaleRun) read(ctx context.Context) error {
	cl, err := s.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	type tp struct {
		topic string
		p     int32
	}
	var pending []tp
	for _, t := range s.topics {
		for p := range t.partitions {
			pending = append(pending, tp{t.name, p})
		}
	}
	var good atomic.Int64
	stop := s.ticker("read", func() string { return fmt.Sprintf("%d of %d partitions read", good.Load(), s.o.Partitions) })
	defer stop()
	t0 := time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	requests := 0
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: read: %d partitions returned no record within 5 minutes (first %s/%d)", len(pending), pending[0].topic, pending[0].p)
		}
		var next []tp
		for len(pending) > 0 {
			chunk := pending[:min(scaleFetchChunk, len(pending))]
			pending = pending[len(chunk):]
			req := kmsg.NewPtrFetchRequest()
			req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 1, 64<<20
			req.SessionID, req.SessionEpoch = 0, -1
			for _, c := range chunk {
				if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != c.topic {
					rt := kmsg.NewFetchRequestTopic()
					rt.Topic = c.topic
					req.Topics = append(req.Topics, rt)
				}
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = c.p, 0, 1<<20
				rt := &req.Topics[len(req.Topics)-1]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp, err := req.RequestWith(ctx, cl)
			requests++
			if err != nil {
				return fmt.Errorf("bench: read: fetch: %w", err)
			}
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				return fmt.Errorf("bench: read: fetch: %w", err)
			}
			seen := 0
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					seen++
					if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
						return fmt.Errorf("bench: read %s/%d: %w", rt.Topic, rp.Partition, err)
					}
					if rp.HighWatermark != 1 {
						return fmt.Errorf("bench: read %s/%d: high watermark %d, want 1", rt.Topic, rp.Partition, rp.HighWatermark)
					}
					if len(rp.RecordBatches) == 0 {
						next = append(next, tp{rt.Topic, rp.Partition}) // over the response's budget: again
						continue
					}
					recs, err := decodeBatches(rp.RecordBatches)
					if err != nil {
						return fmt.Errorf("bench: read %s/%d: %w", rt.Topic, rp.Partition, err)
					}
					want := scaleValue(rt.Topic, rp.Partition)
					if len(recs) != 1 || recs[0].Offset != 0 || !bytes.Equal(recs[0].Value, want) {
						return fmt.Errorf("bench: read %s/%d: got %d records (%s), want one at offset 0 with value %q", rt.Topic, rp.Partition, len(recs), describeRecords(recs), want)
					}
					good.Add(1)
				}
			}
			if seen != len(chunk) {
				return fmt.Errorf("bench: read: a fetch of %d partitions answered %d", len(chunk), seen)
			}
		}
		pending = next
	}
	elapsed := time.Since(t0)
	s.res.Read = int(good.Load())
	s.stage("read", elapsed, fmt.Sprintf("%d partitions fetched from offset 0 in %d requests: one record each, value as written, high watermark 1", s.res.Read, requests))
	return nil
}

// decodeBatches returns the records of the batches in b.
func decodeBatches(b []byte) ([]record.Record, error) {
	var out []record.Record
	for len(b) > 0 {
		_, batch, rest, err := record.Next(b)
		if err != nil {
			return nil, err
		}
		recs, err := record.Records(batch, 1<<20)
		if err != nil {
			return nil, err
		}
		out, b = append(out, recs...), rest
	}
	return out, nil
}

func describeRecords(recs []record.Record) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, fmt.Sprintf("offset %d value %q", r.Offset, r.Value))
	}
	return strings.Join(parts, ", ")
}

// fill produces LogBytes of values into the single partition of the fill
// topic, which does not fsync per batch; the clean shutdown fsyncs it.
func (s *scaleRun) fill(ctx context.Context) error {
	o := &s.o
	cl, err := s.client()
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	never := strconv.FormatInt(math.MaxInt64, 10)
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"flush.messages": &never}, scaleFillTopic)
	if err == nil {
		err = resp.Err
	}
	cl.Close()
	if err != nil {
		return fmt.Errorf("bench: create topic %s: %w", scaleFillTopic, err)
	}
	n := o.fillRecords()
	perBatch := max(int(o.BatchBytes)/(o.RecordSize+16), 1)
	pcl, err := s.client(kgo.DefaultProduceTopic(scaleFillTopic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchMaxBytes(o.BatchBytes), kgo.MaxBufferedRecords(8*perBatch), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer pcl.Close()
	value := make([]byte, o.RecordSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var (
		acked, failed, end atomic.Int64
		mu                 sync.Mutex
		first              error
	)
	pool := sync.Pool{New: func() any { return new(kgo.Record) }}
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		} else {
			acked.Add(1)
			for {
				cur := end.Load()
				if r.Offset+1 <= cur || end.CompareAndSwap(cur, r.Offset+1) {
					break
				}
			}
		}
		*r = kgo.Record{}
		pool.Put(r)
	}
	total := n * int64(o.RecordSize)
	var last, lastAt = int64(0), time.Now()
	stop := s.ticker("fill", func() string {
		b, now := acked.Load()*int64(o.RecordSize), time.Now()
		rate := float64(b-last) / now.Sub(lastAt).Seconds() / 1e6
		last, lastAt = b, now
		return fmt.Sprintf("%s of %s (%.0f%%), %.0f MB/s", gb(b), gb(total), 100*float64(b)/float64(total), rate)
	})
	s.progress("filling %s/0 with %d records of %d bytes (%s), acks=1, flush.messages=%s", scaleFillTopic, n, o.RecordSize, gb(total), never)
	t0 := time.Now()
	for i := int64(0); i < n && ctx.Err() == nil; i++ {
		r := pool.Get().(*kgo.Record)
		r.Value = value
		pcl.Produce(ctx, r, promise)
		if failed.Load() > 0 {
			break
		}
	}
	if err := pcl.Flush(ctx); err != nil && first == nil {
		first = err
	}
	elapsed := time.Since(t0)
	stop()
	if first != nil {
		return fmt.Errorf("bench: fill: %d of %d records failed, first: %w", failed.Load(), n, first)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f := &ScaleFill{Topic: scaleFillTopic, Records: acked.Load(), ValueBytes: acked.Load() * int64(o.RecordSize), EndOffset: end.Load()}
	if f.Records != n || f.EndOffset != n {
		return fmt.Errorf("bench: fill: %d records acknowledged, highest offset %d, want %d", f.Records, f.EndOffset-1, n)
	}
	f.MBPerSec = float64(f.ValueBytes) / elapsed.Seconds() / 1e6
	ents, err := os.ReadDir(filepath.Join(s.dataDir, "topics", scaleFillTopic, "0"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			if info, err := e.Info(); err == nil {
				f.DiskBytes += info.Size()
				f.Segments++
			}
		}
	}
	s.res.Fill = f
	s.stage("fill", elapsed, fmt.Sprintf("%d records, %s of values, %s on disk in %d segments, %.0f MB/s", f.Records, gb(f.ValueBytes), gb(f.DiskBytes), f.Segments, f.MBPerSec))
	return nil
}

// restart shuts the node down cleanly, starts it again on the same data
// directory and checks every partition's end offset.
func (s *scaleRun) restart(ctx context.Context) error {
	r := &s.res.Restart
	stop := s.ticker("shutdown", func() string { return fmt.Sprintf("%d .log files still open", countFDs(s.dataDir).FDLogFiles) })
	t0 := time.Now()
	err := s.srv.Shutdown(ctx)
	r.Shutdown = time.Since(t0)
	stop()
	s.srv = nil
	s.stage("shutdown", r.Shutdown, "clean: connections finished, every log fsynced, indexes and checkpoint written")
	if err != nil {
		return fmt.Errorf("bench: shutdown: %w", err)
	}
	if s.o.DropCaches {
		if err := dropCaches(); err != nil {
			return fmt.Errorf("bench: drop caches: %w", err)
		}
		r.ColdCache = true
	}

	stop = s.ticker("restart", func() string { return fmt.Sprintf("%d .log files open", countFDs(s.dataDir).FDLogFiles) })
	t0 = time.Now()
	srv, err := server.Start(ctx, s.cfg)
	r.Start = time.Since(t0)
	stop()
	if err != nil {
		return fmt.Errorf("bench: restart: %w", err)
	}
	s.srv = srv
	cl, err := s.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	r.Metadata = time.Since(t0)
	if err != nil {
		return fmt.Errorf("bench: metadata after restart: %w", err)
	}
	cache := "warm page cache"
	if r.ColdCache {
		cache = "page cache dropped first"
	}
	s.stage("restart", r.Start, fmt.Sprintf("server.Start on the same data directory, %s; first Metadata answered %v after the start began", cache, roundDur(r.Metadata)))
	parts := map[string]int{}
	for _, t := range md.Topics {
		if t.Topic != nil {
			parts[*t.Topic] = len(t.Partitions)
		}
	}
	for _, t := range s.topics {
		if parts[t.name] != int(t.partitions) {
			return fmt.Errorf("bench: after restart, metadata shows %d partitions of %s, want %d", parts[t.name], t.name, t.partitions)
		}
	}

	t0 = time.Now()
	names := make([]string, 0, len(s.topics)+1)
	for _, t := range s.topics {
		names = append(names, t.name)
	}
	if s.res.Fill != nil {
		names = append(names, scaleFillTopic)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names...)
	if err != nil {
		return fmt.Errorf("bench: list end offsets after restart: %w", err)
	}
	var bad []string
	ends.Each(func(lo kadm.ListedOffset) {
		switch {
		case lo.Err != nil:
			bad = append(bad, fmt.Sprintf("%s/%d: %v", lo.Topic, lo.Partition, lo.Err))
		case lo.Topic == scaleFillTopic:
			s.res.Fill.EndOffsetAfterRestart = lo.Offset
		case lo.Offset == 1:
			r.PartitionsAtOne++
		default:
			bad = append(bad, fmt.Sprintf("%s/%d at %d", lo.Topic, lo.Partition, lo.Offset))
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("bench: after restart, %d partitions are wrong: %s", len(bad), strings.Join(bad[:min(len(bad), 5)], "; "))
	}
	if r.PartitionsAtOne != s.o.Partitions {
		return fmt.Errorf("bench: after restart, %d of %d partitions listed at end offset 1", r.PartitionsAtOne, s.o.Partitions)
	}
	detail := fmt.Sprintf("%d of %d partitions at end offset 1", r.PartitionsAtOne, s.o.Partitions)
	if f := s.res.Fill; f != nil {
		if f.EndOffsetAfterRestart != f.EndOffset {
			return fmt.Errorf("bench: after restart, %s/0 ends at %d, but %d were acknowledged", scaleFillTopic, f.EndOffsetAfterRestart, f.EndOffset)
		}
		if err := fetchTail(ctx, cl, f.EndOffset-1); err != nil {
			return fmt.Errorf("bench: after restart: %w", err)
		}
		r.FillTailRead = true
		detail += fmt.Sprintf("; %s/0 ends at %d as acknowledged, its last record read back", scaleFillTopic, f.EndOffset)
	}
	s.stage("verify", time.Since(t0), detail)
	return nil
}

// fetchTail reads the fill's record at offset off.
func fetchTail(ctx context.Context, cl *kgo.Client, off int64) error {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 1, 4<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = scaleFillTopic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, off, 2<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("fetch %s/0 at %d: %w", scaleFillTopic, off, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("fetch %s/0 at %d: malformed response", scaleFillTopic, off)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return fmt.Errorf("fetch %s/0 at %d: %w", scaleFillTopic, off, err)
	}
	recs, err := decodeBatches(p.RecordBatches)
	if err != nil {
		return fmt.Errorf("fetch %s/0 at %d: %w", scaleFillTopic, off, err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Offset != off {
		return fmt.Errorf("fetch %s/0 at %d: the last record returned is not at %d (%d records)", scaleFillTopic, off, off, len(recs))
	}
	return nil
}

// countFDs classifies the process's open file descriptors.
func countFDs(dataDir string) ScaleSnapshot {
	var s ScaleSnapshot
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		s.FDs, s.FDLogFiles, s.FDOtherData, s.FDSockets, s.FDOther = -1, -1, -1, -1, -1
		return s
	}
	prefix := dataDir + string(os.PathSeparator)
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory being read, closed by now
		}
		s.FDs++
		switch {
		case strings.HasPrefix(target, prefix) && strings.HasSuffix(target, ".log"):
			s.FDLogFiles++
		case strings.HasPrefix(target, prefix) || target == dataDir:
			s.FDOtherData++
		case strings.HasPrefix(target, "socket:"):
			s.FDSockets++
		default:
			s.FDOther++
		}
	}
	return s
}

// procStatusKiB reads a "kB" field of /proc/self/status; -1 when unknown.
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// roundDur keeps three or four significant digits.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func kib(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 10<<10:
		return fmt.Sprintf("%.0f MiB", float64(n)/1024)
	default:
		return fmt.Sprintf("%d KiB", n)
	}
}

func gb(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// Bounds states the resource bounds the run measured, one per line.
func (r *ScaleResult) Bounds() []string {
	base, ok1 := r.Snapshot("baseline")
	written, ok2 := r.Snapshot("written")
	if !ok1 || !ok2 {
		return nil
	}
	c := r.Cost
	out := []string{
		fmt.Sprintf("open files: %d at start + %.2f per partition (%.2f of them the partition's active .log segment; indexes live in memory) + 1 per further segment + 1 per connection; %d partitions: %d fds",
			base.FDs, c.FDs, c.LogFiles, r.Partitions, written.FDs),
		fmt.Sprintf("memory: RSS %s at start + %.1f KiB per partition (Go heap %.1f KiB); %d partitions: %s, peak %s so far",
			kib(base.RSSKiB), c.RSSKiB, c.HeapKiB, r.Partitions, kib(written.RSSKiB), kib(written.PeakRSSKiB)),
		fmt.Sprintf("goroutines: %.3f per partition (%d at start, %d with %d partitions)", c.Goroutines, base.Goroutines, written.Goroutines, r.Partitions),
	}
	if re, ok := r.Snapshot("restarted"); ok {
		out = append(out, fmt.Sprintf("after the restart: %d fds (%d .log files), RSS %s (%.1f KiB per partition over the start), peak RSS of the whole run %s",
			re.FDs, re.FDLogFiles, kib(re.RSSKiB), c.RSSKiBReopen, kib(re.PeakRSSKiB)))
	}
	return out
}

// Format prints the result for people.
func (r *ScaleResult) Format(w io.Writer) {
	fmt.Fprintf(w, "weir bench scale, %s, %s (took %v)\n", r.Started.Format("2006-01-02 15:04 MST"), r.Machine, r.Elapsed.Round(time.Second))
	limit := "unknown"
	if r.FDLimit >= 0 {
		limit = strconv.FormatInt(r.FDLimit, 10)
	}
	fmt.Fprintf(w, "  %d partitions in %d topic(s) on one embedded node, data in %s; open-file limit %s (needed about %d)\n", r.Partitions, r.Topics, r.Dir, limit, r.FDNeeded)
	if f := r.Fill; f != nil {
		fmt.Fprintf(w, "  fill: %s of values in %d records into %s/0 (acks=1, no fsync per batch, 1 GiB segments)\n", gb(f.ValueBytes), f.Records, f.Topic)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\ttime\tdetail")
	for _, s := range r.Stages {
		fmt.Fprintf(tw, "%s\t%v\t%s\n", s.Name, roundDur(s.Elapsed), s.Detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "snapshot\tRSS\tRSS before GC\tpeak RSS\tGo heap\tgoroutines\tfds\t.log files\tother data\tsockets\tother\t")
	for _, s := range r.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Name, kib(s.RSSKiB), kib(s.RSSBeforeGCKiB), kib(s.PeakRSSKiB), kib(s.HeapInuseKiB),
			s.Goroutines, s.FDs, s.FDLogFiles, s.FDOtherData, s.FDSockets, s.FDOther)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "per partition: %.2f fds (%.2f .log files), %.1f KiB RSS, %.1f KiB Go heap, %.3f goroutines\n", r.Cost.FDs, r.Cost.LogFiles, r.Cost.RSSKiB, r.Cost.HeapKiB, r.Cost.Goroutines)
	for _, b := range r.Bounds() {
		fmt.Fprintf(w, "  %s\n", b)
	}
	rs := r.Restart
	fmt.Fprintf(w, "restart after a clean shutdown: shutdown %v, server.Start %v, first Metadata answered %v after the start began",
		roundDur(rs.Shutdown), roundDur(rs.Start), roundDur(rs.Metadata))
	if rs.ColdCache {
		fmt.Fprint(w, " (page cache dropped first)")
	}
	fmt.Fprintln(w)
	if f := r.Fill; f != nil {
		fmt.Fprintf(w, "  the %s log alone (%d segments) opens in %v\n", gb(f.DiskBytes), f.Segments, roundDur(f.OpenAlone))
	}
	fmt.Fprintf(w, "checks: %d/%d written at offset 0, %d/%d read back, %d/%d at end offset 1 after the restart", r.Written, r.Partitions, r.Read, r.Partitions, rs.PartitionsAtOne, r.Partitions)
	if f := r.Fill; f != nil {
		fmt.Fprintf(w, ", fill end offset %d = %d acknowledged, last record read: %v", f.EndOffsetAfterRestart, f.EndOffset, rs.FillTailRead)
	}
	fmt.Fprintln(w)
	if r.CreateStall > time.Second {
		fmt.Fprintf(w, "note: a request to another topic waited %v while the partitions were created\n", r.CreateStall.Round(time.Millisecond))
	}
}
