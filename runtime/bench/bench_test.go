package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/server"
)

func TestProduceConsumeRoundtripEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var progress bytes.Buffer
	res, err := Produce(ctx, Options{Records: 20000, RecordSize: 200, Producers: 2, Keys: 10, Partitions: 3, Acks: "all", Compression: "lz4", Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 20000 || res.Bytes != 20000*200 || res.Errors != 0 || res.Latency == nil || res.Latency.P50 <= 0 || !res.Embedded {
		t.Fatalf("produce: %+v", res)
	}
	if res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
		t.Fatalf("percentiles out of order: %+v", res.Latency)
	}
	res, err = Consume(ctx, Options{Records: 5000, RecordSize: 100, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records < 5000 || res.Errors != 0 || res.RecordsPerSec <= 0 {
		t.Fatalf("consume: %+v", res)
	}
	// Open loop: 2000 records at 4000/s take about half a second.
	start := time.Now()
	res, err = Roundtrip(ctx, Options{Records: 2000, RecordSize: 50, Rate: 4000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 2000 || res.Latency == nil || res.Errors != 0 {
		t.Fatalf("roundtrip: %+v", res)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("2000 records at 4000/s finished in %v: the rate was not applied", d)
	}
}

func TestAgainstExternalBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	res, err := Produce(ctx, Options{Brokers: []string{srv.KafkaAddr()}, Topic: "ext", Records: 3000, RecordSize: 10, Acks: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Embedded || res.Records != 3000 {
		t.Fatalf("produce: %+v", res)
	}
	// The records are really in the broker's topic.
	deadline := time.Now().Add(10 * time.Second)
	for {
		offs, err := srv.Broker().Offsets("ext", 0)
		if err == nil && offs.HighWatermark == 3000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic ext holds %+v (%v), want 3000 records", offs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out bytes.Buffer
	res.Format(&out)
	if !strings.Contains(out.String(), "3000 records") || !strings.Contains(out.String(), "records/s") {
		t.Fatalf("format: %s", out.String())
	}
	if _, err := Produce(ctx, Options{Brokers: []string{srv.KafkaAddr()}, Records: 10, Acks: "2"}); err == nil {
		t.Fatal("acks=2 accepted")
	}
}

// TestProduceSyncPlainConnection sends one record per request over a plain
// connection to a topic created with the given configs, and checks that the
// records and the config really landed in the broker.
func TestProduceSyncPlainConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	o := Options{Brokers: []string{srv.KafkaAddr()}, Topic: "sync", Records: 300, RecordSize: 64, Acks: "all", Sync: true,
		TopicConfigs: map[string]string{"flush.messages": "7"}}
	res, err := Produce(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 300 || res.Bytes != 300*64 || res.Errors != 0 || res.Latency == nil || res.Latency.P50 <= 0 {
		t.Fatalf("produce --sync: %+v", res)
	}
	// Every request was answered before the next was sent: all 300 are
	// in the log as 300 batches of one record.
	if offs, err := srv.Broker().Offsets("sync", 0); err != nil || offs.HighWatermark != 300 {
		t.Fatalf("topic sync: %+v, %v", offs, err)
	}
	cfg, _, err := srv.Broker().TopicConfigs("sync")
	if err != nil || cfg["flush.messages"] != "7" {
		t.Fatalf("topic config: %v, %v", cfg, err)
	}
	for _, bad := range []Options{{Producers: 2}, {Keys: 3}, {Compression: "lz4"}, {Acks: "0"}} {
		bad.Brokers, bad.Topic, bad.Records, bad.Sync = o.Brokers, "sync", 1, true
		if _, err := Produce(ctx, bad); err == nil {
			t.Errorf("--sync with %+v accepted", bad)
		}
	}
}

// TestPipelineBench runs the default pipeline over a small fill and checks
// the counts add up: every record either written out or filtered.
func TestPipelineBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec, err := pipelines.Parse("bench.yaml", []byte(DefaultPipelineSpec))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Pipeline(ctx, PipelineOptions{Spec: spec, Records: 20000, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Record i has the value of PipelineRecord(i % 4096): NZ when that is
	// a multiple of 4, and amount = (i % 4096) % 2000.
	var want int64
	for i := range int64(20000) {
		if j := i % 4096; j%4 == 0 && j%2000 > 100 {
			want++
		}
	}
	if res.Records != 20000 || res.Outputs != want || res.Filtered != 20000-want || res.Errored != 0 {
		t.Fatalf("%+v, want %d outputs", res, want)
	}
	if res.ProduceRate <= 0 || res.PipelineRate <= 0 || res.RatioToProduce <= 0 {
		t.Fatalf("rates not measured: %+v", res)
	}
}
