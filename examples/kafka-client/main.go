// Command kafka-client shows weir working with an unmodified Kafka client:
// it produces one record with franz-go and reads it back. The README's
// "Use it with any Kafka client" section quotes run.
//
//	go run ./examples/kafka-client -brokers 127.0.0.1:9092
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap broker")
	topic := flag.String("topic", "greetings", "topic to write and read")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, *brokers, *topic, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, brokers, topic string, out io.Writer) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers),
		kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	rec := &kgo.Record{Topic: topic, Key: []byte("hello"), Value: []byte("weir")}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fmt.Fprintf(out, "produced %s=%s at offset %d\n", rec.Key, rec.Value, rec.Offset)

	fetches := cl.PollRecords(ctx, 1)
	if errs := fetches.Errors(); len(errs) > 0 {
		return fmt.Errorf("consume: %v", errs[0].Err)
	}
	for _, r := range fetches.Records() {
		fmt.Fprintf(out, "consumed %s=%s at offset %d\n", r.Key, r.Value, r.Offset)
	}
	return nil
}
