// Package work is the per-record logic of the filterplugin benchmark
// fixture, shared by its plugin build, its WASM build and the benchmark's
// native reference (pipelines/bench_test.go), so that every kind does the
// same work and keeps the same records.
//
// The config is the wasm-filter example's (examples/wasm-filter: "field",
// "allow", "min"), plus two knobs that make each record cost more CPU, to
// measure where running natively pays for a plugin's boundary:
//
//	"repeat": N   run the filter N times per record (same answer; default 1)
//	"sha256": N   hash a record that passes N times with SHA-256 (chained)
//	              and keep it only if the last digest's first byte is even,
//	              a hash-based 1-in-2 sample (default 0: no hashing)
package work

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/weirstream/weir/examples/wasm-filter/filter"
)

// Work is a parsed config.
type Work struct {
	f      *filter.Filter
	repeat int
	sha256 int
}

// Parse reads a config (JSON): the filter's keys, "repeat" and "sha256".
func Parse(config []byte) (*Work, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(config, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("config: want a JSON object, got %s", config)
	}
	w := &Work{repeat: 1}
	for _, k := range []struct {
		name string
		to   *int
		min  int
	}{{"repeat", &w.repeat, 1}, {"sha256", &w.sha256, 0}} {
		v, ok := raw[k.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, k.to); err != nil || *k.to < k.min {
			return nil, fmt.Errorf("config: %q is %s, not an integer of at least %d", k.name, v, k.min)
		}
		delete(raw, k.name)
	}
	rest, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	if w.f, err = filter.Parse(rest); err != nil {
		return nil, err
	}
	return w, nil
}

// Keep reports whether a record's value is kept; an error fails it (a
// value that is not a JSON object).
func (w *Work) Keep(value []byte) (bool, error) {
	ok, err := w.f.Keep(value)
	for i := 1; i < w.repeat; i++ {
		ok, err = w.f.Keep(value)
	}
	if !ok || err != nil || w.sha256 == 0 {
		return ok, err
	}
	sum := sha256.Sum256(value)
	for i := 1; i < w.sha256; i++ {
		sum = sha256.Sum256(sum[:])
	}
	return sum[0]&1 == 0, nil
}
