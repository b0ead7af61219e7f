package commitlog

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/core/record"
)

// The SIGKILL test runs the log in a child process (this test binary,
// re-executed to run TestSigkillChildProcess) on the real filesystem with
// FlushAlways. The child prints a line for every batch after Append
// returned; the parent kills it with SIGKILL at a random moment, reopens
// the log and checks it: every batch valid, offsets dense, every
// acknowledged batch present with its content, earlier rounds untouched,
// and nothing that the child could not have appended.

const (
	sigkillEnvDir     = "WEIR_COMMITLOG_SIGKILL_DIR"
	sigkillEnvRound   = "WEIR_COMMITLOG_SIGKILL_ROUND"
	sigkillEnvWorkers = "WEIR_COMMITLOG_SIGKILL_WORKERS"
)

func sigkillOptions() Options {
	return Options{
		SegmentBytes:       16 << 10,
		IndexIntervalBytes: 512,
		Flush:              FlushPolicy{Mode: FlushAlways},
		Logger:             discardLogger,
	}
}

// sigkillBatch is the producer batch appender g of round sends as its
// seq-th: deterministic, so the parent can rebuild it to compare bytes.
// Every record's value starts with "r<round>-g<g>-s<seq>-".
func sigkillBatch(round, g, seq int) []byte {
	n := 1 + (seq+g)%4
	recs := make([]record.Record, n)
	for i := range recs {
		v := fmt.Appendf(nil, "r%d-g%d-s%d-%d-", round, g, seq, i)
		v = append(v, bytes.Repeat([]byte{'x'}, (seq*37+g*11+i)%300)...)
		recs[i] = record.Record{
			Offset:    int64(i),
			Timestamp: int64(round)*1_000_000 + int64(seq),
			Key:       fmt.Appendf(nil, "g%d", g),
			Value:     v,
		}
	}
	b, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	if err != nil {
		panic(err)
	}
	return b
}

// sigkillID parses the identity of a batch from its first record's value.
func sigkillID(batch []byte) (round, g, seq int, err error) {
	recs, err := record.Records(batch, 1<<20)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(recs) == 0 {
		return 0, 0, 0, fmt.Errorf("batch without records")
	}
	if _, err := fmt.Sscanf(string(recs[0].Value), "r%d-g%d-s%d-", &round, &g, &seq); err != nil {
		return 0, 0, 0, fmt.Errorf("record value %.40q: %v", recs[0].Value, err)
	}
	return round, g, seq, nil
}

// TestSigkillChildProcess is the child of TestSigkill; run directly it does
// nothing. It appends from several goroutines until killed, printing
// "ack <g> <seq> <base> <last> <crc>" after each Append returned.
func TestSigkillChildProcess(t *testing.T) {
	dir := os.Getenv(sigkillEnvDir)
	if dir == "" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv(sigkillEnvRound))
	workers, _ := strconv.Atoi(os.Getenv(sigkillEnvWorkers))
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: one write per line
	}
	l, err := Open(dir, sigkillOptions())
	if err != nil {
		say("error open: %v", err)
		os.Exit(2)
	}
	say("ready %d", l.LogEndOffset())
	deadline := time.Now().Add(2 * time.Minute) // the parent kills us long before
	var wg sync.WaitGroup
	for g := range max(workers, 1) {
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				b := sigkillBatch(round, g, seq)
				info, err := l.Append(b)
				if err != nil {
					say("error append g%d s%d: %v", g, seq, err)
					os.Exit(3)
				}
				say("ack %d %d %d %d %d", g, seq, info.BaseOffset, info.LastOffset, crc32.Checksum(b, castagnoli))
			}
		})
	}
	wg.Wait()
	say("error: never killed")
	os.Exit(4)
}

type sigkillAck struct {
	g, seq     int
	base, last int64
	sum        uint32
}

// storedBatch is a batch of the log as the parent last verified it.
type storedBatch struct {
	base, last int64
	data       []byte
}

