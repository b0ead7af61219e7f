package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CompareOptions describe `weir bench compare`: one workload run, in one
// process, against an embedded weir node and an embedded NATS JetStream
// server with file storage, beside reference figures of this machine
// (sequential write + fdatasync, memory copy, 4 KiB write+fdatasync
// latency) measured in the same temporary directory.
type CompareOptions struct {
	// Records per run at each size; default 1,000,000.
	Records int64
	// MaxBytes caps the bytes of one run: a size gets
	// min(Records, MaxBytes/size) records. Default 1 GiB; negative: no cap.
	MaxBytes int64
	// Sizes are the record value sizes; default 100 and 1024 bytes.
	Sizes []int
	// Dir is where the temporary directory is made (weir's logs,
	// JetStream's store and the reference files); default os.TempDir().
	Dir string
	// JetStreamSync: "default" (nats-server's sync_interval of 2m: writes
	// reach the OS, fsync runs in the background) or "always" (sync_always:
	// every write is synced before it is acknowledged).
	JetStreamSync string
	// JetStreamMaxPending bounds the asynchronous publishes in flight
	// (nats.go PublishAsyncMaxPending); default 4000 (nats.go's default).
	JetStreamMaxPending int
	// JetStreamPullBatch is the ordered consumer's pull batch
	// (PullMaxMessages); default 10000.
	JetStreamPullBatch int
	// FsyncIterations of the 4 KiB write+fdatasync latency; default 200.
	FsyncIterations int
	// MemCopyBytes is the size of the memory-copy buffers; default 64 MiB.
	MemCopyBytes int
	// Progress receives a line per stage (and weir's per-second lines); nil for none.
	Progress io.Writer
}

// CompareRow is one measured figure. MB is 10^6 bytes.
type CompareRow struct {
	Name          string        `json:"name"`
	System        string        `json:"system"` // weir, jetstream or machine
	Op            string        `json:"op"`     // produce, consume, publish, roundtrip, seq-write, mem-copy, fsync-4k
	Size          int           `json:"size,omitempty"`
	Acks          string        `json:"acks,omitempty"`
	Records       int64         `json:"records,omitempty"`
	Bytes         int64         `json:"bytes"`
	Elapsed       time.Duration `json:"elapsed_ns"`
	RecordsPerSec float64       `json:"records_per_sec,omitempty"`
	MBPerSec      float64       `json:"mb_per_sec"`
	Latency       *Latency      `json:"latency_us,omitempty"`
}

// Ratio is Numerator's Field divided by Denominator's (row names).
type Ratio struct {
	Name        string  `json:"name"`
	Numerator   string  `json:"numerator"`
	Denominator string  `json:"denominator"`
	Field       string  `json:"field"` // records_per_sec, mb_per_sec, p50_us or p99_us
	Value       float64 `json:"value"`
}

// CompareResult is the outcome of Compare.
type CompareResult struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Machine  string        `json:"machine"`
	Dir      string        `json:"dir"`
	Settings []string      `json:"settings"`
	Rows     []CompareRow  `json:"rows"`
	Ratios   []Ratio       `json:"ratios"`
}

// Row returns the row with the given name.
func (r *CompareResult) Row(name string) (CompareRow, bool) {
	for _, row := range r.Rows {
		if row.Name == name {
			return row, true
		}
	}
	return CompareRow{}, false
}

func (o *CompareOptions) defaults() error {
	if o.Records <= 0 {
		o.Records = 1_000_000
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 30
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{100, 1024}
	}
	for _, s := range o.Sizes {
		if s <= 0 || s > 1<<20 {
			return fmt.Errorf("bench: record size %d: want 1 B .. 1 MiB", s)
		}
	}
	switch o.JetStreamSync {
	case "":
		o.JetStreamSync = "default"
	case "default", "always":
	default:
		return fmt.Errorf("bench: JetStream sync %q: want default or always", o.JetStreamSync)
	}
	if o.JetStreamMaxPending <= 0 {
		o.JetStreamMaxPending = 4000
	}
	if o.JetStreamPullBatch <= 0 {
		o.JetStreamPullBatch = 10000
	}
	if o.FsyncIterations <= 0 {
		o.FsyncIterations = 200
	}
	if o.MemCopyBytes <= 0 {
		o.MemCopyBytes = 64 << 20
	}
	return nil
}

