package logtool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Dir is where the log and the reference file are written (a fresh
	// subdirectory, removed afterwards); it decides which disk is measured.
	Dir string
	// Bytes is how much each run writes.
	Bytes int64
	// BatchBytes are the batch sizes to measure; records are RecordBytes each.
	BatchBytes  []int
	RecordBytes int
	// Flush is the log's flush policy. With FlushAlways the reference is dd
	// with oflag=dsync (an fsync per block); otherwise dd with conv=fsync
	// (one fsync at the end), and the log is fsynced once at the end too.
	Flush  commitlog.FlushMode
	Rounds int
	// Progress receives a line per step; nil for none.
	Progress io.Writer
}

// BenchRow is one measured pair: the log and its reference, in MB/s (10^6
// bytes per second), medians over the rounds; Ratio is Log/Ref, and
// RatioMin/RatioMax bound the per-round ratios (how noisy the disk was).
type BenchRow struct {
	Op                        string // "append" or "read"
	BatchBytes                int
	Log, Ref                  float64
	Ratio, RatioMin, RatioMax float64
	RefCommand                string
}

// Bench measures append and sequential read throughput of the commit log
// against dd writing and reading the same number of bytes with the same
// block size on the same disk, interleaving the runs round by round so
// both see the same disk conditions.
func Bench(ctx context.Context, o BenchOptions) ([]BenchRow, error) {
	dd, err := exec.LookPath("dd")
	if err != nil {
		return nil, errors.New("log bench: dd not found on PATH; the reference write needs coreutils dd")
	}
	if o.Rounds <= 0 || o.Bytes <= 0 || len(o.BatchBytes) == 0 || o.RecordBytes <= 0 {
		return nil, fmt.Errorf("log bench: rounds, bytes, batch sizes and record size must be positive")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("log bench: %w", err)
	}
	work, err := os.MkdirTemp(o.Dir, "weir-log-bench-")
	if err != nil {
		return nil, fmt.Errorf("log bench: %w", err)
	}
	defer os.RemoveAll(work)
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}

	type samples struct{ log, ref, ratio []float64 }
	res := map[string]*samples{}
	key := func(op string, bs int) string { return op + strconv.Itoa(bs) }
	add := func(op string, bs int, logMBps, refMBps float64) {
		s := res[key(op, bs)]
		if s == nil {
			s = &samples{}
			res[key(op, bs)] = s
		}
		s.log, s.ref, s.ratio = append(s.log, logMBps), append(s.ref, refMBps), append(s.ratio, logMBps/refMBps)
	}
	refFlag := "conv=fsync"
	if o.Flush == commitlog.FlushAlways {
		refFlag = "oflag=dsync"
	}
	for round := 1; round <= o.Rounds; round++ {
		for _, bs := range o.BatchBytes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			count := max(o.Bytes/int64(bs), 1)
			total := count * int64(bs)
			refFile := filepath.Join(work, "dd.ref")
			logDir := filepath.Join(work, "log")
			var refW, logW time.Duration
			var written int64
			runRef := func() error {
				var err error
				syscall.Sync() // start from a quiet disk: earlier writes and deletes are out
				refW, err = timeCmd(ctx, dd, "if=/dev/zero", "of="+refFile, "bs="+strconv.Itoa(bs), "count="+strconv.FormatInt(count, 10), refFlag)
				return err
			}
			runLog := func() error {
				var err error
				syscall.Sync()
				logW, written, err = appendRun(logDir, bs, o.RecordBytes, total, o.Flush)
				return err
			}
			// Alternate which goes first, so neither always inherits the
			// other's writeback.
			first, second := runRef, runLog
			if round%2 == 0 {
				first, second = runLog, runRef
			}
			if err := first(); err != nil {
				return nil, err
			}
			if err := second(); err != nil {
				return nil, err
			}
			refWMBps, logWMBps := mbps(total, refW), mbps(written, logW)
			progress("round %d/%d batch %s: dd write   %8.1f MB/s, log append %8.1f MB/s (flush=%s)  ratio %.2f", round, o.Rounds, sizeName(bs), refWMBps, logWMBps, o.Flush, logWMBps/refWMBps)
			add("append", bs, logWMBps, refWMBps)

			refR, err := timeCmd(ctx, dd, "if="+refFile, "of=/dev/null", "bs="+strconv.Itoa(bs))
			if err != nil {
				return nil, err
			}
			refRMBps := mbps(total, refR)
			logR, read, err := readRun(logDir)
			if err != nil {
				return nil, err
			}
			logRMBps := mbps(read, logR)
			progress("round %d/%d batch %s: dd read    %8.1f MB/s, log read %8.1f MB/s  ratio %.2f", round, o.Rounds, sizeName(bs), refRMBps, logRMBps, logRMBps/refRMBps)
			add("read", bs, logRMBps, refRMBps)
			os.RemoveAll(logDir)
			os.Remove(refFile)
		}
	}
	var rows []BenchRow
	for _, op := range []string{"append", "read"} {
		for _, bs := range o.BatchBytes {
			s := res[key(op, bs)]
			cmd := fmt.Sprintf("dd if=/dev/zero of=FILE bs=%d count=%d %s", bs, max(o.Bytes/int64(bs), 1), refFlag)
			if op == "read" {
				cmd = fmt.Sprintf("dd if=FILE of=/dev/null bs=%d", bs)
			}
			rows = append(rows, BenchRow{Op: op, BatchBytes: bs, Log: median(s.log), Ref: median(s.ref),
				Ratio: median(s.log) / median(s.ref), RatioMin: slices.Min(s.ratio), RatioMax: slices.Max(s.ratio), RefCommand: cmd})
		}
	}
	return rows, nil
}

