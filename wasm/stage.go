package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
)

// Stage runs a module as a pipeline stage (an sdk.Processor), reusing one
// instance across batches. When a call fails (a trap, a guest that ran out
// of memory, a broken reply) the instance is discarded, since a Go guest
// is corrupt after such a failure even if its next call succeeds, and the
// batch is bisected on fresh instances until the records that fail alone
// are found: those fail, with the error, and their neighbours go on.
type Stage struct {
	m              *Module
	config         []byte
	stdout, stderr io.Writer
	inst           *Instance
	part           sdk.Results // one call's results, reused
	// Timeout bounds each call into the module (one batch, or part of one
	// while bisecting); a module still running then is stopped and its
	// instance discarded. 0: DefaultTimeout.
	Timeout time.Duration
	// Discarded counts instances thrown away after a failed call.
	Discarded int
}

// DefaultTimeout is a Stage's default per-call timeout.
const DefaultTimeout = 5 * time.Second

// NewStage makes a stage of module m with its config (JSON).
func NewStage(m *Module, config []byte, stdout, stderr io.Writer) *Stage {
	return &Stage{m: m, config: config, stdout: stdout, stderr: stderr}
}

func (s *Stage) instance(ctx context.Context) (*Instance, error) {
	if s.inst == nil {
		in, err := s.m.Instantiate(ctx, s.config, s.stdout, s.stderr)
		if err != nil {
			return nil, err
		}
		s.inst = in
	}
	return s.inst, nil
}

func (s *Stage) discard(ctx context.Context) {
	if s.inst != nil {
		s.inst.Close(ctx)
		s.inst = nil
		s.Discarded++
	}
}

// Close discards the instance.
func (s *Stage) Close(ctx context.Context) { s.discard(ctx) }

// Process implements sdk.Processor.
func (s *Stage) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	// One call per run of records from the same topic (the batch names
	// its topic once).
	for start := 0; start < len(in); {
		end := start + 1
		for end < len(in) && in[end].Topic == in[start].Topic {
			end++
		}
		if err := s.run(ctx, in[start:end], start, res); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (s *Stage) run(ctx context.Context, in []sdk.Record, base int, res *sdk.Results) error {
	inst, err := s.instance(ctx)
	if err != nil {
		return err
	}
	part := &s.part
	part.Reset()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	err = inst.Process(cctx, in[0].Topic, in, part)
	timedOut := cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()
	if timedOut {
		err = fmt.Errorf("stopped after the stage timeout of %v: %w", timeout, err)
	}
	if err == nil {
		for _, o := range part.Out {
			if o.Source < 0 || o.Source >= len(in) {
				err = fmt.Errorf("%w: output names input %d of a batch of %d", abi.ErrCorrupt, o.Source, len(in))
				break
			}
		}
	}
	if err == nil {
		for _, o := range part.Out {
			res.Emit(base+o.Source, o.Record)
		}
		for _, f := range part.Failed {
			res.Fail(base+f.Source, f.Err)
		}
		return nil
	}
	var be *abi.BatchError
	if errors.As(err, &be) {
		return err // the module refused the batch: the pipeline's policy decides
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !timedOut {
		max, _ := inst.mem.Definition().Max() // pages: the runtime's limit when the module declares none or more
		err = fmt.Errorf("its memory at %d of %d MiB: %w", inst.mem.Size()>>20, max>>4, err)
	}
	s.discard(ctx)
	if len(in) == 1 {
		res.Fail(base, fmt.Errorf("module %s failed on this record: %w", s.m.name, err))
		return nil
	}
	mid := len(in) / 2
	if err := s.run(ctx, in[:mid], base, res); err != nil {
		return err
	}
	return s.run(ctx, in[mid:], base+mid, res)
}

// Check instantiates the module (running its init) and discards the
// instance, so a failing init is reported when a spec is loaded; the
// stage instantiates again on its first batch.
func (s *Stage) Check(ctx context.Context) error {
	in, err := s.m.Instantiate(ctx, s.config, s.stdout, s.stderr)
	if err != nil {
		return err
	}
	return in.Close(ctx)
}
