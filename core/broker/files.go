package broker

import (
	"errors"
	"io"
	"path"

	"github.com/weirstream/weir/core/vfs"
)

func isErr(err, target error) bool { return errors.Is(err, target) }

func readAll(fsys vfs.FS, name string) ([]byte, error) {
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

// writeAtomic replaces dir/name with data durably: temp file, fsync,
// rename, fsync the directory.
func writeAtomic(fsys vfs.FS, dir, name string, data []byte) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	tmp := path.Join(dir, name+".tmp")
	f, err := fsys.Create(tmp)
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
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path.Join(dir, name)); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// removeAll removes a directory tree.
func removeAll(fsys vfs.FS, dir string) error {
	names, err := fsys.List(dir)
	if err != nil {
		if vfs.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if err := fsys.Remove(p); err != nil {
			if err := removeAll(fsys, p); err != nil {
				return err
			}
		}
	}
	return fsys.Remove(dir)
}