// recordsFor is the record count of a run at the given size.
func (o *CompareOptions) recordsFor(size int) int64 {
	n := o.Records
	if o.MaxBytes > 0 {
		n = min(n, max(o.MaxBytes/int64(size), 1))
	}
	return n
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "(unknown version)"
}

// Compare runs the workload against weir and JetStream and measures this
// machine's references, all in one temporary directory that is removed
// afterwards. Between stages the file systems are synced so that one stage
// does not pay for another's dirty pages.
func Compare(ctx context.Context, o CompareOptions) (*CompareResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(o.Dir, "weir-bench-compare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	res := &CompareResult{Started: time.Now(), Machine: machine(), Dir: tmp}
	largest := o.Sizes[0]
	for _, s := range o.Sizes {
		largest = max(largest, s)
	}
	var counts []string
	for _, s := range o.Sizes {
		counts = append(counts, fmt.Sprintf("%d x %s", o.recordsFor(s), sizeName(s)))
	}
	jsSync := "sync_interval=2m (nats-server default: acknowledged once written to the OS, fsync every 2m in the background)"
	if o.JetStreamSync == "always" {
		jsSync = "sync_always (every write fsynced before its ack)"
	}
	res.Settings = []string{
		fmt.Sprintf("workload: %s records per run; 1 partition/stream, no keys, no compression, one producer, one consumer, loopback TCP", strings.Join(counts, ", ")),
		"weir: embedded node, default topic config flush.messages=1 (fsync of every batch before its ack, with acks=1 and acks=all alike); franz-go client, linger 0, batches up to 1 MiB",
		fmt.Sprintf("JetStream: embedded nats-server %s, file storage, 1 replica, %s; nats.go %s PublishAsync with at most %d in flight, waiting for all acks; ordered consumer, pull batch %d",
			moduleVersion("github.com/nats-io/nats-server/v2"), jsSync, moduleVersion("github.com/nats-io/nats.go"), o.JetStreamMaxPending, o.JetStreamPullBatch),
		fmt.Sprintf("machine: sequential write of the bytes of weir's %s produce run in 1 MiB chunks then one fdatasync (measured just before those runs); copy() between two %d MiB buffers (bytes copied/s); %d x 4 KiB append+fdatasync; all in %s",
			sizeName(largest), o.MemCopyBytes>>20, o.FsyncIterations, tmp),
		"roundtrip: produce and consume at once without fsync (weir topic flush.messages=9223372036854775807; JetStream as above), each record carrying its due time (weir: a record header; JetStream: the first 8 payload bytes); first as fast as possible (max), then open loop at half that rate for about 5 s; latency runs from due to received",
		"one at a time: franz-go at 1000 records/s open loop (latency from due, including the load generator's ~0.1 ms wake-up lateness); plain connection: closed loop, one Produce v9 request per record on one TCP connection, each waiting for its response",
		"MB = 10^6 bytes. Produce latency is send-to-ack with a closed loop (sending as fast as possible), so it is mostly time queued in the client: weir's client buffers up to 1M records, JetStream's at most its in-flight bound; compare throughput, not these latencies",
	}
	stage := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "compare: "+format+"\n", args...)
		}
	}

	// The machine's references first, on a quiet disk.
	syncFS()
	stage("4 KiB write+fdatasync latency, %d iterations", o.FsyncIterations)
	fl, err := FsyncLatency(tmp, 4096, o.FsyncIterations)
	if err != nil {
		return nil, err
	}
	stage("memory copy, %d MiB buffer", o.MemCopyBytes>>20)
	mc, err := MemCopy(o.MemCopyBytes, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}

	// weir. The sequential write is measured right before weir's produce
	// runs of the largest size, which it is compared with: the disks of
	// shared machines vary from minute to minute.
	var sw CompareRow
	for i, size := range o.Sizes {
		n := o.recordsFor(size)
		if size == largest && slices.Index(o.Sizes, largest) == i {
			seqBytes := n * int64(largest)
			syncFS()
			stage("sequential write + fdatasync of %.1f MB", float64(seqBytes)/1e6)
			if sw, err = SeqWrite(tmp, seqBytes); err != nil {
				return nil, err
			}
		}
		for _, acks := range []string{"1", "all"} {
			dir := filepath.Join(tmp, "weir")
			syncFS()
			stage("weir produce %d x %s acks=%s", n, sizeName(size), acks)
			r, err := Produce(ctx, Options{Records: n, RecordSize: size, Acks: acks, DataDir: dir, Progress: o.Progress})
			os.RemoveAll(dir)
			if err != nil {
				return nil, fmt.Errorf("weir produce: %w", err)
			}
			if r.Errors > 0 || r.Records != n {
				return nil, fmt.Errorf("weir produce: %d of %d records acknowledged, %d errors", r.Records, n, r.Errors)
			}
			res.Rows = append(res.Rows, fromResult(fmt.Sprintf("weir produce %s acks=%s", sizeName(size), acks), "weir", "produce", size, acks, r))
		}
		dir := filepath.Join(tmp, "weir")
		syncFS()
		stage("weir consume %d x %s (after an unmeasured fill)", n, sizeName(size))
		r, err := Consume(ctx, Options{Records: n, RecordSize: size, DataDir: dir, Progress: o.Progress})
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("weir consume: %w", err)
		}
		if r.Errors > 0 || r.Records < n {
			return nil, fmt.Errorf("weir consume: %d of %d records read, %d errors", r.Records, n, r.Errors)
		}
		res.Rows = append(res.Rows, fromResult(fmt.Sprintf("weir consume %s", sizeName(size)), "weir", "consume", size, "", r))
	}

	// Durable produce two more ways, at the smallest size: eight concurrent
	// producers (group commit shares the fsyncs), and one record at a time,
	// whose latency is compared with the disk's 4 KiB fdatasync latency:
	// through franz-go at 1000/s (open loop), and closed loop on a plain
	// connection, one Produce request per record (the broker's latency
	// without a client library's goroutine hand-offs).
	small := slices.Min(o.Sizes)
	for _, v := range []struct {
		name      string
		producers int
		records   int64
		rate      int64
		sync      bool
	}{
		{fmt.Sprintf("weir produce %s acks=all, 8 producers", sizeName(small)), 8, o.recordsFor(small), 0, false},
		{fmt.Sprintf("weir produce %s acks=all, one at a time", sizeName(small)), 1, min(o.recordsFor(small), 2000), 1000, false},
		{fmt.Sprintf("weir produce %s acks=all, one at a time, plain connection", sizeName(small)), 1, min(o.recordsFor(small), 2000), 0, true},
	} {
		dir := filepath.Join(tmp, "weir")
		syncFS()
		stage("%s: %d records", v.name, v.records)
		r, err := Produce(ctx, Options{Records: v.records, RecordSize: small, Acks: "all", Producers: v.producers, Rate: v.rate, Sync: v.sync, DataDir: dir, Progress: o.Progress})
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("weir produce: %w", err)
		}
		if r.Errors > 0 || r.Records != v.records {
			return nil, fmt.Errorf("%s: %d of %d records acknowledged, %d errors", v.name, r.Records, v.records, r.Errors)
		}
		res.Rows = append(res.Rows, fromResult(v.name, "weir", "produce", small, "all", r))
	}

	// Produce->consume latency at half the maximum rate, without fsync:
	// first the maximum (produce and consume at once, as fast as they go),
	// then an open-loop run at half of it for about 5 seconds.
	rtSize := max(small, 8)
	rtN := o.recordsFor(rtSize)
	halfN := func(top float64) (int64, int64) {
		half := max(int64(top/2), 1)
		return half, min(rtN, max(half*5, 1000))
	}
	noFsync := map[string]string{"flush.messages": "9223372036854775807"}
	{
		dir := filepath.Join(tmp, "weir")
		syncFS()
		stage("weir roundtrip %d x %s, no fsync, as fast as possible", rtN, sizeName(rtSize))
		mx, err := Roundtrip(ctx, Options{Records: rtN, RecordSize: rtSize, TopicConfigs: noFsync, DataDir: dir, Progress: o.Progress})
		os.RemoveAll(dir)
		if err == nil && (mx.Errors > 0 || mx.Records != rtN) {
			err = fmt.Errorf("%d of %d records read, %d errors", mx.Records, rtN, mx.Errors)
		}
		if err != nil {
			return nil, fmt.Errorf("weir roundtrip: %w", err)
		}
		res.Rows = append(res.Rows, fromResult(fmt.Sprintf("weir roundtrip %s, max", sizeName(rtSize)), "weir", "roundtrip", rtSize, "1", mx))
		half, n := halfN(mx.RecordsPerSec)
		syncFS()
		stage("weir roundtrip %d x %s at %d/s, no fsync", n, sizeName(rtSize), half)
		hr, err := Roundtrip(ctx, Options{Records: n, RecordSize: rtSize, Rate: half, TopicConfigs: noFsync, DataDir: dir, Progress: o.Progress})
		os.RemoveAll(dir)
		if err == nil && (hr.Errors > 0 || hr.Records != n) {
			err = fmt.Errorf("%d of %d records read, %d errors", hr.Records, n, hr.Errors)
		}
		if err != nil {
			return nil, fmt.Errorf("weir roundtrip: %w", err)
		}
		res.Rows = append(res.Rows, fromResult(fmt.Sprintf("weir roundtrip %s at 50%% of max", sizeName(rtSize)), "weir", "roundtrip", rtSize, "1", hr))
	}

	// JetStream.
	for _, size := range o.Sizes {
		n := o.recordsFor(size)
		dir := filepath.Join(tmp, "jetstream")
		syncFS()
		stage("JetStream publish and consume %d x %s", n, sizeName(size))
		pub, sub, err := jetStreamRun(ctx, &o, dir, n, size)
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, pub, sub)
	}
	{
		dir := filepath.Join(tmp, "jetstream")
		syncFS()
		stage("JetStream roundtrip %d x %s, as fast as possible", rtN, sizeName(rtSize))
		mx, err := jetStreamRoundtrip(ctx, &o, dir, rtN, rtSize, 0)
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		mx.Name = fmt.Sprintf("JetStream roundtrip %s, max", sizeName(rtSize))
		half, n := halfN(mx.RecordsPerSec)
		syncFS()
		stage("JetStream roundtrip %d x %s at %d/s", n, sizeName(rtSize), half)
		hr, err := jetStreamRoundtrip(ctx, &o, dir, n, rtSize, half)
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		hr.Name = fmt.Sprintf("JetStream roundtrip %s at 50%% of max", sizeName(rtSize))
		res.Rows = append(res.Rows, mx, hr)
	}

	res.Rows = append(res.Rows, sw, mc, fl)
	for _, size := range o.Sizes {
		for _, op := range []string{"produce %s acks=1", "produce %s acks=all", "consume %s"} {
			js := "JetStream publish %s"
			if strings.HasPrefix(op, "consume") {
				js = "JetStream consume %s"
			}
			w := "weir " + fmt.Sprintf(op, sizeName(size))
			res.ratio(w+" / "+fmt.Sprintf(js, sizeName(size)), w, fmt.Sprintf(js, sizeName(size)), "records_per_sec")
		}
	}
	for _, acks := range []string{"1", "all"} {
		w := fmt.Sprintf("weir produce %s acks=%s", sizeName(largest), acks)
		res.ratio(w+" / "+sw.Name, w, sw.Name, "mb_per_sec")
	}
	w8 := fmt.Sprintf("weir produce %s acks=all, 8 producers", sizeName(small))
	js := fmt.Sprintf("JetStream publish %s", sizeName(small))
	res.ratio(w8+" / "+js, w8, js, "records_per_sec")
	for _, one := range []string{"weir produce %s acks=all, one at a time", "weir produce %s acks=all, one at a time, plain connection"} {
		one = fmt.Sprintf(one, sizeName(small))
		res.ratio(one+" / "+fl.Name, one, fl.Name, "p50_us")
	}
	rtw, rtj := fmt.Sprintf("weir roundtrip %s, max", sizeName(rtSize)), fmt.Sprintf("JetStream roundtrip %s, max", sizeName(rtSize))
	res.ratio(rtw+" / "+rtj, rtw, rtj, "records_per_sec")
	rtw, rtj = fmt.Sprintf("weir roundtrip %s at 50%% of max", sizeName(rtSize)), fmt.Sprintf("JetStream roundtrip %s at 50%% of max", sizeName(rtSize))
	res.ratio(rtw+" / "+rtj, rtw, rtj, "p99_us")
	res.Elapsed = time.Since(res.Started)
	return res, nil
}

