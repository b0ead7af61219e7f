package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

// testPlugin builds testdata/testplugin once per test binary.
var testPlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "weir-plugin-test-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "testplugin")
	if msg, err := exec.Command("go", "build", "-o", out, "./testdata/testplugin").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test plugin: %v\n%s", err, msg)
	}
	return out, nil
})

func newStage(t testing.TB, cfg Config) *Stage {
	t.Helper()
	path, err := testPlugin()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path == "" {
		cfg.Path = path
	}
	s, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func recs(values ...string) []sdk.Record {
	out := make([]sdk.Record, len(values))
	for i, v := range values {
		out[i] = sdk.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v), Topic: "t", Offset: int64(i), Timestamp: time.UnixMilli(1700000000000)}
	}
	return out
}

func process(t *testing.T, s *Stage, in []sdk.Record) *sdk.Results {
	t.Helper()
	var res sdk.Results
	if err := s.Process(context.Background(), in, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// TestConformance runs the stage conformance suite through a real plugin
// process.
func TestConformance(t *testing.T) {
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor { return newStage(t, Config{Config: []byte(`{"prefix": ">"}`)}) },
		Input: func(i int) sdk.Record {
			v := fmt.Sprintf("v%d", i)
			switch {
			case i%7 == 3:
				v = "drop"
			case i%11 == 5:
				v = "fail"
			case i%13 == 6:
				v = "split:3"
			}
			return sdk.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v), Topic: "t", Offset: int64(i), Timestamp: time.UnixMilli(1700000000000 + int64(i))}
		},
		Expect: func(r sdk.Record) ([]sdk.Record, error) {
			switch v := string(r.Value); {
			case v == "drop":
				return nil, nil
			case v == "fail":
				return nil, errors.New("failed as asked")
			case strings.HasPrefix(v, "split:"):
				return []sdk.Record{r, r, r}, nil
			}
			r.Value = append([]byte(">"), bytes.ToUpper(r.Value)...)
			return []sdk.Record{r}, nil
		},
		Covers: []string{"filter", "fan-out", "fail"},
		Large:  5000,
	})
}

// TestFaults: a plugin that panics, exits, hangs, replies with garbage or
// is killed mid-batch loses no record and reorders none; the record that
// causes a fault fails alone.
func TestFaults(t *testing.T) {
	s := newStage(t, Config{Timeout: 500 * time.Millisecond})
	for _, tc := range []struct {
		bad      string
		failWith string
		restart  bool
	}{
		{"panic", "panic: asked to", false},
		{"exit", "failed on this record", true},
		{"sleep:60000", "no reply within the stage timeout of 500ms", true},
		{"garbage", "plugin reply names input", true},
	} {
		t.Run(tc.bad, func(t *testing.T) {
			restarts := s.Restarts()
			start := time.Now()
			res := process(t, s, recs("a", "b", tc.bad, "c", "d"))
			took := time.Since(start)
			var got []string
			for _, o := range res.Out {
				got = append(got, fmt.Sprintf("%d:%s", o.Source, o.Record.Value))
			}
			if want := "0:A 1:B 3:C 4:D"; strings.Join(got, " ") != want {
				t.Errorf("outputs %v, want %s", got, want)
			}
			if len(res.Failed) != 1 || res.Failed[0].Source != 2 || !strings.Contains(res.Failed[0].Err.Error(), tc.failWith) {
				t.Fatalf("failures %+v, want record 2 failing with %q", res.Failed, tc.failWith)
			}
			if r := s.Restarts() - restarts; tc.restart != (r > 0) {
				t.Errorf("%d restarts", r)
			}
			t.Logf("%s: handled in %v, %d restarts", tc.bad, took, s.Restarts()-restarts)
		})
	}
	t.Run("stopped (SIGSTOP)", func(t *testing.T) {
		// A process that stops answering, not because of a record: the
		// batch waits out the timeout, and is replayed whole on a new one.
		if err := s.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		restarts := s.Restarts()
		pid := s.Pid()
		syscall.Kill(pid, syscall.SIGSTOP)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if strings.Contains(string(stat), ") T ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("plugin %d not stopped: %s", pid, stat)
			}
		}
		start := time.Now()
		res := process(t, s, recs("a", "b", "c"))
		var got []string
		for _, o := range res.Out {
			got = append(got, string(o.Record.Value))
		}
		if strings.Join(got, " ") != "A B C" || len(res.Failed) != 0 || s.Restarts() != restarts+1 {
			t.Fatalf("outputs %v, failures %+v, %d restarts: want the batch replayed whole on one new process", got, res.Failed, s.Restarts()-restarts)
		}
		if took := time.Since(start); took > 500*time.Millisecond+2*time.Second {
			t.Fatalf("took %v", took)
		}
	})
	t.Run("killed mid-batch", func(t *testing.T) {
		in := recs("a", "sleep:300", "b")
		restarts := s.Restarts()
		done := make(chan *sdk.Results)
		go func() {
			var res sdk.Results
			if err := s.Process(context.Background(), in, &res); err != nil {
				t.Error(err)
			}
			done <- &res
		}()
		// Kill the process while it sleeps in the batch.
		time.Sleep(100 * time.Millisecond)
		pid := waitPid(t, s)
		syscall.Kill(pid, syscall.SIGKILL)
		res := <-done
		var got []string
		for _, o := range res.Out {
			got = append(got, string(o.Record.Value))
		}
		if strings.Join(got, " ") != "A SLEPT B" || len(res.Failed) != 0 {
			t.Fatalf("outputs %v, failures %+v: want the batch replayed whole", got, res.Failed)
		}
		if s.Restarts() == restarts {
			t.Fatal("no restart")
		}
	})
}

