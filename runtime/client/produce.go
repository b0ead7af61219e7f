package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceOptions say how Produce turns lines into records and sends them.
type ProduceOptions struct {
	Topic string
	// KeySeparator, when not empty, splits each line at its first occurrence: the part before is the key, the
	// rest the value (kcat -K). A line without the separator is produced with a null key.
	KeySeparator string
	// Headers are added to every record.
	Headers []KV
	// Acks is "all" (or "-1"), "1" or "0". Empty means "all".
	Acks string
	// Compression is none, gzip, snappy, lz4 or zstd. Empty means none.
	Compression string
	// Partition sends every record to this partition. -1 places records by key: murmur2(key) & 0x7fffffff %
	// partitions, as the Java client does; records without a key go to a sticky partition.
	Partition int32
	// NoIdempotence turns the idempotent producer off with acks=all. With acks 0 or 1 it is always off
	// (Kafka's idempotent producer requires acks=all).
	NoIdempotence bool
}

// ParseAcks maps the --acks flag to kgo's setting; idempotent reports whether the idempotent producer may stay
// on (only with acks=all).
func ParseAcks(s string) (acks kgo.Acks, idempotent bool, err error) {
	switch strings.ToLower(s) {
	case "", "all", "-1":
		return kgo.AllISRAcks(), true, nil
	case "1", "leader":
		return kgo.LeaderAck(), false, nil
	case "0", "none":
		return kgo.NoAck(), false, nil
	}
	return kgo.Acks{}, false, fmt.Errorf("acks %q: want all, 1 or 0", s)
}

// ParseCompression maps the -z flag to a kgo codec.
func ParseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

// SplitKey splits line at the first sep into key and value. With an empty sep, or a line without sep, the key
// is nil (a null key) and the value is the whole line. A line that starts with sep has an empty, non-null key.
func SplitKey(line []byte, sep string) (key, value []byte) {
	if sep == "" {
		return nil, line
	}
	i := bytes.Index(line, []byte(sep))
	if i < 0 {
		return nil, line
	}
	return line[:i:i], line[i+len(sep):]
}

// Partitioner returns the partitioner Produce uses: ManualPartitioner for a fixed partition, otherwise
// kgo.StickyKeyPartitioner(nil), which places a keyed record at murmur2(key) & 0x7fffffff % n exactly like the
// Java client's default partitioner (kgo's KafkaHasher(murmur2)), and keeps unkeyed records on a sticky
// partition.
func Partitioner(fixed int32) kgo.Partitioner {
	if fixed >= 0 {
		return kgo.ManualPartitioner()
	}
	return kgo.StickyKeyPartitioner(nil)
}

// Produce reads lines from in and produces one record per line to po.Topic: the line without its trailing
// "\n" (a final line without one is produced too, if not empty). It returns how many records the broker
// acknowledged (with acks=0: how many were sent). If any record fails, reading stops, the records already
// handed to the client are flushed, and the error says how many failed and why the first one did.
// Producing to a topic that does not exist creates it if the broker auto-creates topics.
func Produce(ctx context.Context, o Options, po ProduceOptions, in io.Reader) (int64, error) {
	if strings.Contains(po.KeySeparator, "\n") {
		return 0, errors.New("key separator must not contain a newline")
	}
	p, err := newProducer(ctx, o, po)
	if err != nil {
		return 0, err
	}
	defer p.cl.Close()

	r := bufio.NewReaderSize(in, 64<<10)
	var line int64
	for !p.failing() {
		b, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return 0, fmt.Errorf("read input: %w", rerr)
		}
		if len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		} else if len(b) == 0 {
			break // EOF without a final partial line
		}
		line++
		key, value := SplitKey(b, po.KeySeparator)
		p.send(ctx, line, key, value)
		if rerr == io.EOF {
			break
		}
	}
	return p.finish(ctx, "input line")
}

// producer is a connected client that produces records of one ProduceOptions and tracks their outcome.
type producer struct {
	cl      *kgo.Client
	po      ProduceOptions
	headers []kgo.RecordHeader

	mu       sync.Mutex
	acked    int64
	failed   int64
	firstErr error
	firstN   int64 // the number the caller gave the first failed record
}

// newProducer checks po and connects a client for it; the caller closes p.cl.
func newProducer(ctx context.Context, o Options, po ProduceOptions) (*producer, error) {
	acks, idem, err := ParseAcks(po.Acks)
	if err != nil {
		return nil, err
	}
	codec, err := ParseCompression(po.Compression)
	if err != nil {
		return nil, err
	}
	if po.Topic == "" {
		return nil, errors.New("no topic given")
	}
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(po.Topic),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(Partitioner(po.Partition)),
		kgo.RecordDeliveryTimeout(o.timeout()),
		kgo.AllowAutoTopicCreation(),
	}
	if !idem || po.NoIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := connect(ctx, o, opts...)
	if err != nil {
		return nil, err
	}
	p := &producer{cl: cl, po: po}
	for _, h := range po.Headers {
		p.headers = append(p.headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
	}
	return p, nil
}

// failing reports whether a record has failed.
func (p *producer) failing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr != nil
}

// ackedCount is how many records the broker has acknowledged so far.
func (p *producer) ackedCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// send hands one record to the client; n numbers it in the error if it fails.
func (p *producer) send(ctx context.Context, n int64, key, value []byte) {
	rec := &kgo.Record{Key: key, Value: value, Headers: p.headers}
	if p.po.Partition >= 0 {
		rec.Partition = p.po.Partition
	}
	p.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.failed++
			if p.firstErr == nil {
				p.firstErr, p.firstN = err, n
			}
			return
		}
		p.acked++
	})
}

// finish flushes the records handed to the client and returns how many were acknowledged, and an error that
// names the first failed record as "what N".
func (p *producer) finish(ctx context.Context, what string) (int64, error) {
	ferr := p.cl.Flush(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstErr != nil {
		firstErr := p.firstErr
		if errors.Is(firstErr, kerr.UnknownTopicOrPartition) && p.po.Partition < 0 {
			firstErr = &UnknownTopicError{Topic: p.po.Topic}
		}
		return p.acked, fmt.Errorf("produce to %s: %d record(s) failed, first at %s %d: %w",
			p.po.Topic, p.failed, what, p.firstN, firstErr)
	}
	if ferr != nil {
		return p.acked, fmt.Errorf("produce to %s: %w", p.po.Topic, ferr)
	}
	return p.acked, nil
}
