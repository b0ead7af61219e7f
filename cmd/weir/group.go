package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/client"
)

func newGroupCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "group",
		Aliases: []string{"groups"},
		Short:   "List, describe, seek and delete consumer groups (like rpk group, kafka-consumer-groups.sh)",
	}
	cf.register(cmd.PersistentFlags())
	cmd.AddCommand(newGroupListCmd(&cf), newGroupDescribeCmd(&cf), newGroupSeekCmd(&cf), newGroupDeleteCmd(&cf))
	return cmd
}

func newGroupListCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups with their state, protocol and member count",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			gs, err := client.ListGroups(cmd.Context(), cf.options())
			if err != nil {
				return err
			}
			return client.PrintGroups(cmd.OutOrStdout(), gs)
		},
	}
}

func newGroupDescribeCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Show a group's state, members and, per partition, committed offset, log end and lag",
		Long: `Shows the group's state and protocol, its members (member id, client id, host and
the partitions assigned to each), and a row per partition the group is assigned or
has committed offsets for:

  CURRENT-OFFSET    the group's committed offset (the next record it reads); "-" if none
  LOG-START-OFFSET  the first offset still in the partition
  LOG-END-OFFSET    the high watermark
  LAG               LOG-END-OFFSET - CURRENT-OFFSET; without a committed offset,
                    LOG-END-OFFSET - LOG-START-OFFSET (every record is still to be
                    read), as rpk computes it
  MEMBER-ID ...     the member the partition is assigned to; "-" if none`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for i, g := range args {
				d, err := client.DescribeGroup(cmd.Context(), cf.options(), g)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				if err := d.Print(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
}

func newGroupDeleteCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete consumer groups and their committed offsets (each must have no members)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return client.DeleteGroups(cmd.Context(), cf.options(), args...)
		},
	}
}

func newGroupSeekCmd(cf *clientFlags) *cobra.Command {
	var (
		to     string
		topics []string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "seek GROUP --to earliest|latest|offset N|timestamp MS|shift N [--topic T]...",
		Short: "Reset a consumer group's committed offsets (the group must have no members)",
		Long: `Commits new offsets for GROUP and prints the old -> new offset of each partition.
The group must be empty (no running consumers): stop them first.

  --to earliest       the log start of each partition
  --to latest         the high watermark: skip everything produced so far
  --to offset N       offset N (clamped to [log start, high watermark])
  --to timestamp MS   the first record with a timestamp at or after MS (milliseconds
                      since the epoch); the high watermark if no record is that new
  --to shift N        the committed offset plus N; N may be negative: write
                      'shift=-N' (or '-- -N'). Clamped to [log start, high
                      watermark]; partitions with no committed offset are left alone

The value may also be attached: offset=N, timestamp=MS (or @MS), shift=+N, shift=-N.

Without --topic, every partition of every topic the group has committed offsets for
is reset; --topic T (repeatable) resets every partition of T instead, which also
works for a group that has never committed (it is created).`,
		Example: `  weir group seek orders-app --to earliest
  weir group seek orders-app --to offset 42 --topic orders
  weir group seek orders-app --to timestamp 1764300000000
  weir group seek orders-app --to shift=-100`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("--to: required (earliest, latest, offset N, timestamp MS or shift N)")
			}
			spec := to
			if len(args) == 2 {
				spec = to + "=" + args[1]
			}
			s, err := client.ParseSeek(spec)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			if len(args) == 2 && (s.Mode == client.SeekEarliest || s.Mode == client.SeekLatest) {
				return fmt.Errorf("--to %s takes no value, got %q", to, args[1])
			}
			rs, err := client.Seek(cmd.Context(), cf.options(), args[0], client.SeekOptions{To: s, Topics: topics, DryRun: dryRun})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if dryRun {
				fmt.Fprintln(w, "dry run: nothing committed")
			}
			return client.PrintSeek(w, rs)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "where to move the offsets: earliest, latest, offset N, timestamp MS or shift N")
	cmd.Flags().StringArrayVarP(&topics, "topic", "t", nil, "reset every partition of this topic (repeatable; default: the topics the group has offsets for)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the new offsets without committing them")
	return cmd
}