// TestLargeBatch: a batch over gRPC's 64 MiB message limit (80 records of
// 1 MiB) goes through, split at 4 MiB, with every output in order.
func TestLargeBatch(t *testing.T) {
	s := newStage(t, Config{})
	in := make([]sdk.Record, 80)
	for i := range in {
		v := bytes.Repeat([]byte{'a' + byte(i%26)}, 1<<20)
		in[i] = sdk.Record{Key: []byte(strconv.Itoa(i)), Value: v, Topic: "t", Offset: int64(i)}
	}
	res := process(t, s, in)
	if len(res.Out) != len(in) || len(res.Failed) != 0 {
		t.Fatalf("%d outputs, %d failures", len(res.Out), len(res.Failed))
	}
	for i, o := range res.Out {
		if o.Source != i || len(o.Record.Value) != 1<<20 || o.Record.Value[0] != 'A'+byte(i%26) {
			t.Fatalf("output %d: source %d, %d bytes starting %q", i, o.Source, len(o.Record.Value), o.Record.Value[:1])
		}
	}
	if s.Restarts() != 0 {
		t.Fatalf("%d restarts", s.Restarts())
	}
}

// TestHealth: an idle plugin that stops answering is killed by the
// health check, and the next batch runs on a new process.
func TestHealth(t *testing.T) {
	s := newStage(t, Config{Timeout: 200 * time.Millisecond, HealthInterval: 100 * time.Millisecond})
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	syscall.Kill(pid, syscall.SIGSTOP)
	deadline := time.Now().Add(5 * time.Second)
	for s.Pid() == pid {
		if time.Now().After(deadline) {
			t.Fatal("a stopped plugin was not killed by the health check")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := process(t, s, recs("a"))
	if len(res.Out) != 1 || string(res.Out[0].Record.Value) != "A" || s.Restarts() != 1 {
		t.Fatalf("after the health check: %+v, %d restarts", res, s.Restarts())
	}
}

// waitPid is the running plugin's pid; the stage lock is held by a call,
// so it reads it from /proc instead: the child of this process running
// the test plugin.
func waitPid(t *testing.T, s *Stage) int {
	t.Helper()
	path, _ := testPlugin()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if exe == path && strings.Contains(string(stat), fmt.Sprintf(") S %d ", os.Getpid())) {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no plugin process found")
	return 0
}

// TestEnvironment: the plugin sees the variables its spec lists and none of
// the host's.
func TestEnvironment(t *testing.T) {
	t.Setenv("WEIR_TEST_SECRET", "hunter2")
	s := newStage(t, Config{Env: []string{"GEO_DB=/tmp/geo"}})
	res := process(t, s, recs("env"))
	var env []string
	for _, o := range res.Out {
		env = append(env, string(o.Record.Value))
	}
	joined := strings.Join(env, "\n")
	if !strings.Contains(joined, "GEO_DB=/tmp/geo") || strings.Contains(joined, "WEIR_TEST_SECRET") || strings.Contains(joined, "PATH=") {
		t.Fatalf("plugin environment:\n%s", joined)
	}
}

func TestChecksumAndConfig(t *testing.T) {
	path, err := testPlugin()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	good := newStage(t, Config{SHA256: hex.EncodeToString(sum[:])})
	if err := good.Check(context.Background()); err != nil {
		t.Fatalf("pinned with the right checksum: %v", err)
	}
	sum[0] ^= 1
	bad := newStage(t, Config{SHA256: hex.EncodeToString(sum[:])})
	if err := bad.Check(context.Background()); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "the spec pins") {
		t.Fatalf("wrong checksum: %v", err)
	}
	var res sdk.Results
	if err := bad.Process(context.Background(), recs("a"), &res); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a batch on a stage with a wrong checksum: %v", err)
	}
	refused := newStage(t, Config{Config: []byte(`{"refuse": true}`)})
	if err := refused.Check(context.Background()); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "refusing as asked") {
		t.Fatalf("refused config: %v", err)
	}
	if _, err := NewStage(Config{Path: path, SHA256: "abc"}); err == nil {
		t.Fatal("a malformed checksum was accepted")
	}
	missing := newStage(t, Config{Path: filepath.Join(t.TempDir(), "nope")})
	if err := missing.Check(context.Background()); !errors.Is(err, ErrStart) {
		t.Fatalf("missing binary: %v", err)
	}
}

