package vfs

import (
	"errors"
	"io"
	"path/filepath"
	"testing"
)

func TestOSFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "a")
	f := mustCreate(t, OS, name)
	mustWrite(t, f, "hello")
	mustSync(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, OS, dir)

	// OpenAppend appends at the end.
	g, err := OS.OpenAppend(name)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, " world")
	wantContent(t, OS, name, "hello world")
	if sz, err := g.Size(); sz != 11 || err != nil {
		t.Fatalf("Size = %d, %v", sz, err)
	}
	if g.Name() != name {
		t.Fatalf("Name = %q", g.Name())
	}

	// Truncate moves the write offset to the new size.
	if err := g.Truncate(5); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "!")
	wantContent(t, OS, name, "hello!")

	// ReadAt semantics.
	buf := make([]byte, 10)
	if n, err := g.ReadAt(buf, 3); n != 3 || err != io.EOF {
		t.Fatalf("short ReadAt = %d, %v", n, err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// Read-only files reject writes.
	r, err := OS.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("Write on read-only file succeeded")
	}
	r.Close()

	// Create truncates.
	h := mustCreate(t, OS, name)
	mustWrite(t, h, "new")
	h.Close()
	wantContent(t, OS, name, "new")
}

func TestOSDirOps(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "x", "y")
	if err := OS.MkdirAll(sub); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c", "a", "b"} {
		f := mustCreate(t, OS, filepath.Join(sub, n))
		f.Close()
	}
	wantList(t, OS, sub, "a", "b", "c")
	if err := OS.Rename(filepath.Join(sub, "c"), filepath.Join(sub, "a")); err != nil {
		t.Fatal(err)
	}
	if err := OS.Remove(filepath.Join(sub, "b")); err != nil {
		t.Fatal(err)
	}
	wantList(t, OS, sub, "a")
	mustSyncDir(t, OS, sub)

	_, err := OS.Stat(filepath.Join(dir, "missing"))
	if !IsNotExist(err) {
		t.Fatalf("Stat missing = %v, want IsNotExist", err)
	}
	wantNotExist(t, OS, filepath.Join(dir, "missing"))
	if _, err := OS.Open(filepath.Join(dir, "missing")); !IsNotExist(err) {
		t.Fatalf("Open missing = %v", err)
	}
	if _, err := OS.OpenAppend(filepath.Join(dir, "missing")); !IsNotExist(err) {
		t.Fatalf("OpenAppend missing = %v", err)
	}
	if _, err := OS.List(filepath.Join(dir, "missing")); !IsNotExist(err) {
		t.Fatalf("List missing = %v", err)
	}
	if err := OS.SyncDir(filepath.Join(dir, "missing")); !IsNotExist(err) {
		t.Fatalf("SyncDir missing = %v", err)
	}
	if IsNotExist(errors.New("other")) {
		t.Fatal("IsNotExist(other) = true")
	}
}