func (r *CompareResult) ratio(name, num, den, field string) {
	a, ok1 := r.Row(num)
	b, ok2 := r.Row(den)
	if !ok1 || !ok2 {
		return
	}
	x, y := a.RecordsPerSec, b.RecordsPerSec
	switch field {
	case "mb_per_sec":
		x, y = a.MBPerSec, b.MBPerSec
	case "p50_us":
		if a.Latency == nil || b.Latency == nil {
			return
		}
		x, y = float64(a.Latency.P50), float64(b.Latency.P50)
	case "p99_us":
		if a.Latency == nil || b.Latency == nil {
			return
		}
		x, y = float64(a.Latency.P99), float64(b.Latency.P99)
	}
	if y <= 0 {
		return
	}
	r.Ratios = append(r.Ratios, Ratio{Name: name, Numerator: num, Denominator: den, Field: field, Value: x / y})
}

func fromResult(name, system, op string, size int, acks string, r Result) CompareRow {
	return CompareRow{Name: name, System: system, Op: op, Size: size, Acks: acks, Records: r.Records, Bytes: r.Bytes,
		Elapsed: r.Elapsed, RecordsPerSec: r.RecordsPerSec, MBPerSec: r.MBPerSec, Latency: r.Latency}
}

func perSec(n int64, d time.Duration) float64 {
	if s := d.Seconds(); s > 0 {
		return float64(n) / s
	}
	return 0
}

