// Package server is the composition root of `weir serve`: it opens the
// broker on the data directory, puts the Kafka protocol listener in front of
// it, and serves /healthz and Prometheus /metrics over HTTP.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/group"
	"github.com/weirstream/weir/core/kafka"
	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/control"
	"github.com/weirstream/weir/runtime/worker"
)

// Server is a running broker.
type Server struct {
	cfg    Config
	log    *slog.Logger
	broker *broker.Broker
	kafka  *kafka.Server
	kln    net.Listener
	http   *http.Server
	hln    net.Listener
	pipes  *pipelineHost  // nil without a pipelines directory
	ctl    *control.Plane // nil without a control plane
	lock   *dirLock       // the data directory's; released last by Shutdown
	// stopWorker ends the worker that runs the deployed pipelines (nil
	// without a control plane); workerDone is closed when it has.
	stopWorker context.CancelFunc
	workerDone chan struct{}

	done     chan struct{}
	serveErr error
	once     sync.Once
	shutErr  error
}

// Start opens the data directory and starts listening. It returns once both
// listeners are bound; Wait returns when the server stops.
//
// The order keeps a failed start from touching the data directory: first
// the directory's lock (DATA_DIR/.lock, so a second server on it fails at
// once), then both listeners (so a busy port fails before anything is
// written), then the control plane, and only then the broker's logs.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := slog.Default()
	s := &Server{cfg: cfg, log: log, done: make(chan struct{})}
	// undo closes what was opened, in reverse, when Start fails.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if s.lock, err = lockDataDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	undo = append(undo, s.lock.release)
	var lc net.ListenConfig
	if s.kln, err = lc.Listen(ctx, "tcp", cfg.KafkaAddr); err != nil {
		return nil, listenError("the Kafka listener", cfg.KafkaAddr, "--kafka-addr", "another weir or Kafka broker", "", err)
	}
	undo = append(undo, func() { s.kln.Close() })
	if cfg.HTTPAddr != "off" {
		if s.hln, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
			return nil, listenError("the HTTP listener (/healthz, /metrics)", cfg.HTTPAddr, "--http-addr", "another weir or program", `, or "off" disables it`, err)
		}
		undo = append(undo, func() { s.hln.Close() })
	}
	if cfg.NATS != "" && cfg.NATS != "off" {
		o := control.Options{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.DataDir, "nats"), Name: fmt.Sprintf("weir-node-%d", cfg.NodeID),
			CredsFile: cfg.NATSCreds, NKeyFile: cfg.NATSNKey, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey, Logger: log}
		if cfg.NATS != "embedded" {
			o.URLs = strings.Split(cfg.NATS, ",")
		}
		if s.ctl, err = control.Start(ctx, o); err != nil {
			return nil, err
		}
		undo = append(undo, func() { s.ctl.Close() })
	}
	b, err := broker.Open(broker.Config{
		DataDir:                cfg.DataDir,
		NodeID:                 cfg.NodeID,
		AutoCreateTopicsOff:    cfg.AutoCreateTopics != nil && !*cfg.AutoCreateTopics,
		DefaultPartitions:      cfg.DefaultPartitions,
		TopicDefaults:          cfg.TopicDefaults,
		RetentionCheckInterval: cfg.RetentionCheckInterval,
		Logger:                 log,
		Groups: broker.CoordinatorConfig{
			OffsetsPartitions: cfg.OffsetsPartitions,
			OffsetsRetention:  cfg.OffsetsRetention,
			Group:             group.Config{InitialRebalanceDelay: cfg.GroupInitialRebalanceDelay},
		},
	})
	if err != nil {
		return nil, err
	}
	s.broker = b
	if s.ctl != nil {
		log.Info("control plane connected", "nats", s.ctl.URL(), "embedded", s.ctl.Embedded())
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, b)
	kcfg := kafka.Config{Broker: b, ClusterID: cfg.ClusterID, MaxRequestBytes: cfg.MaxRequestBytes, MaxFetchBytes: cfg.MaxFetchBytes, Logger: log, Observer: m}
	if cfg.AdvertisedAddr != "" {
		host, port, _ := net.SplitHostPort(cfg.AdvertisedAddr)
		p, _ := strconv.Atoi(port)
		kcfg.AdvertisedHost, kcfg.AdvertisedPort = host, int32(p)
	}
	s.kafka = kafka.NewServer(kcfg)
	if cfg.HTTPAddr != "off" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/pipelines", func(w http.ResponseWriter, r *http.Request) {
			if s.pipes == nil {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintln(w, "[]")
				return
			}
			s.pipes.serveHTTP(w, r)
		})
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, "ok")
		})
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := s.http.Serve(s.hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		}()
	}
	go func() {
		s.serveErr = s.kafka.Serve(s.kln)
		close(s.done)
	}()
	var pm *pipelines.Metrics
	// Pipelines in the node create missing input topics when the node
	// creates topics on first use (as a Kafka consumer's subscription does).
	autoCreate := cfg.AutoCreateTopics == nil || *cfg.AutoCreateTopics
	if cfg.PipelinesDir != "" || s.ctl != nil {
		pm = pipelines.NewMetrics(reg)
		// WASM stages keep their compiled code with the node's data, so a
		// restart does not compile them again.
		pipelines.SetWasmCacheDir(filepath.Join(cfg.DataDir, "wasm-cache"))
	}
	if cfg.PipelinesDir != "" {
		s.pipes = newPipelineHost(cfg.PipelinesDir, cfg.PipelinesReloadInterval, []string{s.KafkaAddr()}, localBroker{b}, pm, log)
		s.pipes.createInputs = autoCreate
		s.pipes.start()
	}
	if s.ctl != nil && (cfg.Worker == nil || *cfg.Worker) {
		wctx, cancel := context.WithCancel(context.Background())
		s.stopWorker, s.workerDone = cancel, make(chan struct{})
		go func() {
			defer close(s.workerDone)
			err := worker.Run(wctx, worker.Options{Plane: s.ctl, ArtifactsDir: cfg.ArtifactsDir,
				Run: pipelines.RunOptions{Brokers: []string{s.KafkaAddr()}, Local: localBroker{b}, Logger: log, Metrics: pm, CreateInputs: autoCreate}})
			if err != nil {
				log.Error("deployed pipelines: worker stopped", "err", err)
			}
		}()
	}
	log.Info("weir broker started", "kafka", s.KafkaAddr(), "http", s.HTTPAddr(), "data_dir", cfg.DataDir)
	return s, nil
}

