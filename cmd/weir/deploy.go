package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/client"
	"github.com/weirstream/weir/runtime/control"
)

// natsFlags are the flags of the commands that talk to the control plane.
type natsFlags struct{ url, creds string }

func (n *natsFlags) add(cmd *cobra.Command) {
	def := "nats://127.0.0.1:4222"
	if env := os.Getenv("WEIR_NATS"); env != "" {
		def = env
	}
	cmd.Flags().StringVar(&n.url, "nats", def, "the control plane's NATS servers, comma-separated (env WEIR_NATS; weir serve embeds one at the default)")
	cmd.Flags().StringVar(&n.creds, "nats-creds", "", "NATS credentials file (.creds)")
}

func (n *natsFlags) connect(ctx context.Context) (*control.Plane, error) {
	return control.Start(ctx, control.Options{URLs: strings.Split(n.url, ","), CredsFile: n.creds, Name: "weir-cli", ConnectTimeout: 3 * time.Second})
}

func newPipelineApplyCmd() *cobra.Command {
	var nf natsFlags
	cmd := &cobra.Command{
		Use:   "apply FILE...",
		Short: "Validate pipeline files and deploy them to the control plane (a new version of each changed one)",
		Long: `Validates each file as weir pipeline validate does and, only if every one is
valid, stores each in the control plane's key-value bucket ` + control.DeployBucket + `
under its pipeline name: a changed spec becomes a new revision, an unchanged
one is left as it is. Paths in a spec (WASM modules, plugin binaries) are
stored as written.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			useWasmCache()
			type loaded struct {
				name string
				raw  []byte
			}
			var specs []loaded
			bad := 0
			for _, f := range args {
				// Read once: what is validated is what is stored.
				raw, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				s, err := pipelines.Parse(f, raw)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				s.Close()
				specs = append(specs, loaded{s.Name, raw})
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d files invalid: nothing applied", bad, len(args))
			}
			p, err := nf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			for _, s := range specs {
				rev, changed, err := p.Apply(cmd.Context(), s.name, s.raw)
				if err != nil {
					return err
				}
				if changed {
					fmt.Fprintf(cmd.OutOrStdout(), "applied %s: revision %d\n", s.name, rev)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "unchanged %s: revision %d\n", s.name, rev)
				}
			}
			return nil
		},
	}
	nf.add(cmd)
	return cmd
}

func newPipelineDeleteCmd() *cobra.Command {
	var nf natsFlags
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Remove deployed pipelines from the control plane",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := nf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			for _, name := range args {
				if err := p.Delete(cmd.Context(), name); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			}
			return nil
		},
	}
	nf.add(cmd)
	return cmd
}

// listDeployed prints the deployed pipelines (weir pipeline list --deployed).
func listDeployed(cmd *cobra.Command, nf *natsFlags) error {
	p, err := nf.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer p.Close()
	ds, err := p.Deployments(cmd.Context())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREVISION\tAPPLIED\tBYTES")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", d.Name, d.Revision, d.Applied.UTC().Format(time.RFC3339), len(d.Spec))
	}
	return tw.Flush()
}

// deployedStatus prints one deployed pipeline across the workers running
// it (weir pipeline status NAME --deployed): the deployed revision, then
// per worker what its heartbeats in the window said, then the group's lag
// from the brokers.
func deployedStatus(cmd *cobra.Command, nf *natsFlags, cf *clientFlags, name string, window time.Duration) error {
	ctx := cmd.Context()
	p, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	ds, err := p.Deployments(ctx)
	if err != nil {
		return err
	}
	var d *control.Deployment
	for i := range ds {
		if ds[i].Name == name {
			d = &ds[i]
		}
	}
	if d == nil {
		return fmt.Errorf("no pipeline %q is deployed on the control plane at %s (weir pipeline list --deployed)", name, p.URL())
	}
	heard, err := p.CollectHeartbeats(ctx, window)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "pipeline %s\n  deployed: revision %d, applied %s\n", name, d.Revision, d.Applied.UTC().Format(time.RFC3339))
	ids := slices.Sorted(maps.Keys(heard))
	ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := heard[id].Last.Running[name]; return !ok })
	fmt.Fprintf(w, "  workers:  %d (heard for %v)\n", len(ids), window)
	var total control.PipelineRun
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  WORKER\tREVISION\tSTATE\tPARTITIONS\tIN\tOUT\tFILTERED\tERRORED\tRECORDS/S\tOWNS")
	for _, id := range ids {
		h := heard[id]
		last, first := h.Last.Running[name], h.First.Running[name]
		rate := "-"
		if dt := h.Last.Sent.Sub(h.First.Sent).Seconds(); dt > 0 && first.Revision == last.Revision {
			rate = fmt.Sprintf("%.0f", float64(last.In-first.In)/dt)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", id, last.Revision, last.State, len(last.Partitions),
			last.In, last.Out, last.Filtered, last.Failed, rate, strings.Join(last.Partitions, ","))
		total.In += last.In
		total.Out += last.Out
		total.Failed += last.Failed
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, id := range ids {
		if run := heard[id].Last.Running[name]; run.Error != "" {
			fmt.Fprintf(w, "  error on %s: %s\n", id, run.Error)
		}
	}
	var spec struct {
		Input struct{ Group string } `yaml:"input"`
	}
	_ = yaml.Unmarshal(d.Spec, &spec) // a deployed spec was valid when applied
	group := spec.Input.Group
	if group == "" {
		group = pipelines.DefaultGroup(name)
	}
	desc, err := client.DescribeGroup(ctx, cf.options(), group)
	if err != nil {
		fmt.Fprintf(w, "  lag:      unknown: group %s: %v\n", group, err)
		return nil
	}
	fmt.Fprintf(w, "  lag:      %d (group %s, %s, %d partitions)\n", desc.TotalLag, group, desc.State, len(desc.Partitions))
	return nil
}
