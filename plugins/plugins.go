// Package plugins runs weir's out-of-process processors (plugins): binaries
// built with plugins/plugin, or any program speaking its gRPC protocol
// (plugins/pluginpb/processor.proto) and go-plugin's handshake.
//
// A Stage is one supervised plugin process used as a pipeline stage (an
// sdk.Processor). Its invariants:
//
//   - One call at a time, one batch per call, at most plugin.MaxBatchBytes
//     of records per call (a larger batch is split), each call bounded by
//     the stage's Timeout.
//   - A call that fails (the process crashed or exited, the call's deadline
//     passed, as with a stopped or hung process, or the reply does not fit
//     the batch) kills the process; the next call starts a new one, after a
//     backoff that doubles per consecutive failure (10 ms to 5 s). The batch
//     is replayed on the new process; a batch that fails twice is bisected,
//     and a record that fails alone fails (to the pipeline's error policy)
//     while its neighbours go on. Nothing is lost, and outputs keep their
//     input order.
//   - The process gets only the environment the spec lists, dies with the
//     host (a parent-death signal, and plugins/plugin's own check), and its
//     stderr goes to the Stderr writer, line by line.
//   - A binary whose SHA-256 is pinned is checked before every start and
//     refused (ErrChecksum) on a mismatch.
package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/plugins/plugin"
	"github.com/weirstream/weir/plugins/pluginpb"
	"github.com/weirstream/weir/sdk"
)

// ErrChecksum is returned when a plugin binary's SHA-256 is not the one
// its spec pins.
var ErrChecksum = errors.New("plugins: binary checksum mismatch")

// ErrConfig is returned when a plugin refuses its config (Configure).
var ErrConfig = errors.New("plugins: config refused")

// ErrStart is returned when a plugin process cannot be started or does
// not complete go-plugin's handshake.
var ErrStart = errors.New("plugins: start")

// DefaultTimeout bounds each call when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// Config describes a plugin stage.
type Config struct {
	// Path of the binary, and its arguments.
	Path string
	Args []string
	// Env is the plugin's whole environment ("KEY=VALUE"); nothing of the
	// host's is passed.
	Env []string
	// Config is passed to the plugin's Configure (JSON; empty: "{}").
	Config []byte
	// Timeout bounds each call (one batch, or part of one).
	Timeout time.Duration
	// SHA256, when set (hex), pins the binary.
	SHA256 string
	// Stderr receives the plugin's stderr (nil: discarded).
	Stderr io.Writer
	// HealthInterval is how often an idle running plugin is asked whether
	// it is alive (Health); one that does not answer within Timeout is
	// killed, and the next batch starts a new one. 0: 5s; <0: never.
	HealthInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if len(c.Config) == 0 {
		c.Config = []byte("{}")
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 5 * time.Second
	}
	return c
}

// Stage is a supervised plugin process (see the package doc).
type Stage struct {
	cfg Config

	mu       sync.Mutex // one call at a time
	client   *goplugin.Client
	cmd      *exec.Cmd
	proc     pluginpb.ProcessorClient
	fails    int       // consecutive failures
	nextTry  time.Time // no start before
	restarts int       // processes started after the first
	started  int
	closed   chan struct{} // closed by Close: ends the health checks
	watching bool
}

// maxStartFailures is how many starts in a row may fail (with backoff,
// about 2.5 s in all) before a call gives up and returns the error.
const maxStartFailures = 8

// Restarts counts the processes started after the first.
func (s *Stage) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// NewStage makes a stage; the process starts on the first call (or
// Check).
func NewStage(cfg Config) (*Stage, error) {
	cfg = cfg.withDefaults()
	if cfg.SHA256 != "" {
		if b, err := hex.DecodeString(cfg.SHA256); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("plugins: sha256 %q is not 64 hex digits", cfg.SHA256)
		}
	}
	return &Stage{cfg: cfg, closed: make(chan struct{})}, nil
}

// Check starts the plugin and configures it, so that a missing binary, a
// checksum mismatch or a refused config is reported when a spec is
// loaded; the process keeps running for the first batch.
func (s *Stage) Check(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.start(ctx)
	return err
}

// Close ends the plugin process and its health checks. A stage used
// after Close starts a new process.
func (s *Stage) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
	if s.watching {
		close(s.closed)
		s.closed, s.watching = make(chan struct{}), false
	}
}

