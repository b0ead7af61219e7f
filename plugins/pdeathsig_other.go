//go:build !linux

package plugins

import "os/exec"

// setParentDeathSignal: elsewhere the plugin's own parent check
// (plugins/plugin) ends it.
func setParentDeathSignal(*exec.Cmd) {}
