//go:build race

package pipelines_test

// raceEnabled: the race detector slows the host ~5x; tests that push
// volume through WASM run smaller.
const raceEnabled = true
