package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Mem is an in-memory FS that models POSIX durability. Create it with NewMem.
//
// The model:
//
//   - A file is an inode holding its current content and its durable content.
//     File.Sync makes the current content durable (including a shrink done
//     by Truncate). Nothing else makes content durable.
//   - A directory maps names to inodes twice: the current entries (what
//     List, Open, Stat see) and the durable entries. Create of a new name,
//     Rename and Remove change the current entries at once and append an
//     operation to the directory's ordered log of pending operations;
//     SyncDir applies that whole log, in order, to the durable entries.
//     Invariant: applying a directory's pending log to its durable entries
//     gives its current entries (a rename across directories is logged as a
//     removal in the old directory and an addition in the new one).
//   - Directories themselves are simplifications: MkdirAll and the removal
//     of an empty directory are durable immediately. Removing a directory
//     also drops its durable entries and pending log.
//   - Rename of a directory is not supported (it returns an error wrapping
//     errors.ErrUnsupported).
//
// Crash returns the filesystem a reboot would find. Names are cleaned with
// path.Clean; "/" and "." exist from the start (absolute and relative names
// are separate trees).
//
// All methods, and the methods of the Files it returns, are safe for
// concurrent use; one mutex guards everything.
type Mem struct {
	mu   sync.Mutex
	dirs map[string]*memDir // by cleaned path
}

type memDir struct {
	files   map[string]*inode // current entries (files only)
	durable map[string]*inode // durable entries (files only)
	pending []dirOp           // entry operations not yet made durable by SyncDir
	subdirs map[string]bool   // child directories (always durable)
}

// dirOp is one pending directory entry operation: remove del (if not ""),
// then point set at ino (if set is not ""). A rename within one directory is
// a single dirOp, so it is atomic under Crash.
type dirOp struct {
	del string
	set string
	ino *inode
}

func (d *memDir) apply(ents map[string]*inode, op dirOp) {
	if op.del != "" {
		delete(ents, op.del)
	}
	if op.set != "" {
		ents[op.set] = op.ino
	}
}

// inode is a file's content. Its durable content is data[:durLen] when
// durOld is nil, and durOld otherwise. Every change to data that starts
// below durLen first saves the durable bytes into durOld (see protect).
type inode struct {
	data   []byte
	durLen int
	durOld []byte
}

// protect must be called before data is modified at offsets >= from.
func (n *inode) protect(from int) {
	if n.durOld == nil && from < n.durLen {
		n.durOld = bytes.Clone(n.data[:n.durLen])
		if n.durOld == nil {
			n.durOld = []byte{}
		}
	}
}

func (n *inode) durableContent() []byte {
	if n.durOld != nil {
		return n.durOld
	}
	return n.data[:n.durLen]
}

func (n *inode) sync() {
	n.durOld = nil
	n.durLen = len(n.data)
}

// NewMem returns an empty in-memory filesystem holding the directories "/"
// and ".".
func NewMem() *Mem {
	m := &Mem{dirs: map[string]*memDir{}}
	m.dirs["/"] = newMemDir()
	m.dirs["."] = newMemDir()
	return m
}

func newMemDir() *memDir {
	return &memDir{
		files:   map[string]*inode{},
		durable: map[string]*inode{},
		subdirs: map[string]bool{},
	}
}

type memErr struct {
	msg    string
	target error
}

func (e *memErr) Error() string { return e.msg }
func (e *memErr) Unwrap() error { return e.target }

var (
	errIsDir       = &memErr{"vfs: is a directory", syscall.EISDIR}
	errNotDir      = &memErr{"vfs: not a directory", syscall.ENOTDIR}
	errNotEmpty    = &memErr{"vfs: directory not empty", syscall.ENOTEMPTY}
	errReadOnly    = &memErr{"vfs: file opened read-only", syscall.EBADF}
	errNegative    = &memErr{"vfs: negative offset or size", syscall.EINVAL}
	errRenameDir   = &memErr{"vfs: Mem does not support renaming directories", errors.ErrUnsupported}
	errRemoveMount = &memErr{"vfs: cannot remove a root directory", syscall.EBUSY}
)

func split(name string) (dir, base string) {
	name = path.Clean(name)
	return path.Dir(name), path.Base(name)
}

// lookupDir returns the directory dir, or an error for the operation op.
// m.mu must be held.
func (m *Mem) lookupDir(op, name, dir string) (*memDir, error) {
	if d, ok := m.dirs[dir]; ok {
		return d, nil
	}
	if m.isFile(dir) {
		return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
	}
	return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
}

// isFile reports whether name is a current file. m.mu must be held.
func (m *Mem) isFile(name string) bool {
	dir, base := split(name)
	d, ok := m.dirs[dir]
	if !ok {
		return false
	}
	_, ok = d.files[base]
	return ok
}

