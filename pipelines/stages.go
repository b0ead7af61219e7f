package pipelines

import (
	"context"
	"slices"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/sdk"
)

type processor = sdk.Processor

// StageKind describes a kind of stage: its fields and an example drive
// validation messages and `weir pipeline explain`.
type StageKind struct {
	Name    string
	Summary string
	// Fields documents the stage's configuration, one line each.
	Fields  []string
	Example string
	// build compiles the configuration node; errors go to the decoder.
	build func(d *decoder, n *yaml.Node) (proc processor, summary string, ok bool)
}

var stageKinds = map[string]*StageKind{}

func registerKind(k *StageKind) { stageKinds[k.Name] = k }

// KindNames lists the stage kinds, sorted.
func KindNames() []string {
	var names []string
	for n := range stageKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kinds returns the stage kinds, sorted by name.
func Kinds() []*StageKind {
	var ks []*StageKind
	for _, n := range KindNames() {
		ks = append(ks, stageKinds[n])
	}
	return slices.Clip(ks)
}

// closeStages ends what stages hold outside the Go heap: plugin processes
// and WASM instances. A stage used again starts them again.
func closeStages(stages []*Stage) {
	for _, st := range stages {
		switch c := st.proc.(type) {
		case interface{ Close() }:
			c.Close()
		case interface{ Close(context.Context) }:
			c.Close(context.Background())
		}
	}
}

// Close ends the plugin processes and WASM instances the spec's stages
// hold (after RunTests, say); using the spec again starts them again.
func (s *Spec) Close() { closeStages(s.Stages) }
