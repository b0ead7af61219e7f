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
	url := controlPlaneURL(t, p)
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

// TestPipelineApply: weir pipeline apply validates and deploys to the
// node's embedded NATS server (an invalid file is refused with its
// position and nothing is stored), list --deployed shows the revisions,
// an unchanged file is not stored again, delete removes.
func TestPipelineApply(t *testing.T) {
	bin := buildWeir(t)
	p := startServe(t, bin, t.TempDir())
	defer p.stop(t, 30*time.Second)
	url := controlPlaneURL(t, p)
	env := []string{"WEIR_NATS=" + url}
	dir := t.TempDir()
	spec := filepath.Join(dir, "clicks.yaml")
	write := func(body string) {
		if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const v1 = "pipeline: clicks\ninput: {topics: [clicks]}\nstages:\n  - filter: 'value.amount > 100'\noutput: big\n"
	write(v1)
	r := runWeir(t, bin, env, "", "pipeline", "apply", spec)
	if r.code != 0 || !strings.Contains(r.stdout, "applied clicks: revision 1") {
		t.Fatalf("apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runWeir(t, bin, env, "", "pipeline", "apply", spec)
	if r.code != 0 || !strings.Contains(r.stdout, "unchanged clicks: revision 1") {
		t.Fatalf("apply again: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	write("pipeline: clicks\ninput: {topics: [clicks]}\nstages:\n  - filter: 'value.amount >'\noutput: big\n")
	r = runWeir(t, bin, env, "", "pipeline", "apply", spec)
	if r.code == 0 || !strings.Contains(r.stderr, spec+":4:") || !strings.Contains(r.stderr, "nothing applied") {
		t.Fatalf("invalid apply: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	write(strings.Replace(v1, "100", "1000", 1))
	if r = runWeir(t, bin, env, "", "pipeline", "apply", spec); r.code != 0 || !strings.Contains(r.stdout, "applied clicks: revision 2") {
		t.Fatalf("new version: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runWeir(t, bin, env, "", "pipeline", "list", "--deployed")
	if r.code != 0 || !regexp.MustCompile(`(?m)^clicks\s+2\s`).MatchString(r.stdout) {
		t.Fatalf("list --deployed: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runWeir(t, bin, env, "", "pipeline", "delete", "clicks"); r.code != 0 {
		t.Fatalf("delete: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = runWeir(t, bin, env, "", "pipeline", "delete", "clicks"); r.code == 0 || !strings.Contains(r.stderr, "not deployed") {
		t.Fatalf("delete again: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runWeir(t, bin, []string{"WEIR_NATS=nats://127.0.0.1:1"}, "", "pipeline", "list", "--deployed")
	if r.code == 0 || !strings.Contains(r.stderr, "nats://127.0.0.1:1") {
		t.Fatalf("unreachable control plane: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// controlPlaneURL is the embedded NATS server's URL a weir serve prints.
func controlPlaneURL(t *testing.T, p *weirProc) string {
	t.Helper()
	re := regexp.MustCompile(`weir: control plane: the embedded NATS server at (nats://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no control plane line:\n%s", p.stderr.String())
		}
	}
}
