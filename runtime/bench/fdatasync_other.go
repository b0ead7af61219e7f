//go:build !linux

package bench

import "os"

// fdatasync is fsync where the platform has no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// syncFS is a no-op where sync(2) is not wired up.
func syncFS() {}
