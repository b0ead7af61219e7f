package main

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/plugintool"
)

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Scaffold, build and try processors: WASM modules and plugin processes",
		Long: `Scaffold, build and try processors without a broker. Two kinds:

  wasm     a WASM module (sdk/guest), built with GOOS=wasip1 GOARCH=wasm and run
           inside weir, sandboxed: a "wasm: {module: FILE}" stage
  process  a plugin process (plugins/plugin), built for this machine and run beside
           weir, supervised, over gRPC: a "plugin: {path: FILE}" stage; for
           processors that need the network, files or native libraries`,
	}
	var kind string
	initCmd := &cobra.Command{
		Use:   "init NAME",
		Short: "Write a buildable processor skeleton NAME/ (main.go, a Go test, pipeline.yaml with a test case)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := plugintool.InitKind(".", args[0], kind)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s (kind %s): edit main.go, then\n  weir plugin build %s\n  (cd %s && go test .)\n  weir pipeline test %s/pipeline.yaml\n", root, kind, root, root, root)
			if !plugintool.InModule(root) {
				fmt.Fprintf(w, "%s is not inside a Go module: first\n  (cd %s && go mod init %s && go get github.com/weirstream/weir)\n", root, root, args[0])
			}
			return nil
		},
	}
	initCmd.Flags().StringVar(&kind, "kind", plugintool.KindWasm, "processor kind: wasm (a WASM module) or process (a plugin process)")
	var out, buildKind string
	build := &cobra.Command{
		Use:   "build DIR",
		Short: "Build the Go processor in DIR (a WASM module or a plugin process) and check it loads",
		Long: `Build the Go processor in DIR and check that weir can load it.

A WASM module is built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared (default
output DIR/DIRNAME.wasm) and its ABI checked; a plugin process is built for this
machine (default output DIR/DIRNAME) and started once for go-plugin's handshake.
The kind comes from the source unless --kind says: a package importing
plugins/plugin is a process; one importing sdk/guest, or built only for wasip1, is a
WASM module; anything else is taken for a WASM module.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, k := args[0], buildKind
			if k == "" {
				var err error
				if k, err = plugintool.DetectKind(dir); err != nil {
					return err
				}
			}
			o := out
			if o == "" {
				o = plugintool.DefaultOutput(dir, k)
			}
			switch k {
			case plugintool.KindWasm:
				n, err := plugintool.Build(cmd.Context(), dir, o, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "built a WASM processor (kind wasm) of %d KiB, ABI v1: %s\n", n>>10, o)
			case plugintool.KindProcess:
				n, err := plugintool.BuildProcess(cmd.Context(), dir, o, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "built a plugin process (kind process) of %d KiB for %s/%s: %s\n", n>>10, runtime.GOOS, runtime.GOARCH, o)
			default:
				return fmt.Errorf("--kind %q: want %s or %s", k, plugintool.KindWasm, plugintool.KindProcess)
			}
			return nil
		},
	}
	build.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/DIRNAME.wasm for a WASM module, DIR/DIRNAME for a plugin process)")
	build.Flags().StringVar(&buildKind, "kind", "", "wasm or process (default: detected from the source)")
	var input, config string
	test := &cobra.Command{
		Use:   "test MODULE|PLUGIN",
		Short: "Run a WASM module or a plugin binary on records from a JSON Lines file ({\"key\": ..., \"value\": ..., \"headers\": {...}}) and print its outputs and errors",
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
	test.Flags().StringVar(&config, "config", "{}", "the processor's config as JSON")
	cmd.AddCommand(initCmd, build, test)
	return cmd
}
