package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/bench"
)

func newBenchPipelineCmd() *cobra.Command {
	var (
		o       bench.PipelineOptions
		brokers string
		asJSON  bool
		quiet   bool
	)
	cmd := &cobra.Command{
		Use:   "pipeline [FILE]",
		Short: "Measure a pipeline's throughput against raw produce of the same records",
		Long: `Fills the pipeline's first input topic with -n JSON records of about 200
bytes (user_id, country NZ/AU/US/DE, amount 0..1999, currency, page,
referrer, ts; keyed by user_id), timing that as the raw produce reference
(franz-go, acks=1, no compression), then runs the pipeline from the start of
the topic until every record is processed, written and committed, and
prints both rates and their ratio. Without FILE it runs a one-stage filter
(value.country == "NZ" && value.amount > 100). By default an embedded node
is started in a temporary directory.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			benchLogs(cmd)
			var err error
			if len(args) == 1 {
				o.Spec, err = pipelines.Load(args[0])
			} else {
				o.Spec, err = pipelines.Parse("(default bench pipeline)", []byte(bench.DefaultPipelineSpec))
			}
			if err != nil {
				return err
			}
			if brokers != "" {
				o.Brokers = strings.Split(brokers, ",")
			}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			res, err := bench.Pipeline(cmd.Context(), o)
			if err != nil {
				return err
			}
			return benchOutput(cmd, asJSON, res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&brokers, "brokers", "b", "", "brokers (host:port,...); default: an embedded weir node in a temp dir")
	f.Int64VarP(&o.Records, "records", "n", 1_000_000, "records to fill and process")
	f.Int32VarP(&o.Partitions, "partitions", "p", 1, "partitions of the input topic when it is created")
	f.BoolVar(&o.OverKafka, "over-kafka", false, "run the embedded node's pipeline over the Kafka protocol (as weir pipeline run does) instead of in process (as weir serve --pipelines does)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines")
	return cmd
}
