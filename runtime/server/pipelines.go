package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/worker"
)

// pipelineHost runs the pipelines of a directory inside the node and keeps
// them in step with it: a new file starts a pipeline, a removed one stops
// it, a changed one is validated first (an invalid change is logged and
// the running version carries on) and then replaces the running version,
// which stops after committing its batch in flight, so the new version
// resumes at a committed offset. A pipeline that fails is restarted with
// backoff; one halted on a record (policy halt) waits for its file to
// change.
type pipelineHost struct {
	dir      string
	interval time.Duration
	brokers  []string
	local    pipelines.LocalBroker // the node's broker, read and written in process
	metrics  *pipelines.Metrics
	log      *slog.Logger
	// createInputs: the node creates topics on first use, so a pipeline's
	// missing input topics are created too.
	createInputs bool

	mu     sync.Mutex
	byFile map[string]*hostedPipeline

	stop chan struct{}
	done chan struct{}
}

// hostedPipeline is one file and the pipeline running from it.
type hostedPipeline struct {
	file    string
	version string // sha256 of the running spec's bytes
	name    string
	stats   *pipelines.Stats
	cancel  context.CancelFunc
	exited  chan struct{}

	mu        sync.Mutex
	state     string // running, restarting, halted, failed, invalid
	lastErr   string // the running version's error, or why a change was refused
	badChange string // version of a refused change, so it is logged once
	started   time.Time
}

// PipelineStatus is a pipeline's state as /pipelines reports it.
type PipelineStatus struct {
	Name     string    `json:"name"`
	File     string    `json:"file"`
	Version  string    `json:"version"`
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	In       int64     `json:"records_in"`
	Out      int64     `json:"records_out"`
	Filtered int64     `json:"records_filtered"`
	Failed   int64     `json:"records_errored"`
	Lag      int64     `json:"lag"`
	Batches  int64     `json:"batches"`
	// Stages are the records into and out of each stage, in order.
	Stages []StageStatus `json:"stages"`
}

// StageStatus is one stage of a running pipeline.
type StageStatus struct {
	Name string `json:"name"`
	In   int64  `json:"records_in"`
	Out  int64  `json:"records_out"`
}

func newPipelineHost(dir string, interval time.Duration, brokers []string, local pipelines.LocalBroker, m *pipelines.Metrics, log *slog.Logger) *pipelineHost {
	return &pipelineHost{dir: dir, interval: interval, brokers: brokers, local: local, metrics: m, log: log.With("pipelines_dir", dir),
		byFile: map[string]*hostedPipeline{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *pipelineHost) start() {
	h.sync()
	go func() {
		defer close(h.done)
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.sync()
			}
		}
	}()
}

// shutdown stops the watcher and every pipeline, each after its batch in
// flight.
func (h *pipelineHost) shutdown() {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for f, p := range h.byFile {
		p.halt()
		delete(h.byFile, f)
	}
}

