package vfs

import (
	"errors"
	"io"
	"path"
)

// ReadFile returns the whole content of a file.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return b, nil
}

// WriteFileSync creates (or truncates) name with data and fsyncs it. The
// caller syncs the directory when the name itself must be durable.
func WriteFileSync(fsys FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteFileAtomic replaces dir/name with data durably: it writes
// dir/name.tmp, fsyncs it, renames it over name and fsyncs dir. After a
// crash the file holds either the old or the new data, and a stale .tmp
// may remain for the caller to remove.
func WriteFileAtomic(fsys FS, dir, name string, data []byte) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	tmp := path.Join(dir, name+".tmp")
	if err := WriteFileSync(fsys, tmp, data); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path.Join(dir, name)); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// RemoveAll removes a directory tree; a missing directory is not an error.
func RemoveAll(fsys FS, dir string) error {
	names, err := fsys.List(dir)
	if err != nil {
		if IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if err := fsys.Remove(p); err != nil {
			if err := RemoveAll(fsys, p); err != nil {
				return err
			}
		}
	}
	return fsys.Remove(dir)
}
