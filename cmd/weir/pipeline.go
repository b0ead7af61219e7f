package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/server"
	"github.com/weirstream/weir/wasm"
)

func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Validate, explain, test and run YAML pipelines (topics -> stages -> topics)",
		Long: `A pipeline reads topics as a consumer group, runs each batch of records
through its stages (filter, map, key, route: expr-lang expressions), writes
the results to output topics and commits its input offsets once every output
is acknowledged (at-least-once). See the README's Pipelines section.`,
	}
	cmd.AddCommand(newPipelineValidateCmd(), newPipelineExplainCmd(), newPipelineTestCmd(), newPipelineRunCmd(),
		newPipelineListCmd(), newPipelineStatusCmd(), newPipelineApplyCmd(), newPipelineDeleteCmd())
	return cmd
}

func newPipelineValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipeline files; print every problem as file:line:col and exit non-zero if any",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			useWasmCache()
			bad := 0
			for _, f := range args {
				s, err := pipelines.Load(f)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: pipeline %s is valid (%d stages, %d outputs, %d tests)\n", f, s.Name, len(s.Stages), len(s.Outputs), len(s.Tests))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d files invalid", bad, len(args))
			}
			return nil
		},
	}
}

func newPipelineExplainCmd() *cobra.Command {
	var kinds bool
	cmd := &cobra.Command{
		Use:   "explain [FILE]",
		Short: "Print a pipeline's resolved plan (or, with --kinds, every stage kind with its fields and an example)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kinds || len(args) == 0 {
				pipelines.ExplainKinds(cmd.OutOrStdout())
				return nil
			}
			useWasmCache()
			s, err := pipelines.Load(args[0])
			if err != nil {
				return err
			}
			s.Explain(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&kinds, "kinds", false, "list the stage kinds")
	return cmd
}

func newPipelineTestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test FILE...",
		Short: "Run the test cases in pipeline files (input records -> expected output records), no broker needed",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			useWasmCache()
			failed, total := 0, 0
			for _, f := range args {
				s, err := pipelines.Load(f)
				if err != nil {
					return err
				}
				if len(s.Tests) == 0 {
					return fmt.Errorf("%s: no test cases (add a tests: list)", f)
				}
				results, err := s.RunTests(cmd.Context())
				s.Close()
				if err != nil {
					return err
				}
				for _, r := range results {
					total++
					if len(r.Problems) == 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "ok    %s: %s\n", r.Case.Pos, r.Case.Name)
						continue
					}
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL  %s: %s\n", r.Case.Pos, r.Case.Name)
					for _, p := range r.Problems {
						fmt.Fprintf(cmd.OutOrStdout(), "      %s\n", p)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d test cases failed", failed, total)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d test cases passed\n", total)
			return nil
		},
	}
}