// lookup returns the inode of the current file name. m.mu must be held.
func (m *Mem) lookup(op, name string) (*inode, error) {
	clean := path.Clean(name)
	if _, ok := m.dirs[clean]; ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: errIsDir}
	}
	dir, base := split(clean)
	d, err := m.lookupDir(op, name, dir)
	if err != nil {
		return nil, err
	}
	ino, ok := d.files[base]
	if !ok {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return ino, nil
}

// Create implements FS. Creating a new name is a pending entry operation of
// its directory; truncating an existing file changes only its content.
func (m *Mem) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	clean := path.Clean(name)
	if _, ok := m.dirs[clean]; ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	dir, base := split(clean)
	d, err := m.lookupDir("open", name, dir)
	if err != nil {
		return nil, err
	}
	ino, ok := d.files[base]
	if ok {
		ino.protect(0)
		ino.data = ino.data[:0]
	} else {
		ino = &inode{}
		d.files[base] = ino
		d.pending = append(d.pending, dirOp{set: base, ino: ino})
	}
	return &memFile{m: m, ino: ino, name: name, writable: true}, nil
}

// OpenAppend implements FS.
func (m *Mem) OpenAppend(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return &memFile{m: m, ino: ino, name: name, writable: true, off: int64(len(ino.data))}, nil
}

// Open implements FS.
func (m *Mem) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ino, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return &memFile{m: m, ino: ino, name: name}, nil
}

// Remove implements FS. Removing a file is a pending entry operation of its
// directory; open Files keep working on the inode. Removing an empty
// directory is durable at once.
func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clean := path.Clean(name)
	dir, base := split(clean)
	if d, ok := m.dirs[clean]; ok {
		if clean == "/" || clean == "." {
			return &fs.PathError{Op: "remove", Path: name, Err: errRemoveMount}
		}
		if len(d.files) > 0 || len(d.subdirs) > 0 {
			return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
		}
		delete(m.dirs, clean)
		delete(m.dirs[dir].subdirs, base)
		return nil
	}
	d, err := m.lookupDir("remove", name, dir)
	if err != nil {
		return err
	}
	if _, ok := d.files[base]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.files, base)
	d.pending = append(d.pending, dirOp{del: base})
	return nil
}

// Rename implements FS for files. A rename within one directory is one
// pending entry operation (atomic under Crash); across directories it is a
// removal pending in the old directory and an addition pending in the new
// one, each made durable by SyncDir of its own directory.
func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	oldClean, newClean := path.Clean(oldname), path.Clean(newname)
	if _, ok := m.dirs[oldClean]; ok {
		return linkErr(errRenameDir)
	}
	if _, ok := m.dirs[newClean]; ok {
		return linkErr(errIsDir)
	}
	odir, obase := split(oldClean)
	ndir, nbase := split(newClean)
	od, ok := m.dirs[odir]
	if !ok {
		return linkErr(fs.ErrNotExist)
	}
	ino, ok := od.files[obase]
	if !ok {
		return linkErr(fs.ErrNotExist)
	}
	nd, ok := m.dirs[ndir]
	if !ok {
		if m.isFile(ndir) {
			return linkErr(errNotDir)
		}
		return linkErr(fs.ErrNotExist)
	}
	if oldClean == newClean {
		return nil
	}
	delete(od.files, obase)
	nd.files[nbase] = ino
	if od == nd {
		od.pending = append(od.pending, dirOp{del: obase, set: nbase, ino: ino})
	} else {
		od.pending = append(od.pending, dirOp{del: obase})
		nd.pending = append(nd.pending, dirOp{set: nbase, ino: ino})
	}
	return nil
}

// MkdirAll implements FS. New directories are durable at once.
func (m *Mem) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clean := path.Clean(dir)
	var missing []string
	for p := clean; ; p = path.Dir(p) {
		if _, ok := m.dirs[p]; ok {
			break
		}
		if m.isFile(p) {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		parent, base := split(p)
		m.dirs[parent].subdirs[base] = true
		m.dirs[p] = newMemDir()
	}
	return nil
}

// List implements FS: the current (not necessarily durable) files and
// subdirectories of dir, sorted.
func (m *Mem) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.lookupDir("open", dir, path.Clean(dir))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(d.files)+len(d.subdirs))
	for n := range d.files {
		names = append(names, n)
	}
	for n := range d.subdirs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Stat implements FS: the current size of a file; 0 for a directory.
func (m *Mem) Stat(name string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.dirs[path.Clean(name)]; ok {
		return 0, nil
	}
	ino, err := m.lookup("stat", name)
	if err != nil {
		return 0, err
	}
	return int64(len(ino.data)), nil
}

