// Package archtest enforces the dependency rules of DESIGN.md over the whole
// module: which weir packages and which third-party modules each top-level
// area may import. Only non-test Go files are checked; tests may use any
// client or tool to drive the code (kmsg in core/record's interop tests, for
// example).
//
// The rules:
//   - core imports nothing of weir outside core, and none of the control-plane
//     or processor libraries (NATS, wazero, expr, YAML, go-plugin, gRPC, cobra).
//   - sdk imports only the standard library and sdk.
//   - wasm and plugins may import sdk and core, not each other, pipelines,
//     runtime or cmd.
//   - pipelines may not import runtime, cmd, core/broker or core/kafka (it
//     reaches the broker through interfaces it declares), nor NATS.
//   - only runtime (and cmd, which wires it) imports NATS.
package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Module is the module path the rules speak about.
const Module = "github.com/weirstream/weir"

// Violation is one import that breaks a rule.
type Violation struct {
	File   string // path relative to the module root
	Import string
	Rule   string
}

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.File, v.Import, v.Rule) }

var heavyLibs = []string{
	"github.com/nats-io/", "github.com/tetratelabs/wazero", "github.com/expr-lang/expr",
	"gopkg.in/yaml", "github.com/hashicorp/go-plugin", "google.golang.org/grpc", "github.com/spf13/cobra",
}

func hasPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if s == strings.TrimSuffix(p, "/") || strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func weir(area string) string { return Module + "/" + area }

// isStd reports whether an import path belongs to the standard library
// (its first element has no dot).
func isStd(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	return !strings.Contains(first, ".")
}

// Check returns the rule an import from a file in the given package
// directory (relative to the module root, slash-separated) breaks, or "".
func Check(dir, imp string) string {
	area, _, _ := strings.Cut(dir, "/")
	inWeir := strings.HasPrefix(imp, Module+"/")
	isNATS := hasPrefix(imp, "github.com/nats-io/")
	switch area {
	case "core":
		if inWeir && !hasPrefix(imp, weir("core")+"/") {
			return "core imports nothing of weir outside core"
		}
		if hasPrefix(imp, heavyLibs...) {
			return "core imports no control-plane or processor library"
		}
	case "sdk":
		if !isStd(imp) && !hasPrefix(imp, weir("sdk")+"/") {
			return "sdk imports only the standard library and sdk"
		}
	case "wasm", "plugins":
		other := map[string]string{"wasm": "plugins", "plugins": "wasm"}[area]
		if hasPrefix(imp, weir(other)+"/", weir("pipelines")+"/", weir("runtime")+"/", weir("cmd")+"/") {
			return area + " may import sdk and core only"
		}
		if isNATS {
			return "only runtime knows NATS"
		}
	case "pipelines":
		if hasPrefix(imp, weir("runtime")+"/", weir("cmd")+"/", weir("core/broker")+"/", weir("core/kafka")+"/") {
			return "pipelines reaches the broker through interfaces it declares, and never runtime or cmd"
		}
		if isNATS {
			return "only runtime knows NATS"
		}
	case "runtime", "cmd":
		if hasPrefix(imp, weir("cmd")+"/") && area == "runtime" {
			return "runtime does not import cmd"
		}
	default:
		if isNATS {
			return "only runtime knows NATS"
		}
	}
	return ""
}

// Scan parses the imports of every non-test .go file under root (skipping
// testdata, hidden and underscore directories) and returns the violations,
// sorted.
func Scan(root string) ([]Violation, error) {
	var out []Violation
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		dir := filepath.ToSlash(filepath.Dir(rel))
		for _, is := range f.Imports {
			imp, _ := strconv.Unquote(is.Path.Value)
			if rule := Check(dir, imp); rule != "" {
				out = append(out, Violation{File: rel, Import: imp, Rule: rule})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, err
}