// jetStreamRun starts a nats-server with JetStream on in dir, publishes n
// records of size bytes asynchronously to a file-storage stream, waits for
// every ack, then reads them all back with an ordered consumer.
func jetStreamRun(ctx context.Context, o *CompareOptions, dir string, n int64, size int) (pub, sub CompareRow, err error) {
	nc, stop, err := startJetStream(o, dir)
	if err != nil {
		return pub, sub, err
	}
	defer stop()

	r := newRecorder()
	sent := make([]atomic.Int64, n) // send time by stream sequence - 1
	start := time.Now()
	value := benchValue(size)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(o.JetStreamMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { r.errors.Add(1) }),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			// One publisher on one connection to one stream: the stream
			// sequence is the publish order, so no timestamp rides along.
			if i := int64(ack.Sequence) - 1; i >= 0 && i < n {
				if t := sent[i].Load(); t != 0 {
					r.observe(time.Duration(time.Since(start).Nanoseconds() - t))
				}
			}
			r.records.Add(1)
			r.bytes.Add(int64(size))
		}))
	if err != nil {
		return pub, sub, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench"},
		Storage: jetstream.FileStorage, Replicas: 1})
	if err != nil {
		return pub, sub, fmt.Errorf("jetstream: create stream: %w", err)
	}
	start = time.Now()
	for i := range n {
		sent[i].Store(max(time.Since(start).Nanoseconds(), 1))
		if _, err := js.PublishAsync("bench", value); err != nil {
			return pub, sub, fmt.Errorf("jetstream: publish: %w", err)
		}
		if ctx.Err() != nil {
			return pub, sub, ctx.Err()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return pub, sub, ctx.Err()
	case <-time.After(5 * time.Minute):
		return pub, sub, errors.New("jetstream: acks did not arrive within 5m")
	}
	elapsed := time.Since(start)
	if e := r.errors.Load(); e > 0 || r.records.Load() != n {
		return pub, sub, fmt.Errorf("jetstream: %d of %d publishes acknowledged, %d errors", r.records.Load(), n, e)
	}
	pub = CompareRow{Name: "JetStream publish " + sizeName(size), System: "jetstream", Op: "publish", Size: size,
		Records: n, Bytes: r.bytes.Load(), Elapsed: elapsed, RecordsPerSec: perSec(n, elapsed),
		MBPerSec: perSec(r.bytes.Load(), elapsed) / 1e6, Latency: r.latency()}

	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return pub, sub, fmt.Errorf("jetstream: consumer: %w", err)
	}
	var got, bytes atomic.Int64
	done := make(chan struct{})
	start = time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		bytes.Add(int64(len(m.Data())))
		if got.Add(1) == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(o.JetStreamPullBatch))
	if err != nil {
		return pub, sub, fmt.Errorf("jetstream: consume: %w", err)
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return pub, sub, ctx.Err()
	case <-time.After(5 * time.Minute):
		return pub, sub, fmt.Errorf("jetstream: read %d of %d records in 5m", got.Load(), n)
	}
	elapsed = time.Since(start)
	sub = CompareRow{Name: "JetStream consume " + sizeName(size), System: "jetstream", Op: "consume", Size: size,
		Records: n, Bytes: bytes.Load(), Elapsed: elapsed, RecordsPerSec: perSec(n, elapsed), MBPerSec: perSec(bytes.Load(), elapsed) / 1e6}
	return pub, sub, nil
}