// TestHostKilled: a plugin whose host is killed is gone within 2 s. The
// host is this test binary run again as a child (TestHelperHost).
func TestHostKilled(t *testing.T) {
	if _, err := testPlugin(); err != nil {
		t.Fatal(err)
	}
	path, _ := testPlugin()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHost$")
	cmd.Env = append(os.Environ(), "WEIR_PLUGIN_TEST_HOST="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var line [64]byte
	n, _ := out.Read(line[:])
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("host said %q", line[:n])
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("plugin %d not running: %v", pid, err)
	}
	killed := time.Now()
	cmd.Process.Kill()
	cmd.Wait()
	for syscall.Kill(pid, 0) == nil {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if strings.Contains(string(stat), ") Z ") {
			break // a zombie: dead, waiting for its new parent to reap it
		}
		if time.Since(killed) > 2*time.Second {
			t.Fatalf("plugin %d still running 2 s after its host was killed", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("plugin gone %v after its host was killed", time.Since(killed))
}

// TestHelperHost is the host TestHostKilled kills: it starts a plugin,
// prints its pid and waits.
func TestHelperHost(t *testing.T) {
	path := os.Getenv("WEIR_PLUGIN_TEST_HOST")
	if path == "" {
		t.Skip("run by TestHostKilled")
	}
	s, err := NewStage(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Println(s.Pid())
	select {}
}

// TestProbe: Probe tells a weir plugin, which it does not configure, from
// a program that is not one.
func TestProbe(t *testing.T) {
	path, err := testPlugin()
	if err != nil {
		t.Fatal(err)
	}
	// {"refuse": true} would refuse a config: Probe configures nothing.
	if err := Probe(context.Background(), Config{Path: path, Config: []byte(`{"refuse": true}`), Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("the test plugin: %v", err)
	}
	// This test binary, run to run no test, is a program but no plugin.
	err = Probe(context.Background(), Config{Path: os.Args[0], Args: []string{"-test.run=^$"}, Timeout: 5 * time.Second})
	if !errors.Is(err, ErrStart) {
		t.Fatalf("a program that is not a plugin: %v, want ErrStart", err)
	}
	t.Logf("%v", err)
}
