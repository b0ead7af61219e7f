package main

import (
	"fmt"

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
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin (like kcat -P)",
		Long: `Reads stdin and produces each line (without its newline) as one record's value.
With -k SEP the part of a line before the first SEP is the record's key (a line without
SEP has a null key). Keyed records are placed like the Java client does:
murmur2(key) & 0x7fffffff % partitions. Prints nothing on success unless -v.`,
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
			n, err := client.Produce(cmd.Context(), cf.options(), po, cmd.InOrStdin())
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
	return cmd
}