// sync brings the running pipelines in step with the directory.
func (h *pipelineHost) sync() {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		h.log.Error("reading pipelines directory", "err", err)
		return
	}
	seen := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		file := filepath.Join(h.dir, name)
		raw, err := os.ReadFile(file)
		if err != nil {
			continue // removed meanwhile, or unreadable: next round
		}
		seen[file] = true
		sum := sha256.Sum256(raw)
		version := hex.EncodeToString(sum[:6])
		h.mu.Lock()
		cur := h.byFile[file]
		h.mu.Unlock()
		if cur != nil && cur.version == version {
			cur.clearRefusal() // a refused change was reverted
			continue
		}
		if cur != nil && cur.refused(version) {
			continue
		}
		spec, err := pipelines.Parse(file, raw)
		if err != nil {
			if cur != nil && cur.getState() != "invalid" {
				h.log.Error("pipeline change refused: the running version carries on", "file", file, "err", err)
				cur.refuse(version, err)
				continue
			}
			h.log.Error("invalid pipeline", "file", file, "err", err)
			if cur != nil {
				cur.halt()
			}
			bad := &hostedPipeline{file: file, version: version, state: "invalid", lastErr: err.Error(), stats: new(pipelines.Stats)}
			h.mu.Lock()
			h.byFile[file] = bad
			h.mu.Unlock()
			continue
		}
		if other := h.nameTaken(spec.Name, file); other != "" {
			h.log.Error("pipeline name already used by another file", "file", file, "name", spec.Name, "other", other)
			if cur != nil {
				cur.refuse(version, errors.New("pipeline name "+spec.Name+" is already used by "+other))
			} else {
				h.mu.Lock()
				h.byFile[file] = &hostedPipeline{file: file, version: version, state: "invalid", stats: new(pipelines.Stats),
					lastErr: "pipeline name " + spec.Name + " is already used by " + other}
				h.mu.Unlock()
			}
			continue
		}
		if cur != nil {
			h.log.Info("pipeline changed: replacing the running version", "file", file, "name", spec.Name, "version", version)
			cur.halt()
		}
		p := h.run(spec, file, version)
		h.mu.Lock()
		h.byFile[file] = p
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for f, p := range h.byFile {
		if !seen[f] {
			h.log.Info("pipeline file removed: stopping it", "file", f)
			p.halt()
			if p.name != "" {
				h.metrics.Forget(p.name)
			}
			delete(h.byFile, f)
		}
	}
}

func (h *pipelineHost) nameTaken(name, file string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for f, p := range h.byFile {
		if f != file && p.name == name && p.cancel != nil {
			return f
		}
	}
	return ""
}

// run starts a pipeline and restarts it with backoff when it fails.
func (h *pipelineHost) run(spec *pipelines.Spec, file, version string) *hostedPipeline {
	ctx, cancel := context.WithCancel(context.Background())
	p := &hostedPipeline{file: file, version: version, name: spec.Name, stats: new(pipelines.Stats), cancel: cancel,
		exited: make(chan struct{}), state: "running", started: time.Now()}
	go func() {
		defer close(p.exited)
		worker.Supervise(ctx, spec, pipelines.RunOptions{Brokers: h.brokers, Local: h.local, Logger: h.log, Metrics: h.metrics, Stats: p.stats, CreateInputs: h.createInputs}, p.set)
	}()
	return p
}

func (p *hostedPipeline) set(state string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = state
	p.lastErr = ""
	if err != nil {
		p.lastErr = err.Error()
	}
}

func (p *hostedPipeline) refuse(version string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.badChange = version
	p.lastErr = "change refused: " + err.Error()
}

func (p *hostedPipeline) clearRefusal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.badChange != "" {
		p.badChange, p.lastErr = "", ""
	}
}

func (p *hostedPipeline) getState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

func (p *hostedPipeline) refused(version string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.badChange == version
}

// halt stops the pipeline and waits for it.
func (p *hostedPipeline) halt() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.exited
}

func (p *hostedPipeline) status() PipelineStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PipelineStatus{Name: p.name, File: p.file, Version: p.version, State: p.state, Error: p.lastErr, Started: p.started,
		In: p.stats.In.Load(), Out: p.stats.Out.Load(), Filtered: p.stats.Filtered.Load(), Failed: p.stats.Failed.Load(),
		Lag: p.stats.Lag.Load(), Batches: p.stats.Batches.Load(), Stages: stageStatuses(p.stats.Stages())}
}

func stageStatuses(cs []pipelines.StageCount) []StageStatus {
	out := make([]StageStatus, len(cs))
	for i, c := range cs {
		out[i] = StageStatus{Name: c.Name, In: c.In, Out: c.Out}
	}
	return out
}

// Statuses lists the pipelines by file.
func (h *pipelineHost) statuses() []PipelineStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []PipelineStatus
	for _, p := range h.byFile {
		out = append(out, p.status())
	}
	slices.SortFunc(out, func(a, b PipelineStatus) int { return strings.Compare(a.File, b.File) })
	return out
}

func (h *pipelineHost) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	st := h.statuses()
	if st == nil {
		st = []PipelineStatus{}
	}
	json.NewEncoder(w).Encode(st)
}
