// Package client is the client side of the weir CLI: `weir topic`, `weir produce` and `weir consume`, in the
// style of kcat and rpk. Everything here is a plain Kafka client built on franz-go (kgo for produce and fetch,
// kadm for admin requests); it talks to weir, or to any Kafka-compatible broker, over the wire protocol and
// knows nothing of the broker's internals.
//
// Every entry point takes an [Options] naming the bootstrap brokers and a timeout. A client first pings the
// cluster (a Metadata request) within that timeout, so an unreachable broker is reported at once as an error
// naming the address instead of a command that hangs while kgo retries in the background.
//
// Consume reads directly (no consumer group): the partitions to read and their start offsets are resolved up
// front with ListOffsets, and without follow mode a partition is finished when the high watermark it had at
// start has been reached, like kcat -e. ConsumeGroup reads as a member of a consumer group from the group's
// committed offsets and commits what it printed (at least once); without follow mode it finishes when every
// partition assigned to it has reached the high watermark it had when assigned. ListGroups, DescribeGroup
// (members, assignments, committed offsets and lag), Seek (reset an empty group's offsets) and DeleteGroups
// are `weir group`.
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultBrokers is the bootstrap address used when none is given.
const DefaultBrokers = "127.0.0.1:9092"

// DefaultTimeout bounds dialing, each request and each produced record's delivery when Options.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// Options says where the brokers are and how long to wait for them.
type Options struct {
	// Brokers are the bootstrap addresses (host:port). At least one is required.
	Brokers []string
	// Timeout bounds the first contact with the cluster, dialing, each request's retries, and each produced
	// record's delivery. 0 means DefaultTimeout.
	Timeout time.Duration
}

// ParseBrokers splits a comma-separated broker list, dropping blanks.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// ErrUnknownTopic is matched (errors.Is) by the error returned when a topic named by the caller does not exist
// on the cluster. The error's text is "topic NAME does not exist".
var ErrUnknownTopic = errors.New("topic does not exist")

// ErrUnreachable is matched (errors.Is) by the error returned when no bootstrap broker answered within the
// timeout. The error's text names the addresses tried and the underlying network error, and says how to point
// the CLI elsewhere.
var ErrUnreachable = errors.New("cannot reach broker")

// UnknownTopicError is returned when a topic does not exist. It matches ErrUnknownTopic and
// kerr.UnknownTopicOrPartition with errors.Is.
type UnknownTopicError struct{ Topic string }

func (e *UnknownTopicError) Error() string { return fmt.Sprintf("topic %s does not exist", e.Topic) }

// Is reports whether target is ErrUnknownTopic or kerr.UnknownTopicOrPartition.
func (e *UnknownTopicError) Is(target error) bool {
	return target == ErrUnknownTopic || target == kerr.UnknownTopicOrPartition
}

type unreachableError struct {
	brokers []string
	err     error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach broker %s: %v (is weir serve running there? set the address with -b/--brokers or WEIR_BROKERS)", strings.Join(e.brokers, ","), e.err)
}
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// connect builds a kgo client for o plus extra and checks, within o's timeout, that a broker answers.
func connect(ctx context.Context, o Options, extra ...kgo.Opt) (*kgo.Client, error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("no brokers given (use -b host:port or WEIR_BROKERS)")
	}
	t := o.timeout()
	opts := []kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.DialTimeout(t),
		kgo.RequestTimeoutOverhead(t),
		kgo.RetryTimeout(t),
		kgo.ClientID("weir-cli"),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v", t)
		}
		return nil, &unreachableError{brokers: o.Brokers, err: err}
	}
	return cl, nil
}

// connectAdmin is connect wrapped in a kadm client whose requests carry o's timeout.
func connectAdmin(ctx context.Context, o Options) (*kadm.Client, func(), error) {
	cl, err := connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(o.timeout() / time.Millisecond))
	return adm, cl.Close, nil
}

// withTimeout bounds one admin round trip by o's timeout (plus slack for retries across brokers).
func withTimeout(ctx context.Context, o Options) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 2*o.timeout())
}

// topicErr turns a per-topic error from the broker into the package's error for that topic.
func topicErr(topic string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return &UnknownTopicError{Topic: topic}
	}
	return fmt.Errorf("topic %s: %w", topic, err)
}

// KV is one key=value pair from the command line.
type KV struct{ Key, Value string }

// ParseKV splits "key=value" at the first '='. The key must not be empty; the value may be.
func ParseKV(s string) (KV, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return KV{}, fmt.Errorf("%q: want key=value", s)
	}
	if k == "" {
		return KV{}, fmt.Errorf("%q: empty key", s)
	}
	return KV{Key: k, Value: v}, nil
}

// ParseKVs parses each of ss with ParseKV.
func ParseKVs(ss []string) ([]KV, error) {
	out := make([]KV, 0, len(ss))
	for _, s := range ss {
		kv, err := ParseKV(s)
		if err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
	return out, nil
}
