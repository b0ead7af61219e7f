package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/runtime/server"
)

func newServeCmd() *cobra.Command {
	var (
		configFile   string
		flags        server.Config
		autoCreate   bool
		runWorker    bool
		topicCfg     []string
		pipelinesDir string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker: Kafka protocol on --kafka-addr, /healthz and /metrics on --http-addr",
		Long: `Runs a single-node weir broker. Any Kafka client (kcat, franz-go, sarama,
librdkafka, Java) can produce to and consume from it. Settings come from
flags and an optional YAML file (--config); flags given on the command line
win. SIGTERM or Ctrl-C shuts down gracefully: stop accepting, finish
in-flight requests, flush, and mark the logs clean.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := server.Config{}
			if configFile != "" {
				var err error
				if cfg, err = server.LoadConfigFile(configFile); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			if f.Changed("data-dir") || cfg.DataDir == "" {
				cfg.DataDir = flags.DataDir
			}
			if f.Changed("kafka-addr") || cfg.KafkaAddr == "" {
				cfg.KafkaAddr = flags.KafkaAddr
			}
			if f.Changed("http-addr") || cfg.HTTPAddr == "" {
				cfg.HTTPAddr = flags.HTTPAddr
			}
			if f.Changed("nats") || cfg.NATS == "" {
				cfg.NATS = flags.NATS
			}
			for _, o := range []struct {
				flag string
				dst  *string
				val  string
			}{
				{"nats-listen", &cfg.NATSListen, flags.NATSListen},
				{"nats-creds", &cfg.NATSCreds, flags.NATSCreds},
				{"nats-nkey", &cfg.NATSNKey, flags.NATSNKey},
				{"nats-tls-ca", &cfg.NATSTLSCA, flags.NATSTLSCA},
				{"nats-tls-cert", &cfg.NATSTLSCert, flags.NATSTLSCert},
				{"nats-tls-key", &cfg.NATSTLSKey, flags.NATSTLSKey},
				{"artifacts", &cfg.ArtifactsDir, flags.ArtifactsDir},
			} {
				if f.Changed(o.flag) {
					*o.dst = o.val
				}
			}
			if f.Changed("pipelines") {
				cfg.PipelinesDir = pipelinesDir
			}
			if f.Changed("advertised-addr") {
				cfg.AdvertisedAddr = flags.AdvertisedAddr
			}
			if f.Changed("partitions") {
				cfg.DefaultPartitions = flags.DefaultPartitions
			}
			if f.Changed("worker") {
				cfg.Worker = &runWorker
			}
			if f.Changed("auto-create-topics") {
				cfg.AutoCreateTopics = &autoCreate
			}
			for _, kv := range topicCfg {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--topic-config %q: want key=value", kv)
				}
				if cfg.TopicDefaults == nil {
					cfg.TopicDefaults = map[string]string{}
				}
				cfg.TopicDefaults[k] = v
			}
			ctx := cmd.Context()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "weir: serving Kafka on %s", srv.KafkaAddr())
			if a := srv.HTTPAddr(); a != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), ", metrics on http://%s/metrics", a)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), " (data in %s)\n", cfg.DataDir)
			if c := srv.Control(); c != nil {
				kind := "an existing NATS cluster"
				if c.Embedded() {
					kind = "the embedded NATS server"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "weir: control plane: %s at %s\n", kind, c.URL())
			}
			waitErr := make(chan error, 1)
			go func() { waitErr <- srv.Wait() }()
			select {
			case <-ctx.Done():
				slog.Info("shutting down")
				return srv.Shutdown(context.WithoutCancel(ctx))
			case err := <-waitErr:
				srv.Shutdown(context.WithoutCancel(ctx))
				return err
			}
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configFile, "config", "c", "", "YAML config file (see README); flags override it")
	f.StringVar(&flags.DataDir, "data-dir", "./weir-data", "data directory")
	f.StringVar(&flags.KafkaAddr, "kafka-addr", "127.0.0.1:9092", "Kafka protocol listener")
	f.StringVar(&flags.AdvertisedAddr, "advertised-addr", "", "host:port clients are told to connect to (default: the listener)")
	f.StringVar(&flags.HTTPAddr, "http-addr", "127.0.0.1:9644", `HTTP listener for /healthz and /metrics ("off" to disable)`)
	f.Int32Var(&flags.DefaultPartitions, "partitions", 1, "partitions of auto-created topics")
	f.BoolVar(&autoCreate, "auto-create-topics", true, "create unknown topics on first use")
	f.StringVar(&pipelinesDir, "pipelines", "", "run the pipeline files (*.yaml) of this directory, following changes to it")
	f.StringVar(&flags.NATS, "nats", "embedded", `control plane: "embedded" (a NATS server in this node, loopback only, JetStream in DATA_DIR/nats), nats://host:4222[,...] for an existing cluster, or "off"`)
	f.StringVar(&flags.NATSListen, "nats-listen", "127.0.0.1:4222", "the embedded NATS server's address (loopback; port 0 picks a free one)")
	f.StringVar(&flags.NATSCreds, "nats-creds", "", "NATS credentials file (.creds) for --nats URL")
	f.StringVar(&flags.NATSNKey, "nats-nkey", "", "NATS nkey seed file for --nats URL")
	f.StringVar(&flags.NATSTLSCA, "nats-tls-ca", "", "CA certificate (PEM) to trust for --nats URL")
	f.StringVar(&flags.NATSTLSCert, "nats-tls-cert", "", "client certificate (PEM) for --nats URL")
	f.StringVar(&flags.NATSTLSKey, "nats-tls-key", "", "client key (PEM) for --nats URL")
	f.StringVar(&flags.ArtifactsDir, "artifacts", "", "directory for relative paths in pipelines deployed with weir pipeline apply (default: the working directory)")
	f.BoolVar(&runWorker, "worker", true, "run the pipelines deployed to the control plane in this node too (false: leave them to weir worker processes)")
	f.StringArrayVar(&topicCfg, "topic-config", nil, "broker-wide topic config default, key=value (repeatable), e.g. flush.messages=1")
	return cmd
}
