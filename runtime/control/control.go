// Package control is weir's control plane transport: a NATS connection,
// to an existing NATS cluster or to a NATS server embedded in the node
// (loopback only, JetStream on, its store in the node's data directory,
// every write fsynced). Membership, rebalance signals and pipeline
// deployment travel over it; everything it carries is a hint, and
// correctness (one owner per partition, offsets committed by the owner)
// is enforced where offsets are committed, never by NATS delivery alone.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConfig is returned by Start for options that cannot work together or
// a listen address that cannot be used.
var ErrConfig = errors.New("control: config")

// ErrConnect is returned by Start when the NATS servers cannot be reached.
var ErrConnect = errors.New("control: connect")

// Options of the control plane.
type Options struct {
	// URLs of an existing NATS cluster (nats://host:4222, ...); empty:
	// start an embedded server.
	URLs []string
	// Listen is the embedded server's client address; it must be a
	// loopback address. Default 127.0.0.1:4222; port 0 picks one.
	Listen string
	// StoreDir keeps the embedded server's JetStream data.
	StoreDir string
	// Name names this node's connection (shown by NATS monitoring).
	Name string
	// CredsFile, NKeyFile: NATS credentials (a .creds file or an nkey
	// seed file), for an existing cluster.
	CredsFile string
	NKeyFile  string
	// TLS: a CA to trust, and a client certificate and key.
	TLSCA, TLSCert, TLSKey string
	// ConnectTimeout bounds the first connection; default 5s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// Plane is a live control plane connection.
type Plane struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *natsserver.Server
	url      string
	log      *slog.Logger
}

// Start connects to the cluster, or starts the embedded server and
// connects to it.
func Start(ctx context.Context, o Options) (*Plane, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	p := &Plane{log: o.Logger}
	urls := o.URLs
	if len(urls) == 0 {
		if o.CredsFile != "" || o.NKeyFile != "" || o.TLSCA != "" || o.TLSCert != "" {
			return nil, fmt.Errorf("%w: NATS credentials and TLS apply to an existing cluster (--nats URL), not to the embedded server", ErrConfig)
		}
		ns, err := startEmbedded(o)
		if err != nil {
			return nil, err
		}
		p.embedded = ns
		urls = []string{ns.ClientURL()}
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("control plane: NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			p.log.Info("control plane: NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("%w: nkey %s: %v", ErrConfig, o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("%w: %s: %v", ErrConnect, strings.Join(redact(urls), ","), err)
	}
	p.nc = nc
	p.url = nc.ConnectedUrlRedacted()
	if p.js, err = jetstream.New(nc); err != nil {
		p.close()
		return nil, fmt.Errorf("%w: JetStream: %v", ErrConnect, err)
	}
	return p, nil
}

// startEmbedded runs a nats-server on a loopback address with JetStream
// storing in StoreDir, every write fsynced.
func startEmbedded(o Options) (*natsserver.Server, error) {
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("%w: --nats-listen %q: %v", ErrConfig, listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w: --nats-listen %q: the embedded NATS server listens on loopback only; for other machines run a NATS cluster and give weir --nats URL", ErrConfig, listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: --nats-listen %q: bad port", ErrConfig, listen)
	}
	if o.StoreDir == "" {
		return nil, fmt.Errorf("%w: the embedded NATS server needs a store directory", ErrConfig)
	}
	if port != 0 {
		// nats-server reports a busy port only in its log: check first,
		// to say which flag moves it.
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("%w: the embedded NATS server cannot listen on %s (%v): another weir or NATS server may be using it; choose another with --nats-listen (127.0.0.1:0 picks a free port) or use that server with --nats nats://%s", ErrConfig, listen, err, listen)
		}
		ln.Close()
	} else {
		port = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "weir-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Clean(o.StoreDir),
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: embedded NATS server: %v", ErrConfig, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: the embedded NATS server did not start on %s", ErrConfig, listen)
	}
	return ns, nil
}

// URL is the server the plane is connected to (credentials redacted).
func (p *Plane) URL() string { return p.url }

// Embedded reports whether this node runs the NATS server it uses.
func (p *Plane) Embedded() bool { return p.embedded != nil }

// Conn is the NATS connection.
func (p *Plane) Conn() *nats.Conn { return p.nc }

// JetStream is the connection's JetStream context.
func (p *Plane) JetStream() jetstream.JetStream { return p.js }

// Connected reports whether the connection is up now.
func (p *Plane) Connected() bool { return p.nc != nil && p.nc.IsConnected() }

// Close drains the connection and stops the embedded server.
func (p *Plane) Close() error {
	var err error
	if p.nc != nil {
		err = p.nc.Drain()
		for deadline := time.Now().Add(5 * time.Second); !p.nc.IsClosed() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		p.nc.Close()
	}
	p.close()
	return err
}

func (p *Plane) close() {
	if p.embedded != nil {
		p.embedded.Shutdown()
		p.embedded.WaitForShutdown()
	}
}

func redact(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				u = u[:scheme+3] + "REDACTED" + u[at:]
			}
		}
		out[i] = u
	}
	return out
}
