package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weirstream/weir/runtime/bench"
	"github.com/weirstream/weir/runtime/client"
)

func newBenchCmd() *cobra.Command {
	var (
		o       bench.Options
		brokers string
		size    string
		batch   string
		asJSON  bool
		quiet   bool
		topicCf []string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a Kafka-protocol broker (an embedded weir node unless --brokers is given)",
		Long: `Runs a produce, consume or produce-to-consume workload and reports records/s,
MB/s and latency percentiles (p50/p99/p99.9/max, from an HDR histogram). With
--rate the load is open-loop: latency counts from when each record was due, so
a stall is not hidden by a slower send rate. A progress line is printed every
second on stderr; --json prints the result for machines.`,
	}
	run := func(mode string, fn func(context.Context, bench.Options) (bench.Result, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   mode,
			Short: map[string]string{"produce": "Produce records and measure acknowledgement latency", "consume": "Consume records from the start of a topic (filling it first if needed)", "roundtrip": "Produce and consume at once and measure end-to-end latency"}[mode],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				benchLogs(cmd)
				opts := o
				if brokers != "" {
					opts.Brokers = strings.Split(brokers, ",")
				}
				n, err := parseSize(size)
				if err != nil {
					return fmt.Errorf("--size: %w", err)
				}
				opts.RecordSize = int(n)
				if len(topicCf) > 0 {
					kvs, err := client.ParseKVs(topicCf)
					if err != nil {
						return fmt.Errorf("--topic-config: %w", err)
					}
					opts.TopicConfigs = make(map[string]string, len(kvs))
					for _, kv := range kvs {
						opts.TopicConfigs[kv.Key] = kv.Value
					}
				}
				if batch != "" {
					b, err := parseSize(batch)
					if err != nil {
						return fmt.Errorf("--batch-bytes: %w", err)
					}
					opts.BatchBytes = int32(b)
				}
				if !quiet {
					opts.Progress = cmd.ErrOrStderr()
				}
				res, err := fn(cmd.Context(), opts)
				if err != nil {
					return err
				}
				if err := benchOutput(cmd, asJSON, res); err != nil || asJSON {
					return err
				}
				if res.Errors > 0 {
					return fmt.Errorf("%d records failed", res.Errors)
				}
				return nil
			},
		}
		return c
	}
	workload := []*cobra.Command{run("produce", bench.Produce), run("consume", bench.Consume), run("roundtrip", bench.Roundtrip)}
	cmd.AddCommand(workload...)
	cmd.AddCommand(newBenchCompareCmd())
	cmd.AddCommand(newBenchPipelineCmd())
	cmd.AddCommand(newBenchScaleCmd())
	for _, c := range workload {
		addWorkloadFlags(c.Flags(), &o, &brokers, &size, &batch, &asJSON, &quiet)
		if c.Name() == "produce" {
			c.Flags().BoolVar(&o.Sync, "sync", false, "one record per request to partition 0 on one plain connection, waiting for each response (the broker's latency without a client library)")
		}
		c.Flags().StringArrayVar(&topicCf, "topic-config", nil, "config key=value of the topic when it is created (repeatable), e.g. flush.messages=9223372036854775807 for no fsync per batch")
	}
	return cmd
}

// addWorkloadFlags binds the flags produce, consume and roundtrip share.
func addWorkloadFlags(f *pflag.FlagSet, o *bench.Options, brokers, size, batch *string, asJSON, quiet *bool) {
	f.StringVarP(brokers, "brokers", "b", os.Getenv("WEIR_BENCH_BROKERS"), "brokers (host:port,...); default: start an embedded weir node in a temp dir")
	f.StringVarP(&o.Topic, "topic", "t", "", "topic (default: a new weir-bench-* topic)")
	f.Int32VarP(&o.Partitions, "partitions", "p", 1, "partitions of the topic when it is created")
	f.Int64VarP(&o.Records, "records", "n", 1_000_000, "records to send or read")
	f.DurationVarP(&o.Duration, "duration", "d", 0, "run for this long instead of a record count")
	f.StringVarP(size, "size", "s", "100", "record value size (e.g. 100, 1KiB)")
	f.IntVar(&o.Keys, "keys", 0, "0: no keys; N: keys drawn uniformly from N")
	f.IntVar(&o.Producers, "producers", 1, "producer clients, each with its own connections")
	f.StringVar(&o.Acks, "acks", "1", "acks: all, 1 or 0")
	f.StringVarP(&o.Compression, "compression", "z", "none", "none, gzip, snappy, lz4 or zstd")
	f.DurationVar(&o.Linger, "linger", 0, "producer linger (batching delay)")
	f.StringVar(batch, "batch-bytes", "", "producer max batch size (default 1MiB)")
	f.Int64Var(&o.Rate, "rate", 0, "target records/s over all producers (open loop); 0: as fast as possible")
	f.BoolVar(asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(quiet, "quiet", "q", false, "no progress lines")
}

// benchLogs keeps the embedded node's info lines out of a bench command's
// progress lines, unless --log-level was given.
func benchLogs(cmd *cobra.Command) {
	if !cmd.Flags().Changed("log-level") {
		slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
}

// benchOutput prints a bench result: indented JSON with --json, else for
// people.
func benchOutput(cmd *cobra.Command, asJSON bool, res interface{ Format(io.Writer) }) error {
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.Format(cmd.OutOrStdout())
	return nil
}
