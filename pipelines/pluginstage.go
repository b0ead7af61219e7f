package pipelines

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/plugins"
)

func init() {
	registerKind(&StageKind{
		Name:    "plugin",
		Summary: "run each batch through a plugin process (built with plugins/plugin, or any program speaking its gRPC protocol), supervised and restarted",
		Fields: []string{
			"plugin: {path: PATH, args: [...], env: [...], config: {...}, timeout: DURATION, sha256: HEX}",
			"  path     the plugin binary, relative to the pipeline file",
			"  args     its arguments",
			"  env      its whole environment: NAME=VALUE sets a variable, NAME passes the host's (nothing else is passed)",
			"  config   any YAML, passed to the plugin's Configure as JSON",
			"  timeout  per call (default 10s): a plugin that has not answered is killed and restarted, its batch replayed",
			"  sha256   pins the binary: a different file is refused",
		},
		Example: `- plugin: {path: bin/geo-enrich, config: {table: geo.csv}, timeout: 2s}`,
		build:   buildPlugin,
	})
}

func buildPlugin(d *decoder, n *yaml.Node) (processor, string, bool) {
	fs := d.fields(n, "plugin", "path", "args", "env", "config", "timeout", "sha256")
	if fs == nil {
		return nil, "", false
	}
	f, ok := fs["path"]
	if !ok {
		d.errorf(n, "plugin: {path: bin/my-plugin}", "plugin: missing field \"path\"")
		return nil, "", false
	}
	path, ok := d.nonEmpty(f.val, "plugin.path")
	if !ok {
		return nil, "", false
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	cfg := plugins.Config{Path: path, Timeout: plugins.DefaultTimeout, Config: []byte("{}")}
	good := true
	if v, ok := fs["args"]; ok {
		cfg.Args, ok = d.strList(v.val, "plugin.args")
		good = good && ok
	}
	if v, ok := fs["env"]; ok {
		env, ok := d.strList(v.val, "plugin.env")
		good = good && ok
		for _, e := range env {
			if strings.Contains(e, "=") {
				cfg.Env = append(cfg.Env, e)
			} else if val, set := os.LookupEnv(e); set {
				cfg.Env = append(cfg.Env, e+"="+val)
			}
		}
	}
	if v, ok := fs["timeout"]; ok {
		t, ok := d.duration(v.val, "plugin.timeout")
		if ok && t < time.Millisecond {
			d.errorf(v.val, "e.g. 2s", "plugin.timeout: %v is too short", t)
			ok = false
		}
		good = good && ok
		cfg.Timeout = t
	}
	if v, ok := fs["sha256"]; ok {
		sum, ok := d.nonEmpty(v.val, "plugin.sha256")
		good = good && ok
		cfg.SHA256 = strings.TrimPrefix(strings.ToLower(sum), "sha256:")
	}
	if v, ok := fs["config"]; ok {
		if cfg.Config, ok = d.jsonConfig(v.val, "plugin.config"); !ok {
			return nil, "", false
		}
	}
	if !good {
		return nil, "", false
	}
	if _, err := os.Stat(path); err != nil {
		d.errorf(f.val, "build it with go build -o PATH ./your/plugin (see weir plugin init --kind process)", "plugin.path: %v", err)
		return nil, "", false
	}
	cfg.Stderr = &guestLog{pipeline: d.pipeline, stage: d.stage, module: filepath.Base(path), stream: "stderr", plugin: true}
	st, err := plugins.NewStage(cfg)
	if err != nil {
		d.errorf(fs["sha256"].val, "64 hex digits, as sha256sum prints", "plugin.sha256: %v", err)
		return nil, "", false
	}
	// Start it once now (and end it), so a plugin that cannot start, has
	// another checksum or refuses its config is reported at load.
	if err := st.Check(context.Background()); err != nil {
		st.Close()
		d.errorf(f.val, "", "plugin: %v", err)
		return nil, "", false
	}
	st.Close()
	pinned := ""
	if cfg.SHA256 != "" {
		pinned = ", sha256 pinned"
	}
	return st, fmt.Sprintf("plugin %s, timeout %v, %d env vars, config %s%s", filepath.Base(path), cfg.Timeout, len(cfg.Env), cfg.Config, pinned), true
}
