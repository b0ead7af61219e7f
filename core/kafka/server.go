package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
)

// Observer receives per-request measurements (for metrics). Implementations
// must be safe for concurrent use.
type Observer interface {
	// Request is called after each request with its API key, how long it
	// took (including a long-poll wait) and whether it failed at the
	// protocol level.
	Request(key int16, d time.Duration, failed bool)
	// Bytes counts request bytes read and response bytes written.
	Bytes(in, out int)
	// Connections is called with +1/-1 as connections open and close.
	Connections(delta int)
}

type nopObserver struct{}

func (nopObserver) Request(int16, time.Duration, bool) {}
func (nopObserver) Bytes(int, int)                     {}
func (nopObserver) Connections(int)                    {}

// Config configures a Server.
type Config struct {
	Broker *broker.Broker
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients to
	// connect to; default: the listener's address.
	AdvertisedHost string
	AdvertisedPort int32
	// ClusterID is reported in Metadata and DescribeCluster.
	ClusterID string
	// MaxRequestBytes is socket.request.max.bytes; default 100 MiB.
	MaxRequestBytes int
	// MaxFetchBytes caps the record bytes of one Fetch response, whatever
	// the client asks for (Kafka's fetch.max.bytes); the first batch is
	// returned whole even when larger, so consumers progress. Default 55 MiB.
	MaxFetchBytes int
	// IdleTimeout closes connections idle this long; default 10 minutes.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	Observer    Observer
}

// Server serves the Kafka protocol for one broker.
type Server struct {
	cfg Config
	log *slog.Logger
	obs Observer

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  bool
	shutdown chan struct{} // closed when Shutdown starts
	wg       sync.WaitGroup
}

// NewServer returns a server; call Serve with a listener.
func NewServer(cfg Config) *Server {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 100 << 20
	}
	if cfg.MaxFetchBytes <= 0 {
		cfg.MaxFetchBytes = 55 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "weir"
	}
	return &Server{cfg: cfg, log: cfg.Logger, obs: cfg.Observer, conns: map[*conn]struct{}{}, shutdown: make(chan struct{})}
}

// Serve accepts connections until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("kafka: server shut down")
	}
	s.ln = ln
	if s.cfg.AdvertisedHost == "" || s.cfg.AdvertisedPort == 0 {
		host, port, err := net.SplitHostPort(ln.Addr().String())
		if err == nil {
			if s.cfg.AdvertisedHost == "" {
				s.cfg.AdvertisedHost = host
			}
			if s.cfg.AdvertisedPort == 0 {
				p, _ := strconv.Atoi(port)
				s.cfg.AdvertisedPort = int32(p)
			}
		}
	}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.shutdown:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("kafka: accept: %w", err)
		}
		delay = 0
		c := &conn{s: s, nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), done: make(chan struct{})}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.obs.Connections(1)
		go c.serve()
	}
}

// Shutdown stops accepting, lets every connection finish the request it is
// handling (a parked Fetch returns at once with what it has), closes the
// connections and waits for them, or until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.shutdown)
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.conns {
			c.closeWhenIdle()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer

	// held are pooled fetch buffers the response being built refers to;
	// they go back to the pool once the response is written.
	held [][]byte

	// closeErr, set by a handler, closes the connection after the
	// request (an acks=0 produce that failed).
	closeErr error

	mu   sync.Mutex
	busy bool // handling a request
	quit bool // close after the current request
	done chan struct{}
}

func (c *conn) closeWhenIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quit = true
	if !c.busy {
		c.nc.Close()
	}
}

// setBusy marks the connection as handling a request; false when it must
// close instead.
func (c *conn) setBusy(b bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = b
	return !c.quit
}

