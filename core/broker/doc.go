// Package broker is weir's single-node broker core: topics made of
// partitions, each a commitlog.Log, with produce (acks, idempotent
// producers), fetch (long-poll support), list-offsets and topic admin. It
// knows nothing of sockets; package kafka puts the Kafka wire protocol in
// front of it.
//
// # Data directory
//
//	DIR/
//	  producer-ids                  next unallocated producer id block (8 bytes, big-endian)
//	  topics/NAME/topic.json        {"name", "id", "partitions", "configs"}; replaced atomically
//	  topics/NAME/P/                partition P's commit log (see package commitlog)
//	  topics/NAME/P/producers.json  idempotent producer state as of an offset, written at clean close
//
// A topic exists once its topic.json is durable; partition directories are
// created before it is written, so a crash during creation leaves either no
// topic or a whole one (stray partition directories without topic.json are
// removed at open). Deletion removes topic.json first; until its directory
// is gone, creating a topic of the same name fails with ErrTopicExists.
//
// # Invariants
//
//   - Per partition, the idempotence check and the write of a batch happen
//     under the partition's lock, so a duplicate can never be written twice;
//     the wait for durability happens after releasing it (group commit).
//   - The high watermark of a partition advances only after the batch is
//     durable per the topic's flush policy, so consumers never read a record
//     a crash could take back under that policy.
package broker