func newPipelineRunCmd() *cobra.Command {
	var (
		cf          clientFlags
		from        string
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a pipeline against Kafka-protocol brokers until interrupted",
		Long: `Runs one pipeline in this process against --brokers (a weir node or any
Kafka-protocol broker). It resumes from its consumer group's committed
offsets; --from replays from earliest, latest, an offset or an RFC 3339 time
(the group must have no other members). Ctrl-C stops after the batch in
flight is written and committed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			useWasmCache()
			s, err := pipelines.Load(args[0])
			if err != nil {
				return err
			}
			o := pipelines.RunOptions{Brokers: cf.options().Brokers, Logger: slog.Default()}
			if from != "" {
				st, err := pipelines.ParseStart(from)
				if err != nil {
					return fmt.Errorf("--from: %w", err)
				}
				o.Replay = &st
			}
			if metricsAddr != "" {
				reg := prometheus.NewRegistry()
				o.Metrics = pipelines.NewMetrics(reg)
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				srv := &http.Server{Addr: metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go func() {
					if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
						slog.Error("metrics listener", "err", err)
					}
				}()
				defer srv.Close()
			}
			return pipelines.Run(cmd.Context(), s, o)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "replay from earliest, latest, an offset, or an RFC 3339 time (moves the group's offsets first)")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9645)")
	return cmd
}

// useWasmCache keeps the compiled code of the WASM stages the command
// loads in the user's cache directory.
func useWasmCache() { pipelines.SetWasmCacheDir(wasm.UserCacheDir()) }

// fetchPipelines reads /pipelines from a running node.
func fetchPipelines(ctx context.Context, addr string) ([]server.PipelineStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/pipelines", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the node at %s (its --http-addr): %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node at %s: %s", addr, resp.Status)
	}
	var st []server.PipelineStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("node at %s: %w", addr, err)
	}
	return st, nil
}

func httpAddrFlag(cmd *cobra.Command, addr *string) {
	def := "127.0.0.1:9644"
	if env := os.Getenv("WEIR_HTTP_ADDR"); env != "" {
		def = env
	}
	cmd.Flags().StringVar(addr, "http-addr", def, "the node's HTTP listener (env WEIR_HTTP_ADDR)")
}

func newPipelineListCmd() *cobra.Command {
	var addr string
	var asJSON, deployed bool
	var nf natsFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the pipelines a running node runs (weir serve --pipelines DIR), or with --deployed those deployed to the control plane",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if deployed {
				return listDeployed(cmd, &nf)
			}
			st, err := fetchPipelines(cmd.Context(), addr)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tIN\tOUT\tFILTERED\tERRORED\tLAG\tFILE")
			for _, p := range st {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.State, p.In, p.Out, p.Filtered, p.Failed, p.Lag, p.File)
			}
			return tw.Flush()
		},
	}
	httpAddrFlag(cmd, &addr)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&deployed, "deployed", false, "list the pipelines deployed with weir pipeline apply (from --nats)")
	nf.add(cmd)
	return cmd
}

func newPipelineStatusCmd() *cobra.Command {
	var addr string
	var deployed bool
	var window, rateOver time.Duration
	var nf natsFlags
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show one pipeline of a running node (state, version, counters, lag, last error), or with --deployed one deployed pipeline across its workers",
		Long: `Without --deployed: one pipeline of the node at --http-addr (weir serve
--pipelines DIR). With --deployed: a pipeline deployed with weir pipeline
apply, across every worker running it: the deployed revision, and per
worker the revision it runs, its state, the input partitions it owns, its
counters and records/s (from its heartbeats on --nats during --wait), then
the group's lag from --brokers.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if deployed {
				return deployedStatus(cmd, &nf, &cf, args[0], window)
			}
			find := func() (*server.PipelineStatus, time.Time, error) {
				st, err := fetchPipelines(cmd.Context(), addr)
				at := time.Now()
				if err != nil {
					return nil, at, err
				}
				for i, p := range st {
					if p.Name == args[0] || p.File == args[0] {
						return &st[i], at, nil
					}
				}
				return nil, at, fmt.Errorf("no pipeline %q on the node at %s", args[0], addr)
			}
			first, t0, err := find()
			if err != nil {
				return err
			}
			// Rates: a second look after --rate-over.
			p, t1 := first, t0
			if rateOver > 0 {
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(rateOver):
				}
				if p, t1, err = find(); err != nil {
					return err
				}
			}
			dt := t1.Sub(t0).Seconds()
			same := first.Version == p.Version && first.Started.Equal(p.Started) && dt > 0
			rate := func(from, to int64) string {
				if !same || to < from {
					return "-"
				}
				return fmt.Sprintf("%.0f", float64(to-from)/dt)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "pipeline %s\n  file:     %s (version %s)\n  state:    %s\n", p.Name, p.File, p.Version, p.State)
			if !p.Started.IsZero() {
				fmt.Fprintf(w, "  started:  %s\n", p.Started.Format(time.RFC3339))
			}
			fmt.Fprintf(w, "  records:  %d in, %d out, %d filtered, %d errored, %d batches\n  lag:      %d\n", p.In, p.Out, p.Filtered, p.Failed, p.Batches, p.Lag)
			if rateOver > 0 {
				fmt.Fprintf(w, "  rate:     %s in/s, %s out/s (over %v)\n", rate(first.In, p.In), rate(first.Out, p.Out), rateOver)
			}
			if p.Error != "" {
				fmt.Fprintf(w, "  error:    %s\n", p.Error)
			}
			if len(p.Stages) > 0 {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "  STAGE\tIN\tOUT\tIN/S\tOUT/S")
				for i, s := range p.Stages {
					inRate, outRate := "-", "-" // rate says "-" too without a second look
					if i < len(first.Stages) && first.Stages[i].Name == s.Name {
						inRate, outRate = rate(first.Stages[i].In, s.In), rate(first.Stages[i].Out, s.Out)
					}
					fmt.Fprintf(tw, "  %d %s\t%d\t%d\t%s\t%s\n", i+1, s.Name, s.In, s.Out, inRate, outRate)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	httpAddrFlag(cmd, &addr)
	cmd.Flags().BoolVar(&deployed, "deployed", false, "a pipeline deployed with weir pipeline apply, across its workers (from --nats and --brokers)")
	cmd.Flags().DurationVar(&rateOver, "rate-over", time.Second, "look twice, this far apart, to show records/s (0: once, no rates)")
	cmd.Flags().DurationVar(&window, "wait", 2500*time.Millisecond, "with --deployed: how long to listen to the workers' heartbeats (they beat every second)")
	nf.add(cmd)
	cf.register(cmd.Flags())
	return cmd
}
