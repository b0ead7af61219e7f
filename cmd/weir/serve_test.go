package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// serveStderr collects a process's stderr.
type serveStderr struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *serveStderr) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *serveStderr) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// weirProc is a running `weir serve`.
type weirProc struct {
	cmd         *exec.Cmd
	kafka, http string
	stderr      *serveStderr
	done        chan struct{} // closed when the process has exited
	waitErr     error
}

// startServe runs `weir serve` on dataDir with ephemeral ports and waits
// for the line that names the Kafka address.
func startServe(t *testing.T, bin, dataDir string) *weirProc {
	t.Helper()
	return startServeArgs(t, bin, dataDir)
}

// startServeArgs is startServe with extra arguments.
func startServeArgs(t *testing.T, bin, dataDir string, extra ...string) *weirProc {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start weir serve: %v", err)
	}
	p := &weirProc{cmd: cmd, stderr: &serveStderr{}, done: make(chan struct{})}
	addrs := make(chan [2]string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if rest, ok := strings.CutPrefix(line, "weir: serving Kafka on "); ok {
				kafka, rest, _ := strings.Cut(rest, ",")
				_, rest, _ = strings.Cut(rest, "http://")
				web, _, _ := strings.Cut(rest, "/metrics")
				addrs <- [2]string{strings.TrimSpace(kafka), web}
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	go func() {
		<-scanned
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("weir serve stderr:\n%s", p.stderr.String())
		}
	})
	select {
	case a := <-addrs:
		p.kafka, p.http = a[0], a[1]
	case <-p.done:
		t.Fatalf("weir serve exited before serving: %v\n%s", p.waitErr, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("weir serve did not print its address within 30s:\n%s", p.stderr.String())
	}
	if _, _, err := net.SplitHostPort(p.kafka); err != nil || p.http == "" {
		t.Fatalf("could not parse addresses from %q:\n%s", p.kafka, p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and asserts a zero exit within the deadline.
func (p *weirProc) stop(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("weir serve did not exit within %v of SIGTERM", within)
	}
	if p.waitErr != nil {
		t.Fatalf("weir serve exited with %v after SIGTERM\n%s", p.waitErr, p.stderr.String())
	}
	return time.Since(start)
}

// metric scrapes one unlabelled counter or gauge from /metrics.
func (p *weirProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func durableValue(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	v := fmt.Appendf(nil, "durable-%d:", i)
	for range 1 + rng.IntN(300) {
		v = append(v, byte(rng.UintN(256)))
	}
	return v
}

// consumeAll reads topic/0 from the start until the high watermark.
func consumeAll(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	end, ok := ends.Lookup(topic, 0)
	if !ok || end.Err != nil {
		t.Fatalf("end offset of %s/0: %+v", topic, end)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < end.Offset {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(out), end.Offset, topic)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("consume %s: %v", topic, e.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// TestServeGracefulShutdown: SIGTERM while a producer and a long-polling
// fetch are in flight exits 0, answers the parked fetch, loses no
// acknowledged record and leaves the logs clean (the next start reads no
// log data); a restart serves everything byte for byte.
func TestServeGracefulShutdown(t *testing.T) {
	bin := buildWeir(t)
	dataDir := t.TempDir()
	p := startServe(t, bin, dataDir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// 1. Acknowledged (acks=all) records.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 1, 1, nil, "durable", "idle"); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	const initial = 500
	var recs []*kgo.Record
	for i := range initial {
		recs = append(recs, &kgo.Record{Topic: "durable", Key: []byte(strconv.Itoa(i)), Value: durableValue(i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// 2. A long-polling fetch, parked on an empty partition.
	fc, err := net.DialTimeout("tcp", p.kafka, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	freq := kmsg.NewPtrFetchRequest()
	freq.SetVersion(11)
	freq.ReplicaID, freq.MaxWaitMillis, freq.MinBytes, freq.MaxBytes, freq.SessionEpoch = -1, 120_000, 1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "idle"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("long-poll")).AppendRequest(nil, freq, 99)
	in0 := p.metric(t, "weir_kafka_bytes_in_total")
	if _, err := fc.Write(frame); err != nil {
		t.Fatal(err)
	}
	// Nothing else is talking to the broker: once it has counted the
	// frame's bytes, the fetch has been read and is parked.
	waitFor(t, "the broker to read the fetch", 20*time.Second, func() bool {
		return p.metric(t, "weir_kafka_bytes_in_total") >= in0+float64(len(frame))
	})

	// 3. A producer flooding acks=all records.
	var (
		mu       sync.Mutex
		acked    []int
		produced atomic.Int64
	)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(p.kafka), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	floodCtx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := initial; ; i++ {
			if floodCtx.Err() != nil {
				return
			}
			produced.Add(1)
			pcl.Produce(floodCtx, &kgo.Record{Topic: "durable", Key: []byte(strconv.Itoa(i)), Value: durableValue(i)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked = append(acked, i)
					mu.Unlock()
				}
			})
		}
	}()
	waitFor(t, "in-flight produces to be acknowledged", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})

	// 4. SIGTERM with both in flight.
	stopped := make(chan time.Duration, 1)
	go func() { stopped <- p.stop(t, 20*time.Second) }()
	fc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(fc, size[:]); err != nil {
		t.Fatalf("parked fetch got no answer on shutdown: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(fc, body); err != nil {
		t.Fatalf("parked fetch: %v", err)
	}
	fresp := freq.ResponseKind().(*kmsg.FetchResponse)
	fresp.SetVersion(11)
	if corr := binary.BigEndian.Uint32(body); corr != 99 {
		t.Fatalf("fetch answer has correlation id %d", corr)
	}
	if err := fresp.ReadFrom(body[4:]); err != nil {
		t.Fatalf("fetch answer: %v", err)
	}
	if fresp.ErrorCode != 0 || len(fresp.Topics) != 1 || fresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("fetch answer: %+v", fresp)
	}
	if _, err := fc.Read(size[:]); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("fetch connection after the answer: %v", err)
	}
	took := <-stopped
	t.Logf("weir serve exited 0 %v after SIGTERM", took.Round(time.Millisecond))
	stopFlood()
	<-floodDone
	pcl.Close() // fails whatever is still buffered
	cl.Close()
	mu.Lock()
	ackedFinal := append([]int(nil), acked...)
	mu.Unlock()
	t.Logf("%d flood records sent, %d acknowledged before shutdown", produced.Load(), len(ackedFinal))

	// 5. Clean shutdown: opening the log reads no batch data.
	partDir := filepath.Join(dataDir, "topics", "durable", "0")
	cp, err := os.ReadFile(filepath.Join(partDir, "checkpoint"))
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if len(cp) != 48 || string(cp[:4]) != "WLCP" || binary.BigEndian.Uint32(cp[8:])&1 == 0 {
		t.Fatalf("checkpoint %x is not marked clean", cp)
	}
	logRead := func(dir string) (leo, read, size int64) {
		t.Helper()
		fsys := &readCountFS{FS: vfs.OS}
		l, err := commitlog.Open(dir, commitlog.Options{FS: fsys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("open the partition log: %v", err)
		}
		leo, size = l.LogEndOffset(), l.Size()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return leo, fsys.logBytes.Load(), size
	}
	// A copy without its checkpoint shows what a recovery reads.
	unclean := filepath.Join(t.TempDir(), "unclean")
	copyDir(t, partDir, unclean)
	if err := os.Remove(filepath.Join(unclean, "checkpoint")); err != nil {
		t.Fatal(err)
	}
	leo, read, logSize := logRead(partDir)
	// A clean open checks one batch header per segment against the index,
	// and reads nothing else of the .log files.
	if read > record.HeaderSize {
		t.Fatalf("opening the log after a clean shutdown read %d bytes of .log data (log is %d bytes)", read, logSize)
	}
	if uleo, uread, _ := logRead(unclean); uleo != leo || uread < logSize {
		t.Fatalf("recovery without a checkpoint: log end %d (clean %d), read %d bytes of %d", uleo, leo, uread, logSize)
	}
	t.Logf("clean open read %d bytes of a %d-byte log; recovery would read it all", read, logSize)
	if leo < int64(initial+len(ackedFinal)) {
		t.Fatalf("log end %d < %d acknowledged records", leo, initial+len(ackedFinal))
	}

	// 6. Restart on the same directory: everything is there.
	p2 := startServe(t, bin, dataDir)
	got := consumeAll(t, p2.kafka, "durable")
	if int64(len(got)) != leo {
		t.Fatalf("after restart %d records, log end was %d", len(got), leo)
	}
	for i := range initial {
		r := got[i]
		if r.Offset != int64(i) || string(r.Key) != strconv.Itoa(i) || !bytes.Equal(r.Value, durableValue(i)) {
			t.Fatalf("record %d: offset %d key %q differs from what was produced", i, r.Offset, r.Key)
		}
	}
	// Flood records: every one is a record we sent, byte for byte, in order;
	// every acknowledged one is among them.
	present := map[int]bool{}
	last := initial - 1
	for _, r := range got[initial:] {
		i, err := strconv.Atoi(string(r.Key))
		if err != nil || i <= last || !bytes.Equal(r.Value, durableValue(i)) {
			t.Fatalf("offset %d: key %q is not the next record sent", r.Offset, r.Key)
		}
		present[i], last = true, i
	}
	for _, i := range ackedFinal {
		if !present[i] {
			t.Fatalf("acknowledged record %d was lost", i)
		}
	}
	t.Logf("restart: %d records read back (%d acknowledged in flight)", len(got), len(ackedFinal))
	p2.stop(t, 20*time.Second)
}

// TestServeConfigErrors: a bad YAML setting names file:line:col, and the
// process exits non-zero without serving.
func TestServeConfigErrors(t *testing.T) {
	bin := buildWeir(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "kafka_addr: 127.0.0.1:0\nhttp_addr: \"off\"\n\n  # comment\nbogus_setting: 3\n", `:5:1: unknown setting "bogus_setting"`},
		{"indented unknown key", "http_addr: \"off\"\ntopic_defaults:\n  retention.ms: \"1000\"\nkafka_adr: 127.0.0.1:0\n", `:4:1: unknown setting "kafka_adr"`},
		{"wrong type", "kafka_addr: 127.0.0.1:0\ndefault_partitions: many\n", ":2:21: default_partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data-"+strings.ReplaceAll(tc.name, " ", "-"))
			r := runWeir(t, bin, nil, "", "serve", "--config", cfg, "--data-dir", data)
			if r.code == 0 {
				t.Fatalf("exit 0; stderr:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, cfg+tc.want) {
				t.Fatalf("stderr does not name %s%s:\n%s", cfg, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "serving Kafka") {
				t.Fatalf("served despite the bad config:\n%s", r.stderr)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("data directory created despite the bad config: %v", err)
			}
		})
	}
}

// readCountFS counts the bytes read from .log files.
type readCountFS struct {
	vfs.FS
	logBytes atomic.Int64
}

type readCountFile struct {
	vfs.File
	n *atomic.Int64
}

func (f readCountFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	f.n.Add(int64(n))
	return n, err
}

func (c *readCountFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return readCountFile{File: f, n: &c.logBytes}, nil
}

func (c *readCountFS) Open(name string) (vfs.File, error) {
	f, err := c.FS.Open(name)
	return c.wrap(name, f, err)
}

func (c *readCountFS) OpenAppend(name string) (vfs.File, error) {
	f, err := c.FS.OpenAppend(name)
	return c.wrap(name, f, err)
}

func (c *readCountFS) Create(name string) (vfs.File, error) {
	f, err := c.FS.Create(name)
	return c.wrap(name, f, err)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