func (c *conn) serve() {
	defer func() {
		c.nc.Close()
		close(c.done)
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.obs.Connections(-1)
		c.s.wg.Done()
	}()
	log := c.s.log.With("remote", c.nc.RemoteAddr().String())
	var sizeBuf [4]byte
	var body []byte
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if _, err := io.ReadFull(c.r, sizeBuf[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("connection closed", "err", err)
			}
			return
		}
		if !c.setBusy(true) {
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 10 || int(size) > c.s.cfg.MaxRequestBytes {
			log.Warn("closing connection: request size out of bounds", "size", size, "max", c.s.cfg.MaxRequestBytes)
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		var err error
		if body == nil {
			body = bodyPool.get()
		}
		if body, err = readBody(c.r, body, int(size)); err != nil {
			log.Debug("connection closed mid-request", "err", err)
			return
		}
		c.s.obs.Bytes(4+int(size), 0)
		if c.w.Buffered() > 0 && mayPark(body) {
			// Answers to earlier pipelined requests must not wait out a long poll.
			if err := c.w.Flush(); err != nil {
				return
			}
		}
		resp, key, err := c.handle(body)
		if errors.Is(err, errAcks0Failed) {
			log.Info("closing connection: an acks=0 produce failed, which its producer learns only from the close", "err", err)
			c.w.Flush() // answers to earlier pipelined requests
			return
		}
		if err != nil {
			log.Warn("closing connection: bad request", "api_key", key, "err", err)
			c.s.obs.Request(key, 0, true)
			return
		}
		if resp != nil {
			c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
			if _, err := c.w.Write(resp); err != nil {
				return
			}
			if c.r.Buffered() == 0 { // flush unless more pipelined requests are waiting
				if err := c.w.Flush(); err != nil {
					return
				}
			}
			c.s.obs.Bytes(0, len(resp))
			outPool.put(resp) // written (copied into c.w or sent)
		}
		c.releaseHeld()
		if !c.setBusy(false) {
			c.w.Flush()
			return
		}
		if c.r.Buffered() == 0 {
			// Nothing pipelined: give the buffer back rather than pin it
			// on a connection that may now idle; the next request takes one
			// from the pool, usually already large enough.
			bodyPool.put(body)
			body = nil
		}
	}
}

// mayPark reports whether a request (its body, header first) can wait for
// something other than the disk before it is answered: a long-polling Fetch
// or a join or sync parked until the group's rebalance moves on.
func mayPark(body []byte) bool {
	switch int16(binary.BigEndian.Uint16(body)) {
	case kmsg.Fetch.Int16(), kmsg.JoinGroup.Int16(), kmsg.SyncGroup.Int16():
		return true
	}
	return false
}

// readChunk is how much of a request body is allocated before its bytes
// arrive.
const readChunk = 64 << 10

// bufPool keeps byte buffers between requests, so a busy connection does
// not regrow request, response and fetch buffers for every large request.
// Buffers above max are left to the garbage collector.
type bufPool struct {
	p   sync.Pool
	max int
}

func (bp *bufPool) get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

func (bp *bufPool) put(b []byte) {
	if cap(b) == 0 || cap(b) > bp.max {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}

var (
	bodyPool  = bufPool{max: 16 << 20} // request bodies
	outPool   = bufPool{max: 16 << 20} // encoded responses
	fetchPool = bufPool{max: 16 << 20} // record bytes read for a fetch
)

// readBody reads a size-byte request body, reusing buf. A body larger than
// buf and readChunk is read into a buffer that grows (doubling) only as its
// bytes arrive, so a client that claims a large frame and sends little of it
// makes the broker allocate about what was sent, not what was claimed.
func readBody(r io.Reader, buf []byte, size int) ([]byte, error) {
	if size <= max(cap(buf), readChunk) {
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(size-len(buf), max(len(buf), readChunk)))
		}
		end := min(cap(buf), size)
		n, err := io.ReadFull(r, buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// header is a decoded request header.
type header struct {
	key, version int16
	correlation  int32
	clientID     *string
}

// reader is a minimal kmsg.TagReader over the header bytes.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) Uvarint() uint32 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<31 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return uint32(v)
}

func (r *reader) Span(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad, r.b = true, nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) Ok() bool { return !r.bad }

// errAcks0Failed is the error handle returns after an acks=0 produce
// with a failed partition: the connection is closed.
var errAcks0Failed = errors.New("acks=0 produce failed")

// handle decodes one request and returns the framed response (nil for
// none, as for acks=0 produce). An error means: close the connection.
func (c *conn) handle(b []byte) ([]byte, int16, error) {
	start := time.Now()
	var h header
	if len(b) < 10 {
		return nil, -1, fmt.Errorf("request of %d bytes is shorter than a header", len(b))
	}
	h.key = int16(binary.BigEndian.Uint16(b))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(b[4:]))
	n := int16(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if n >= 0 {
		if int(n) > len(b) {
			return nil, h.key, fmt.Errorf("client id length %d past the end of the request", n)
		}
		id := string(b[:n])
		h.clientID = &id
		b = b[n:]
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return nil, h.key, fmt.Errorf("unknown API key %d", h.key)
	}
	vr, ok := supported[h.key]
	if !ok {
		return nil, h.key, fmt.Errorf("API key %d (%s) is not implemented", h.key, kmsg.NameForKey(h.key))
	}
	if h.version < vr.min || h.version > vr.max {
		if h.key == kmsg.ApiVersions.Int16() && h.version > vr.max {
			// KIP-511: answer in v0 with our ranges so the client retries.
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			resp.ApiKeys = apiVersionKeys()
			return c.frame(h, resp, 0), h.key, nil
		}
		return nil, h.key, fmt.Errorf("%s version %d outside the advertised range %d-%d", kmsg.NameForKey(h.key), h.version, vr.min, vr.max)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		r := &reader{b: b}
		kmsg.SkipTags(r)
		if r.bad {
			return nil, h.key, errors.New("malformed request header tags")
		}
		b = r.b
	}
	if err := req.ReadFrom(b); err != nil {
		return nil, h.key, fmt.Errorf("decoding %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	resp := c.dispatch(h, req)
	c.s.obs.Request(h.key, time.Since(start), false)
	if err := c.closeErr; err != nil {
		c.closeErr = nil
		return nil, h.key, err
	}
	if resp == nil {
		return nil, h.key, nil
	}
	return c.frame(h, resp, h.version), h.key, nil
}

// frame encodes a response with its header and size prefix.
func (c *conn) frame(h header, resp kmsg.Response, version int16) []byte {
	resp.SetVersion(version)
	out := append(outPool.get(), 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(out[4:], uint32(h.correlation))
	if resp.IsFlexible() && h.key != kmsg.ApiVersions.Int16() {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// releaseHeld returns the fetch buffers of the last response to the pool.
func (c *conn) releaseHeld() {
	for _, b := range c.held {
		fetchPool.put(b)
	}
	c.held = c.held[:0]
}

// stopping returns a channel closed when the server shuts down.
func (c *conn) stopping() <-chan struct{} { return c.s.shutdown }
