package pipelines

import (
	"context"
	"fmt"
	"slices"

	"github.com/weirstream/weir/sdk"
)

// chain runs a batch through the stages in order. Outputs carry the index
// of the original input record they came from (Source) and the output
// name in Record.Output. An input whose record (or any record derived from
// it) fails in some stage has no outputs at all: it fails whole, with the
// first failing stage and error, so its error policy sees the original
// record and a retry runs it through the whole chain again.
type chain struct {
	stages []*Stage
	// counts[i] accumulates the records into and out of stage i.
	counts []stageCount
	res    sdk.Results
	cur    []sdk.Record
	srcs   []int
	next   []sdk.Record
	nsrcs  []int
}

type chainFailure struct {
	Source int
	Stage  *Stage
	Err    error
}

type stageCount struct{ in, out int64 }

func newChain(stages []*Stage) *chain {
	return &chain{stages: stages, counts: make([]stageCount, len(stages))}
}

// run processes in and returns the outputs and failures; the slices are
// valid until the next run. An error means a stage failed the whole batch
// (or broke the contract): nothing of the batch may be written.
func (c *chain) run(ctx context.Context, in []sdk.Record) ([]sdk.Output, []chainFailure, error) {
	c.cur = append(c.cur[:0], in...)
	c.srcs = c.srcs[:0]
	for i := range in {
		c.srcs = append(c.srcs, i)
	}
	var failed []chainFailure
	var failedSet map[int]bool
	for si, st := range c.stages {
		if len(c.cur) == 0 {
			break
		}
		c.counts[si].in += int64(len(c.cur))
		c.res.Reset()
		if err := st.proc.Process(ctx, c.cur, &c.res); err != nil {
			return nil, nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		if err := sdk.Check(len(c.cur), &c.res); err != nil {
			return nil, nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		for _, f := range c.res.Failed {
			orig := c.srcs[f.Source]
			if failedSet == nil {
				failedSet = map[int]bool{}
			}
			if !failedSet[orig] {
				failedSet[orig] = true
				failed = append(failed, chainFailure{Source: orig, Stage: st, Err: f.Err})
			}
		}
		c.next, c.nsrcs = c.next[:0], c.nsrcs[:0]
		for _, o := range c.res.Out {
			orig := c.srcs[o.Source]
			if failedSet[orig] {
				continue
			}
			c.next = append(c.next, o.Record)
			c.nsrcs = append(c.nsrcs, orig)
		}
		c.counts[si].out += int64(len(c.res.Out))
		c.cur, c.next = c.next, c.cur
		c.srcs, c.nsrcs = c.nsrcs, c.srcs
	}
	slices.SortFunc(failed, func(a, b chainFailure) int { return a.Source - b.Source })
	out := make([]sdk.Output, 0, len(c.cur))
	for i, r := range c.cur {
		if failedSet[c.srcs[i]] {
			continue
		}
		out = append(out, sdk.Output{Source: c.srcs[i], Record: r})
	}
	return out, failed, nil
}
