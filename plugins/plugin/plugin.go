// Package plugin serves a processor as a weir plugin: a separate process
// that weir starts, supervises and calls over gRPC (hashicorp/go-plugin)
// once per batch, for processors that need native libraries, the network,
// a lot of memory or another language. A plugin's main is one line:
//
//	func main() { plugin.Serve(plugin.PerRecord(enrich)) }
//
// The protocol is pluginpb/processor.proto; plugins in other languages
// implement its Processor service and go-plugin's handshake (Handshake).
//
// What the plugin side guarantees: a panic in a PerRecord function fails
// that record only; a panic in a whole-batch Processor fails the call, and
// the host restarts the plugin and bisects the batch to find the record;
// a plugin whose host died exits within a second even if the parent-death
// signal the host sets was lost.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/weirstream/weir/plugins/pluginpb"
	"github.com/weirstream/weir/sdk"
)

// Handshake is the go-plugin handshake weir and its plugins share: a
// plugin binary run by hand says it is a plugin and exits.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "WEIR_PLUGIN",
	MagicCookieValue: "processor-v1",
}

// Name is the one plugin a weir plugin process serves.
const Name = "processor"

// MaxMessageBytes bounds one gRPC message either way. The host splits
// batches at MaxBatchBytes, well under it, so that outputs larger than
// their inputs still fit.
const (
	MaxMessageBytes = 64 << 20
	MaxBatchBytes   = 4 << 20
)

// Configurer is implemented by a processor that takes the stage's config
// (the YAML's config, as JSON). An error refuses the config: the pipeline
// is not loaded, and the error says why.
type Configurer interface {
	Configure(config []byte) error
}

// Serve runs p as a weir plugin until the host ends the process. It must
// be called from main, in a process started by weir.
func Serve(p sdk.Processor) {
	go exitWithParent()
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		// go-plugin's default logs at trace level on stderr, which weir
		// copies to its log: a debug line per start. Warnings and errors
		// only.
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr}),
		Plugins: goplugin.PluginSet{Name: &GRPC{Processor: p}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))...)
		},
	})
}

// exitWithParent ends the plugin when its parent is gone (it is then
// reparented): a backstop for the parent-death signal, which Linux sends
// when the thread that started the child exits, not the process.
func exitWithParent() {
	ppid := os.Getppid()
	for range time.Tick(250 * time.Millisecond) {
		if os.Getppid() != ppid {
			os.Exit(2)
		}
	}
}

// PerRecord adapts a function of one record to a Processor: zero or more
// outputs per record, or an error that fails just that record, as does a
// panic. A PerRecord value with a Config function also takes the config.
func PerRecord(f func(sdk.Record) ([]sdk.Record, error)) *Func {
	return &Func{Each: f}
}

// Func is a per-record processor (see PerRecord).
type Func struct {
	// Each is called once per record.
	Each func(sdk.Record) ([]sdk.Record, error)
	// Config, when set, receives the stage's config before the first
	// batch; an error refuses it.
	Config func(config []byte) error
}

// Configure implements Configurer.
func (f *Func) Configure(config []byte) error {
	if f.Config == nil {
		return nil
	}
	return f.Config(config)
}

// Process implements sdk.Processor.
func (f *Func) Process(_ context.Context, in []sdk.Record, res *sdk.Results) error {
	sdk.Each(in, res, f.Each)
	return nil
}

// GRPC is the go-plugin plugin of both sides: the server half serves
// Processor; the client half, which the host uses, is a
// pluginpb.ProcessorClient.
type GRPC struct {
	goplugin.NetRPCUnsupportedPlugin
	Processor sdk.Processor
}

// GRPCServer implements goplugin.GRPCPlugin.
func (g *GRPC) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterProcessorServer(s, &server{p: g.Processor})
	return nil
}

// GRPCClient implements goplugin.GRPCPlugin.
func (g *GRPC) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginpb.NewProcessorClient(c), nil
}

type server struct {
	pluginpb.UnimplementedProcessorServer
	p   sdk.Processor
	in  []sdk.Record
	res sdk.Results
}

func (s *server) Configure(_ context.Context, req *pluginpb.ConfigureRequest) (resp *pluginpb.ConfigureResponse, err error) {
	c, ok := s.p.(Configurer)
	if !ok {
		return &pluginpb.ConfigureResponse{}, nil
	}
	defer func() {
		if p := recover(); p != nil {
			resp = &pluginpb.ConfigureResponse{Error: fmt.Sprintf("panic in Configure: %v", p)}
		}
	}()
	if err := c.Configure(req.Config); err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "the plugin refused its config"
		}
		return &pluginpb.ConfigureResponse{Error: msg}, nil
	}
	return &pluginpb.ConfigureResponse{}, nil
}

func (s *server) Health(context.Context, *pluginpb.HealthRequest) (*pluginpb.HealthResponse, error) {
	return &pluginpb.HealthResponse{}, nil
}

// errPanic fails a batch whose Processor panicked: the host bisects it.
var errPanic = errors.New("plugin: the processor panicked")

func (s *server) Process(ctx context.Context, b *pluginpb.Batch) (resp *pluginpb.Results, err error) {
	s.in = FromPB(s.in[:0], b.Records)
	s.res.Reset()
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	if err := s.p.Process(ctx, s.in, &s.res); err != nil {
		return nil, err
	}
	return ResultsToPB(&s.res), nil
}
