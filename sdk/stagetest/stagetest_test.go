package stagetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

// The toy stage reads a value n (decimal) and
//   - drops it when n%5 == 0,
//   - fails it when n%7 == 3,
//   - fans it out to n+"a" and n+"b" when n%4 == 1,
//   - else emits "x"+n (with a header "seen").
func toyInput(i int) sdk.Record {
	return sdk.Record{
		Key:       []byte("k" + strconv.Itoa(i%3)),
		Value:     []byte(strconv.Itoa(i)),
		Topic:     "t",
		Offset:    int64(i),
		Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)),
	}
}

func toyExpect(in sdk.Record) ([]sdk.Record, error) {
	n, err := strconv.Atoi(string(in.Value))
	if err != nil {
		return nil, err
	}
	switch {
	case n%5 == 0:
		return nil, nil
	case n%7 == 3:
		return nil, errors.New("toy: unlucky")
	case n%4 == 1:
		a, b := in, in
		a.Value, b.Value = []byte(strconv.Itoa(n)+"a"), []byte(strconv.Itoa(n)+"b")
		return []sdk.Record{a, b}, nil
	}
	out := in
	out.Value = []byte("x" + strconv.Itoa(n))
	out.Headers = append(append([]sdk.Header(nil), in.Headers...), sdk.Header{Key: "seen", Value: []byte("1")})
	return []sdk.Record{out}, nil
}

// toy is the stage, with a bug switched on by name.
type toy struct {
	bug   string
	buf   []byte // "buffer": output values live here until the next call
	count int    // "stateful": records seen over all calls
}

func (p *toy) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	if p.bug == "batch error" && len(in) > 64 {
		return errors.New("toy: too many records")
	}
	p.buf = p.buf[:0]
	lastEmitted := -1
	skip := false
	for i, r := range in {
		p.count++
		if skip {
			skip = false
			continue
		}
		n, err := strconv.Atoi(string(r.Value))
		if err != nil {
			res.Fail(i, err)
			continue
		}
		switch {
		case n%5 == 0:
			continue
		case n%7 == 3 || p.bug == "stateful" && p.count%100 == 99:
			res.Fail(i, errors.New("toy: unlucky"))
			if p.bug == "drops neighbour" {
				skip = true
			}
			continue
		case n%4 == 1:
			a, b := r, r
			a.Value, b.Value = []byte(strconv.Itoa(n)+"a"), []byte(strconv.Itoa(n)+"b")
			src := i
			if p.bug == "source" && lastEmitted == i-1 {
				src = i - 1 // the first copy credited to the previous input
			}
			res.Emit(src, a)
			res.Emit(i, b)
		default:
			out := r
			if p.bug == "buffer" {
				start := len(p.buf)
				p.buf = append(p.buf, 'x')
				p.buf = strconv.AppendInt(p.buf, int64(n), 10)
				out.Value = p.buf[start:len(p.buf):len(p.buf)]
			} else {
				out.Value = []byte("x" + strconv.Itoa(n))
			}
			if p.bug == "value" && n%9 == 2 {
				out.Value = []byte("y" + strconv.Itoa(n))
			}
			out.Headers = append(append([]sdk.Header(nil), r.Headers...), sdk.Header{Key: "seen", Value: []byte("1")})
			res.Emit(i, out)
		}
		lastEmitted = i
	}
	if p.bug == "order" {
		// The last input's outputs first (each input's in order).
		slices.SortStableFunc(res.Out, func(a, b sdk.Output) int { return b.Source - a.Source })
	}
	return ctx.Err()
}

func toyStage(bug string) stagetest.Stage {
	s := stagetest.Stage{
		New:    func(t testing.TB) sdk.Processor { return &toy{bug: bug} },
		Input:  toyInput,
		Expect: toyExpect,
		Covers: []string{"filter", "fan-out", "fail"},
	}
	if bug == "never fails" {
		// The inputs never take the fail path, yet Covers claims it.
		s.Input = func(i int) sdk.Record { return toyInput(7 * i) }
	}
	if bug == "small large" {
		s.Large = 50
	}
	return s
}

func TestToyStagePasses(t *testing.T) {
	stagetest.Run(t, toyStage(""))
}

func TestToyStageSmallLargeBatch(t *testing.T) {
	stagetest.Run(t, toyStage("small large"))
}

const brokenEnv = "STAGETEST_BROKEN_STAGE"

// TestHelperBrokenStage runs the suite on a broken toy stage, in a child
// process started by TestSuiteCatchesBrokenStages.
func TestHelperBrokenStage(t *testing.T) {
	bug := os.Getenv(brokenEnv)
	if bug == "" {
		t.Skip("a helper: runs only in a child process")
	}
	stagetest.Run(t, toyStage(bug))
}

func TestSuiteCatchesBrokenStages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	cases := []struct {
		bug     string
		subtest string // the subtest that fails
		want    string // in its message
	}{
		{"order", "batches of 2", "output 1 (input 0) after an output of input 1: outputs must follow input order"},
		{"source", "batches of 2", `output 1: source 0 {key "k0" value "9a"`},
		{"drops neighbour", "batches of 2", "0 outputs from 2 inputs, want 1"},
		{"buffer", "outputs survive the next batch", "changed when the next batch ran"},
		{"never fails", "covers", `the first 1000 inputs never take the "fail" path`},
		{"value", "one at a time", `want source 0 {key "k2" value "x2"`},
		{"batch error", "batches of 1000", "toy: too many records"},
		{"stateful", "one at a time", "failed inputs [0], want []: input 0 {key \"k2\" value \"98\""},
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokenStage$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.bug)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("the suite passed a stage with bug %q (err %v):\n%s", c.bug, err, out)
			}
			text := string(out)
			if !strings.Contains(text, fmt.Sprintf("--- FAIL: TestHelperBrokenStage/%s ", strings.ReplaceAll(c.subtest, " ", "_"))) {
				t.Errorf("subtest %q did not fail:\n%s", c.subtest, text)
			}
			if !strings.Contains(text, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, text)
			}
			if len(text) > 20000 {
				t.Errorf("%d bytes of output: too long to read", len(text))
			}
		})
	}
}