// SyncDir implements FS: it applies dir's pending entry operations, in
// order, to its durable entries.
func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.lookupDir("sync", dir, path.Clean(dir))
	if err != nil {
		return err
	}
	for _, op := range d.pending {
		d.apply(d.durable, op)
	}
	d.pending = nil
	return nil
}

// Crash returns a new Mem holding what a reboot after a power cut at this
// moment would find; m itself is unchanged and stays usable, and Files
// opened on m do not affect the result.
//
// With rng == nil the result is exactly the durable state: each directory
// holds its durable entries and each file its durable content. With rng !=
// nil the result may also hold what the disk happened to persist: for each
// directory a random-length prefix (possibly empty, possibly all) of its
// pending entry operations is applied in order, and each file whose current
// content extends its durable content keeps a random-length prefix of the
// unsynced tail. Inodes that no resulting entry points to are gone. For a
// given rng state the result is deterministic. In the result everything is
// durable.
func (m *Mem) Crash(rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := &Mem{dirs: make(map[string]*memDir, len(m.dirs))}
	copies := map[*inode]*inode{}
	copyInode := func(n *inode) *inode {
		if c, ok := copies[n]; ok {
			return c
		}
		dur := n.durableContent()
		keep := len(dur)
		if rng != nil && len(n.data) > len(dur) && bytes.Equal(n.data[:len(dur)], dur) {
			keep += rng.IntN(len(n.data) - len(dur) + 1)
			dur = n.data
		}
		c := &inode{data: bytes.Clone(dur[:keep])}
		c.durLen = len(c.data)
		copies[n] = c
		return c
	}
	paths := make([]string, 0, len(m.dirs))
	for p := range m.dirs {
		paths = append(paths, p)
	}
	sort.Strings(paths) // deterministic use of rng
	for _, p := range paths {
		d := m.dirs[p]
		ents := make(map[string]*inode, len(d.durable))
		for n, ino := range d.durable {
			ents[n] = ino
		}
		if rng != nil && len(d.pending) > 0 {
			for _, op := range d.pending[:rng.IntN(len(d.pending)+1)] {
				d.apply(ents, op)
			}
		}
		nd := newMemDir()
		for n := range d.subdirs {
			nd.subdirs[n] = true
		}
		names := make([]string, 0, len(ents))
		for n := range ents {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := copyInode(ents[n])
			nd.files[n] = c
			nd.durable[n] = c
		}
		out.dirs[p] = nd
	}
	return out
}

// String returns a multi-line description of the filesystem for debugging:
// each directory with its current files as "name size/durable-size", and the
// number of pending entry operations.
func (m *Mem) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	paths := make([]string, 0, len(m.dirs))
	for p := range m.dirs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		d := m.dirs[p]
		fmt.Fprintf(&b, "%s/ (%d pending)\n", p, len(d.pending))
		names := make([]string, 0, len(d.files))
		for n := range d.files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			ino := d.files[n]
			durable := ""
			if _, ok := d.durable[n]; !ok {
				durable = " (entry not durable)"
			}
			fmt.Fprintf(&b, "  %s %d/%d%s\n", n, len(ino.data), len(ino.durableContent()), durable)
		}
	}
	return b.String()
}

// memFile is an open Mem file with its own write offset.
type memFile struct {
	m        *Mem
	ino      *inode
	name     string
	writable bool
	closed   bool
	off      int64 // write offset
}

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if write && !f.writable {
		return &fs.PathError{Op: op, Path: f.name, Err: errReadOnly}
	}
	return nil
}

// Write writes p at the file's write offset, zero-filling any gap left by a
// Truncate through another File, and advances the offset.
func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	n := f.ino
	off := int(f.off)
	n.protect(off)
	if off > len(n.data) {
		n.data = append(n.data, make([]byte, off-len(n.data))...)
	}
	end := off + len(p)
	if end > len(n.data) {
		n.data = append(n.data[:off], p...)
	} else {
		copy(n.data[off:], p)
	}
	f.off = int64(end)
	return len(p), nil
}

// ReadAt implements io.ReaderAt like os.File.ReadAt: n < len(p) only with
// a non-nil error, io.EOF at the end of the file.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errNegative}
	}
	if off >= int64(len(f.ino.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close implements File; any later use of f returns an error wrapping
// fs.ErrClosed.
func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("close", false); err != nil {
		return err
	}
	f.closed = true
	return nil
}

// Sync makes the inode's current content its durable content.
func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	f.ino.sync()
	return nil
}

// Truncate sets the file's size (zero-extending if larger) and moves this
// File's write offset to size. It is durable only after Sync.
func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: errNegative}
	}
	n := f.ino
	s := int(size)
	n.protect(s)
	if s <= len(n.data) {
		n.data = n.data[:s]
	} else {
		n.data = append(n.data, make([]byte, s-len(n.data))...)
	}
	f.off = size
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Name() string { return f.name }
