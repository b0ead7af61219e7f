package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/bench"
)

func newBenchScaleCmd() *cobra.Command {
	var (
		o       bench.ScaleOptions
		logB    string
		size    string
		asJSON  bool
		quiet   bool
		dropPgC bool
	)
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Create, write and read many partitions on one node, then restart it on a large log; measure RSS, open files and times",
		Long: `Starts an embedded weir node in a temporary directory and, timing each stage:
creates --partitions partitions (spread over --topics topics), produces one
record to every partition (acks=all, checking each acknowledgement), fetches
every partition once (checking it holds exactly that record), then produces
--log-bytes of record values into one more partition (acks=1, no fsync per
batch), shuts the node down cleanly and starts it again on the same data
directory, checking every partition's end offset afterwards. The process's
RSS (after a GC), peak RSS, Go heap, goroutines and open file descriptors
(by kind: .log segment files, other data files, sockets, the rest) are
recorded after each stage, and the cost of one partition is derived from
them. The node runs in this process, so the open-file limit (ulimit -n) must
hold one descriptor per log segment; a run that would not fit fails first.
Progress goes to stderr; --json prints the result for machines.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			benchLogs(cmd)
			opts := o
			if logB == "0" || logB == "none" {
				opts.LogBytes = -1
			} else {
				n, err := parseSize(logB)
				if err != nil {
					return fmt.Errorf("--log-bytes: %w", err)
				}
				opts.LogBytes = n
			}
			n, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			if n > 1<<20 {
				return fmt.Errorf("--size: %d bytes is over 1 MiB", n)
			}
			opts.RecordSize = int(n)
			opts.DropCaches = dropPgC
			if !quiet {
				opts.Progress = cmd.ErrOrStderr()
			}
			res, err := bench.Scale(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return benchOutput(cmd, asJSON, res)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Partitions, "partitions", "p", 10000, "partitions to create, write once and read once")
	f.IntVar(&o.Topics, "topics", 0, "topics to spread the partitions over evenly (default: as few as the 10,000-per-topic limit allows)")
	f.StringVar(&logB, "log-bytes", "10GB", "bytes of record values in the large log before the restart (e.g. 10GB, 512MiB); 0: no large log")
	f.StringVarP(&size, "size", "s", "1KiB", "record value size of the large log")
	f.StringVar(&o.Dir, "dir", "", "directory for the temporary data (default: the system temp dir)")
	f.BoolVar(&dropPgC, "drop-caches", false, "drop the page cache before the restart so it reads from disk (Linux, root)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	return cmd
}
