// Command group-consumer reads a topic as a member of a consumer group with
// franz-go, committing what it has processed; run several and they share
// the partitions. The README's "Use it with any Kafka client" section
// quotes consume.
//
//	go run ./examples/group-consumer -brokers 127.0.0.1:9092 -group billing -topic orders
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap broker")
	groupID := flag.String("group", "billing", "consumer group")
	topic := flag.String("topic", "orders", "topic to consume")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := consume(ctx, *brokers, *groupID, *topic, -1, os.Stdout); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// consume prints records until ctx ends or limit records (if >= 0) were
// read, committing the offsets of printed records as it goes (every 5s) and
// on the way out.
func consume(ctx context.Context, brokers, groupID, topic string, limit int, out io.Writer) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(), // commit only what was processed, not all that was fetched
	)
	if err != nil {
		return err
	}
	defer cl.Close() // leaves the group, so the others take over at once

	for n := 0; limit < 0 || n < limit; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume: %v", errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if limit < 0 || n < limit {
				fmt.Fprintf(out, "%s/%d@%d %s\n", r.Topic, r.Partition, r.Offset, r.Value)
				cl.MarkCommitRecords(r)
				n++
			}
		})
	}
	return cl.CommitMarkedOffsets(context.WithoutCancel(ctx))
}
