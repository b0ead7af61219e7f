package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime/server"
)

// buildWeir builds this command into a temporary directory and returns the binary's path.
func buildWeir(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	out, err := exec.Command(goTool(), "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startTestBroker(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.KafkaAddr()
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// runWeir runs the binary with stdin and returns its output and exit code; it fails the test if the binary
// does not exit within 30s.
func runWeir(t *testing.T, bin string, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("weir %s: did not exit within 30s", strings.Join(args, " "))
	}
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("weir %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func TestCLIClientCommands(t *testing.T) {
	bin := buildWeir(t)
	addr := startTestBroker(t)
	ok := func(r cliResult, args ...string) cliResult {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("weir %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	weir := func(stdin string, args ...string) cliResult {
		t.Helper()
		return ok(runWeir(t, bin, nil, stdin, args...), args...)
	}

	weir("", "topic", "create", "cli", "-p", "3", "-c", "retention.ms=60000", "-b", addr)
	if r := weir("", "topic", "list", "-b", addr); !strings.Contains(r.stdout, "cli ") {
		t.Fatalf("topic list:\n%s", r.stdout)
	}
	r := weir("", "topic", "describe", "cli", "-b", addr)
	for _, want := range []string{"PARTITIONS  3", "retention.ms", "60000", "override"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe lacks %q:\n%s", want, r.stdout)
		}
	}
	weir("", "topic", "alter-config", "cli", "--set", "retention.ms=120000", "-b", addr)
	if r := weir("", "topic", "describe", "cli", "-b", addr); !strings.Contains(r.stdout, "120000") {
		t.Fatalf("describe after alter-config:\n%s", r.stdout)
	}

	// produce | consume through stdin and stdout.
	input := "alpha:1\nbeta:two words\ngamma:tab\there\ndelta:%v literal\n"
	r = weir(input, "produce", "cli", "-k", ":", "-H", "src=cli", "-H", "n=1", "-z", "zstd", "-v", "-b", addr)
	if r.stdout != "" || !strings.Contains(r.stderr, "produced 4 records to cli") {
		t.Fatalf("produce -v: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r := weir("", "produce", "cli", "-b", addr); r.stdout != "" || r.stderr != "" {
		t.Fatalf("quiet produce of nothing printed: %q %q", r.stdout, r.stderr)
	}
	// Brokers from the environment, format with escapes.
	r = ok(runWeir(t, bin, []string{"WEIR_BROKERS=" + addr}, "", "consume", "cli", "-f", `%k:%v\t%h\n`))
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	sort.Strings(got)
	want := []string{"alpha:1\tsrc=cli,n=1", "beta:two words\tsrc=cli,n=1", "delta:%v literal\tsrc=cli,n=1", "gamma:tab\there\tsrc=cli,n=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("consume:\n got %q\nwant %q", got, want)
	}
	if r := weir("", "consume", "cli", "-n", "2", "-b", addr); strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("consume -n 2: %q", r.stdout)
	}

	// --follow from the end: start it, wait until it says where it starts, produce, and see it exit after -n.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fc := exec.CommandContext(ctx, bin, "consume", "cli", "-o", "end", "-F", "-n", "2", "-v", "-f", `%v\n`, "-b", addr)
	var fout bytes.Buffer
	fc.Stdout = &fout
	stderr, err := fc.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for started := 0; started < 3; {
		if !sc.Scan() {
			t.Fatalf("follow consumer ended before starting: %v", sc.Err())
		}
		if strings.HasPrefix(sc.Text(), "consuming cli partition") {
			started++
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	weir("x1\nx2\n", "produce", "cli", "-b", addr)
	if err := fc.Wait(); err != nil {
		t.Fatalf("follow consumer: %v", err)
	}
	got = strings.Fields(fout.String())
	sort.Strings(got)
	if !slices.Equal(got, []string{"x1", "x2"}) {
		t.Fatalf("follow consumer printed %q", fout.String())
	}

	// Errors: unknown topic, bad flags, unreachable broker. Each exits 1 with a clear message.
	r = runWeir(t, bin, nil, "", "consume", "nope", "-b", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "topic nope does not exist") {
		t.Fatalf("consume unknown topic: exit %d stderr %q", r.code, r.stderr)
	}
	r = runWeir(t, bin, nil, "", "topic", "describe", "nope", "-b", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "topic nope does not exist") {
		t.Fatalf("describe unknown topic: exit %d stderr %q", r.code, r.stderr)
	}
	r = runWeir(t, bin, nil, "", "consume", "cli", "-o", "yesterday", "-b", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "-o") {
		t.Fatalf("bad offset: exit %d stderr %q", r.code, r.stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	r = runWeir(t, bin, nil, "x\n", "produce", "t", "-b", dead, "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach broker "+dead) {
		t.Fatalf("unreachable broker: exit %d stderr %q", r.code, r.stderr)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("unreachable broker: took %v", el)
	}

	weir("", "topic", "delete", "cli", "-b", addr)
	if r := weir("", "topic", "list", "-b", addr); strings.Contains(r.stdout, "cli ") {
		t.Fatalf("cli still listed after delete:\n%s", r.stdout)
	}
}