// watch asks the plugin for its health every HealthInterval until the
// stage is closed.
func (s *Stage) watch(closed <-chan struct{}) {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
			s.Health(context.Background())
		}
	}
}

// Pid is the running plugin's process id (0: none), for tests and status.
func (s *Stage) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Stage) kill() {
	if s.client == nil {
		return
	}
	if s.cmd.Process != nil {
		s.cmd.Process.Kill() // before Kill's graceful wait: the process may be stopped
	}
	s.client.Kill()
	s.client, s.cmd, s.proc = nil, nil, nil
}

func (s *Stage) checksum() ([]byte, error) {
	want, _ := hex.DecodeString(s.cfg.SHA256)
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStart, err)
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return nil, fmt.Errorf("%w: %s has sha256 %x, the spec pins %s", ErrChecksum, s.cfg.Path, got, s.cfg.SHA256)
	}
	return want, nil
}

// start runs the process if none is running (caller holds mu).
func (s *Stage) start(ctx context.Context) (pluginpb.ProcessorClient, error) {
	if s.proc != nil {
		return s.proc, nil
	}
	if wait := time.Until(s.nextTry); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	var secure *goplugin.SecureConfig
	if s.cfg.SHA256 != "" {
		sum, err := s.checksum()
		if err != nil {
			return nil, err
		}
		// go-plugin checks again just before it starts the process.
		secure = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	cmd, client := newClient(s.cfg, secure)
	fail := func(err error) (pluginpb.ProcessorClient, error) {
		client.Kill()
		s.failed()
		return nil, err
	}
	proc, err := dispense(client, s.cfg.Path)
	if err != nil {
		return fail(err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	resp, err := proc.Configure(cctx, &pluginpb.ConfigureRequest{Config: s.cfg.Config})
	cancel()
	if err != nil {
		return fail(fmt.Errorf("%w: %s: configure: %v", ErrStart, s.cfg.Path, err))
	}
	if resp.Error != "" {
		return fail(fmt.Errorf("%w: %s: %s", ErrConfig, s.cfg.Path, resp.Error))
	}
	if s.started > 0 {
		s.restarts++
	}
	s.started++
	s.client, s.cmd, s.proc = client, cmd, proc
	if !s.watching && s.cfg.HealthInterval > 0 {
		s.watching = true
		go s.watch(s.closed)
	}
	return proc, nil
}

// newClient makes the go-plugin client of a process that runs cfg's
// binary with cfg's arguments and only cfg's environment.
func newClient(cfg Config, secure *goplugin.SecureConfig) (*exec.Cmd, *goplugin.Client) {
	path := cfg.Path
	if !strings.ContainsRune(path, filepath.Separator) {
		path = "." + string(filepath.Separator) + path
	}
	cmd := exec.Command(path, cfg.Args...)
	cmd.Env = append([]string(nil), cfg.Env...)
	setParentDeathSignal(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		Plugins:          goplugin.PluginSet{plugin.Name: &plugin.GRPC{}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     10 * time.Second,
		Stderr:           cfg.Stderr,
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(plugin.MaxMessageBytes), grpc.MaxCallSendMsgSize(plugin.MaxMessageBytes))},
	})
	return cmd, client
}

// dispense starts the client's process, completes the handshake and
// returns the processor it serves.
func dispense(client *goplugin.Client, path string) (pluginpb.ProcessorClient, error) {
	rpc, err := client.Client()
	if err != nil {
		if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("%w: %s changed since it was checked: %v", ErrChecksum, path, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrStart, path, err)
	}
	raw, err := rpc.Dispense(plugin.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrStart, path, err)
	}
	proc, ok := raw.(pluginpb.ProcessorClient)
	if !ok {
		return nil, fmt.Errorf("%w: %s: dispensed a %T, not a processor", ErrStart, path, raw)
	}
	return proc, nil
}

// Probe starts the binary of cfg (its Path, Args and Env), completes the
// handshake and a Health call within cfg.Timeout, and ends it: whether it
// is a weir plugin at all, without configuring it (a plugin may refuse an
// empty config). `weir plugin build` checks what it built with it.
func Probe(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	_, client := newClient(cfg, nil)
	defer client.Kill()
	proc, err := dispense(client, cfg.Path)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := proc.Health(cctx, &pluginpb.HealthRequest{}); err != nil {
		return fmt.Errorf("%w: %s: health: %v", ErrStart, cfg.Path, err)
	}
	return nil
}

