package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startJetStream starts a nats-server with JetStream storing in dir and
// connects to it; stop shuts both down.
func startJetStream(o *CompareOptions, dir string) (nc *nats.Conn, stop func(), err error) {
	sopts := &natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, SyncAlways: o.JetStreamSync == "always"}
	ns, err := natsserver.NewServer(sopts)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	go ns.Start()
	shutdown := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	if !ns.ReadyForConnections(10 * time.Second) {
		shutdown()
		return nil, nil, errors.New("jetstream: nats-server did not start")
	}
	if nc, err = nats.Connect(ns.ClientURL()); err != nil {
		shutdown()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, func() { nc.Close(); shutdown() }, nil
}

// jetStreamRoundtrip publishes n records of size bytes asynchronously at
// rate records/s (0: as fast as the in-flight bound allows) to a
// file-storage stream while an ordered consumer reads them, and measures
// each record's time from being due to being received. The due time rides
// in the first 8 bytes of the payload (size must be at least 8).
func jetStreamRoundtrip(ctx context.Context, o *CompareOptions, dir string, n int64, size int, rate int64) (CompareRow, error) {
	var row CompareRow
	if size < 8 {
		return row, fmt.Errorf("jetstream roundtrip: records of %d bytes cannot carry a timestamp", size)
	}
	nc, stop, err := startJetStream(o, dir)
	if err != nil {
		return row, err
	}
	defer stop()
	r, published := newRecorder(), newRecorder()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(o.JetStreamMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { published.errors.Add(1) }))
	if err != nil {
		return row, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RT", Subjects: []string{"rt"},
		Storage: jetstream.FileStorage, Replicas: 1})
	if err != nil {
		return row, fmt.Errorf("jetstream: create stream: %w", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return row, fmt.Errorf("jetstream: consumer: %w", err)
	}
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		if d := m.Data(); len(d) >= 8 {
			r.observe(now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(d)))))
		}
		r.bytes.Add(int64(len(m.Data())))
		if r.records.Add(1) == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(o.JetStreamPullBatch))
	if err != nil {
		return row, fmt.Errorf("jetstream: consume: %w", err)
	}
	defer cc.Stop()
	value := benchValue(size)
	start := time.Now()
	for i := range n {
		due := time.Now()
		if rate > 0 {
			due = start.Add(time.Duration(i * int64(time.Second) / rate))
			waitUntil(due)
		}
		// Each message owns its payload: nats.go keeps it until the ack.
		msg := make([]byte, size)
		copy(msg[8:], value[8:])
		binary.BigEndian.PutUint64(msg, uint64(due.UnixNano()))
		if _, err := js.PublishAsync("rt", msg); err != nil {
			return row, fmt.Errorf("jetstream: publish: %w", err)
		}
		if ctx.Err() != nil {
			return row, ctx.Err()
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(time.Minute):
		return row, fmt.Errorf("jetstream roundtrip: received %d of %d records within a minute of the last publish", r.records.Load(), n)
	}
	elapsed := time.Since(start)
	if e := published.errors.Load(); e > 0 {
		return row, fmt.Errorf("jetstream roundtrip: %d publishes failed", e)
	}
	return CompareRow{System: "jetstream", Op: "roundtrip", Size: size, Records: n, Bytes: r.bytes.Load(),
		Elapsed: elapsed, RecordsPerSec: perSec(n, elapsed), MBPerSec: perSec(r.bytes.Load(), elapsed) / 1e6, Latency: r.latency()}, nil
}
