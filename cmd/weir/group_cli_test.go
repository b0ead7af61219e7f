package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCLIGroupCommands(t *testing.T) {
	bin := buildWeir(t)
	addr := startTestBroker(t)
	weir := func(stdin string, args ...string) cliResult {
		t.Helper()
		r := runWeir(t, bin, nil, stdin, append(args, "-b", addr)...)
		if r.code != 0 {
			t.Fatalf("weir %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	fails := func(wantErr string, args ...string) {
		t.Helper()
		r := runWeir(t, bin, nil, "", append(args, "-b", addr)...)
		if r.code != 1 || !strings.Contains(r.stderr, wantErr) {
			t.Fatalf("weir %s: exit %d stderr %q, want exit 1 and %q", strings.Join(args, " "), r.code, r.stderr, wantErr)
		}
	}

	weir("", "topic", "create", "tasks", "-p", "2")
	weir("t0\nt1\nt2\nt3\nt4\nt5\n", "produce", "tasks", "-p", "0")
	weir("u0\nu1\nu2\nu3\n", "produce", "tasks", "-p", "1")

	// consume -g twice: the second run goes on where the first stopped.
	r := weir("", "consume", "-g", "app", "tasks", "-n", "3", "-v")
	first := strings.Fields(r.stdout)
	if len(first) != 3 || !strings.Contains(r.stderr, "assigned tasks partition 0: from reset offset 0 (high watermark 6)") {
		t.Fatalf("consume -g -n 3: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = weir("", "consume", "-g", "app", "tasks")
	got := append(first, strings.Fields(r.stdout)...)
	sort.Strings(got)
	if want := []string{"t0", "t1", "t2", "t3", "t4", "t5", "u0", "u1", "u2", "u3"}; !slices.Equal(got, want) {
		t.Fatalf("two consume -g runs printed %q", got)
	}

	r = weir("", "group", "list")
	if !strings.Contains(r.stdout, "GROUP") || !strings.Contains(r.stdout, "app    Empty  consumer") {
		t.Fatalf("group list:\n%s", r.stdout)
	}
	r = weir("", "group", "describe", "app")
	for _, want := range []string{
		"STATE          Empty", "TOTAL-LAG      0",
		"TOPIC  PARTITION  CURRENT-OFFSET  LOG-START-OFFSET  LOG-END-OFFSET  LAG  MEMBER-ID  CLIENT-ID  HOST",
		"tasks  0          6               0                 6               0    -",
		"tasks  1          4               0                 4               0    -",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("group describe lacks %q:\n%s", want, r.stdout)
		}
	}

	// Seek back and consume from there.
	r = weir("", "group", "seek", "app", "--to", "offset", "4", "--topic", "tasks")
	for _, want := range []string{"tasks  0          6           →  4", "tasks  1          4           →  4"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("group seek lacks %q:\n%s", want, r.stdout)
		}
	}
	weir("", "group", "seek", "app", "--to", "shift=-1")
	r = weir("", "consume", "-g", "app", "tasks")
	got = strings.Fields(r.stdout)
	sort.Strings(got)
	if want := []string{"t3", "t4", "t5", "u3"}; !slices.Equal(got, want) {
		t.Fatalf("consume after seek: %q", got)
	}

	// A live member (-F): describe shows it, seek and delete are refused.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := exec.CommandContext(ctx, bin, "consume", "-g", "app", "tasks", "-F", "-v", "-b", addr)
	var liveOut groupOutput
	live.Stdout = &liveOut
	stderr, err := live.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for n := 0; n < 2; {
		if !sc.Scan() {
			t.Fatalf("consume -g -F ended before its assignment: %v", sc.Err())
		}
		if strings.HasPrefix(sc.Text(), "assigned tasks partition") {
			n++
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	r = weir("", "group", "describe", "app")
	for _, want := range []string{"STATE          Stable", "MEMBERS        1", "weir-cli", "tasks[0,1]", "PROTOCOL       cooperative-sticky"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe with a live member lacks %q:\n%s", want, r.stdout)
		}
	}
	fails("group app has 1 active member; seek needs an empty group", "group", "seek", "app", "--to", "earliest")
	fails("group app has active members; stop them first", "group", "delete", "app")
	weir("v\n", "produce", "tasks", "-p", "1")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(liveOut.String(), "v") {
		if time.Now().After(deadline) {
			t.Fatal("live member did not print the new record")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := live.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := live.Wait(); err == nil || live.ProcessState.ExitCode() != 130 {
		t.Fatalf("consume -g -F after SIGINT: %v", err)
	}
	// It committed the record it printed on the way out, and left.
	r = weir("", "group", "describe", "app")
	if !strings.Contains(r.stdout, "tasks  1          5               0                 5               0") ||
		!strings.Contains(r.stdout, "MEMBERS        0") {
		t.Fatalf("describe after the live member left:\n%s", r.stdout)
	}

	// Errors and delete.
	fails("--to", "group", "seek", "app", "--to", "yesterday")
	fails("-o", "consume", "-g", "app", "tasks", "-o", "5")
	fails("topic nope does not exist", "consume", "-g", "app", "nope")
	fails("group nope does not exist", "group", "describe", "nope")
	weir("", "group", "delete", "app")
	fails("group app does not exist", "group", "delete", "app")
	if r := weir("", "group", "list"); strings.Contains(r.stdout, "app") {
		t.Fatalf("group list after delete:\n%s", r.stdout)
	}
}

// groupOutput is a bytes.Buffer that a child process writes while the test reads it.
type groupOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *groupOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *groupOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