// KafkaAddr is the Kafka listener's address.
func (s *Server) KafkaAddr() string { return s.kln.Addr().String() }

// HTTPAddr is the HTTP listener's address, or "" when it is off.
func (s *Server) HTTPAddr() string {
	if s.hln == nil {
		return ""
	}
	return s.hln.Addr().String()
}

// Control is the node's control plane, or nil when it has none.
func (s *Server) Control() *control.Plane { return s.ctl }

// Broker is the broker behind the server.
func (s *Server) Broker() *broker.Broker { return s.broker }

// Wait blocks until the Kafka listener stops (after Shutdown, or on a
// listener error).
func (s *Server) Wait() error {
	<-s.done
	return s.serveErr
}

// Shutdown stops accepting, finishes in-flight requests, closes the logs
// cleanly (so the next start reads no data) and stops HTTP.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		if s.pipes != nil {
			// Pipelines first: each commits its batch in flight through
			// the listener that is about to close.
			s.pipes.shutdown()
		}
		if s.stopWorker != nil {
			s.stopWorker()
			<-s.workerDone
		}
		kerr := s.kafka.Shutdown(ctx)
		if kerr != nil {
			s.log.Warn("connections did not finish in time", "err", kerr)
		}
		// Bounded by shutdown_timeout: partitions not closed by then are
		// recovered at the next start, as after a crash.
		berr := s.broker.CloseWithin(ctx)
		if s.ctl != nil {
			s.ctl.Close()
		}
		if s.http != nil {
			s.http.Shutdown(ctx)
		}
		// Last: the data directory is no longer written to, unless
		// partition closes are still under way past the deadline; then
		// the lock goes with the process, which is about to exit.
		if !errors.Is(berr, broker.ErrCloseDeadline) {
			s.lock.release()
		}
		s.shutErr = errors.Join(kerr, berr)
		s.log.Info("weir broker stopped", "err", s.shutErr)
	})
	return s.shutErr
}

// listenError says which listener could not bind which address, why (the
// system's reason, without Go's "listen tcp ...: bind:" prefix), and which
// flag moves it.
func listenError(what, addr, flag, others, more string, err error) error {
	reason := err.Error()
	var se *os.SyscallError
	var oe *net.OpError
	switch {
	case errors.As(err, &se):
		reason = se.Err.Error()
	case errors.As(err, &oe) && oe.Err != nil:
		reason = oe.Err.Error()
	}
	var hint string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		hint = others + " may be using it; "
	case errors.Is(err, syscall.EACCES):
		hint = "ports below 1024 need privileges; "
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = "that address is not one of this machine's; "
	}
	return fmt.Errorf("%s cannot listen on %s (%s): %schoose another with %s (127.0.0.1:0 picks a free port%s)", what, addr, reason, hint, flag, more)
}
