package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/weirstream/weir/sdk"
)

func out(srcs ...int) []sdk.Output {
	var o []sdk.Output
	for _, s := range srcs {
		o = append(o, sdk.Output{Source: s})
	}
	return o
}

func fail(srcs ...int) []sdk.Failure {
	var f []sdk.Failure
	for _, s := range srcs {
		f = append(f, sdk.Failure{Source: s, Err: errors.New("bad")})
	}
	return f
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		n    int
		res  sdk.Results
		want string // "" for valid, else a substring of the error
	}{
		{"empty batch", 0, sdk.Results{}, ""},
		{"all filtered", 5, sdk.Results{}, ""},
		{"one each", 3, sdk.Results{Out: out(0, 1, 2)}, ""},
		{"fan-out and gaps", 6, sdk.Results{Out: out(0, 0, 0, 2, 5, 5)}, ""},
		{"failures in any order", 6, sdk.Results{Out: out(1, 4), Failed: fail(5, 0, 3)}, ""},
		{"everything failed", 3, sdk.Results{Failed: fail(0, 1, 2)}, ""},
		{"output of an empty batch", 0, sdk.Results{Out: out(0)}, "output 0 names input 0 of a batch of 0"},
		{"negative source", 3, sdk.Results{Out: out(-1)}, "output 0 names input -1 of a batch of 3"},
		{"source past the batch", 3, sdk.Results{Out: out(0, 3)}, "output 1 names input 3 of a batch of 3"},
		{"decreasing sources", 4, sdk.Results{Out: out(0, 2, 1)}, "output 2 (input 1) after an output of input 2: outputs must follow input order"},
		{"decreasing after fan-out", 4, sdk.Results{Out: out(1, 1, 0)}, "output 2 (input 0) after an output of input 1"},
		{"failure out of range", 2, sdk.Results{Failed: fail(2)}, "failure names input 2 of a batch of 2"},
		{"negative failure", 2, sdk.Results{Failed: fail(-1)}, "failure names input -1 of a batch of 2"},
		{"failed twice", 4, sdk.Results{Failed: fail(1, 3, 1)}, "input 1 failed twice"},
		{"failure without error", 2, sdk.Results{Failed: []sdk.Failure{{Source: 1}}}, "input 1 failed without an error"},
		{"failed with output", 3, sdk.Results{Out: out(0, 1, 2), Failed: fail(1)}, "input 1 both failed and produced output"},
		{"failed with fanned-out output", 3, sdk.Results{Out: out(2, 2), Failed: fail(0, 2)}, "input 2 both failed and produced output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := sdk.Check(c.n, &c.res)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted %+v for a batch of %d", c.res, c.n)
			}
			if !errors.Is(err, sdk.ErrContract) {
				t.Errorf("%v does not wrap ErrContract", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestResults(t *testing.T) {
	var r sdk.Results
	r.Emit(0, sdk.Record{Value: []byte("a")})
	r.Emit(0, sdk.Record{Value: []byte("b")})
	r.Fail(1, errors.New("bad"))
	if len(r.Out) != 2 || r.Out[1].Source != 0 || string(r.Out[1].Record.Value) != "b" || len(r.Failed) != 1 || r.Failed[0].Source != 1 {
		t.Fatalf("results %+v", r)
	}
	if err := sdk.Check(2, &r); err != nil {
		t.Fatal(err)
	}
	out, failed := r.Out, r.Failed
	r.Reset()
	if len(r.Out) != 0 || len(r.Failed) != 0 || cap(r.Out) != cap(out) || cap(r.Failed) != cap(failed) {
		t.Errorf("Reset: %d/%d outputs, %d/%d failures", len(r.Out), cap(r.Out), len(r.Failed), cap(r.Failed))
	}
	// The dropped entries no longer hold the records or errors.
	if out[:2][1].Record.Value != nil || failed[:1][0].Err != nil {
		t.Errorf("Reset kept references: %+v %+v", out[:2], failed[:1])
	}
}

func TestRecordHeader(t *testing.T) {
	r := sdk.Record{Headers: []sdk.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: nil}, {Key: "a", Value: []byte("2")}}}
	if v, ok := r.Header("a"); !ok || string(v) != "2" {
		t.Errorf("a: %q %v, want the last value", v, ok)
	}
	if v, ok := r.Header("b"); !ok || v != nil {
		t.Errorf("b: %q %v", v, ok)
	}
	if _, ok := r.Header("c"); ok {
		t.Error("c found")
	}
	var empty sdk.Record
	if _, ok := empty.Header("a"); ok {
		t.Error("found a header of a record without headers")
	}
}

func TestProcessorFunc(t *testing.T) {
	var p sdk.Processor = sdk.ProcessorFunc(func(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
		for i := range in {
			res.Emit(i, in[i])
		}
		return ctx.Err()
	})
	var res sdk.Results
	if err := p.Process(context.Background(), make([]sdk.Record, 3), &res); err != nil || len(res.Out) != 3 {
		t.Errorf("%v %d", err, len(res.Out))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Process(ctx, nil, &res); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestEach: outputs and errors per record, in order; a panic fails its
// record alone, however many there are.
func TestEach(t *testing.T) {
	var in []sdk.Record
	for _, v := range []string{"a", "panic", "b", "err", "panic", "c"} {
		in = append(in, sdk.Record{Value: []byte(v)})
	}
	var res sdk.Results
	sdk.Each(in, &res, func(r sdk.Record) ([]sdk.Record, error) {
		switch string(r.Value) {
		case "panic":
			panic("boom")
		case "err":
			return nil, errors.New("bad")
		}
		return []sdk.Record{r, r}, nil
	})
	var out []string
	for _, o := range res.Out {
		out = append(out, fmt.Sprintf("%d:%s", o.Source, o.Record.Value))
	}
	var failed []string
	for _, f := range res.Failed {
		failed = append(failed, fmt.Sprintf("%d:%v", f.Source, f.Err))
	}
	if got := strings.Join(out, " "); got != "0:a 0:a 2:b 2:b 5:c 5:c" {
		t.Errorf("outputs %s", got)
	}
	if got := strings.Join(failed, " "); got != "1:panic: boom 3:bad 4:panic: boom" {
		t.Errorf("failures %s", got)
	}
}
