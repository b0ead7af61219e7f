package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/commitlog"
	"github.com/weirstream/weir/core/record"
)

// errorTable maps weir's sentinel errors to Kafka error codes. It is the
// one place where errors cross the wire; errorCode walks it in order.
var errorTable = []struct {
	err  error
	code *kerr.Error
}{
	{broker.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{broker.ErrTopicExists, kerr.TopicAlreadyExists},
	{broker.ErrInvalidTopic, kerr.InvalidTopicException},
	{broker.ErrInvalidPartitions, kerr.InvalidPartitions},
	{broker.ErrInvalidConfig, kerr.InvalidConfig},
	{broker.ErrInvalidRequest, kerr.InvalidRequest},
	{broker.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{broker.ErrProducerFenced, kerr.InvalidProducerEpoch},
	{broker.ErrUnsupportedForMessageFormat, kerr.UnsupportedForMessageFormat},
	{broker.ErrClosed, kerr.NotLeaderForPartition},
	{commitlog.ErrBatchTooLarge, kerr.MessageTooLarge},
	{commitlog.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{commitlog.ErrFailed, kerr.KafkaStorageError},
	{commitlog.ErrClosed, kerr.NotLeaderForPartition},
	{record.ErrCRC, kerr.CorruptMessage},
	{record.ErrCodec, kerr.UnsupportedCompressionType},
	{record.ErrMagic, kerr.UnsupportedForMessageFormat},
	{record.ErrTruncated, kerr.CorruptMessage},
	{record.ErrLength, kerr.CorruptMessage},
	{record.ErrOffsetDelta, kerr.InvalidRecord},
	{record.ErrNoRecords, kerr.InvalidRecord},
	{record.ErrControl, kerr.InvalidRecord},
	{record.ErrSequence, kerr.InvalidRecord},
	{record.ErrCorrupt, kerr.CorruptMessage},
	{record.ErrTooLarge, kerr.MessageTooLarge},
}

// errorCode returns the Kafka error code for err (0 for nil).
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
