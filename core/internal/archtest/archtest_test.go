package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module "+Module+"\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found")
		}
		dir = parent
	}
}

// TestModuleFollowsImportRules is the rule check over the real tree.
func TestModuleFollowsImportRules(t *testing.T) {
	vs, err := Scan(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("%s", v)
	}
}

// TestScanCatchesBadImports runs the same scan over a tree in testdata that
// breaks the rules on purpose, so the rule check is known to be able to fail.
func TestScanCatchesBadImports(t *testing.T) {
	vs, err := Scan(filepath.Join("testdata", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"core/x/x.go imports github.com/nats-io/nats.go: core imports no control-plane or processor library",
		"core/x/x.go imports github.com/weirstream/weir/runtime: core imports nothing of weir outside core",
		"sdk/s.go imports github.com/weirstream/weir/core/record: sdk imports only the standard library and sdk",
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckTable(t *testing.T) {
	for _, tc := range []struct {
		dir, imp string
		bad      bool
	}{
		{"core/commitlog", "github.com/weirstream/weir/core/record", false},
		{"core/record", "github.com/klauspost/compress/zstd", false},
		{"core/broker", "github.com/weirstream/weir/pipelines", true},
		{"core/broker", "gopkg.in/yaml.v3", true},
		{"sdk/guest", "fmt", false},
		{"sdk", "github.com/weirstream/weir/sdk/internal/abi", false},
		{"wasm", "github.com/weirstream/weir/plugins", true},
		{"plugins", "github.com/weirstream/weir/sdk", false},
		{"pipelines", "github.com/weirstream/weir/core/broker", true},
		{"pipelines", "github.com/nats-io/nats.go", true},
		{"runtime", "github.com/nats-io/nats-server/v2/server", false},
		{"runtime", "github.com/weirstream/weir/cmd/weir", true},
		{"cmd/weir", "github.com/weirstream/weir/runtime", false},
	} {
		if got := Check(tc.dir, tc.imp) != ""; got != tc.bad {
			t.Errorf("Check(%q, %q) bad=%v, want %v", tc.dir, tc.imp, got, tc.bad)
		}
	}
}
