package main

import (
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/weirstream/weir/runtime/client"
)

// clientFlags are the connection flags shared by the Kafka client commands (topic, produce, consume).
type clientFlags struct {
	brokers string
	timeout time.Duration
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	def := client.DefaultBrokers
	if env := os.Getenv("WEIR_BROKERS"); env != "" {
		def = env
	}
	fs.StringVarP(&f.brokers, "brokers", "b", def, "bootstrap brokers, comma-separated host:port (env WEIR_BROKERS)")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "how long to wait for the brokers: dial, each request, each record's delivery")
}

func (f *clientFlags) options() client.Options {
	return client.Options{Brokers: client.ParseBrokers(f.brokers), Timeout: f.timeout}
}
