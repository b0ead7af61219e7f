// Command weir is the weir streaming platform: a Kafka-compatible log broker
// and stream processor in one binary. This file wires the subcommands; the
// work lives in the packages they call.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "weir:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var level string
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir: a Kafka-compatible streaming log and stream processor",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var l slog.Level
			if err := l.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(newServeCmd(), newLogCmd(), newBenchCmd())
	root.AddCommand(newTopicCmd())
	root.AddCommand(newProduceCmd())
	root.AddCommand(newConsumeCmd())
	root.AddCommand(newGroupCmd())
	root.AddCommand(newPipelineCmd())
	root.AddCommand(newPluginCmd())
	root.AddCommand(newWorkerCmd())
	return root
}
