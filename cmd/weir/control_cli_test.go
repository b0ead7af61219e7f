package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestServeControlPlane: `weir serve` starts an embedded NATS server by
// default (loopback, JetStream stored in the data dir) and says where;
// --nats off starts none.
func TestServeControlPlane(t *testing.T) {
	bin := buildWeir(t)
	data := t.TempDir()
	p := startServe(t, bin, data)
	var url string
	re := regexp.MustCompile(`weir: control plane: the embedded NATS server at (nats://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no control plane line:\n%s", p.stderr.String())
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	nc.Close()
	if _, err := os.Stat(filepath.Join(data, "nats", "jetstream")); err != nil {
		t.Fatalf("JetStream store not in the data dir: %v", err)
	}
	p.stop(t, 30*time.Second)

	off := startServeArgs(t, bin, t.TempDir(), "--nats", "off")
	off.stop(t, 30*time.Second) // all its output is in
	if strings.Contains(off.stderr.String(), "control plane") {
		t.Fatalf("--nats off started a control plane:\n%s", off.stderr.String())
	}
}
