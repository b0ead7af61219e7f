package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection checks DESIGN.md's dependency rules on every
// package's imports (test files aside): core imports nothing of weir
// outside core and none of NATS, wazero, expr, YAML or go-plugin; the sdk
// package is stdlib only and sdk/... imports nothing of the host; wasm and
// plugins do not know each other, nor pipelines, core or runtime;
// pipelines does not reach into the broker, the Kafka server or runtime;
// only runtime and cmd know NATS.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", "github.com/weirstream/weir/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/weirstream/weir/"
	under := func(pkg, dir string) bool {
		p := strings.TrimPrefix(pkg, mod)
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	weir := func(imp string) bool { return strings.HasPrefix(imp, mod) }
	stdlib := func(imp string) bool { return !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") }
	heavy := []string{"github.com/nats-io/", "github.com/tetratelabs/wazero", "github.com/expr-lang/", "gopkg.in/yaml", "github.com/hashicorp/"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, list, _ := strings.Cut(line, ":")
		var imports []string
		if list != "" {
			imports = strings.Split(list, ",")
		}
		checked++
		for _, imp := range imports {
			bad := ""
			switch {
			case under(pkg, "core") && weir(imp) && !under(imp, "core"):
				bad = "core imports nothing of weir outside core"
			case under(pkg, "core") && hasPrefix(imp, heavy):
				bad = "core imports none of NATS, wazero, expr, YAML or go-plugin"
			case pkg == mod+"sdk" && !stdlib(imp):
				bad = "the sdk package is stdlib only"
			case under(pkg, "sdk") && weir(imp) && !under(imp, "sdk"):
				bad = "sdk imports nothing of the host"
			case under(pkg, "wasm") && weir(imp) && !under(imp, "sdk") && !under(imp, "wasm"):
				bad = "wasm knows sdk only"
			case under(pkg, "plugins") && weir(imp) && !under(imp, "sdk") && !under(imp, "plugins"):
				bad = "plugins knows sdk only"
			case under(pkg, "pipelines") && (under(imp, "core/broker") || under(imp, "core/kafka") || under(imp, "runtime") || under(imp, "cmd")):
				bad = "pipelines reaches the broker through its own interfaces"
			case strings.HasPrefix(imp, "github.com/nats-io/") && !under(pkg, "runtime") && !under(pkg, "cmd"):
				bad = "only runtime and cmd know NATS"
			}
			if bad != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, bad)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d packages listed", checked)
	}
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
