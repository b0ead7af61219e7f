package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is `weir serve`'s configuration: flags and an optional YAML file
// (flags win). Unknown YAML fields are errors, reported with line and column.
type Config struct {
	// DataDir holds the topics' logs; default ./weir-data. A running server
	// holds an exclusive lock on DataDir/.lock (which names its pid), so a
	// second server on the same directory fails at once.
	DataDir string `yaml:"data_dir"`
	// KafkaAddr is the Kafka listener; default 127.0.0.1:9092.
	KafkaAddr string `yaml:"kafka_addr"`
	// AdvertisedAddr is the host:port clients are told to connect to;
	// default: the Kafka listener's address.
	AdvertisedAddr string `yaml:"advertised_addr"`
	// HTTPAddr serves /healthz and /metrics; default 127.0.0.1:9644; "off" disables.
	HTTPAddr string `yaml:"http_addr"`
	// NodeID is the broker id; default 0.
	NodeID int32 `yaml:"node_id"`
	// ClusterID is reported to clients; default "weir".
	ClusterID string `yaml:"cluster_id"`
	// AutoCreateTopics creates topics on first Metadata/Produce; default true.
	AutoCreateTopics *bool `yaml:"auto_create_topics"`
	// DefaultPartitions for auto-created topics and CreateTopics with -1; default 1.
	DefaultPartitions int32 `yaml:"default_partitions"`
	// TopicDefaults overrides the built-in topic config defaults (Kafka names:
	// retention.ms, segment.bytes, flush.messages, ...).
	TopicDefaults map[string]string `yaml:"topic_defaults"`
	// MaxRequestBytes is socket.request.max.bytes; default 100 MiB.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxFetchBytes caps one fetch response (fetch.max.bytes); default 55 MiB.
	MaxFetchBytes int `yaml:"max_fetch_bytes"`
	// RetentionCheckInterval is how often retention and compaction run; default 5m.
	RetentionCheckInterval time.Duration `yaml:"retention_check_interval"`
	// GroupInitialRebalanceDelay holds an empty group's first rebalance open
	// so members starting together join one generation; default 3s
	// (Kafka's group.initial.rebalance.delay.ms); a negative value disables it.
	GroupInitialRebalanceDelay time.Duration `yaml:"group_initial_rebalance_delay"`
	// OffsetsRetention drops committed offsets of groups empty this long
	// (offsets.retention.minutes); default 7 days.
	OffsetsRetention time.Duration `yaml:"offsets_retention"`
	// OffsetsPartitions is the partition count of __consumer_offsets when it
	// is first created; default 8.
	OffsetsPartitions int32 `yaml:"offsets_partitions"`
	// ShutdownTimeout bounds a graceful shutdown; default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// PipelinesDir holds pipeline files (*.yaml, *.yml) that the node runs
	// and keeps in step with the directory; empty: none. Their WASM stages'
	// compiled code is cached in DataDir/wasm-cache.
	PipelinesDir string `yaml:"pipelines_dir"`
	// PipelinesReloadInterval is how often the directory is checked for
	// changes; default 1s.
	PipelinesReloadInterval time.Duration `yaml:"pipelines_reload_interval"`
	// NATS is the control plane: "embedded" starts a NATS server in the
	// node (loopback, JetStream stored in DataDir/nats, fsync always);
	// nats://host:port[,...] uses an existing cluster; "" or "off": none.
	// `weir serve` defaults to "embedded".
	NATS string `yaml:"nats"`
	// ArtifactsDir resolves relative paths (WASM modules, plugin binaries)
	// in pipelines deployed with weir pipeline apply; default the working
	// directory.
	ArtifactsDir string `yaml:"artifacts_dir"`
	// Worker, when false, keeps the node from running the deployed
	// pipelines itself (leaving them to weir worker processes); default
	// true when there is a control plane.
	Worker *bool `yaml:"worker"`
	// NATSListen is the embedded server's address; default 127.0.0.1:4222.
	NATSListen string `yaml:"nats_listen"`
	// NATSCreds, NATSNKey, NATSTLSCA, NATSTLSCert, NATSTLSKey: credentials
	// and TLS for an existing cluster.
	NATSCreds   string `yaml:"nats_creds"`
	NATSNKey    string `yaml:"nats_nkey"`
	NATSTLSCA   string `yaml:"nats_tls_ca"`
	NATSTLSCert string `yaml:"nats_tls_cert"`
	NATSTLSKey  string `yaml:"nats_tls_key"`
}

// LoadConfigFile reads a YAML config strictly: unknown keys and values of
// the wrong type are errors that name file:line:col.
func LoadConfigFile(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, raw)
}

func parseConfig(path string, raw []byte) (Config, error) {
	var c Config
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return c, fmt.Errorf("config: %s: %v", path, err)
	}
	if len(doc.Content) == 0 { // empty file: all defaults
		return c, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return c, fmt.Errorf("config: %s:%d:%d: want a mapping of settings", path, root.Line, root.Column)
	}
	known := map[string]bool{}
	t := reflect.TypeOf(c)
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		known[name] = true
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if !known[k.Value] {
			return c, fmt.Errorf("config: %s:%d:%d: unknown setting %q", path, k.Line, k.Column, k.Value)
		}
		v := root.Content[i+1]
		var field reflect.Value
		for j := 0; j < t.NumField(); j++ {
			if name, _, _ := strings.Cut(t.Field(j).Tag.Get("yaml"), ","); name == k.Value {
				field = reflect.ValueOf(&c).Elem().Field(j)
			}
		}
		if err := v.Decode(field.Addr().Interface()); err != nil {
			msg := err.Error()
			if te := (*yaml.TypeError)(nil); errors.As(err, &te) && len(te.Errors) > 0 {
				msg = te.Errors[0]
				if _, rest, ok := strings.Cut(msg, ": "); ok {
					msg = rest
				}
			}
			return c, fmt.Errorf("config: %s:%d:%d: %s: %s", path, v.Line, v.Column, k.Value, msg)
		}
	}
	return c, nil
}

// withDefaults fills defaults and validates; errors name the field.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		c.DataDir = "./weir-data"
	}
	if c.KafkaAddr == "" {
		c.KafkaAddr = "127.0.0.1:9092"
	}
	if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil {
		return c, fmt.Errorf("config: kafka_addr %q: %w", c.KafkaAddr, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			return c, fmt.Errorf("config: advertised_addr %q: %w", c.AdvertisedAddr, err)
		}
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:9644"
	}
	if c.HTTPAddr != "off" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return c, fmt.Errorf("config: http_addr %q: %w", c.HTTPAddr, err)
		}
	}
	if c.ClusterID == "" {
		c.ClusterID = "weir"
	}
	if c.DefaultPartitions < 0 {
		return c, fmt.Errorf("config: default_partitions %d must be positive", c.DefaultPartitions)
	}
	if c.MaxRequestBytes < 0 {
		return c, fmt.Errorf("config: max_request_bytes %d must be positive", c.MaxRequestBytes)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.PipelinesDir != "" {
		if fi, err := os.Stat(c.PipelinesDir); err != nil || !fi.IsDir() {
			return c, fmt.Errorf("config: pipelines_dir %q: not a directory", c.PipelinesDir)
		}
	}
	if c.PipelinesReloadInterval <= 0 {
		c.PipelinesReloadInterval = time.Second
	}
	return c, nil
}
