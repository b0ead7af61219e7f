package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/control"
	"github.com/weirstream/weir/runtime/worker"
)

func newWorkerCmd() *cobra.Command {
	var cf clientFlags
	var nf natsFlags
	var artifacts, id string
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the pipelines deployed to the control plane (weir pipeline apply) against --brokers, following changes",
		Long: `Runs every pipeline deployed to the control plane (--nats) in this process,
reading and writing topics on --brokers over the Kafka protocol, until
interrupted. A new revision of a pipeline replaces the running one after it
has committed its batch in flight; a revision that does not load is logged
and the running one carries on; a deleted pipeline stops. Several workers
(and weir serve, which runs one too) share a pipeline's input partitions as
members of its consumer group. Relative paths in a spec (WASM modules,
plugin binaries) are resolved in --artifacts. The worker announces itself on
the control plane every second (weir pipeline status NAME --deployed shows
what each worker runs and owns).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			useWasmCache()
			// A worker may start before its control plane (a service
			// manager starting both): it waits for NATS, saying so.
			p, err := nf.connect(cmd.Context())
			for wait := time.Second; errors.Is(err, control.ErrConnect); wait = min(2*wait, 10*time.Second) {
				slog.Warn("worker: waiting for the control plane", "nats", nf.url, "err", err, "retry_in", wait)
				select {
				case <-cmd.Context().Done():
					return err
				case <-time.After(wait):
				}
				p, err = nf.connect(cmd.Context())
			}
			if err != nil {
				return err
			}
			defer p.Close()
			slog.Info("worker: running the deployed pipelines", "nats", p.URL(), "brokers", cf.options().Brokers)
			return worker.Run(cmd.Context(), worker.Options{Plane: p, ArtifactsDir: artifacts, ID: id,
				Run: pipelines.RunOptions{Brokers: cf.options().Brokers, Logger: slog.Default()}})
		},
	}
	cf.register(cmd.Flags())
	nf.add(cmd)
	cmd.Flags().StringVar(&artifacts, "artifacts", "", "directory for relative paths in deployed specs (default: the working directory)")
	cmd.Flags().StringVar(&id, "id", "", "this worker's name on the control plane (default host:pid)")
	return cmd
}
