package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/record"
)

// produceSyncVersion is the Produce version the plain connection speaks:
// v9 is the first flexible one, answered by Kafka 2.4 and later and by weir.
const produceSyncVersion = 9

// produceSync sends one record per Produce request to partition 0 over one
// plain TCP connection to the first broker, waiting for each response before
// the next request: the latency of the broker and the loopback alone, with
// no client library's goroutines, buffers or batching in between. The first
// broker must lead partition 0 (a single node always does).
func produceSync(ctx context.Context, e *env, o *Options, r *recorder) (time.Duration, error) {
	if o.Producers != 1 || o.Compression != "none" || o.Keys != 0 {
		return 0, errors.New("bench: --sync sends from one plain connection: it takes no --producers, --compression or --keys")
	}
	var acks int16
	switch o.Acks {
	case "all", "-1":
		acks = -1
	case "1":
		acks = 1
	default:
		return 0, fmt.Errorf("bench: --sync waits for each response: acks %q: want all or 1", o.Acks)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", e.brokers[0])
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	br := bufio.NewReader(nc)
	format := kmsg.NewRequestFormatter(kmsg.FormatterClientID("weir-bench"))
	value := benchValue(o.RecordSize)
	var out, in []byte
	start := time.Now()
	for i := int64(0); ctx.Err() == nil; i++ {
		if o.Duration > 0 && time.Since(start) >= o.Duration || o.Duration <= 0 && i >= o.Records {
			break
		}
		due := time.Now()
		if o.Rate > 0 {
			due = start.Add(time.Duration(i * int64(time.Second) / o.Rate))
			waitUntil(due)
		}
		batch, err := record.Build(record.BuildOptions{ProducerID: -1},
			[]record.Record{{Value: value, Timestamp: time.Now().UnixMilli()}})
		if err != nil {
			return 0, err
		}
		req := kmsg.NewPtrProduceRequest()
		req.Version = produceSyncVersion
		req.Acks = acks
		req.TimeoutMillis = 30_000
		t := kmsg.NewProduceRequestTopic()
		t.Topic = o.Topic
		p := kmsg.NewProduceRequestTopicPartition()
		p.Records = batch
		t.Partitions = append(t.Partitions, p)
		req.Topics = append(req.Topics, t)
		out = format.AppendRequest(out[:0], req, int32(i))
		if _, err := nc.Write(out); err != nil {
			return 0, fmt.Errorf("bench: produce: %w", err)
		}
		if in, err = readResponse(br, in); err != nil {
			return 0, fmt.Errorf("bench: produce response: %w", err)
		}
		// Response header v1: correlation id, then tagged fields (none).
		if len(in) < 5 || int64(binary.BigEndian.Uint32(in)) != i&0x7fffffff {
			return 0, errors.New("bench: produce response: bad header")
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = produceSyncVersion
		if err := resp.ReadFrom(in[5:]); err != nil {
			return 0, fmt.Errorf("bench: produce response: %w", err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return 0, errors.New("bench: produce response: want one partition")
		}
		if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
			r.errors.Add(1)
			continue
		}
		r.observe(time.Since(due))
		r.records.Add(1)
		r.bytes.Add(int64(len(value)))
	}
	return time.Since(start), ctx.Err()
}

// readResponse reads one size-prefixed response into buf.
func readResponse(r io.Reader, buf []byte) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > 16<<20 {
		return buf, fmt.Errorf("response of %d bytes", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	return buf, err
}
