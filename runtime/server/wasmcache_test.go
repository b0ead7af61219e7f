package server_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime/server"
)

// TestServeWasmCompilationCache: a node hosting a pipeline with a WASM
// stage keeps the module's compiled code under its data directory.
func TestServeWasmCompilationCache(t *testing.T) {
	pipes := t.TempDir()
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(pipes, "m.wasm"), "../../wasm/testdata/misbehave")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the module: %v\n%s", err, out)
	}
	b := startBroker(t, func(c *server.Config) {
		c.PipelinesDir = pipes
		c.PipelinesReloadInterval = 50 * time.Millisecond
	})
	createTopic(t, b.addr(), "in", 1, nil)
	if err := os.WriteFile(filepath.Join(pipes, "shout.yaml"), []byte(`
pipeline: shout
input: {topics: [in]}
stages:
  - wasm: {module: m.wasm}
output: out
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(b.cfg.DataDir, "wasm-cache")
	var files []string
	var states []server.PipelineStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		files = files[:0]
		filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		states = pipelineStates(t, b.srv.HTTPAddr())
		if len(files) > 0 && len(states) == 1 && states[0].State == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cache files %v; pipelines %+v", files, states)
		}
	}
	t.Logf("compiled code cached in %v", files)
}

func pipelineStates(t *testing.T, addr string) []server.PipelineStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st []server.PipelineStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
