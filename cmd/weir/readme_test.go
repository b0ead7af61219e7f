package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's walk-throughs are run as written: the quickstart by
// TestReadmeQuickstart, Scaling out by TestReadmeScaleOut. Their code
// blocks are marked by their info string, NAME being the section's
// ("quickstart", "scaleout"):
//
//	```sh NAME                commands, run in order from a clone's root,
//	                          each line by bash (a here-document runs with
//	                          its line); a line ending in & runs in the
//	                          background until the test ends
//	```text NAME-output       what the block before prints: every line must
//	                          appear in its output, in order; … stands for
//	                          any text. A block with shown output is run
//	                          again until it does (within a minute), as a
//	                          reader would, so it must only read
//	```sh other-client        a command of another client (kcat), in the
//	                          quickstart: run, and its output checked, when
//	                          that client is installed;
//	                          WEIR_README_CLIENTS=required (CI) makes a
//	                          missing one a failure
//
// Other blocks are not run.
type readmeBlock struct {
	kind  string // "run", "output", "other"
	line  int    // of the opening fence
	lines []string
}

func readmeBlocks(t *testing.T, path, name string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				if cur != nil {
					blocks = append(blocks, *cur)
				}
				in, cur = false, nil
				continue
			}
			in = true
			switch info := strings.TrimSpace(strings.TrimPrefix(line, "```")); {
			case info == "sh "+name:
				cur = &readmeBlock{kind: "run", line: n}
			case info == "text "+name+"-output":
				cur = &readmeBlock{kind: "output", line: n}
			case info == "sh other-client" && name == "quickstart":
				cur = &readmeBlock{kind: "other", line: n}
			}
			continue
		}
		if in && cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

var heredocStart = regexp.MustCompile(`<<-?'?"?(\w+)'?"?\s*$`)

// outputMatches reports whether every line of want appears in got, in
// order, … matching any text.
func outputMatches(want []string, got string) bool {
	gotLines := strings.Split(got, "\n")
	i := 0
	for _, w := range want {
		if strings.TrimSpace(w) == "" {
			continue
		}
		parts := strings.Split(w, "…")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
		for i < len(gotLines) && !re.MatchString(strings.TrimRight(gotLines[i], " ")) {
			i++
		}
		if i == len(gotLines) {
			return false
		}
		i++
	}
	return true
}

// TestReadmeQuickstart runs the README's quickstart (see readmeBlock) in a
// temporary directory laid out like a clone of this repository, with the
// binary the quickstart itself builds, and checks what each step prints.
// The quickstart uses weir's default ports (9092, 9644, 4222): they must
// be free.
func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds weir, a WASM module and a plugin, and runs a node: not with -short")
	}
	runReadmeSection(t, "quickstart")
}

// TestReadmeScaleOut runs the README's Scaling out walk-through as
// TestReadmeQuickstart runs the quickstart: a broker, two weir worker
// processes, a pipeline apply, the status of both, and a worker killed.
func TestReadmeScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node and two workers: not with -short")
	}
	runReadmeSection(t, "scaleout")
}

