package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func mustCreate(t *testing.T, fsys FS, name string) File {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return f
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func mustSync(t *testing.T, f File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func mustSyncDir(t *testing.T, fsys FS, dir string) {
	t.Helper()
	if err := fsys.SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%q): %v", dir, err)
	}
}

// readAll returns the content of name, or nil and the error.
func readAll(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

func wantContent(t *testing.T, fsys FS, name, want string) {
	t.Helper()
	got, err := readAll(fsys, name)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	if string(got) != want {
		t.Fatalf("content of %q = %q, want %q", name, got, want)
	}
}

func wantNotExist(t *testing.T, fsys FS, name string) {
	t.Helper()
	_, err := fsys.Stat(name)
	if !IsNotExist(err) {
		t.Fatalf("Stat(%q) error = %v, want not-exist", name, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("Stat(%q) error %T is not *fs.PathError", name, err)
	}
}

func wantList(t *testing.T, fsys FS, dir string, want ...string) {
	t.Helper()
	got, err := fsys.List(dir)
	if err != nil {
		t.Fatalf("List(%q): %v", dir, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", dir, got, want)
	}
}

func TestMemUnsyncedWriteLost(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("d"); err != nil {
		t.Fatal(err)
	}
	f := mustCreate(t, m, "d/a")
	mustSyncDir(t, m, "d")
	mustWrite(t, f, "hello")
	mustSync(t, f)
	mustWrite(t, f, " world")
	if sz, _ := m.Stat("d/a"); sz != 11 {
		t.Fatalf("Stat = %d, want current size 11", sz)
	}
	c := m.Crash(nil)
	wantContent(t, c, "d/a", "hello")
	// The original keeps working and is unaffected.
	wantContent(t, m, "d/a", "hello world")
	mustSync(t, f)
	wantContent(t, m.Crash(nil), "d/a", "hello world")
	// The crashed copy is independent and fully durable.
	g, err := c.OpenAppend("d/a")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "!")
	wantContent(t, m, "d/a", "hello world")
	wantContent(t, c.Crash(nil), "d/a", "hello")
}

func TestMemCreateNeedsSyncDir(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("d/e"); err != nil {
		t.Fatal(err)
	}
	f := mustCreate(t, m, "d/e/a")
	mustWrite(t, f, "data")
	mustSync(t, f)
	c := m.Crash(nil)
	wantNotExist(t, c, "d/e/a")
	wantList(t, c, "d/e")
	wantList(t, c, "d", "e") // directories are durable at once
	mustSyncDir(t, m, "d/e")
	wantContent(t, m.Crash(nil), "d/e/a", "data")
}

func TestMemRenameDurability(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "old")
	mustWrite(t, f, "v1")
	mustSync(t, f)
	mustSyncDir(t, m, ".")
	g := mustCreate(t, m, "tmp")
	mustWrite(t, g, "v2")
	mustSync(t, g)
	if err := m.Rename("tmp", "old"); err != nil {
		t.Fatal(err)
	}
	wantContent(t, m, "old", "v2")
	wantNotExist(t, m, "tmp")
	wantList(t, m, ".", "old")

	c := m.Crash(nil)
	wantContent(t, c, "old", "v1")
	wantNotExist(t, c, "tmp")

	mustSyncDir(t, m, ".")
	c = m.Crash(nil)
	wantContent(t, c, "old", "v2")
	wantNotExist(t, c, "tmp")

	if err := m.Rename("missing", "x"); !IsNotExist(err) {
		t.Fatalf("Rename(missing) = %v, want not-exist", err)
	}
}

func TestMemRenameAcrossDirs(t *testing.T) {
	m := NewMem()
	for _, d := range []string{"a", "b"} {
		if err := m.MkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
	f := mustCreate(t, m, "a/x")
	mustWrite(t, f, "x")
	mustSync(t, f)
	mustSyncDir(t, m, "a")
	if err := m.Rename("a/x", "b/y"); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, m, "b")
	c := m.Crash(nil)
	// Only the new directory was synced: the file is under both names.
	wantContent(t, c, "a/x", "x")
	wantContent(t, c, "b/y", "x")
	mustSyncDir(t, m, "a")
	c = m.Crash(nil)
	wantNotExist(t, c, "a/x")
	wantContent(t, c, "b/y", "x")
}

func TestMemRemoveDurability(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "a")
	mustWrite(t, f, "abc")
	mustSync(t, f)
	mustSyncDir(t, m, ".")
	if err := m.Remove("a"); err != nil {
		t.Fatal(err)
	}
	wantNotExist(t, m, "a")
	// The open file keeps working on the unlinked inode.
	mustWrite(t, f, "def")
	mustSync(t, f)
	buf := make([]byte, 6)
	if n, err := f.ReadAt(buf, 0); n != 6 || err != nil || string(buf) != "abcdef" {
		t.Fatalf("ReadAt unlinked = %d, %v, %q", n, err, buf)
	}
	// Not yet durable: the old name is back after a crash, with the
	// content synced through the unlinked file.
	wantContent(t, m.Crash(nil), "a", "abcdef")
	mustSyncDir(t, m, ".")
	wantNotExist(t, m.Crash(nil), "a")
	if err := m.Remove("a"); !IsNotExist(err) {
		t.Fatalf("Remove twice = %v, want not-exist", err)
	}
}

