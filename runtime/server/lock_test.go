package server_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime/server"
)

// TestDataDirLock starts a second server on a running server's data
// directory: it must fail at once without touching it, and start once the
// first has shut down.
func TestDataDirLock(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && !strings.HasSuffix(runtime.GOOS, "bsd") && runtime.GOOS != "dragonfly" {
		t.Skip("no data directory lock on " + runtime.GOOS)
	}
	b := startBroker(t)
	dir := b.cfg.DataDir
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := server.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "off"}
	start := time.Now()
	srv, err := server.Start(ctx, cfg)
	if err == nil {
		srv.Shutdown(ctx)
		t.Fatal("a second server started on a data directory in use")
	}
	if !errors.Is(err, server.ErrDataDirInUse) {
		t.Fatalf("second start: %v, want ErrDataDirInUse", err)
	}
	pid := strconv.Itoa(os.Getpid())
	for _, w := range []string{"data directory " + dir + " is in use", "(pid " + pid + ")", "--data-dir"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("second start: %q does not say %q", err, w)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second start took %v to fail", d)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, ".lock")); err != nil || strings.TrimSpace(string(raw)) != pid {
		t.Errorf(".lock: %q, %v; want %s", raw, err, pid)
	}
	// The first server is unharmed, and gives the lock up when it stops.
	b.restart()
	b.stop()
	if srv, err = server.Start(ctx, cfg); err != nil {
		t.Fatalf("start after shutdown: %v", err)
	}
	srv.Shutdown(ctx)
}

// TestBusyPortErrors checks that a busy port names the address and the
// flag that moves it, and leaves nothing in the data directory but the
// lock file, which is released.
func TestBusyPortErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		cfg  server.Config
		want []string
	}{
		{"kafka", server.Config{KafkaAddr: busy, HTTPAddr: "off"},
			[]string{"the Kafka listener cannot listen on " + busy + " (address already in use)", "--kafka-addr (127.0.0.1:0 picks a free port)"}},
		{"http", server.Config{KafkaAddr: "127.0.0.1:0", HTTPAddr: busy},
			[]string{"the HTTP listener (/healthz, /metrics) cannot listen on " + busy + " (address already in use)", "--http-addr", `"off" disables it`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.cfg.DataDir = dir
			srv, err := server.Start(ctx, c.cfg)
			if err == nil {
				srv.Shutdown(ctx)
				t.Fatal("started on a busy port")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 || ents[0].Name() != ".lock" {
				t.Errorf("the failed start left %v in the data directory", ents)
			}
			// The lock was released: a start on free ports works.
			srv, err = server.Start(ctx, server.Config{DataDir: dir, KafkaAddr: "127.0.0.1:0", HTTPAddr: "off"})
			if err != nil {
				t.Fatalf("start after the failed one: %v", err)
			}
			srv.Shutdown(ctx)
		})
	}
}
