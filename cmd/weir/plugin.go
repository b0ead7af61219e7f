package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/plugintool"
)

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Scaffold, build and try WASM processor modules",
	}
	var kind string
	initCmd := &cobra.Command{
		Use:   "init NAME",
		Short: "Write a buildable module skeleton NAME/ (main.go, module_test.go, pipeline.yaml)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind != "wasm" {
				return fmt.Errorf("--kind %q: only wasm modules can be scaffolded so far", kind)
			}
			root, err := plugintool.Init(".", args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: edit main.go, then\n  weir plugin build %s\n  weir pipeline test %s/pipeline.yaml\n", root, root, root)
			return nil
		},
	}
	initCmd.Flags().StringVar(&kind, "kind", "wasm", "module kind (wasm)")
	var out string
	build := &cobra.Command{
		Use:   "build DIR",
		Short: "Build the Go module in DIR as a WASM processor (GOOS=wasip1 GOARCH=wasm, c-shared) and check it loads",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := plugintool.Build(cmd.Context(), args[0], out, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built a WASM processor of %d KiB, ABI v1\n", n>>10)
			return nil
		},
	}
	build.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/DIRNAME.wasm)")
	var input, config string
	test := &cobra.Command{
		Use:   "test MODULE",
		Short: "Run a module on records from a JSON Lines file ({\"key\": ..., \"value\": ..., \"headers\": {...}}) and print its outputs and errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			outs, failed, err := plugintool.Test(cmd.Context(), args[0], []byte(config), r, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d outputs, %d failed inputs\n", outs, failed)
			return nil
		},
	}
	test.Flags().StringVarP(&input, "input", "i", "-", "JSON Lines records (- for stdin)")
	test.Flags().StringVar(&config, "config", "{}", "module config as JSON")
	cmd.AddCommand(initCmd, build, test)
	return cmd
}
