package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/runtime/logtool"
	"github.com/weirstream/weir/runtime/server"
)

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Work with partition log directories: dump them, benchmark the storage engine",
	}
	cmd.AddCommand(newLogDumpCmd(), newLogBenchCmd())
	return cmd
}

func newLogDumpCmd() *cobra.Command {
	var opts logtool.DumpOptions
	cmd := &cobra.Command{
		Use:   "dump DIR",
		Short: "Print the segments and batches of a partition log directory (recovering it first if it crashed)",
		Long: `Prints the segments and batches of a partition log directory, such as
DATA_DIR/topics/TOPIC/PARTITION. Opening a log recovers it if it crashed,
which writes to it, so the command takes the data directory's lock: it
refuses a log of a running weir (stop it, or dump a copy).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			release, err := server.LockDataDirOf(args[0])
			var inUse *server.DataDirInUseError
			if errors.As(err, &inUse) {
				return fmt.Errorf("log dump %s: its data directory %s is in use by a running weir (pid %d); stop it, or dump a copy of the directory", args[0], inUse.Dir, inUse.PID)
			}
			if err != nil {
				return fmt.Errorf("log dump %s: %w", args[0], err)
			}
			defer release()
			return logtool.Dump(cmd.OutOrStdout(), args[0], opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Records, "records", false, "print every record's offset, timestamp, key and value")
	return cmd
}

func newLogBenchCmd() *cobra.Command {
	var (
		dir, size, flush, recordSize string
		batches                      []string
		rounds                       int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure log append and read throughput next to dd on the same disk",
		Long: `Writes SIZE bytes into a fresh partition log for each batch size and, in the
same round, the same bytes with dd (same block size, conv=fsync; oflag=dsync
with --flush always), then reads both back. Prints medians over the rounds,
their ratio, and the range of the per-round ratios. Everything is written under --dir and removed after.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			total, err := parseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			rec, err := parseSize(recordSize)
			if err != nil {
				return fmt.Errorf("--record-size: %w", err)
			}
			mode, err := commitlog.ParseFlushMode(flush)
			if err != nil {
				return fmt.Errorf("--flush: %w", err)
			}
			var bss []int
			for _, b := range batches {
				n, err := parseSize(b)
				if err != nil {
					return fmt.Errorf("--batch: %w", err)
				}
				bss = append(bss, int(n))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "weir log bench: %s per run, batches %s of %s records, flush=%s, %d rounds, in %s\n",
				size, strings.Join(batches, ","), recordSize, flush, rounds, dir)
			rows, err := logtool.Bench(cmd.Context(), logtool.BenchOptions{
				Dir: dir, Bytes: total, BatchBytes: bss, RecordBytes: int(rec), Flush: mode, Rounds: rounds, Progress: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "op\tbatch\tlog MB/s\tdd MB/s\tlog/dd\tper-round\treference")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.2f\t%.2f-%.2f\t%s\n", r.Op, logtool.SizeName(r.BatchBytes), r.Log, r.Ref, r.Ratio, r.RatioMin, r.RatioMax, r.RefCommand)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./weir-data", "directory on the disk to measure (a temporary subdirectory is used and removed)")
	cmd.Flags().StringVar(&size, "size", "512MiB", "bytes written per run")
	cmd.Flags().StringSliceVar(&batches, "batch", []string{"16KiB", "1MiB"}, "batch sizes")
	cmd.Flags().StringVar(&recordSize, "record-size", "1KiB", "record value size")
	cmd.Flags().StringVar(&flush, "flush", "never", "log flush policy: never (one fsync at the end, like dd conv=fsync), interval, or always (fsync per batch, like dd oflag=dsync)")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds; each runs dd and the log back to back")
	return cmd
}
