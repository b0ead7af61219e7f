package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/runtime/server"
)

// TestConsumeResumesFromCommittedOffsets runs the example twice in the same
// group against a real broker: the second run starts where the first
// committed.
func TestConsumeResumesFromCommittedOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off", GroupInitialRebalanceDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("order-%d", i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var first, second bytes.Buffer
	if err := consume(ctx, srv.KafkaAddr(), "billing", "orders", 6, &first); err != nil {
		t.Fatal(err)
	}
	if err := consume(ctx, srv.KafkaAddr(), "billing", "orders", 4, &second); err != nil {
		t.Fatal(err)
	}
	got := first.String() + second.String()
	var want strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&want, "orders/0@%d order-%d\n", i, i)
	}
	if got != want.String() {
		t.Fatalf("two runs read:\n%s\nwant each record once, in order:\n%s", got, want.String())
	}
}
