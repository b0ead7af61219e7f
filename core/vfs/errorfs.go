package vfs

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
)

// OpKind is the kind of an operation counted by ErrorFS.
type OpKind int

// The operations ErrorFS counts: one per FS method and per File method
// except File.Name.
const (
	OpCreate OpKind = iota
	OpOpenAppend
	OpOpen
	OpRemove
	OpRename
	OpMkdirAll
	OpList
	OpStat
	OpSyncDir
	OpWrite
	OpReadAt
	OpSync
	OpTruncate
	OpSize
	OpClose
	numOpKinds
)

var opKindNames = [numOpKinds]string{
	OpCreate:     "create",
	OpOpenAppend: "open-append",
	OpOpen:       "open",
	OpRemove:     "remove",
	OpRename:     "rename",
	OpMkdirAll:   "mkdir-all",
	OpList:       "list",
	OpStat:       "stat",
	OpSyncDir:    "sync-dir",
	OpWrite:      "write",
	OpReadAt:     "read-at",
	OpSync:       "sync",
	OpTruncate:   "truncate",
	OpSize:       "size",
	OpClose:      "close",
}

func (k OpKind) String() string {
	if k >= 0 && k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op is one counted operation. Index is its 0-based position among all
// counted operations of the ErrorFS. Name is the path the operation is on
// (for File operations, the name the file was opened with; for Rename,
// "oldname -> newname").
type Op struct {
	Index int64
	Kind  OpKind
	Name  string
}

// Injector decides the fate of an operation before it runs. A non-nil
// result means the operation is not performed (except for a torn write, see
// ErrorFS.SetTornWrites) and that error, wrapped with the operation, is
// returned. An Injector may be called from several goroutines at once.
type Injector func(op Op) error

// ErrInjected is the error injected faults wrap (EIO and ENOSPC do).
var ErrInjected = errors.New("vfs: injected fault")

// EIO and ENOSPC are injectable errors satisfying errors.Is with both
// ErrInjected and syscall.EIO (syscall.ENOSPC respectively).
var (
	EIO    error = &injectedErrno{syscall.EIO}
	ENOSPC error = &injectedErrno{syscall.ENOSPC}
)

type injectedErrno struct{ errno syscall.Errno }

func (e *injectedErrno) Error() string   { return "vfs: injected fault: " + e.errno.Error() }
func (e *injectedErrno) Unwrap() []error { return []error{ErrInjected, e.errno} }

// FailAt returns an Injector failing only the operation with index i.
func FailAt(i int64, err error) Injector {
	return func(op Op) error {
		if op.Index == i {
			return err
		}
		return nil
	}
}

// FailFrom returns an Injector failing the operation with index i and every
// later one, modelling a process that died at operation i.
func FailFrom(i int64, err error) Injector {
	return func(op Op) error {
		if op.Index >= i {
			return err
		}
		return nil
	}
}

// FailKind returns an Injector failing the nth (0-based) operation of the
// given kind that it sees, or every operation of that kind if nth < 0. The
// returned Injector has its own counter: use one per ErrorFS.
func FailKind(kind OpKind, nth int, err error) Injector {
	var seen atomic.Int64
	return func(op Op) error {
		if op.Kind != kind {
			return nil
		}
		k := seen.Add(1) - 1
		if nth < 0 || k == int64(nth) {
			return err
		}
		return nil
	}
}

// ErrorFS wraps an FS, counting operations and failing those its Injector
// chooses. Create it with NewErrorFS. Operation indexes come from one
// atomic counter, so with concurrent callers the order of indexes is the
// order in which operations reached the counter.
type ErrorFS struct {
	inner   FS
	inject  Injector
	n       atomic.Int64
	torn    atomic.Bool
	counted atomic.Uint64 // bit k set: OpKind k is counted and injectable
}

const allOpKinds = uint64(1)<<numOpKinds - 1

// NewErrorFS returns an ErrorFS over inner that counts every operation and
// consults inject (which may be nil: count only) before performing each.
func NewErrorFS(inner FS, inject Injector) *ErrorFS {
	e := &ErrorFS{inner: inner, inject: inject}
	e.counted.Store(allOpKinds)
	return e
}

// SetTornWrites sets whether a Write failed by the injector first writes
// the first half (len(p)/2 bytes) of its buffer to the inner file. The
// failed Write then reports the number of bytes written.
func (e *ErrorFS) SetTornWrites(on bool) { e.torn.Store(on) }

// SetCounted restricts counting to the given kinds: operations of other
// kinds get no index, are not shown to the injector and pass through
// untouched. With no arguments every kind is counted again.
func (e *ErrorFS) SetCounted(kinds ...OpKind) {
	if len(kinds) == 0 {
		e.counted.Store(allOpKinds)
		return
	}
	var mask uint64
	for _, k := range kinds {
		if k >= 0 && k < numOpKinds {
			mask |= 1 << k
		}
	}
	e.counted.Store(mask)
}

// Ops returns how many operations have been counted so far; it is also the
// index the next counted operation will get.
func (e *ErrorFS) Ops() int64 { return e.n.Load() }

// before counts an operation and returns the injected error, if any.
func (e *ErrorFS) before(kind OpKind, name string) error {
	if e.counted.Load()&(1<<kind) == 0 {
		return nil
	}
	idx := e.n.Add(1) - 1
	if e.inject == nil {
		return nil
	}
	if err := e.inject(Op{Index: idx, Kind: kind, Name: name}); err != nil {
		return fmt.Errorf("vfs: %s %s (op %d): %w", kind, name, idx, err)
	}
	return nil
}

func (e *ErrorFS) wrap(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errFile{e: e, f: f}, nil
}

// Create implements FS.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.before(OpCreate, name); err != nil {
		return nil, err
	}
	return e.wrap(e.inner.Create(name))
}

