package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/weirstream/weir/runtime/bench"
)

// TestBenchScaleCommandJSON runs `weir bench scale --json` with 50
// partitions and an 8 MiB log and decodes what it prints.
func TestBenchScaleCommandJSON(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"bench", "scale", "--partitions", "50", "--log-bytes", "8MiB", "--dir", t.TempDir(), "--json", "-q"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var res bench.ScaleResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Partitions != 50 || res.Topics != 1 || res.Written != 50 || res.Read != 50 || res.Restart.PartitionsAtOne != 50 {
		t.Fatalf("result: %s", out.String())
	}
	if f := res.Fill; f == nil || f.ValueBytes != 8<<20 || f.Records != 8<<10 || f.EndOffsetAfterRestart != f.EndOffset || res.Cost.LogFiles != 1 {
		t.Fatalf("fill or cost: %s", out.String())
	}
}

// TestBenchScaleCommandNoFill checks that --log-bytes 0 skips the large log.
func TestBenchScaleCommandNoFill(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"bench", "scale", "-p", "20", "--topics", "2", "--log-bytes", "0", "--dir", t.TempDir(), "-q"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("20 partitions in 2 topic(s)")) || bytes.Contains(out.Bytes(), []byte("fill:")) {
		t.Fatalf("output:\n%s", out.String())
	}
}
