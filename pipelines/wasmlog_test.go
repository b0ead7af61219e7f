package pipelines

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// logCapture is a slog handler keeping the records of one message, with
// their attributes as strings.
type logCapture struct {
	msg  string
	mu   sync.Mutex
	recs []map[string]string
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCapture) WithGroup(string) slog.Handler            { return h }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, m)
	return nil
}

func (h *logCapture) records() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]string(nil), h.recs...)
}

// captureGuestLog makes the default logger a logCapture of guest output
// for the rest of the test.
func captureGuestLog(t *testing.T) *logCapture {
	h := &logCapture{msg: "wasm module output"}
	old := slog.Default()
	slog.SetDefault(slog.New(h))
	t.Cleanup(func() { slog.SetDefault(old) })
	return h
}

func TestGuestLogLines(t *testing.T) {
	h := captureGuestLog(t)
	w := &guestLog{pipeline: "p", stage: "wasm#1", module: "m.wasm", stream: "stdout"}
	long := strings.Repeat("x", guestLineMax)
	for _, s := range []string{
		"one\ntwo\r\n", "thr", "ee", "\n",
		"\n",       // an empty line is a line
		long, "\n", // exactly the bound, its newline in another write
		long + "y", "z\n", // longer: a piece, then the rest
		"no newline yet",
	} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	var got []string
	for _, r := range h.records() {
		if r["pipeline"] != "p" || r["stage"] != "wasm#1" || r["module"] != "m.wasm" || r["stream"] != "stdout" {
			t.Fatalf("attributes %v", r)
		}
		got = append(got, r["line"])
	}
	want := []string{"one", "two", "three", "", long, long, "yz"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q\nwant %q", got, want)
	}
	if string(w.buf) != "no newline yet" || cap(w.buf) > 2*guestLineMax {
		t.Fatalf("buffered %q (cap %d)", w.buf, cap(w.buf))
	}
}

// TestWasmGuestOutputLogged: a WASM stage's guest output reaches the
// process's log one record per line (a line written in two pieces too),
// naming the pipeline, the stage (its default name kind#N, or its name),
// the module and the stream.
func TestWasmGuestOutputLogged(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, "misbehave.wasm"), "../wasm/testdata/misbehave")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the module: %v\n%s", err, out)
	}
	h := captureGuestLog(t)
	s, err := Parse(filepath.Join(dir, "p.yaml"), []byte(`
pipeline: noisy
input: {topics: [in]}
stages:
  - wasm: {module: misbehave.wasm}
  - map: 'lower(value)'
  - name: again
    wasm: {module: misbehave.wasm}
output: out
tests:
  - input: [{value: print}, {value: quiet}]
    expect:
      default: [{value: PRINT}, {value: QUIET}]
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunTests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Problems) != 0 {
		t.Fatalf("test case: %+v", res)
	}
	var got []string
	for _, r := range h.records() {
		if r["pipeline"] != "noisy" || r["module"] != "misbehave.wasm" {
			t.Fatalf("attributes %v", r)
		}
		got = append(got, r["stage"]+" "+r["stream"]+": "+r["line"])
	}
	want := []string{
		"wasm#1 stdout: to stdout, in two writes", "wasm#1 stderr: to stderr",
		"again stdout: to stdout, in two writes", "again stderr: to stderr",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
