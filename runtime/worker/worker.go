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
// and the broker spreads its input partitions over them.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
}

type running struct {
	revision uint64
	cancel   context.CancelFunc
	done     chan struct{}
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
		r := &running{revision: e.Revision(), cancel: cancel, done: make(chan struct{})}
		mu.Lock()
		runs[name] = r
		mu.Unlock()
		log.Info("running deployed pipeline", "name", name, "revision", e.Revision())
		ro := o.Run
		ro.Stats = new(pipelines.Stats)
		go func() {
			defer close(r.done)
			Supervise(rctx, spec, ro, nil)
		}()
	}
}
