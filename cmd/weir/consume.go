package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/client"
)

func newConsumeCmd() *cobra.Command {
	var (
		cf      clientFlags
		co      client.ConsumeOptions
		group   string
		offset  string
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "consume TOPIC | consume -g GROUP TOPIC...",
		Short: "Print a topic's records to stdout (like kcat -C), alone or as a consumer group member",
		Long: `Without -g, reads the partitions of TOPIC directly (no consumer group,
read_uncommitted) and prints every record with --format. Without --follow it exits
when each partition has reached the high watermark it had at start (like kcat -e).

With -g GROUP, joins consumer group GROUP subscribed to the TOPICs and prints the
records of the partitions the group assigns to it, from the group's committed
offsets. -o is then only the reset offset, for partitions the group has no
committed offset for: beginning (default) or end (use 'weir group seek' to move
the group). Without --follow it exits once the group has assigned it its
partitions and it has read each of them up to the high watermark the partition had
when assigned (joining takes a few seconds: the broker waits for other members
first). Offsets are committed at least once: a record is committed only after it
has been printed, every 5s, on rebalance and on exit (also on Ctrl-C), so the next
'consume -g GROUP' goes on where this one stopped; -n N commits exactly the N
records printed.

Offsets (-o): beginning, end, N (absolute), -N (N before the end), @MS or s@MS
(first record with a timestamp at or after MS, milliseconds since the epoch).

Format tokens (-f): %k key, %v value, %o offset, %p partition, %t topic,
%T timestamp (ms), %h headers (k=v,...), %K key length, %S value length
(-1 when null), %% a percent sign; escapes \n \t \r \0 \\.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			stderr := cmd.ErrOrStderr()
			if group != "" {
				return consumeGroup(cmd, cf.options(), group, args, co, verbose)
			}
			if len(args) > 1 {
				return fmt.Errorf("consume reads one topic without a group (-g); got %d: %s", len(args), strings.Join(args, " "))
			}
			co.Topic = args[0]
			if verbose {
				co.OnStart = func(rs []client.PartitionRange) {
					for _, r := range rs {
						fmt.Fprintf(stderr, "consuming %s partition %d from offset %d (high watermark %d)\n",
							co.Topic, r.Partition, r.Start, r.End)
					}
				}
			}
			n, err := client.Consume(cmd.Context(), cf.options(), co, cmd.OutOrStdout())
			if verbose {
				fmt.Fprintf(stderr, "consumed %d records from %s\n", n, co.Topic)
			}
			return err
		},
	}
	f := cmd.Flags()
	cf.register(f)
	f.StringVarP(&group, "group", "g", "", "consume as a member of this consumer group, from its committed offsets")
	f.StringVarP(&offset, "offset", "o", "beginning", "start offset: beginning, end, N, -N or @TIMESTAMP_MS (with -g: the reset offset, beginning or end)")
	f.Int32VarP(&co.Partition, "partition", "p", -1, "consume only this partition (-1: all; not with -g)")
	f.Int64VarP(&co.Count, "count", "n", 0, "stop after this many records (0: no limit)")
	f.StringVarP(&format, "format", "f", client.DefaultFormat, "output format (see above)")
	f.BoolVarP(&co.Follow, "follow", "F", false, "keep waiting for new records instead of exiting at the end")
	f.BoolVarP(&verbose, "verbose", "v", false, "print offsets and a summary on stderr")
	return cmd
}

func consumeGroup(cmd *cobra.Command, o client.Options, group string, topics []string, co client.ConsumeOptions, verbose bool) error {
	if co.Partition >= 0 {
		return fmt.Errorf("-p: the group assigns the partitions; not with -g")
	}
	switch co.Offset.Kind {
	case client.OffsetBeginning, client.OffsetEnd:
	default:
		return fmt.Errorf("-o %s: with -g the offset is only where partitions without a committed offset start: beginning or end (use 'weir group seek' to move the group)", co.Offset)
	}
	gco := client.GroupConsumeOptions{
		Group: group, Topics: topics, Reset: co.Offset, Count: co.Count, Format: co.Format, Follow: co.Follow,
	}
	stderr := cmd.ErrOrStderr()
	if verbose {
		gco.OnAssign = func(topic string, r client.PartitionRange, committed bool) {
			from := "committed offset"
			if !committed {
				from = "reset offset"
			}
			fmt.Fprintf(stderr, "assigned %s partition %d: from %s %d (high watermark %d)\n", topic, r.Partition, from, r.Start, r.End)
		}
	}
	n, err := client.ConsumeGroup(cmd.Context(), o, gco, cmd.OutOrStdout())
	if verbose {
		fmt.Fprintf(stderr, "consumed %d records from %s as group %s\n", n, strings.Join(topics, ","), group)
	}
	return err
}
