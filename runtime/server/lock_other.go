//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package server

import "os"

// tryLock does not lock on this platform: the server writes its pid to
// DATA_DIR/.lock but nothing stops a second server from opening the same
// data directory, so do not start two on one directory. (A port of
// LockFileEx for Windows would go here.)
func tryLock(f *os.File) error { return nil }

func unlock(f *os.File) {}