// appendRun writes total bytes of batches of bs bytes (1 KiB-ish records)
// into a fresh log and returns the time including the final fsync.
func appendRun(dir string, bs, recordBytes int, total int64, mode commitlog.FlushMode) (time.Duration, int64, error) {
	batch, err := exactBatch(bs, recordBytes)
	if err != nil {
		return 0, 0, err
	}
	l, err := commitlog.Open(dir, commitlog.Options{
		Flush:           commitlog.FlushPolicy{Mode: mode, Batches: 1 << 30, Interval: time.Second},
		MaxMessageBytes: max(len(batch), 1<<20),
	})
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var written int64
	for written < total {
		if _, err := l.Append(batch); err != nil {
			l.Close()
			return 0, 0, err
		}
		written += int64(len(batch))
	}
	if err := l.Sync(); err != nil {
		l.Close()
		return 0, 0, err
	}
	d := time.Since(start)
	return d, written, l.Close()
}

// exactBatch builds a batch of exactly bs bytes (when bs allows) from
// records of about recordBytes: whole records, then the last record's value
// trimmed or grown to land on bs, so a "16 KiB batch" is 16384 bytes and the
// comparison with dd bs=16384 is like for like.
func exactBatch(bs, recordBytes int) ([]byte, error) {
	n := max(bs/(recordBytes+24), 1) // ~24 bytes of record framing and key
	recs := make([]record.Record, n)
	val := bytes.Repeat([]byte{'w'}, recordBytes)
	now := time.Now().UnixMilli()
	for i := range recs {
		recs[i] = record.Record{Offset: int64(i), Timestamp: now, Key: fmt.Appendf(nil, "key-%08d", i), Value: val}
	}
	batch, err := record.Build(record.BuildOptions{ProducerID: -1}, recs)
	for tries := 0; err == nil && len(batch) != bs && tries < 8; tries++ {
		last := &recs[n-1]
		size := len(last.Value) + bs - len(batch)
		if size < 0 {
			break
		}
		last.Value = bytes.Repeat([]byte{'w'}, size)
		batch, err = record.Build(record.BuildOptions{ProducerID: -1}, recs)
	}
	return batch, err
}

// readRun reads the whole log in 1 MiB fetches, as a consumer would.
func readRun(dir string) (time.Duration, int64, error) {
	l, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	start := time.Now()
	var read int64
	buf := make([]byte, 0, 2<<20)
	for off := int64(0); off < l.HighWatermark(); {
		data, err := l.ReadInto(buf, off, 1<<20, l.HighWatermark())
		if err != nil {
			return 0, 0, err
		}
		read += int64(len(data))
		for len(data) > 0 {
			h, _, rest, err := record.Next(data)
			if err != nil {
				return 0, 0, err
			}
			off, data = h.LastOffset()+1, rest
		}
	}
	return time.Since(start), read, nil
}

func timeCmd(ctx context.Context, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("log bench: %s %v: %w: %s", name, args, err, stderr.String())
	}
	return time.Since(start), nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// SizeName prints a byte count as KiB or MiB when it divides evenly.
func SizeName(n int) string { return sizeName(n) }
