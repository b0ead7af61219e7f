package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/weirstream/weir/runtime/bench"
)

// TestBenchCommandJSON runs `weir bench produce --json` in process against
// an embedded node and decodes what it prints.
func TestBenchCommandJSON(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"bench", "produce", "-n", "2000", "--size", "1KiB", "--acks", "all", "--json", "-q"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Mode != "produce" || res.Records != 2000 || res.Bytes != 2000*1024 || res.Latency == nil {
		t.Fatalf("result: %+v", res)
	}
}

// TestBenchCompareCommandJSON runs `weir bench compare --json` with tiny
// counts and decodes the result.
func TestBenchCompareCommandJSON(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"bench", "compare", "-n", "1000", "--size", "100,2KiB", "--fsync-iterations", "10", "--dir", t.TempDir(), "--json", "-q"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var res bench.CompareResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	// Per size: produce acks=1, acks=all, consume, JetStream publish and
	// consume (5 x 2); the durable 8-producer and two one-at-a-time rows;
	// weir's and JetStream's roundtrip at max and at half of it; three
	// machine references. Ratios: 3 per size against JetStream, 2 against
	// the disk, one each for the three durable rows, two for the roundtrip.
	if len(res.Rows) != 20 || len(res.Ratios) != 13 {
		t.Fatalf("%d rows, %d ratios: %s", len(res.Rows), len(res.Ratios), out.String())
	}
	if row, ok := res.Row("JetStream publish 2 KiB"); !ok || row.Records != 1000 || row.Bytes != 1000*2048 {
		t.Fatalf("JetStream publish 2 KiB: %+v", row)
	}
}
