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
	// Two buffers for the records between stages (the first stage reads
	// the input itself), and the original input index of each.
	bufs  [2][]sdk.Record
	srcs  [2][]int
	ident []int
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
	for len(c.ident) < len(in) {
		c.ident = append(c.ident, len(c.ident))
	}
	cur, srcs, owned := in, c.ident[:len(in)], -1 // owned: which buffer cur is, -1 the input
	var failed []chainFailure
	var failedSet map[int]bool
	for si, st := range c.stages {
		if len(cur) == 0 {
			break
		}
		c.counts[si].in += int64(len(cur))
		c.res.Reset()
		if err := st.proc.Process(ctx, cur, &c.res); err != nil {
			return nil, nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		if err := sdk.Check(len(cur), &c.res); err != nil {
			return nil, nil, fmt.Errorf("stage %s: %w", st.Name, err)
		}
		for _, f := range c.res.Failed {
			orig := srcs[f.Source]
			if failedSet == nil {
				failedSet = map[int]bool{}
			}
			if !failedSet[orig] {
				failedSet[orig] = true
				failed = append(failed, chainFailure{Source: orig, Stage: st, Err: f.Err})
			}
		}
		k := 0
		if owned == 0 {
			k = 1
		}
		next, nsrcs := c.bufs[k][:0], c.srcs[k][:0]
		for _, o := range c.res.Out {
			orig := srcs[o.Source]
			if failedSet[orig] {
				continue
			}
			next = append(next, o.Record)
			nsrcs = append(nsrcs, orig)
		}
		c.counts[si].out += int64(len(c.res.Out))
		c.bufs[k], c.srcs[k] = next, nsrcs
		cur, srcs, owned = next, nsrcs, k
	}
	slices.SortFunc(failed, func(a, b chainFailure) int { return a.Source - b.Source })
	out := make([]sdk.Output, 0, len(cur))
	for i, r := range cur {
		if failedSet[srcs[i]] {
			continue
		}
		out = append(out, sdk.Output{Source: srcs[i], Record: r})
	}
	return out, failed, nil
}
