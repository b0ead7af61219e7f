package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data (and the metadata needed to read it back).
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// syncFS flushes every file system's dirty pages, so that a stage of a
// comparison does not pay for the writeback of the one before.
func syncFS() { unix.Sync() }
