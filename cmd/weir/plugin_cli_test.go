package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginCLI scaffolds a module with `weir plugin init`, builds it with
// `weir plugin build`, runs its pipeline's test cases and feeds it records
// with `weir plugin test`, all through the binary. The scaffold goes into
// testdata inside this module so that it builds against this weir.
func TestPluginCLI(t *testing.T) {
	bin := buildWeir(t)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("testdata", "plugin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	abs, _ := filepath.Abs(work)

	r := runWeirIn(t, bin, abs, "plugin", "init", "shout")
	if r.code != 0 || !strings.Contains(r.stdout, "weir plugin build") {
		t.Fatalf("init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	mod := filepath.Join(abs, "shout")
	for _, f := range []string{"main.go", "module_test.go", "pipeline.yaml"} {
		if _, err := os.Stat(filepath.Join(mod, f)); err != nil {
			t.Fatalf("init wrote no %s: %v", f, err)
		}
	}
	if r := runWeirIn(t, bin, abs, "plugin", "init", "shout"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("init over an existing dir: exit %d: %s", r.code, r.stderr)
	}
	if r := runWeirIn(t, bin, abs, "plugin", "init", "Bad Name"); r.code == 0 || !strings.Contains(r.stderr, "lower-case") {
		t.Fatalf("init with a bad name: exit %d: %s", r.code, r.stderr)
	}

	r = runWeirIn(t, bin, abs, "plugin", "build", mod)
	if r.code != 0 || !strings.Contains(r.stdout, "ABI v1") {
		t.Fatalf("build: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = runWeirIn(t, bin, abs, "pipeline", "test", filepath.Join(mod, "pipeline.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, "1 test cases passed") {
		t.Fatalf("pipeline test of the scaffold: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	in := `{"key": "k1", "value": "hello"}` + "\n" + `{"value": {"a": "b"}, "headers": {"h": "v"}}` + "\n"
	r = runWeirStdin(t, bin, abs, in, "plugin", "test", filepath.Join(mod, "shout.wasm"))
	want := `{"input":1,"key":"k1","value":"HELLO"}` + "\n" + `{"input":2,"key":null,"value":"{\"A\": \"B\"}","headers":{"h":"v"}}` + "\n"
	if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "2 outputs, 0 failed inputs") {
		t.Fatalf("plugin test: exit %d\nstdout %q\nwant   %q\nstderr %s", r.code, r.stdout, want, r.stderr)
	}
	if r := runWeirStdin(t, bin, abs, "{\"vaule\": 1}\n", "plugin", "test", filepath.Join(mod, "shout.wasm")); r.code == 0 || !strings.Contains(r.stderr, "input line 1") {
		t.Fatalf("plugin test with a bad line: exit %d: %s", r.code, r.stderr)
	}

	// (A JSON value is passed as written, here upper-cased by the module.)

	// A Go program that is not a weir module builds but is refused.
	plain := filepath.Join(abs, "plain")
	if err := os.MkdirAll(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(plain, "main.go"), "package main\n\nfunc main() {}\n")
	if r := runWeirIn(t, bin, abs, "plugin", "build", plain); r.code == 0 || !strings.Contains(r.stderr, "not a weir module") {
		t.Fatalf("build of a plain program: exit %d: %s", r.code, r.stderr)
	}
}

func runWeirIn(t *testing.T, bin, dir string, args ...string) cliResult {
	return runWeirStdin(t, bin, dir, "", args...)
}

func runWeirStdin(t *testing.T, bin, dir, stdin string, args ...string) cliResult {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	return runWeir(t, bin, nil, stdin, args...)
}