// failed notes a failure: the next start waits a backoff.
func (s *Stage) failed() {
	s.fails++
	backoff := min(10*time.Millisecond<<min(s.fails-1, 16), 5*time.Second)
	s.nextTry = time.Now().Add(backoff)
}

// Health asks the running plugin whether it is alive (within the stage's
// timeout); a plugin that does not answer is killed.
func (s *Stage) Health(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := s.proc.Health(cctx, &pluginpb.HealthRequest{}); err != nil {
		s.kill()
		s.failed()
		return fmt.Errorf("plugins: %s: health: %w", s.cfg.Path, err)
	}
	return nil
}

// Process implements sdk.Processor.
func (s *Stage) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for start := 0; start < len(in); {
		end, size := start, 0
		for end < len(in) && (end == start || size+recordSize(&in[end]) <= plugin.MaxBatchBytes) {
			size += recordSize(&in[end])
			end++
		}
		if err := s.run(ctx, in[start:end], start, res, 0); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func recordSize(r *sdk.Record) int {
	n := len(r.Key) + len(r.Value) + len(r.Topic) + 32
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// run sends one part of a batch; attempt counts its failures so far.
func (s *Stage) run(ctx context.Context, in []sdk.Record, base int, res *sdk.Results, attempt int) error {
	out, err := s.call(ctx, in)
	if err == nil {
		for _, o := range out.Out {
			res.Emit(base+o.Source, o.Record)
		}
		for _, f := range out.Failed {
			res.Fail(base+f.Source, f.Err)
		}
		s.fails = 0
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var cannot startError
	if errors.As(err, &cannot) {
		return cannot.err // the plugin cannot run: the pipeline decides
	}
	s.kill()
	s.failed()
	if attempt == 0 {
		return s.run(ctx, in, base, res, 1) // replay on a new process
	}
	if len(in) == 1 {
		res.Fail(base, fmt.Errorf("plugin %s failed on this record: %w", filepath.Base(s.cfg.Path), err))
		return nil
	}
	mid := len(in) / 2
	if err := s.run(ctx, in[:mid], base, res, 0); err != nil {
		return err
	}
	return s.run(ctx, in[mid:], base+mid, res, 0)
}

// startError wraps a failure to start or configure a plugin, which
// retrying the batch does not mend.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }

// ready starts the plugin if it is not running, retrying with backoff;
// a start that cannot succeed is a startError.
func (s *Stage) ready(ctx context.Context) (pluginpb.ProcessorClient, error) {
	for {
		proc, err := s.start(ctx)
		if err == nil {
			return proc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrConfig) || s.fails >= maxStartFailures {
			return nil, startError{err}
		}
	}
}

// call sends records and checks the reply against them.
func (s *Stage) call(ctx context.Context, in []sdk.Record) (*sdk.Results, error) {
	proc, err := s.ready(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	reply, err := proc.Process(cctx, &pluginpb.Batch{Records: plugin.ToPB(nil, in)})
	if err != nil {
		// gRPC's own timer for the deadline may fire before the context's.
		if ctx.Err() == nil && (cctx.Err() == context.DeadlineExceeded || status.Code(err) == codes.DeadlineExceeded) {
			return nil, fmt.Errorf("no reply within the stage timeout of %v: %w", s.cfg.Timeout, err)
		}
		return nil, err
	}
	var out sdk.Results
	last := -1
	for _, o := range reply.Outputs {
		src := int(o.Source)
		if src < 0 || src >= len(in) || src < last {
			return nil, fmt.Errorf("plugin reply names input %d (after %d) of a batch of %d", src, last, len(in))
		}
		last = src
		out.Emit(src, sdk.Record{Output: o.Output, Key: o.Key, Value: o.Value, Headers: plugin.HeadersFromPB(o.Headers), Timestamp: time.UnixMilli(o.TimestampMs)})
	}
	for _, f := range reply.Failures {
		if f.Source < 0 || int(f.Source) >= len(in) {
			return nil, fmt.Errorf("plugin reply fails input %d of a batch of %d", f.Source, len(in))
		}
		out.Fail(int(f.Source), errors.New(f.Error))
	}
	return &out, nil
}