func TestSigkill(t *testing.T) {
	t.Parallel()
	if os.Getenv(sigkillEnvDir) != "" {
		return
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5157))
	dir := t.TempDir()
	var log []storedBatch // the log after the previous round's recovery
	for round, workers := range []int{1, 3, 1, 4, 2} {
		acks := sigkillRound(t, dir, round, workers, rng, logEnd(log))
		log = sigkillVerify(t, dir, round, workers, log, acks)
	}
	if n := len(log); n < 10 {
		t.Fatalf("only %d batches appended over all rounds", n)
	}
}

func logEnd(log []storedBatch) int64 {
	if len(log) == 0 {
		return 0
	}
	return log[len(log)-1].last + 1
}

// sigkillRound starts the child, lets it acknowledge a random number of
// batches, kills it and returns the acknowledgements it printed.
func sigkillRound(t *testing.T, dir string, round, workers int, rng *rand.Rand, wantLEO int64) []sigkillAck {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSigkillChildProcess$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(),
		sigkillEnvDir+"="+dir,
		sigkillEnvRound+"="+strconv.Itoa(round),
		sigkillEnvWorkers+"="+strconv.Itoa(workers),
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()

	target := rng.IntN(200)   // acknowledgements before the kill
	maxRun := 5 * time.Second // or this long after ready, whichever first
	if rng.IntN(4) == 0 {
		target = 1 << 30 // kill on time alone, at a random moment
		maxRun = time.Duration(rng.IntN(200)) * time.Millisecond
	}
	var acks []sigkillAck
	parse := func(line string) {
		var a sigkillAck
		switch {
		case strings.HasPrefix(line, "ack "):
			if _, err := fmt.Sscanf(line, "ack %d %d %d %d %d", &a.g, &a.seq, &a.base, &a.last, &a.sum); err != nil {
				t.Fatalf("round %d: bad line %q: %v", round, line, err)
			}
			acks = append(acks, a)
		case strings.HasPrefix(line, "ready "):
			leo, err := strconv.ParseInt(strings.TrimPrefix(line, "ready "), 10, 64)
			if err != nil || leo != wantLEO {
				t.Fatalf("round %d: child opened the log at end %q, want %d", round, line, wantLEO)
			}
		default:
			t.Fatalf("round %d: child said %q; stderr:\n%s", round, line, stderr.String())
		}
	}

	startDeadline := time.NewTimer(60 * time.Second)
	defer startDeadline.Stop()
	select {
	case line, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child exited before opening the log; stderr:\n%s", round, stderr.String())
		}
		if !strings.HasPrefix(line, "ready ") {
			t.Fatalf("round %d: child said %q before ready; stderr:\n%s", round, line, stderr.String())
		}
		parse(line)
	case <-startDeadline.C:
		t.Fatalf("round %d: child not ready after 60s; stderr:\n%s", round, stderr.String())
	}
	runFor := time.NewTimer(maxRun)
	defer runFor.Stop()
wait:
	for len(acks) < target {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("round %d: child exited on its own; stderr:\n%s", round, stderr.String())
			}
			parse(line)
		case <-runFor.C:
			break wait
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("round %d: kill: %v", round, err)
	}
	killed = true
	for line := range lines { // acknowledgements printed before the kill count too
		parse(line)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("round %d: child exited cleanly; stderr:\n%s", round, stderr.String())
	}
	t.Logf("round %d: %d appenders, killed after %d acknowledgements", round, workers, len(acks))
	return acks
}

