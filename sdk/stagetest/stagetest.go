// Package stagetest is the conformance suite every stage kind passes: the
// built-in expr stages, WASM modules and plugins alike. A stage is checked
// against a reference model of what it does to one record; the suite then
// checks the batch contract of package sdk around it: outputs in input
// order with correct Sources, filtering, fan-out, per-record failures that
// leave their neighbours alone, empty and large batches, batch-size
// independence, and outputs that stay intact when the next batch runs.
package stagetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
)

// Stage describes the stage under test.
type Stage struct {
	// New returns the processor to test. It is called once per subtest.
	New func(t testing.TB) sdk.Processor
	// Input returns input record i of a stream that exercises the stage:
	// it should include records the stage drops, fans out (if it does) and
	// fails on (if it can), so the suite sees each path.
	Input func(i int) sdk.Record
	// Expect is the reference model: the outputs of one input record
	// processed alone, or the error it fails with (only whether there is
	// an error is compared, not its text).
	Expect func(in sdk.Record) ([]sdk.Record, error)
	// Covers lists the paths Input must exercise within the first 1000
	// records: "filter", "fan-out", "fail". The suite fails if one is
	// listed and not seen, so a stage cannot pass by never taking a path.
	Covers []string
	// Large is the size of the large batch; default 10000.
	Large int
}

// Run runs the suite.
func Run(t *testing.T, s Stage) {
	t.Helper()
	if s.Large <= 0 {
		s.Large = 10000
	}
	t.Run("covers", func(t *testing.T) { checkCovers(t, s) })
	t.Run("empty batch", func(t *testing.T) {
		p := s.New(t)
		var res sdk.Results
		if err := p.Process(context.Background(), nil, &res); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
		if len(res.Out) != 0 || len(res.Failed) != 0 {
			t.Fatalf("empty batch gave %d outputs and %d failures", len(res.Out), len(res.Failed))
		}
	})
	t.Run("one at a time", func(t *testing.T) {
		p := s.New(t)
		for i := range 200 {
			checkBatch(t, s, p, inputs(s, i, 1))
		}
	})
	for _, n := range []int{2, 7, 64, 1000} {
		t.Run(fmt.Sprintf("batches of %d", n), func(t *testing.T) {
			p := s.New(t)
			for start := 0; start < 2000; start += n {
				checkBatch(t, s, p, inputs(s, start, n))
			}
		})
	}
	t.Run("large batch", func(t *testing.T) {
		checkBatch(t, s, s.New(t), inputs(s, 0, s.Large))
	})
	t.Run("outputs survive the next batch", func(t *testing.T) {
		p := s.New(t)
		a := inputs(s, 0, 100)
		var ra sdk.Results
		if err := p.Process(context.Background(), a, &ra); err != nil {
			t.Fatal(err)
		}
		saved := cloneOutputs(ra.Out)
		var rb sdk.Results
		if err := p.Process(context.Background(), inputs(s, 100, 100), &rb); err != nil {
			t.Fatal(err)
		}
		for i := range saved {
			if ra.Out[i].Source != saved[i].Source || !sameRecord(ra.Out[i].Record, saved[i].Record) {
				t.Fatalf("output %d changed when the next batch ran: %s, was %s", i, show(ra.Out[i].Record), show(saved[i].Record))
			}
		}
	})
}

func inputs(s Stage, start, n int) []sdk.Record {
	in := make([]sdk.Record, n)
	for i := range in {
		in[i] = s.Input(start + i)
	}
	return in
}

func checkCovers(t *testing.T, s Stage) {
	seen := map[string]bool{}
	for i := range 1000 {
		out, err := s.Expect(s.Input(i))
		switch {
		case err != nil:
			seen["fail"] = true
		case len(out) == 0:
			seen["filter"] = true
		case len(out) > 1:
			seen["fan-out"] = true
		}
	}
	for _, c := range s.Covers {
		if !seen[c] {
			t.Errorf("the first 1000 inputs never take the %q path", c)
		}
	}
}

// checkBatch processes in and compares with the model applied record by
// record.
func checkBatch(t *testing.T, s Stage, p sdk.Processor, in []sdk.Record) {
	t.Helper()
	orig := make([]sdk.Record, len(in))
	for i := range in {
		orig[i] = cloneRecord(in[i])
	}
	var res sdk.Results
	if err := p.Process(context.Background(), in, &res); err != nil {
		t.Fatalf("batch of %d from offset %d: %v", len(in), in[0].Offset, err)
	}
	if err := sdk.Check(len(in), &res); err != nil {
		t.Fatal(err)
	}
	var want []sdk.Output
	var wantFailed []int
	for i := range orig {
		out, err := s.Expect(cloneRecord(orig[i]))
		if err != nil {
			wantFailed = append(wantFailed, i)
			continue
		}
		for _, r := range out {
			want = append(want, sdk.Output{Source: i, Record: r})
		}
	}
	var gotFailed []int
	for _, f := range res.Failed {
		gotFailed = append(gotFailed, f.Source)
	}
	slices.Sort(gotFailed)
	if !slices.Equal(gotFailed, wantFailed) {
		// Name the first input the stage and the model disagree on.
		i := 0
		for i < len(gotFailed) && i < len(wantFailed) && gotFailed[i] == wantFailed[i] {
			i++
		}
		first, verdict := 0, ""
		switch {
		case i == len(wantFailed) || i < len(gotFailed) && gotFailed[i] < wantFailed[i]:
			first, verdict = gotFailed[i], "the stage failed it, the model did not"
		default:
			first, verdict = wantFailed[i], "the model fails it, the stage did not"
		}
		t.Fatalf("failed inputs %s, want %s: input %d %s: %s", brief(gotFailed), brief(wantFailed), first, show(orig[first]), verdict)
	}
	if len(res.Out) != len(want) {
		t.Fatalf("%d outputs from %d inputs, want %d", len(res.Out), len(in), len(want))
	}
	for i := range want {
		g, w := res.Out[i], want[i]
		if g.Source != w.Source || !sameRecord(g.Record, w.Record) {
			t.Fatalf("output %d: source %d %s, want source %d %s", i, g.Source, show(g.Record), w.Source, show(w.Record))
		}
	}
}

// brief prints a list of input indexes, the first 20 of a long one.
func brief(l []int) string {
	if len(l) <= 20 {
		return fmt.Sprint(l)
	}
	return fmt.Sprintf("%v... (%d in all)", l[:20], len(l))
}

func sameRecord(a, b sdk.Record) bool {
	if !bytes.Equal(a.Key, b.Key) || (a.Key == nil) != (b.Key == nil) || !bytes.Equal(a.Value, b.Value) ||
		(a.Value == nil) != (b.Value == nil) || a.Output != b.Output || len(a.Headers) != len(b.Headers) ||
		!a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

func show(r sdk.Record) string {
	return fmt.Sprintf("{key %q value %q headers %v ts %s output %q}", r.Key, r.Value, r.Headers, r.Timestamp.Format(time.RFC3339Nano), r.Output)
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func cloneRecord(r sdk.Record) sdk.Record {
	c := r
	c.Key, c.Value = cloneBytes(r.Key), cloneBytes(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, sdk.Header{Key: h.Key, Value: cloneBytes(h.Value)})
	}
	return c
}

func cloneOutputs(out []sdk.Output) []sdk.Output {
	c := make([]sdk.Output, len(out))
	for i, o := range out {
		c[i] = sdk.Output{Source: o.Source, Record: cloneRecord(o.Record)}
	}
	return c
}
