package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/runtime/server"
)

// TestHostedPipelineInputTopics: a pipeline in a node that creates topics
// on first use creates its missing input topic (as a Kafka consumer's
// subscription does) and runs, showing per-stage counts in /pipelines; in
// a node that does not, the missing input is the pipeline's error, naming
// the topic and how to create it.
func TestHostedPipelineInputTopics(t *testing.T) {
	for _, auto := range []bool{true, false} {
		t.Run(map[bool]string{true: "auto-create", false: "no-auto-create"}[auto], func(t *testing.T) {
			pipes := t.TempDir()
			if err := os.WriteFile(filepath.Join(pipes, "p.yaml"), []byte("pipeline: p\ninput: {topics: [never-produced]}\nstages:\n  - filter: 'true'\noutput: out\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			b := startBroker(t, func(c *server.Config) {
				c.PipelinesDir = pipes
				c.PipelinesReloadInterval = 50 * time.Millisecond
				c.AutoCreateTopics = &auto
			})
			var st []server.PipelineStatus
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				st = pipelineStates(t, b.srv.HTTPAddr())
				if len(st) == 1 && auto && st[0].State == "running" && len(st[0].Stages) == 1 && st[0].Stages[0].Name == "filter#1" {
					break
				}
				if len(st) == 1 && !auto && strings.Contains(st[0].Error, `input topic "never-produced" does not exist (create it with weir topic create never-produced)`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pipelines: %+v", st)
				}
			}
		})
	}
}
