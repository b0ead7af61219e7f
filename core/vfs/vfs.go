// Package vfs is the small filesystem interface that all of weir's storage code
// goes through, so tests can put a crashable in-memory filesystem or a
// fault-injecting wrapper underneath the real code.
//
// Three implementations exist:
//
//   - OS: the operating system's filesystem (package os).
//   - NewMem: an in-memory filesystem that models durability the way a POSIX
//     filesystem does. File contents are durable only up to the last
//     File.Sync; directory entries (create, rename, remove) are durable only
//     after SyncDir on their directory. Mem.Crash returns a new filesystem
//     holding only what was durable, optionally with the last unsynced write
//     torn (a prefix of it kept).
//   - NewErrorFS: a wrapper that counts operations and fails the chosen ones
//     (operation number i, every fsync, with EIO or ENOSPC, ...).
//
// Names are slash-separated paths. Every implementation is safe for
// concurrent use; a File is safe for concurrent ReadAt while one goroutine
// writes to it.
package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is an open file. Writes append at the file's write offset (files are
// used append-only by the storage code, plus Truncate during recovery).
type File interface {
	io.Writer
	io.ReaderAt
	io.Closer
	// Sync makes everything written so far durable (fsync).
	Sync() error
	// Truncate changes the size of the file; the write offset moves to the new size.
	Truncate(size int64) error
	// Size reports the current size of the file, durable or not.
	Size() (int64, error)
	// Name is the name the file was opened with.
	Name() string
}

// FS is the filesystem.
type FS interface {
	// Create creates or truncates the named file and opens it for reading and appending.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for reading and appending at its end.
	OpenAppend(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Rename atomically renames oldname to newname, replacing newname if it exists.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries in dir, sorted.
	List(dir string) ([]string, error)
	// Stat returns the size of the named file; errors satisfy errors.Is(err, fs.ErrNotExist) when it does not exist.
	Stat(name string) (int64, error)
	// SyncDir makes the directory's entries durable (fsync on the directory).
	SyncDir(dir string) error
}

// OS is the operating system's filesystem.
var OS FS = osFS{}

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f osFile) Truncate(size int64) error {
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	_, err := f.File.Seek(size, io.SeekStart)
	return err
}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenAppend(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o755) }

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) Stat(name string) (int64, error) {
	st, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
