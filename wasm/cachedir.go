package wasm

import (
	"os"
	"path/filepath"
)

// UserCacheDir is where the command-line tools (weir pipeline, weir
// plugin) keep compiled modules: weir/wasm in the user's cache directory
// (os.UserCacheDir), or "" when there is none, for a cache in memory.
func UserCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "weir", "wasm")
}
