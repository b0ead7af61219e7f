package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/client"
)

func newProduceCmd() *cobra.Command {
	var (
		cf      clientFlags
		po      client.ProduceOptions
		keySep  string
		headers []string
		idem    bool
		verbose bool
		so      client.SampleOptions
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin (like kcat -P), or generated sample records",
		Long: `Reads stdin and produces each line (without its newline) as one record's value.
With -k SEP the part of a line before the first SEP is the record's key (a line without
SEP has a null key). Keyed records are placed like the Java client does:
murmur2(key) & 0x7fffffff % partitions. Prints nothing on success unless -v.

With --sample NAME, stdin is not read: produces -n records (default 1000) from a
built-in generator instead, as fast as the broker takes them or --rate per second.
The records are the same for the same --seed (default 1), except for timestamps.
A run of more than 100000 records, or of more than 10s at --rate, prints a
progress line on stderr every second. Generators:

  clicks  web-shop click events keyed by user id, the value one line of JSON:
          {"user":"u0042","email":"alice.smith@example.com","country":"NZ","amount":512,"page":"/products/widgets","ts":1764300000123}
          user u0000..u0499; email and country fixed per user (NZ+AU about 40%);
          amount 1..2000; ts is the wall-clock time of generation in milliseconds.

  weir produce clicks --sample clicks -n 10000 --rate 500`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			po.Topic = args[0]
			sep, err := client.Unescape(keySep)
			if err != nil {
				return fmt.Errorf("-k: %w", err)
			}
			po.KeySeparator = sep
			if po.Headers, err = client.ParseKVs(headers); err != nil {
				return fmt.Errorf("-H: %w", err)
			}
			po.NoIdempotence = !idem
			var n int64
			if cmd.Flags().Changed("sample") {
				n, err = produceSample(cmd, cf, po, so)
			} else {
				for name, flag := range map[string]string{"count": "-n", "rate": "--rate", "seed": "--seed"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("%s: only with --sample", flag)
					}
				}
				n, err = client.Produce(cmd.Context(), cf.options(), po, cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			if verbose {
				fmt.Fprintf(cmd.ErrOrStderr(), "produced %d records to %s\n", n, po.Topic)
			}
			return nil
		},
	}
	f := cmd.Flags()
	cf.register(f)
	f.StringVarP(&keySep, "key-separator", "k", "", `split each line into key and value at the first SEP (escapes \t \n \r \0 \\)`)
	f.StringArrayVarP(&headers, "header", "H", nil, "add header key=value to every record (repeatable)")
	f.StringVar(&po.Acks, "acks", "all", "required acknowledgements: all, 1 or 0")
	f.StringVarP(&po.Compression, "compression", "z", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	f.Int32VarP(&po.Partition, "partition", "p", -1, "produce every record to this partition (-1: by key hash)")
	f.BoolVar(&idem, "idempotent", true, "use the idempotent producer (acks=all only; always off with acks 0 or 1)")
	f.BoolVarP(&verbose, "verbose", "v", false, `print "produced N records to TOPIC" on stderr`)
	f.StringVar(&so.Name, "sample", "", "produce generated records instead of reading stdin: "+strings.Join(client.Samples(), ", "))
	f.Int64VarP(&so.Count, "count", "n", 1000, "with --sample: how many records to produce")
	f.Float64Var(&so.Rate, "rate", 0, "with --sample: records per second (0: as fast as possible)")
	f.Uint64Var(&so.Seed, "seed", 1, "with --sample: the generator's seed (same seed, same records)")
	return cmd
}

// produceSample runs `produce --sample`: it checks the sample flags and produces the generated records.
func produceSample(cmd *cobra.Command, cf clientFlags, po client.ProduceOptions, so client.SampleOptions) (int64, error) {
	if _, err := client.SampleGenerator(so.Name, so.Seed); err != nil {
		return 0, fmt.Errorf("--sample: %w", err)
	}
	if so.Count < 1 {
		return 0, fmt.Errorf("-n: want a count >= 1, got %d", so.Count)
	}
	if so.Rate < 0 {
		return 0, fmt.Errorf("--rate: want records per second >= 0, got %g", so.Rate)
	}
	if po.KeySeparator != "" {
		return 0, fmt.Errorf("-k: not with --sample (the generator makes the keys)")
	}
	if so.Count > 100000 || (so.Rate > 0 && float64(so.Count)/so.Rate > 10) {
		so.Progress = cmd.ErrOrStderr()
	}
	return client.ProduceSample(cmd.Context(), cf.options(), po, so)
}
