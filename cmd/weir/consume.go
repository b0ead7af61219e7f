package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/client"
)

func newConsumeCmd() *cobra.Command {
	var (
		cf      clientFlags
		co      client.ConsumeOptions
		offset  string
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records to stdout (like kcat -C)",
		Long: `Reads partitions directly (no consumer group, read_uncommitted) and prints every record
with --format. Without --follow it exits when each partition has reached the high
watermark it had at start (like kcat -e).

Offsets (-o): beginning, end, N (absolute), -N (N before the end), @MS or s@MS
(first record with a timestamp at or after MS, milliseconds since the epoch).

Format tokens (-f): %k key, %v value, %o offset, %p partition, %t topic,
%T timestamp (ms), %h headers (k=v,...), %K key length, %S value length
(-1 when null), %% a percent sign; escapes \n \t \r \0 \\.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			co.Topic = args[0]
			var err error
			if co.Offset, err = client.ParseOffset(offset); err != nil {
				return fmt.Errorf("-o: %w", err)
			}
			if co.Format, err = client.ParseFormat(format); err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			if co.Count < 0 {
				return fmt.Errorf("-n: want a count >= 0, got %d", co.Count)
			}
			if verbose {
				co.OnStart = func(rs []client.PartitionRange) {
					for _, r := range rs {
						fmt.Fprintf(cmd.ErrOrStderr(), "consuming %s partition %d from offset %d (high watermark %d)\n",
							co.Topic, r.Partition, r.Start, r.End)
					}
				}
			}
			n, err := client.Consume(cmd.Context(), cf.options(), co, cmd.OutOrStdout())
			if verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "consumed %d records from %s\n", n, co.Topic)
			}
			return err
		},
	}
	f := cmd.Flags()
	cf.register(f)
	f.StringVarP(&offset, "offset", "o", "beginning", "start offset: beginning, end, N, -N or @TIMESTAMP_MS")
	f.Int32VarP(&co.Partition, "partition", "p", -1, "consume only this partition (-1: all)")
	f.Int64VarP(&co.Count, "count", "n", 0, "stop after this many records (0: no limit)")
	f.StringVarP(&format, "format", "f", client.DefaultFormat, "output format (see above)")
	f.BoolVarP(&co.Follow, "follow", "F", false, "keep waiting for new records instead of exiting at the end")
	f.BoolVarP(&verbose, "verbose", "v", false, "print offsets and a summary on stderr")
	return cmd
}
