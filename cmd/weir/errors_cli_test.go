package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLIStartupErrors runs the binary into the errors a newcomer meets
// first (a data directory already in use, a busy port, no broker, no Go
// toolchain) and checks that each says what is wrong and what to do.
func TestCLIStartupErrors(t *testing.T) {
	bin := buildWeir(t)
	// serveFails runs `weir serve` that must fail at once; it returns stderr.
	serveFails := func(t *testing.T, args ...string) string {
		t.Helper()
		start := time.Now()
		r := runWeir(t, bin, nil, "", append([]string{"serve"}, args...)...)
		if r.code != 1 {
			t.Fatalf("weir serve %s: exit %d, want 1\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		if el := time.Since(start); el > 15*time.Second {
			t.Fatalf("weir serve %s: took %v to fail", strings.Join(args, " "), el)
		}
		return r.stderr
	}
	wantAll := func(t *testing.T, what, got string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: want %q in:\n%s", what, w, got)
			}
		}
	}
	// busyPort holds a port on 127.0.0.1 for the rest of the test.
	busyPort := func(t *testing.T) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}
	// onlyLock checks that a failed start left nothing in dir but its lock file.
	onlyLock := func(t *testing.T, dir string) {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{".lock"}) {
			t.Errorf("the failed start left %v in the data directory, want only .lock", names)
		}
	}

	t.Run("DataDirLocked", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		first := startServe(t, bin, dir)
		pid := first.cmd.Process.Pid

		stderr := serveFails(t, "--data-dir", dir, "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
		wantAll(t, "second serve on the same data directory", stderr,
			"weir: data directory "+dir+" is in use by another weir (pid "+strconv.Itoa(pid)+")",
			"stop it, or choose another directory with --data-dir")
		if strings.Contains(stderr, "recovering") || strings.Contains(stderr, "created topic") {
			t.Errorf("the second serve touched the first one's logs:\n%s", stderr)
		}

		// The first is undisturbed.
		select {
		case <-first.done:
			t.Fatalf("the first weir serve exited: %v\n%s", first.waitErr, first.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + first.http + "/healthz")
		if err != nil {
			t.Fatalf("first serve's /healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("first serve's /healthz: %s", resp.Status)
		}
		if r := runWeir(t, bin, nil, "", "topic", "create", "kept", "-b", first.kafka); r.code != 0 {
			t.Fatalf("topic create on the first serve: exit %d\n%s", r.code, r.stderr)
		}
		// weir log dump, which would recover (write to) the log, refuses
		// a partition of the running weir.
		part := filepath.Join(dir, "topics", "kept", "0")
		if r := runWeir(t, bin, nil, "", "log", "dump", part); r.code == 0 ||
			!strings.Contains(r.stderr, "its data directory "+dir+" is in use by a running weir (pid "+strconv.Itoa(pid)+"); stop it, or dump a copy") {
			t.Errorf("log dump of a running weir's partition: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}

		// A SIGKILLed weir leaves no lock behind: the kernel drops it.
		if err := first.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-first.done:
		case <-time.After(15 * time.Second):
			t.Fatal("weir serve did not die within 15s of SIGKILL")
		}
		if b, err := os.ReadFile(filepath.Join(dir, ".lock")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
			t.Errorf(".lock after SIGKILL: %q, %v; want the dead pid %d (stale but not held)", b, err, pid)
		}
		second := startServe(t, bin, dir)
		if b, err := os.ReadFile(filepath.Join(dir, ".lock")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(second.cmd.Process.Pid) {
			t.Errorf(".lock of the new serve: %q, %v; want its pid %d", b, err, second.cmd.Process.Pid)
		}
		if r := runWeir(t, bin, nil, "", "topic", "list", "-b", second.kafka); r.code != 0 || !strings.Contains(r.stdout, "kept") {
			t.Fatalf("topic list after the restart: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		second.stop(t, 30*time.Second)
		// Stopped, its logs can be dumped.
		if r := runWeir(t, bin, nil, "", "log", "dump", part); r.code != 0 || !strings.HasPrefix(r.stdout, "log "+part) {
			t.Errorf("log dump of a stopped weir's partition: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// A clean stop (and the dump) release the lock too.
		third := startServe(t, bin, dir)
		third.stop(t, 30*time.Second)
	})

	t.Run("BusyKafkaPort", func(t *testing.T) {
		addr := busyPort(t)
		dir := t.TempDir()
		stderr := serveFails(t, "--data-dir", dir, "--kafka-addr", addr, "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
		wantAll(t, "busy Kafka port", stderr,
			"weir: the Kafka listener cannot listen on "+addr+" (address already in use)",
			"another weir or Kafka broker may be using it",
			"choose another with --kafka-addr (127.0.0.1:0 picks a free port)")
		onlyLock(t, dir)
	})

	t.Run("BusyHTTPPort", func(t *testing.T) {
		addr := busyPort(t)
		dir := t.TempDir()
		stderr := serveFails(t, "--data-dir", dir, "--kafka-addr", "127.0.0.1:0", "--http-addr", addr, "--nats-listen", "127.0.0.1:0")
		wantAll(t, "busy HTTP port", stderr,
			"weir: the HTTP listener (/healthz, /metrics) cannot listen on "+addr+" (address already in use)",
			"choose another with --http-addr",
			`"off" disables it`)
		onlyLock(t, dir)
	})

	t.Run("UnreachableBroker", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		r := runWeir(t, bin, nil, "", "topic", "list", "-b", dead, "--timeout", "5s")
		if r.code != 1 {
			t.Fatalf("topic list on %s: exit %d, want 1\nstderr: %s", dead, r.code, r.stderr)
		}
		wantAll(t, "unreachable broker", r.stderr,
			"weir: cannot reach broker "+dead+":",
			"(is weir serve running there? set the address with -b/--brokers or WEIR_BROKERS)")
	})

	t.Run("PluginBuildWithoutGo", func(t *testing.T) {
		noGo := t.TempDir() // a PATH with no go command in it
		for _, c := range []struct{ dir, kind string }{
			{"wasm-filter", "wasm"},
			{"plugin-enrich", "process"},
		} {
			src := filepath.Join("..", "..", "examples", c.dir)
			out := filepath.Join(t.TempDir(), "out")
			r := runWeir(t, bin, []string{"PATH=" + noGo}, "", "plugin", "build", src, "--kind", c.kind, "-o", out)
			if r.code != 1 {
				t.Fatalf("plugin build %s without go: exit %d, want 1\nstderr: %s", src, r.code, r.stderr)
			}
			wantAll(t, "plugin build without go ("+c.kind+")", r.stderr,
				"weir: plugin build needs the Go toolchain (go 1.26 or later) on PATH to compile "+src,
				"there is no go command on PATH",
				"install Go from https://go.dev/dl/ or add its bin directory to PATH")
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("plugin build without go left %s (%v)", out, err)
			}
		}
	})
}
