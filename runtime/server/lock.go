package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the data directory that a running server
// holds an exclusive lock on, and that names its pid.
const lockFileName = ".lock"

// ErrDataDirInUse is matched (errors.Is) by the error Start returns when
// another process (normally another weir) holds the data directory's lock.
var ErrDataDirInUse = errors.New("data directory in use")

// DataDirInUseError says which data directory is taken, and by which pid
// (0 when the lock file does not say).
type DataDirInUseError struct {
	Dir string
	PID int
}

func (e *DataDirInUseError) Error() string {
	who := "another weir"
	switch {
	case e.PID == os.Getpid():
		who = fmt.Sprintf("another server of this process (pid %d)", e.PID)
	case e.PID > 0:
		who = fmt.Sprintf("another weir (pid %d)", e.PID)
	}
	return fmt.Sprintf("data directory %s is in use by %s; stop it, or choose another directory with --data-dir", e.Dir, who)
}

// Is reports whether target is ErrDataDirInUse.
func (e *DataDirInUseError) Is(target error) bool { return target == ErrDataDirInUse }

// errLockBusy is what tryLock returns when another open file holds the lock.
var errLockBusy = errors.New("lock held")

// errLockUnsupported is what tryLock returns when the file system cannot
// lock files (some network file systems): the server then runs unlocked.
var errLockUnsupported = errors.New("file locking not supported")

// dirLock is a held data directory lock; release gives it up. The kernel
// gives it up too when the process dies (even by SIGKILL), so a crashed
// server leaves no stale lock: the file may remain, with the dead pid in
// it, but nobody holds it.
type dirLock struct {
	f *os.File
}

// lockDataDir creates dir if needed and takes DIR/.lock exclusively, without
// waiting: if another process holds it the error is a *DataDirInUseError
// naming that process's pid. It is the first thing Start does in the data
// directory. On platforms without a lock (see lock_other.go) it only writes
// the pid.
func lockDataDir(dir string, log *slog.Logger) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	// Not O_TRUNC: while someone else holds the lock, the file names them.
	// The descriptor is close-on-exec (os.OpenFile's default), so plugin
	// processes started by the server do not inherit the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: lock: %w", dir, err)
	}
	switch err := tryLock(f); {
	case errors.Is(err, errLockBusy):
		pid := readPID(f)
		f.Close()
		return nil, &DataDirInUseError{Dir: dir, PID: pid}
	case errors.Is(err, errLockUnsupported):
		log.Warn("the data directory's file system cannot lock files: nothing stops a second weir from opening it", "data_dir", dir, "err", err)
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	if err := writePID(f); err != nil {
		unlock(f)
		f.Close()
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	return &dirLock{f: f}, nil
}

// release gives the lock up. The file stays: removing it would race with a
// process that has opened it and is about to lock it.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	unlock(l.f)
	l.f.Close()
	l.f = nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID reads the holder's pid from the lock file, or 0 if it has not
// written one (yet).
func readPID(f *os.File) int {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 64))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// LockDataDirOf takes the lock of the weir data directory that holds dir
// (dir itself or one of its three nearest parents with a lock file: a
// partition log is DATA_DIR/topics/TOPIC/PARTITION), for tools that open
// a data directory's files while no server runs (weir log dump). It
// returns a *DataDirInUseError when a server holds it, and a no-op
// release when dir is in no data directory.
func LockDataDirOf(dir string) (release func(), err error) {
	d := filepath.Clean(dir)
	for range 4 {
		if _, err := os.Stat(filepath.Join(d, lockFileName)); err == nil {
			l, err := lockDataDir(d, slog.Default())
			if err != nil {
				return nil, err
			}
			return l.release, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return func() {}, nil
}
