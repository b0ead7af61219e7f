package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWasmExamples builds each WASM example under examples/ with `weir
// plugin build` and runs `weir pipeline validate` and `weir pipeline test`
// on a copy of its pipeline.yaml next to the built module, as the README
// and CI do.
func TestWasmExamples(t *testing.T) {
	bin := buildWeir(t)
	for _, ex := range []struct{ dir, module string }{
		{"wasm-redact", "redact.wasm"},
		{"wasm-filter", "filter.wasm"},
		{"wasm-fanout", "fanout.wasm"},
	} {
		t.Run(ex.dir, func(t *testing.T) {
			src, err := filepath.Abs(filepath.Join("..", "..", "examples", ex.dir))
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			module := filepath.Join(work, ex.module)
			// A cold build of a Go guest takes a while: longer than
			// runWeir's 30 s.
			r := runWeirFor(t, 5*time.Minute, bin, "plugin", "build", src, "-o", module)
			if r.code != 0 || !strings.Contains(r.stdout, "ABI v1") {
				t.Fatalf("plugin build: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			spec, err := os.ReadFile(filepath.Join(src, "pipeline.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(spec), "module: "+ex.module) {
				t.Fatalf("%s/pipeline.yaml does not use module %s", ex.dir, ex.module)
			}
			pipeline := writeFile(t, filepath.Join(work, "pipeline.yaml"), string(spec))
			r = runWeirFor(t, time.Minute, bin, "pipeline", "validate", pipeline)
			if r.code != 0 || !strings.Contains(r.stdout, "is valid") {
				t.Fatalf("pipeline validate: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			r = runWeirFor(t, time.Minute, bin, "pipeline", "test", pipeline)
			if r.code != 0 || !strings.Contains(r.stdout, " test cases passed") || strings.Contains(r.stdout, "FAIL") {
				t.Fatalf("pipeline test: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			t.Logf("%s", strings.TrimSpace(r.stdout))

			if ex.dir == "wasm-filter" {
				// A config the module refuses fails validation, with the
				// module's message.
				bad := strings.Replace(string(spec), "allow: [NZ, AU]", "alow: [NZ, AU]", 1)
				if bad == string(spec) {
					t.Fatal("the filter pipeline's config changed: update this test")
				}
				writeFile(t, pipeline, bad)
				r = runWeirFor(t, time.Minute, bin, "pipeline", "validate", pipeline)
				if r.code == 0 || !strings.Contains(r.stderr, `filter config: unknown key "alow"`) {
					t.Fatalf("pipeline validate with a bad module config: exit %d: %s %s", r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}

// runWeirFor runs the binary and returns its output and exit code; it
// fails the test if the binary does not exit within timeout.
func runWeirFor(t *testing.T, timeout time.Duration, bin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("weir %s: did not exit within %v", strings.Join(args, " "), timeout)
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
