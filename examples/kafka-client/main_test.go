package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime/server"
)

// TestRunAgainstWeir runs the example, as the README shows it, against a
// real weir broker.
func TestRunAgainstWeir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	var out bytes.Buffer
	if err := run(ctx, srv.KafkaAddr(), "greetings", &out); err != nil {
		t.Fatal(err)
	}
	want := "produced hello=weir at offset 0\nconsumed hello=weir at offset 0\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