// OpenAppend implements FS.
func (e *ErrorFS) OpenAppend(name string) (File, error) {
	if err := e.before(OpOpenAppend, name); err != nil {
		return nil, err
	}
	return e.wrap(e.inner.OpenAppend(name))
}

// Open implements FS.
func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.before(OpOpen, name); err != nil {
		return nil, err
	}
	return e.wrap(e.inner.Open(name))
}

// Remove implements FS.
func (e *ErrorFS) Remove(name string) error {
	if err := e.before(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

// Rename implements FS; the Op's Name is "oldname -> newname".
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.before(OpRename, oldname+" -> "+newname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

// MkdirAll implements FS.
func (e *ErrorFS) MkdirAll(dir string) error {
	if err := e.before(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir)
}

// List implements FS.
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.before(OpList, dir); err != nil {
		return nil, err
	}
	return e.inner.List(dir)
}

// Stat implements FS.
func (e *ErrorFS) Stat(name string) (int64, error) {
	if err := e.before(OpStat, name); err != nil {
		return 0, err
	}
	return e.inner.Stat(name)
}

// SyncDir implements FS.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.before(OpSyncDir, dir); err != nil {
		return err
	}
	return e.inner.SyncDir(dir)
}

// errFile is a File of an ErrorFS. A Close failed by the injector leaves
// the inner file open.
type errFile struct {
	e *ErrorFS
	f File
}

func (f *errFile) Write(p []byte) (int, error) {
	if err := f.e.before(OpWrite, f.f.Name()); err != nil {
		if f.e.torn.Load() && len(p)/2 > 0 {
			n, _ := f.f.Write(p[:len(p)/2])
			return n, err
		}
		return 0, err
	}
	return f.f.Write(p)
}

func (f *errFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.e.before(OpReadAt, f.f.Name()); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *errFile) Sync() error {
	if err := f.e.before(OpSync, f.f.Name()); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *errFile) Truncate(size int64) error {
	if err := f.e.before(OpTruncate, f.f.Name()); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

func (f *errFile) Size() (int64, error) {
	if err := f.e.before(OpSize, f.f.Name()); err != nil {
		return 0, err
	}
	return f.f.Size()
}

func (f *errFile) Close() error {
	if err := f.e.before(OpClose, f.f.Name()); err != nil {
		return err
	}
	return f.f.Close()
}

func (f *errFile) Name() string { return f.f.Name() }

var (
	_ FS = (*ErrorFS)(nil)
	_ FS = (*Mem)(nil)
)
