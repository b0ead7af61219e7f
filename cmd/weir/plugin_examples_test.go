package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goTool is the go command the tests run: the one on PATH (go test puts
// its own toolchain's there).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// copyFiles copies the named files of dir into work.
func copyFiles(t *testing.T, dir, work string, names ...string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(work, n), string(b))
	}
}

// TestPluginExamples builds each plugin example under examples/ with
// `weir plugin build` (the kind detected from the source) and runs `weir
// pipeline validate` and `weir pipeline test` on a copy of its
// pipeline.yaml next to the binary, as the README and CI do. The HTTP
// example's test cases need its service: the test runs the demo service
// (examples/plugin-http/scoring-service) on a free port of 127.0.0.1 and
// points the pipeline's url at it.
func TestPluginExamples(t *testing.T) {
	bin := buildWeir(t)
	examples, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, dir, out string) {
		t.Helper()
		r := runWeirFor(t, 5*time.Minute, bin, "plugin", "build", dir, "-o", out)
		if r.code != 0 || !strings.Contains(r.stdout, "built a plugin process (kind process)") || !strings.Contains(r.stdout, out) {
			t.Fatalf("plugin build: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		t.Logf("%s", strings.TrimSpace(r.stdout))
	}
	validateAndTest := func(t *testing.T, pipeline string) {
		t.Helper()
		r := runWeirFor(t, time.Minute, bin, "pipeline", "validate", pipeline)
		if r.code != 0 || !strings.Contains(r.stdout, "is valid") {
			t.Fatalf("pipeline validate: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		r = runWeirFor(t, time.Minute, bin, "pipeline", "test", pipeline)
		if r.code != 0 || !strings.Contains(r.stdout, " test cases passed") || strings.Contains(r.stdout, "FAIL") {
			t.Fatalf("pipeline test: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		t.Logf("%s", strings.TrimSpace(r.stdout))
	}

	t.Run("plugin-enrich", func(t *testing.T) {
		src := filepath.Join(examples, "plugin-enrich")
		work := t.TempDir()
		build(t, src, filepath.Join(work, "enrich"))
		copyFiles(t, src, work, "pipeline.yaml", "countries.csv")
		pipeline := filepath.Join(work, "pipeline.yaml")
		validateAndTest(t, pipeline)

		// The plugin alone, on records from a file.
		records := writeFile(t, filepath.Join(work, "in.jsonl"), `{"key": "o1", "value": {"country": "JP"}}`+"\n"+`{"key": "o2", "value": {"country": "XX"}}`+"\n")
		r := runWeirFor(t, time.Minute, bin, "plugin", "test", filepath.Join(work, "enrich"), "-i", records,
			"--config", `{"table": "countries.csv", "key_field": "country", "unknown": "fail"}`)
		want := `{"input":1,"key":"o1","value":"{\"country\":\"JP\",\"region\":\"APAC\",\"currency\":\"JPY\"}"}` + "\n" +
			`{"input":2,"key":null,"value":null,"error":"enrich: country \"XX\" is not in the table countries.csv"}` + "\n"
		if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "1 outputs, 1 failed inputs") {
			t.Fatalf("plugin test: exit %d\nstdout %s\nwant   %s\nstderr %s", r.code, r.stdout, want, r.stderr)
		}

		// A corrupt table refuses the pipeline, naming the file and line.
		writeFile(t, filepath.Join(work, "countries.csv"), "country,region,currency\nNZ,APAC,NZD\nAU,APAC\n")
		r = runWeirFor(t, time.Minute, bin, "pipeline", "validate", pipeline)
		if r.code == 0 || !strings.Contains(r.stderr, filepath.Join(work, "countries.csv")+" line 3: wrong number of fields") {
			t.Fatalf("pipeline validate with a corrupt table: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("plugin-http", func(t *testing.T) {
		src := filepath.Join(examples, "plugin-http")
		work := t.TempDir()
		build(t, src, filepath.Join(work, "http"))
		svcBin := filepath.Join(work, "scoring-service")
		if out, err := exec.Command(goTool(), "build", "-o", svcBin, filepath.Join(src, "scoring-service")).CombinedOutput(); err != nil {
			t.Fatalf("building the scoring service: %v\n%s", err, out)
		}
		spec, err := os.ReadFile(filepath.Join(src, "pipeline.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		const url = "http://127.0.0.1:8089/score"
		if !strings.Contains(string(spec), url) {
			t.Fatalf("examples/plugin-http/pipeline.yaml does not call %s: update this test", url)
		}
		pipeline := filepath.Join(work, "pipeline.yaml")

		// Without the service the pipeline is valid (the plugin takes its
		// config), but its test cases fail: the connection is refused.
		writeFile(t, pipeline, strings.Replace(string(spec), url, "http://"+closedAddr(t)+"/score", 1))
		r := runWeirFor(t, time.Minute, bin, "pipeline", "validate", pipeline)
		if r.code != 0 || !strings.Contains(r.stdout, "is valid") {
			t.Fatalf("pipeline validate without the service: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		r = runWeirFor(t, time.Minute, bin, "pipeline", "test", pipeline)
		if r.code == 0 || !strings.Contains(r.stdout, "connection refused") {
			t.Fatalf("pipeline test without the service: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}

		base := startScoringService(t, svcBin)
		writeFile(t, pipeline, strings.Replace(string(spec), url, base+"/score", 1))
		validateAndTest(t, pipeline)
	})
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startScoringService runs the demo service on a free port and returns
// its base URL; it is stopped when the test ends.
func startScoringService(t *testing.T, svcBin string) string {
	t.Helper()
	cmd := exec.Command(svcBin, "-addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		base, found := strings.CutPrefix(l, "listening on ")
		if !ok || !found || !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("the scoring service said %q", l)
		}
		return base
	case <-time.After(30 * time.Second):
		t.Fatal("the scoring service did not say where it listens within 30s")
	}
	return ""
}

// TestPluginInitProcess scaffolds a plugin process with `weir plugin init
// --kind process`, builds it with `weir plugin build` (the kind detected),
// runs the scaffold's Go test and its pipeline's test cases. As in
// TestPluginCLI, the scaffold goes into testdata inside this module so
// that it builds against this weir.
func TestPluginInitProcess(t *testing.T) {
	bin := buildWeir(t)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("testdata", "plugin-process-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	abs, _ := filepath.Abs(work)

	r := runWeirIn(t, bin, abs, "plugin", "init", "greet", "--kind", "process")
	if r.code != 0 || !strings.Contains(r.stdout, "weir plugin build") || strings.Contains(r.stdout, "not inside a Go module") {
		t.Fatalf("init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	mod := filepath.Join(abs, "greet")
	for _, f := range []string{"main.go", "main_test.go", "pipeline.yaml", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(mod, f)); err != nil {
			t.Fatalf("init wrote no %s: %v", f, err)
		}
	}
	if r := runWeirIn(t, bin, abs, "plugin", "init", "other", "--kind", "native"); r.code == 0 || !strings.Contains(r.stderr, `--kind "native": want wasm or process`) {
		t.Fatalf("init with a bad kind: exit %d: %s", r.code, r.stderr)
	}

	r = runWeirFor(t, 5*time.Minute, bin, "plugin", "build", mod)
	if r.code != 0 || !strings.Contains(r.stdout, "kind process") {
		t.Fatalf("build: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(mod, "greet")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("build made no executable greet/greet: %v", err)
	}

	gotest := exec.Command(goTool(), "test", "-count=1", ".")
	gotest.Dir = mod
	if out, err := gotest.CombinedOutput(); err != nil {
		t.Fatalf("go test in the scaffold: %v\n%s", err, out)
	}

	r = runWeirFor(t, time.Minute, bin, "pipeline", "test", filepath.Join(mod, "pipeline.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, "2 test cases passed") {
		t.Fatalf("pipeline test of the scaffold: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	// A Go program that is not a plugin builds but is refused.
	plain := filepath.Join(abs, "plain")
	if err := os.MkdirAll(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(plain, "main.go"), "package main\n\nfunc main() { println(\"hello\") }\n")
	if r := runWeirFor(t, 5*time.Minute, bin, "plugin", "build", plain, "--kind", "process"); r.code == 0 || !strings.Contains(r.stderr, "is not a weir plugin") {
		t.Fatalf("build of a plain program as a process: exit %d: %s", r.code, r.stderr)
	}
}
