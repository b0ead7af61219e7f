// Package worker runs pipelines: one supervised pipeline (Supervise, as
// weir serve --pipelines does for each file), or every pipeline deployed
// to the control plane (Run, as weir worker and weir serve do).
//
// A deployed pipeline's versions are the revisions of its key in the
// control plane's bucket. A worker runs the newest revision it can load:
// a revision that does not load (invalid, or a module or plugin path that
// does not exist on this worker) is logged and the running version carries
// on; a new good revision replaces the running one after that one has
// finished and committed its batch in flight, so nothing is dropped or
// duplicated beyond at-least-once; a deleted key stops its pipeline.
//
// Several workers running one pipeline are members of its consumer group,
// and the broker spreads its input partitions over them (cooperative-
// sticky: a rebalance stops only the partitions that move, after their
// batch in flight is committed). The broker's group coordinator fences
// commits by generation, so a worker the group has moved on from cannot
// commit. Each worker announces itself on the control plane every second
// with what it runs: revision, owned partitions, counters (Heartbeat),
// which weir pipeline status gathers.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weirstream/weir/pipelines"
	"github.com/weirstream/weir/runtime/control"
)

// Supervise runs spec until ctx ends, restarting it after a failure with a
// backoff (1 s doubling to 30 s). A halted pipeline (a failed record under
// the halt policy) is not restarted: Supervise returns its error. onState,
// when set, hears "running", "restarting" and "halted" with the error.
func Supervise(ctx context.Context, spec *pipelines.Spec, o pipelines.RunOptions, onState func(state string, err error)) error {
	if onState == nil {
		onState = func(string, error) {}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	backoff := time.Second
	for {
		err := pipelines.Run(ctx, spec, o)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, pipelines.ErrHalted) {
			log.Error("pipeline halted on a failed record; fix the record or the spec, then change it", "name", spec.Name, "err", err)
			onState("halted", err)
			return err
		}
		log.Error("pipeline failed; restarting", "name", spec.Name, "err", err, "backoff", backoff)
		onState("restarting", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		onState("running", nil)
	}
}

// Options of Run.
type Options struct {
	Plane *control.Plane
	// Run are the options every pipeline runs with (brokers, a local
	// broker, metrics, logger); Stats is set per pipeline.
	Run pipelines.RunOptions
	// ArtifactsDir is where relative paths in a deployed spec (WASM
	// modules, plugin binaries) are resolved; default the working
	// directory.
	ArtifactsDir string
	// ID names the worker on the control plane; default host:pid.
	ID string
	// HeartbeatInterval is how often the worker announces itself;
	// default 1 s.
	HeartbeatInterval time.Duration
}

type running struct {
	revision uint64
	cancel   context.CancelFunc
	done     chan struct{}
	stats    *pipelines.Stats
	mu       sync.Mutex
	state    string
	err      error
}

func (r *running) setState(state string, err error) {
	r.mu.Lock()
	r.state, r.err = state, err
	r.mu.Unlock()
}

func (r *running) status() control.PipelineRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	pr := control.PipelineRun{Revision: r.revision, State: r.state, Partitions: r.stats.Owned(),
		In: r.stats.In.Load(), Out: r.stats.Out.Load(), Filtered: r.stats.Filtered.Load(), Failed: r.stats.Failed.Load()}
	if r.err != nil {
		pr.Error = r.err.Error()
	}
	return pr
}

// Run runs every pipeline deployed to the control plane, following the
// bucket, until ctx ends; then it stops them (each finishing its batch in
// flight) and returns.
func Run(ctx context.Context, o Options) error {
	log := o.Run.Logger
	if log == nil {
		log = slog.Default()
	}
	dir := o.ArtifactsDir
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return err
		}
	}
	kv, err := o.Plane.DeployKV(ctx)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("worker: watching %s: %w", control.DeployBucket, err)
	}
	defer w.Stop()
	var mu sync.Mutex
	runs := map[string]*running{}
	id := o.ID
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	interval := o.HeartbeatInterval
	if interval <= 0 {
		interval = time.Second
	}
	beat := func() control.Heartbeat {
		hb := control.Heartbeat{ID: id, Capacity: runtime.NumCPU(), Pipelines: map[string]string{}, Running: map[string]control.PipelineRun{}}
		mu.Lock()
		defer mu.Unlock()
		for name, r := range runs {
			hb.Pipelines[name] = strconv.FormatUint(r.revision, 10)
			hb.Running[name] = r.status()
		}
		return hb
	}
	actx, stopAnnounce := context.WithCancel(context.WithoutCancel(ctx))
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		if err := o.Plane.Announce(actx, interval, beat); err != nil {
			log.Warn("control plane: announcing this worker", "worker", id, "err", err)
		}
	}()
	// The goodbye goes out after every pipeline has stopped.
	defer func() { stopAnnounce(); <-announced }()
	stop := func(name string) {
		mu.Lock()
		r := runs[name]
		delete(runs, name)
		mu.Unlock()
		if r != nil {
			r.cancel()
			<-r.done
		}
	}
	defer func() {
		mu.Lock()
		names := make([]string, 0, len(runs))
		for n := range runs {
			names = append(names, n)
		}
		mu.Unlock()
		for _, n := range names {
			stop(n)
		}
	}()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case e = <-w.Updates():
		}
		if e == nil {
			continue // the end of the initial values
		}
		name := e.Key()
		if e.Operation() != jetstream.KeyValuePut {
			log.Info("deployed pipeline deleted: stopping it", "name", name)
			stop(name)
			continue
		}
		file := filepath.Join(dir, name+".yaml")
		spec, err := pipelines.Parse(file, e.Value())
		if err == nil && spec.Name != name {
			err = fmt.Errorf("the spec names pipeline %q, deployed as %q", spec.Name, name)
		}
		if err != nil {
			log.Error("deployed pipeline revision refused: the running version (if any) carries on", "name", name, "revision", e.Revision(), "err", err)
			continue
		}
		stop(name) // the running version finishes its batch and commits first
		rctx, cancel := context.WithCancel(ctx)
		r := &running{revision: e.Revision(), cancel: cancel, done: make(chan struct{}), stats: new(pipelines.Stats), state: "running"}
		mu.Lock()
		runs[name] = r
		mu.Unlock()
		log.Info("running deployed pipeline", "name", name, "revision", e.Revision(), "worker", id)
		ro := o.Run
		ro.Stats = r.stats
		go func() {
			defer close(r.done)
			Supervise(rctx, spec, ro, r.setState)
		}()
	}
}
