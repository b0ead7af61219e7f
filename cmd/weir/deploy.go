package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pipelines"
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