func TestMemTruncateDurability(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "a")
	mustSyncDir(t, m, ".")
	mustWrite(t, f, "0123456789")
	mustSync(t, f)
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "xy") // the write offset moved to 4
	wantContent(t, m, "a", "0123xy")
	wantContent(t, m.Crash(nil), "a", "0123456789")
	// A torn crash must not mix the overwritten bytes into the durable ones.
	for seed := range uint64(20) {
		wantContent(t, m.Crash(rand.New(rand.NewPCG(seed, 1))), "a", "0123456789")
	}
	mustSync(t, f)
	wantContent(t, m.Crash(nil), "a", "0123xy")

	// Truncate to a larger size zero-fills.
	if err := f.Truncate(8); err != nil {
		t.Fatal(err)
	}
	wantContent(t, m, "a", "0123xy\x00\x00")

	// Create of an existing name truncates, durable only after Sync.
	g := mustCreate(t, m, "a")
	wantContent(t, m, "a", "")
	wantContent(t, m.Crash(nil), "a", "0123xy")
	mustSync(t, g)
	wantContent(t, m.Crash(nil), "a", "")
}

func TestMemTornTail(t *testing.T) {
	const synced = "synced-part|"
	const tail = "unsynced-tail-0123456789"
	sawPartial, sawNone, sawAll := false, false, false
	for seed := range uint64(200) {
		m := NewMem()
		f := mustCreate(t, m, "log")
		mustSyncDir(t, m, ".")
		mustWrite(t, f, synced)
		mustSync(t, f)
		mustWrite(t, f, tail)
		c := m.Crash(rand.New(rand.NewPCG(seed, 2)))
		got, err := readAll(c, "log")
		if err != nil {
			t.Fatal(err)
		}
		full := synced + tail
		if len(got) < len(synced) || !bytes.HasPrefix([]byte(full), got) {
			t.Fatalf("seed %d: torn content %q is not a prefix of %q extending %q", seed, got, full, synced)
		}
		switch len(got) {
		case len(synced):
			sawNone = true
		case len(full):
			sawAll = true
		default:
			sawPartial = true
		}
	}
	if !sawPartial || !sawNone || !sawAll {
		t.Fatalf("torn tails not spread: partial=%v none=%v all=%v", sawPartial, sawNone, sawAll)
	}
}

func TestMemCrashPendingPrefix(t *testing.T) {
	// Pending entry ops of a directory survive a random crash as a prefix,
	// in order: if file i exists, every file j < i exists too.
	const n = 6
	names := []string{"f0", "f1", "f2", "f3", "f4", "f5"}
	seen := map[int]bool{}
	for seed := range uint64(100) {
		m := NewMem()
		for _, name := range names {
			mustSync(t, mustCreate(t, m, name))
		}
		c := m.Crash(rand.New(rand.NewPCG(seed, 3)))
		got, err := c.List(".")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, names[:len(got)]) {
			t.Fatalf("seed %d: survivors %q are not a prefix of %q", seed, got, names)
		}
		seen[len(got)] = true
		// Deterministic per seed.
		again, _ := m.Crash(rand.New(rand.NewPCG(seed, 3))).List(".")
		if !slices.Equal(got, again) {
			t.Fatalf("seed %d: Crash not deterministic: %q vs %q", seed, got, again)
		}
	}
	if len(seen) < n {
		t.Fatalf("only saw prefix lengths %v", seen)
	}
}

