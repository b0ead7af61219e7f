package broker

import "errors"

// Sentinel errors. package kafka maps each to a Kafka error code.
var (
	// ErrUnknownTopic: the topic or partition does not exist (and was not auto-created).
	ErrUnknownTopic = errors.New("broker: unknown topic or partition")
	// ErrTopicExists: CreateTopic for a name already in use.
	ErrTopicExists = errors.New("broker: topic already exists")
	// ErrInvalidTopic: the name is empty, too long, "." or "..", or has characters other than [a-zA-Z0-9._-].
	ErrInvalidTopic = errors.New("broker: invalid topic name")
	// ErrInvalidPartitions: a partition count below 1, above the limit, or not above the current count.
	ErrInvalidPartitions = errors.New("broker: invalid number of partitions")
	// ErrInvalidConfig: an unknown topic config key or a value that does not parse or is out of range.
	ErrInvalidConfig = errors.New("broker: invalid topic config")
	// ErrOutOfOrderSequence: an idempotent batch whose sequence is not the next expected one.
	ErrOutOfOrderSequence = errors.New("broker: out of order sequence number")
	// ErrProducerFenced: an idempotent batch from an older producer epoch than the partition has seen.
	ErrProducerFenced = errors.New("broker: invalid producer epoch")
	// ErrUnsupportedForMessageFormat: a batch feature weir does not support (transactions).
	ErrUnsupportedForMessageFormat = errors.New("broker: unsupported for message format")
	// ErrInvalidRequest: a request field weir does not accept (an unknown special ListOffsets timestamp).
	ErrInvalidRequest = errors.New("broker: invalid request")
	// ErrClosed: the broker is shutting down.
	ErrClosed = errors.New("broker: closed")
	// ErrCloseDeadline: CloseWithin's context ended before every partition
	// was closed; the others are left as a crash leaves them, for the next
	// Open to recover.
	ErrCloseDeadline = errors.New("broker: close deadline passed")
)
