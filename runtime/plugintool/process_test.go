package plugintool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectKind: the kind comes from the package's imports and build
// constraints, its tests aside.
func TestDetectKind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // a kind, or a part of the error
	}{
		{"plugin", map[string]string{"main.go": "package main\n\nimport \"github.com/weirstream/weir/plugins/plugin\"\n\nfunc main() { plugin.Serve(nil) }\n"}, KindProcess},
		{"guest", map[string]string{"main.go": "package main\n\nimport _ \"github.com/weirstream/weir/sdk/guest\"\n\nfunc main() {}\n"}, KindWasm},
		{"wasip1 only", map[string]string{"main.go": "//go:build wasip1\n\npackage main\n\nfunc main() {}\n"}, KindWasm},
		{"not wasip1", map[string]string{"main.go": "//go:build !wasip1\n\npackage main\n\nimport \"github.com/weirstream/weir/plugins/plugin\"\n\nfunc main() { plugin.Serve(nil) }\n"}, KindProcess},
		{"tests aside", map[string]string{
			"main.go":      "package main\n\nimport \"github.com/weirstream/weir/plugins/plugin\"\n\nfunc main() { plugin.Serve(nil) }\n",
			"main_test.go": "//go:build wasip1\n\npackage main\n\nimport _ \"github.com/weirstream/weir/sdk/guest\"\n",
		}, KindProcess},
		{"neither", map[string]string{"main.go": "package main\n\nfunc main() {}\n"}, KindWasm},
		{"both", map[string]string{
			"a.go": "package main\n\nimport _ \"github.com/weirstream/weir/sdk/guest\"\n",
			"b.go": "package main\n\nimport _ \"github.com/weirstream/weir/plugins/plugin\"\n\nfunc main() {}\n",
		}, "looks like a WASM module (a.go imports sdk/guest) and a plugin process (b.go imports plugins/plugin): pass --kind"},
		{"no files", map[string]string{"README": "hi"}, "no Go files"},
		{"syntax", map[string]string{"main.go": "package main\n\nimport (\n"}, "main.go:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, text := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := DetectKind(dir)
			if err != nil {
				got = err.Error()
			}
			if got != tc.want && (err == nil || !strings.Contains(got, tc.want)) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultOutput(t *testing.T) {
	if got := DefaultOutput("a/geo", KindProcess); got != filepath.Join("a", "geo", "geo") {
		t.Errorf("process: %s", got)
	}
	if got := DefaultOutput("a/geo/", KindWasm); got != filepath.Join("a", "geo", "geo.wasm") {
		t.Errorf("wasm: %s", got)
	}
	wd, _ := os.Getwd()
	if got := DefaultOutput(".", KindProcess); got != filepath.Base(wd) {
		t.Errorf(".: %s, want %s", got, filepath.Base(wd))
	}
}

func TestInitKind(t *testing.T) {
	dir := t.TempDir()
	root, err := InitKind(dir, "geo-enrich", KindProcess)
	if err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(root, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(main), "{{") || !strings.Contains(string(main), "Command geo-enrich is a weir plugin") {
		t.Errorf("main.go:\n%s", main)
	}
	if k, err := DetectKind(root); err != nil || k != KindProcess {
		t.Errorf("the scaffold is detected as %q, %v", k, err)
	}
	if _, err := InitKind(dir, "x", "native"); err == nil || !strings.Contains(err.Error(), `--kind "native"`) {
		t.Errorf("a bad kind: %v", err)
	}
	if InModule(dir) {
		t.Errorf("%s is in a module?", dir)
	}
	if !InModule(".") {
		t.Error("this package is in no module?")
	}
}