// SeqWrite writes n bytes to a new file in dir in 1 MiB chunks, then
// fdatasyncs it once (the `dd bs=1M conv=fdatasync` figure). The elapsed
// time includes the sync; the file is removed afterwards.
func SeqWrite(dir string, n int64) (CompareRow, error) {
	f, err := os.CreateTemp(dir, "seqwrite-")
	if err != nil {
		return CompareRow{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	chunk := benchValue(1 << 20)
	start := time.Now()
	for left := n; left > 0; {
		b := chunk[:min(left, int64(len(chunk)))]
		if _, err := f.Write(b); err != nil {
			return CompareRow{}, err
		}
		left -= int64(len(b))
	}
	if err := fdatasync(f); err != nil {
		return CompareRow{}, err
	}
	elapsed := time.Since(start)
	return CompareRow{Name: "sequential write + fdatasync", System: "machine", Op: "seq-write", Bytes: n,
		Elapsed: elapsed, MBPerSec: perSec(n, elapsed) / 1e6}, nil
}

// MemCopy measures copy() between two buffers of size bytes for at least
// minDur (and at least 4 copies); MBPerSec is bytes copied per second / 10^6.
func MemCopy(size int, minDur time.Duration) (CompareRow, error) {
	if size <= 0 {
		return CompareRow{}, errors.New("bench: memory copy of no bytes")
	}
	src, dst := benchValue(size), make([]byte, size)
	copy(dst, src) // fault the pages in
	var copied int64
	start := time.Now()
	for i := 0; i < 4 || time.Since(start) < minDur; i++ {
		copy(dst, src)
		copied += int64(size)
		src, dst = dst, src
	}
	elapsed := time.Since(start)
	return CompareRow{Name: "memory copy", System: "machine", Op: "mem-copy", Bytes: copied, Elapsed: elapsed,
		MBPerSec: perSec(copied, elapsed) / 1e6}, nil
}

// FsyncLatency appends size bytes to a new file in dir and fdatasyncs it,
// iterations times, and reports the latency of each write+fdatasync.
func FsyncLatency(dir string, size, iterations int) (CompareRow, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return CompareRow{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := benchValue(size)
	r := newRecorder()
	start := time.Now()
	for range iterations {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return CompareRow{}, err
		}
		if err := fdatasync(f); err != nil {
			return CompareRow{}, err
		}
		r.observe(time.Since(t))
	}
	elapsed := time.Since(start)
	n := int64(size) * int64(iterations)
	return CompareRow{Name: fmt.Sprintf("%s write+fdatasync", sizeName(size)), System: "machine", Op: "fsync-4k", Size: size,
		Records: int64(iterations), Bytes: n, Elapsed: elapsed, RecordsPerSec: perSec(int64(iterations), elapsed),
		MBPerSec: perSec(n, elapsed) / 1e6, Latency: r.latency()}, nil
}

// machine describes the CPU, core count and platform.
func machine() string {
	cpu := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v) + ", "
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s%d CPUs, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// Format prints the comparison table for people.
func (r *CompareResult) Format(w io.Writer) {
	fmt.Fprintf(w, "weir bench compare, %s, %s (took %v)\n", r.Started.Format("2006-01-02 15:04 MST"), r.Machine, r.Elapsed.Round(time.Second))
	for _, s := range r.Settings {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintln(w)
	nameW := len("figure")
	for _, row := range r.Rows {
		nameW = max(nameW, len(row.Name))
	}
	line := func(a, b, c, d, e, f string) {
		fmt.Fprintf(w, "%-*s  %9s  %14s  %11s  %9s  %9s\n", nameW, a, b, c, d, e, f)
	}
	line("figure", "records", "records/s", "MB/s", "p50", "p99")
	for _, row := range r.Rows {
		recs, rps, mbs, p50, p99 := "-", "-", fmt.Sprintf("%.1f", row.MBPerSec), "-", "-"
		if row.Records > 0 {
			recs = fmt.Sprint(row.Records)
		}
		if row.RecordsPerSec > 0 {
			rps = fmt.Sprintf("%.0f", row.RecordsPerSec)
		}
		if row.Op == "mem-copy" {
			mbs = fmt.Sprintf("%.1f GB/s", row.MBPerSec/1000)
		}
		if row.Op == "fsync-4k" {
			rps += " ops/s"
		}
		if l := row.Latency; l != nil {
			p50, p99 = us(l.P50), us(l.P99)
		}
		line(row.Name, recs, rps, mbs, p50, p99)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tof\tvalue")
	for _, q := range r.Ratios {
		field := "records/s"
		switch q.Field {
		case "p50_us":
			field = "p50 latency"
		case "p99_us":
			field = "p99 latency"
		case "mb_per_sec":
			field = "MB/s"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2fx\n", q.Name, field, q.Value)
	}
	tw.Flush()
}
