package control

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEmbedded: the embedded server listens on loopback with JetStream
// stored in the given directory, and what it stored is there after a
// restart.
func TestEmbedded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := Start(ctx, Options{Listen: "127.0.0.1:0", StoreDir: dir, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Embedded() || !p.Connected() || !strings.HasPrefix(p.URL(), "nats://127.0.0.1:") {
		t.Fatalf("embedded %v, connected %v, url %s", p.Embedded(), p.Connected(), p.URL())
	}
	kv, err := p.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "weir-test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "spec", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) == 0 {
		t.Fatal("nothing stored in the store directory")
	}
	p, err = Start(ctx, Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kv, err = p.JetStream().KeyValue(ctx, "weir-test")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "spec")
	if err != nil || string(e.Value()) != "v1" {
		t.Fatalf("after a restart: %v %v", e, err)
	}
}

func TestEmbeddedRefuses(t *testing.T) {
	ctx := context.Background()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"not loopback", Options{Listen: "0.0.0.0:4222", StoreDir: t.TempDir()}, "loopback only"},
		{"port in use", Options{Listen: busy.Addr().String(), StoreDir: t.TempDir()}, "choose another with --nats-listen"},
		{"credentials", Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), CredsFile: "x.creds"}, "apply to an existing cluster"},
		{"bad address", Options{Listen: "localhost", StoreDir: t.TempDir()}, "--nats-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(ctx, tc.o)
			if err == nil {
				p.Close()
				t.Fatal("started")
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
}

// TestExisting: with URLs the plane connects to that cluster and starts
// no server; an unreachable one is an error naming it, without its
// password.
func TestExisting(t *testing.T) {
	ctx := context.Background()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	p, err := Start(ctx, Options{URLs: []string{ns.ClientURL()}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Embedded() || p.URL() != ns.ClientURL() {
		t.Fatalf("embedded %v, url %s", p.Embedded(), p.URL())
	}
	p.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err = Start(ctx, Options{URLs: []string{"nats://weir:secret@" + addr}, ConnectTimeout: time.Second})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("unreachable cluster: %v", err)
	}
}

// TestDeployments: apply stores versions (an unchanged spec is not stored
// again), list shows the current ones, delete removes, and a restarted
// embedded server still has them.
func TestDeployments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := Start(ctx, Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r1, changed, err := p.Apply(ctx, "clicks", []byte("pipeline: clicks # v1\n"))
	if err != nil || !changed {
		t.Fatalf("first apply: %d %v %v", r1, changed, err)
	}
	if r, changed, err := p.Apply(ctx, "clicks", []byte("pipeline: clicks # v1\n")); err != nil || changed || r != r1 {
		t.Fatalf("same spec again: %d %v %v", r, changed, err)
	}
	r2, changed, err := p.Apply(ctx, "clicks", []byte("pipeline: clicks # v2\n"))
	if err != nil || !changed || r2 <= r1 {
		t.Fatalf("new version: %d (was %d) %v %v", r2, r1, changed, err)
	}
	if _, _, err := p.Apply(ctx, "orders", []byte("pipeline: orders\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, "nope"); !errors.Is(err, ErrNotDeployed) {
		t.Fatalf("deleting what is not deployed: %v", err)
	}
	if err := p.Delete(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p, err = Start(ctx, Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ds, err := p.Deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Name != "clicks" || ds[0].Revision != r2 || string(ds[0].Spec) != "pipeline: clicks # v2\n" {
		t.Fatalf("after a restart: %+v", ds)
	}
}