// sigkillVerify reopens the log (recovering it after the kill) and checks
// it against the previous rounds and this round's acknowledgements. It
// returns the log as recovered.
func sigkillVerify(t *testing.T, dir string, round, workers int, prev []storedBatch, acks []sigkillAck) []storedBatch {
	t.Helper()
	l, err := Open(dir, sigkillOptions())
	if err != nil {
		t.Fatalf("round %d: open after kill: %v", round, err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Errorf("round %d: close: %v", round, err)
		}
	}()
	if l.LogStartOffset() != 0 {
		t.Fatalf("round %d: log start %d", round, l.LogStartOffset())
	}
	var got []storedBatch
	for next := int64(0); next < l.LogEndOffset(); {
		buf, err := l.Read(next, 256<<10)
		if err != nil {
			t.Fatalf("round %d: read at %d: %v", round, next, err)
		}
		if len(buf) == 0 {
			t.Fatalf("round %d: read at %d returned nothing, log end %d", round, next, l.LogEndOffset())
		}
		for len(buf) > 0 {
			h, batch, rest, err := record.Next(buf)
			if err != nil {
				t.Fatalf("round %d: at %d: %v", round, next, err)
			}
			if _, err := record.ValidateStored(batch); err != nil {
				t.Fatalf("round %d: batch at %d: %v", round, h.BaseOffset, err)
			}
			if h.BaseOffset != next {
				t.Fatalf("round %d: offsets not dense: batch at %d, expected %d", round, h.BaseOffset, next)
			}
			got = append(got, storedBatch{h.BaseOffset, h.LastOffset(), bytes.Clone(batch)})
			next = h.LastOffset() + 1
			buf = rest
		}
	}
	if end := logEnd(got); end != l.LogEndOffset() {
		t.Fatalf("round %d: batches end at %d, log end %d", round, end, l.LogEndOffset())
	}

	// Earlier rounds are untouched.
	if len(got) < len(prev) {
		t.Fatalf("round %d: %d batches, earlier rounds had %d", round, len(got), len(prev))
	}
	for i, p := range prev {
		if got[i].base != p.base || !bytes.Equal(got[i].data, p.data) {
			t.Fatalf("round %d: batch at %d from an earlier round changed", round, p.base)
		}
	}

	// This round: each appender's batches in order from seq 0, each exactly
	// the batch it sent, at most one not acknowledged (in flight at the kill).
	nextSeq := make([]int, workers)
	where := map[[2]int]storedBatch{}
	for _, b := range got[len(prev):] {
		r, g, seq, err := sigkillID(b.data)
		if err != nil {
			t.Fatalf("round %d: batch at %d: %v", round, b.base, err)
		}
		if r != round || g < 0 || g >= workers || seq != nextSeq[g] {
			t.Fatalf("round %d: batch at %d is r%d g%d s%d, which was never appended there (next seq of g%d: %v)", round, b.base, r, g, seq, g, nextSeq)
		}
		nextSeq[g]++
		want := sigkillBatch(round, g, seq)
		record.SetBaseOffset(want, b.base)
		if !bytes.Equal(want, b.data) {
			t.Fatalf("round %d: batch at %d (g%d s%d) has different bytes than appended", round, b.base, g, seq)
		}
		where[[2]int{g, seq}] = b
	}
	acked := make([]int, workers) // acknowledged batches per appender
	for _, a := range acks {
		b, ok := where[[2]int{a.g, a.seq}]
		if !ok {
			t.Fatalf("round %d: acknowledged batch g%d s%d at %d is lost", round, a.g, a.seq, a.base)
		}
		if b.base != a.base || b.last != a.last || crc32.Checksum(b.data, castagnoli) != a.sum {
			t.Fatalf("round %d: acknowledged batch g%d s%d was at [%d, %d] crc %08x, recovered at [%d, %d] crc %08x",
				round, a.g, a.seq, a.base, a.last, a.sum, b.base, b.last, crc32.Checksum(b.data, castagnoli))
		}
		acked[a.g] = max(acked[a.g], a.seq+1)
	}
	for g := range workers {
		if nextSeq[g] > acked[g]+1 {
			t.Fatalf("round %d: appender g%d has %d batches in the log but only %d acknowledged; at most one can be in flight", round, g, nextSeq[g], acked[g])
		}
	}
	return got
}
