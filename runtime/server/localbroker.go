package server

import (
	"context"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/pipelines"
)

// localBroker lets the node's pipelines read and write its logs in
// process (pipelines.LocalBroker).
type localBroker struct{ b *broker.Broker }

var _ pipelines.LocalBroker = localBroker{}

func (l localBroker) Read(buf []byte, topic string, partition int32, offset int64, maxBytes int) ([]byte, int64, error) {
	res, err := l.b.FetchInto(buf, topic, partition, offset, maxBytes, true)
	return res.Records, res.HighWatermark, err
}

func (l localBroker) Append(ctx context.Context, topic string, partition int32, batch []byte) error {
	_, err := l.b.Produce(ctx, topic, partition, batch)
	return err
}

func (l localBroker) Partitions(topic string) (int32, error) {
	t, err := l.b.Topic(topic, false)
	return t.Partitions, err
}

func (l localBroker) Bounds(topic string, partition int32) (int64, int64, error) {
	o, err := l.b.Offsets(topic, partition)
	return o.LogStart, o.HighWatermark, err
}

func (l localBroker) OffsetAfter(topic string, partition int32, ms int64) (int64, error) {
	off, _, found, err := l.b.ListOffset(topic, partition, ms)
	if err != nil {
		return 0, err
	}
	if !found {
		o, err := l.b.Offsets(topic, partition)
		return o.HighWatermark, err
	}
	return off, nil
}

func (l localBroker) Appended() <-chan struct{} { return l.b.Appended() }

// LocalBroker is the node's broker for pipelines run in this process
// (pipelines.RunOptions.Local).
func (s *Server) LocalBroker() pipelines.LocalBroker { return localBroker{s.broker} }