func TestMemErrors(t *testing.T) {
	m := NewMem()
	for _, op := range []func() error{
		func() error { _, err := m.Open("nope"); return err },
		func() error { _, err := m.OpenAppend("nope"); return err },
		func() error { _, err := m.Create("nodir/x"); return err },
		func() error { _, err := m.List("nodir"); return err },
		func() error { return m.SyncDir("nodir") },
		func() error { return m.Remove("nope") },
		func() error { _, err := m.Stat("nope"); return err },
	} {
		if err := op(); !IsNotExist(err) {
			t.Errorf("error %v does not satisfy IsNotExist", err)
		}
	}

	w := mustCreate(t, m, "a")
	mustWrite(t, w, "abc")
	r, err := m.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("Write on read-only file succeeded")
	}
	if err := r.Truncate(0); err == nil {
		t.Fatal("Truncate on read-only file succeeded")
	}
	if r.Name() != "a" {
		t.Fatalf("Name = %q", r.Name())
	}

	// ReadAt semantics match os.File.
	buf := make([]byte, 5)
	if n, err := r.ReadAt(buf, 1); n != 2 || err != io.EOF || string(buf[:n]) != "bc" {
		t.Fatalf("short ReadAt = %d, %v, %q", n, err, buf[:n])
	}
	if n, err := r.ReadAt(buf, 3); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at end = %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf[:3], 0); n != 3 || err != nil {
		t.Fatalf("full ReadAt = %d, %v", n, err)
	}
	if _, err := r.ReadAt(buf, -1); err == nil {
		t.Fatal("ReadAt at negative offset succeeded")
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"Write":    func() error { _, err := w.Write([]byte("x")); return err },
		"ReadAt":   func() error { _, err := w.ReadAt(buf, 0); return err },
		"Sync":     w.Sync,
		"Truncate": func() error { return w.Truncate(0) },
		"Size":     func() error { _, err := w.Size(); return err },
		"Close":    w.Close,
	} {
		if err := op(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("%s after Close = %v, want fs.ErrClosed", name, err)
		}
	}

	// Directory rules.
	if err := m.MkdirAll("a/b"); err == nil {
		t.Fatal("MkdirAll through a file succeeded")
	}
	if err := m.MkdirAll("d/e"); err != nil {
		t.Fatal(err)
	}
	if err := m.MkdirAll("d/e"); err != nil {
		t.Fatalf("MkdirAll existing: %v", err)
	}
	if _, err := m.Create("d"); err == nil {
		t.Fatal("Create over a directory succeeded")
	}
	if err := m.Remove("d"); err == nil {
		t.Fatal("Remove of non-empty directory succeeded")
	}
	if err := m.Remove("d/e"); err != nil {
		t.Fatal(err)
	}
	wantList(t, m, ".", "a", "d")
	wantList(t, m, "d")
	wantList(t, m.Crash(nil), "d")
}

func TestMemListSorted(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/data/sub"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c", "a", "b"} {
		mustCreate(t, m, "/data/"+n)
	}
	wantList(t, m, "/data", "a", "b", "c", "sub")
	wantList(t, m, "/data/", "a", "b", "c", "sub")
	wantList(t, m, "/", "data")
}

func TestMemConcurrentReadWrite(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "log")
	const chunk = "0123456789abcdef"
	const writes = 2000
	var wg sync.WaitGroup
	writerDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(writerDone)
		for range writes {
			if _, err := f.Write([]byte(chunk)); err != nil {
				t.Error(err)
				return
			}
			if err := f.Sync(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	r, err := m.Open("log")
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(chunk))
			for i := 0; i < writes; {
				n, err := r.ReadAt(buf, int64(i*len(chunk)))
				if err == io.EOF {
					if n == len(buf) {
						t.Errorf("ReadAt returned io.EOF with a full buffer")
						return
					}
					select {
					case <-writerDone:
						if n, _ := f.Size(); int(n) < (i+1)*len(chunk) {
							return // the writer failed; it reported why
						}
					default:
					}
					continue // not written yet
				}
				if err != nil || n != len(buf) || string(buf) != chunk {
					t.Errorf("ReadAt chunk %d = %d, %v, %q", i, n, err, buf[:n])
					return
				}
				i++
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			_ = m.Crash(nil)
			_, _ = m.Stat("log")
		}
	}()
	wg.Wait()
	if sz, _ := f.Size(); sz != int64(writes*len(chunk)) {
		t.Fatalf("size %d, want %d", sz, writes*len(chunk))
	}
}