func runReadmeSection(t *testing.T, name string) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, filepath.Join(repo, "README.md"), name)
	runs := 0
	for _, b := range blocks {
		if b.kind == "run" {
			runs++
		}
	}
	if runs < 3 {
		t.Fatalf("README.md has %d %s blocks; the markers changed?", runs, name)
	}
	for _, addr := range []string{"127.0.0.1:9092", "127.0.0.1:9644", "127.0.0.1:4222"} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Fatalf("%s is in use: the README's %s runs weir on its default ports; stop what listens there", addr, name)
		}
	}
	// A clone: the repository's tracked top-level entries, linked.
	dir := t.TempDir()
	for _, e := range []string{"cmd", "core", "plugins", "sdk", "pipelines", "wasm", "runtime", "examples", "go.mod", "go.sum", "README.md"} {
		if err := os.Symlink(filepath.Join(repo, e), filepath.Join(dir, e)); err != nil {
			t.Fatal(err)
		}
	}
	clients := os.Getenv("WEIR_README_CLIENTS") == "required"

	type bg struct {
		line string
		cmd  *exec.Cmd
		out  *bytes.Buffer
	}
	var background []bg
	defer func() {
		for _, b := range background {
			b.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { b.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				b.cmd.Process.Kill()
				t.Errorf("%q did not stop within 30 s of SIGTERM", b.line)
			}
			if t.Failed() {
				t.Logf("output of %q:\n%s", b.line, b.out.String())
			}
		}
	}()
	run := func(line string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", line)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	start := time.Now()
	for i, b := range blocks {
		if b.kind == "output" {
			continue
		}
		var want []string
		if i+1 < len(blocks) && blocks[i+1].kind == "output" {
			want = blocks[i+1].lines
		}
		if b.kind == "other" {
			name := strings.Fields(strings.Join(b.lines, " "))[0]
			if _, err := exec.LookPath(name); err != nil {
				if clients {
					t.Fatalf("README.md:%d: %s is not installed (WEIR_README_CLIENTS=required)", b.line, name)
				}
				t.Logf("README.md:%d: not run: %s is not installed", b.line, name)
				continue
			}
		}
		// The block's commands: a line ending in \ continues, and a
		// here-document (<<'END') runs with its line up to END.
		var cmds []string
		heredoc := ""
		for _, l := range b.lines {
			if n := len(cmds); n > 0 && (heredoc != "" || strings.HasSuffix(cmds[n-1], "\\")) {
				cmds[n-1] = strings.TrimSuffix(cmds[n-1], "\\") + "\n" + l
				if strings.TrimSpace(l) == heredoc {
					heredoc = ""
				}
				continue
			}
			if m := heredocStart.FindStringSubmatch(l); m != nil {
				heredoc = m[1]
			}
			if strings.TrimSpace(l) != "" {
				cmds = append(cmds, l)
			}
		}
		deadline := time.Now().Add(time.Minute)
		for attempt := 1; ; attempt++ {
			var out strings.Builder
			for _, c := range cmds {
				code := strings.TrimSpace(c)
				if before, _, ok := strings.Cut(code, " #"); ok && !strings.ContainsAny(before, "'\n") {
					code = strings.TrimSpace(before) // a trailing comment
				}
				if strings.HasSuffix(code, "&") {
					if attempt > 1 {
						continue
					}
					var buf bytes.Buffer
					cmd := exec.Command("bash", "-c", "exec "+strings.TrimSuffix(code, "&"))
					cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &buf, &buf
					if err := cmd.Start(); err != nil {
						t.Fatalf("README.md:%d: %s: %v", b.line, code, err)
					}
					background = append(background, bg{code, cmd, &buf})
					continue
				}
				o, err := run(code)
				fmt.Fprintf(&out, "%s", o)
				if err != nil {
					if want != nil && time.Now().Before(deadline) {
						break // shown output: try again
					}
					t.Fatalf("README.md:%d: %s: %v\n%s", b.line, code, err, o)
				}
			}
			if want == nil || outputMatches(want, out.String()) {
				t.Logf("README.md:%d: ok after %v (attempt %d):\n%s", b.line, time.Since(start).Round(time.Millisecond), attempt, out.String())
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("README.md:%d: after a minute, %q prints\n%s\nwhich lacks (README.md:%d)\n%s", b.line, cmds, out.String(), blocks[i+1].line, strings.Join(want, "\n"))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

func TestReadmeOutputMatches(t *testing.T) {
	got := "built x of 12 KiB\npipeline clicks\n  state:    running\n  records:  5 in\n"
	for _, c := range []struct {
		want []string
		ok   bool
	}{
		{[]string{"pipeline clicks", "  records:  … in"}, true},
		{[]string{"built x of … KiB", "  state:    running"}, true},
		{[]string{"  state:    running", "pipeline clicks"}, false}, // order
		{[]string{"  state:    halted"}, false},
		{[]string{"pipeline click"}, false}, // whole lines
	} {
		if outputMatches(c.want, got) != c.ok {
			t.Errorf("outputMatches(%q) = %v", c.want, !c.ok)
		}
	}
}
