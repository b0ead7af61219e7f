// Package pipelines_test checks that every example pipeline is valid and
// passes its own test cases (what `weir pipeline test` runs).
package pipelines_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/pipelines"
)

func TestExamplePipelines(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example pipelines: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := pipelines.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Tests) == 0 {
				t.Fatal("an example without test cases")
			}
			results, err := s.RunTests(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if len(r.Problems) > 0 {
					t.Errorf("%s: %v", r.Case.Name, r.Problems)
				}
			}
		})
	}
}
