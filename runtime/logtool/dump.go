// Package logtool holds the `weir log` commands' work: dumping a partition
// log directory and benchmarking the storage engine against a plain
// sequential write on the same disk.
package logtool

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

// DumpOptions say how much Dump prints.
type DumpOptions struct {
	Records         bool // print every record, not only batch headers
	MaxDecompressed int
}

// Dump opens the log in dir read-only in spirit (Open recovers a crashed
// log the same way the broker would) and prints its segments and batches.
func Dump(w io.Writer, dir string, opts DumpOptions) error {
	names, err := vfs.OS.List(dir)
	if err != nil {
		return fmt.Errorf("log dump: %w", err)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".log") }) {
		return fmt.Errorf("log dump: %s holds no segment (*.log) files", dir)
	}
	l, err := commitlog.Open(dir, commitlog.Options{})
	if err != nil {
		return fmt.Errorf("log dump: %w", err)
	}
	defer l.Close()
	fmt.Fprintf(w, "log %s: offsets [%d, %d), %d bytes in %d segments %v\n",
		filepath.Clean(dir), l.LogStartOffset(), l.LogEndOffset(), l.Size(), len(l.Segments()), l.Segments())
	if opts.MaxDecompressed == 0 {
		opts.MaxDecompressed = 64 << 20
	}
	off := l.LogStartOffset()
	for off < l.HighWatermark() {
		data, err := l.Read(off, 1<<20)
		if err != nil {
			return fmt.Errorf("log dump: %w", err)
		}
		if len(data) == 0 {
			break
		}
		for len(data) > 0 {
			h, batch, rest, err := record.Next(data)
			if err != nil {
				return fmt.Errorf("log dump at offset %d: %w", off, err)
			}
			crc := "ok"
			if _, err := record.ValidateStored(batch); err != nil {
				crc = err.Error()
			}
			fmt.Fprintf(w, "batch offsets=%d..%d records=%d bytes=%d codec=%s maxTimestamp=%s producer=%d/%d seq=%d epoch=%d valid=%s\n",
				h.BaseOffset, h.LastOffset(), h.NumRecords, len(batch), h.Codec(), time.UnixMilli(h.MaxTimestamp).UTC().Format(time.RFC3339Nano),
				h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.PartitionLeaderEpoch, crc)
			if opts.Records {
				recs, err := record.Records(batch, opts.MaxDecompressed)
				if err != nil {
					fmt.Fprintf(w, "  records: %v\n", err)
				}
				for _, r := range recs {
					fmt.Fprintf(w, "  offset=%d timestamp=%d key=%q value=%q headers=%d\n", r.Offset, r.Timestamp, r.Key, r.Value, len(r.Headers))
				}
			}
			off, data = h.LastOffset()+1, rest
		}
	}
	return nil
}
