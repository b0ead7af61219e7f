package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/bench"
)

func newBenchCompareCmd() *cobra.Command {
	var (
		o      bench.CompareOptions
		sizes  []string
		maxB   string
		asJSON bool
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Run one workload against weir and NATS JetStream and measure this machine's disk and memory",
		Long: `Runs, in one process, the same workload against an embedded weir node
(produce with acks=1 and acks=all, then consume) and an embedded nats-server
with JetStream file storage (async publish waiting for every ack, then an
ordered consumer), for each record size, and measures the machine's
references in the same temporary directory: sequential write + fdatasync of
the bytes of weir's largest produce run (the dd figure), memory copy
bandwidth, and 4 KiB write+fdatasync latency. Prints every figure, the
settings of both systems, and the ratios weir/JetStream and weir/disk.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			benchLogs(cmd)
			opts := o
			for _, s := range sizes {
				n, err := parseSize(s)
				if err != nil {
					return fmt.Errorf("--size: %w", err)
				}
				opts.Sizes = append(opts.Sizes, int(n))
			}
			if maxB == "0" || maxB == "none" {
				opts.MaxBytes = -1
			} else {
				n, err := parseSize(maxB)
				if err != nil {
					return fmt.Errorf("--max-bytes: %w", err)
				}
				opts.MaxBytes = n
			}
			if !quiet {
				opts.Progress = cmd.ErrOrStderr()
			}
			res, err := bench.Compare(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return benchOutput(cmd, asJSON, res)
		},
	}
	f := cmd.Flags()
	f.Int64VarP(&o.Records, "records", "n", 1_000_000, "records per run at each size (capped by --max-bytes)")
	f.StringSliceVarP(&sizes, "size", "s", []string{"100", "1KiB"}, "record value sizes, comma-separated")
	f.StringVar(&maxB, "max-bytes", "1GiB", "cap on the bytes of one run (records = min(-n, max-bytes/size)); 0: no cap")
	f.StringVar(&o.JetStreamSync, "js-sync", "default", "JetStream fsync: default (nats-server's sync_interval 2m) or always (sync_always)")
	f.IntVar(&o.JetStreamMaxPending, "js-max-pending", 4000, "JetStream async publishes in flight (PublishAsyncMaxPending)")
	f.IntVar(&o.JetStreamPullBatch, "js-pull-batch", 10000, "JetStream ordered consumer pull batch (PullMaxMessages)")
	f.IntVar(&o.FsyncIterations, "fsync-iterations", 200, "iterations of the 4 KiB write+fdatasync latency")
	f.StringVar(&o.Dir, "dir", "", "directory for the temporary data (default: the system temp dir)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	return cmd
}
