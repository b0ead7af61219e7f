package vfs

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestInjectedErrors(t *testing.T) {
	if !errors.Is(EIO, ErrInjected) || !errors.Is(EIO, syscall.EIO) || errors.Is(EIO, syscall.ENOSPC) {
		t.Fatal("EIO does not match ErrInjected and syscall.EIO only")
	}
	if !errors.Is(ENOSPC, ErrInjected) || !errors.Is(ENOSPC, syscall.ENOSPC) || errors.Is(ENOSPC, syscall.EIO) {
		t.Fatal("ENOSPC does not match ErrInjected and syscall.ENOSPC only")
	}
	if !strings.HasPrefix(EIO.Error(), "vfs: ") {
		t.Fatalf("EIO message %q", EIO.Error())
	}
	if OpSyncDir.String() != "sync-dir" || OpKind(99).String() != "OpKind(99)" {
		t.Fatalf("OpKind.String: %q %q", OpSyncDir, OpKind(99))
	}
}

// script runs a fixed sequence of 8 operations and returns the first error.
// Indexes: 0 MkdirAll, 1 Create, 2 Write, 3 Sync, 4 SyncDir, 5 Write,
// 6 Size, 7 Close.
func script(fsys FS) error {
	if err := fsys.MkdirAll("d"); err != nil {
		return err
	}
	f, err := fsys.Create("d/a")
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("one")); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := fsys.SyncDir("d"); err != nil {
		return err
	}
	if _, err := f.Write([]byte("two")); err != nil {
		return err
	}
	if _, err := f.Size(); err != nil {
		return err
	}
	return f.Close()
}

func TestErrorFSCountsEveryOp(t *testing.T) {
	var ops []Op
	e := NewErrorFS(NewMem(), func(op Op) error { ops = append(ops, op); return nil })
	if err := script(e); err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{0, OpMkdirAll, "d"}, {1, OpCreate, "d/a"}, {2, OpWrite, "d/a"}, {3, OpSync, "d/a"},
		{4, OpSyncDir, "d"}, {5, OpWrite, "d/a"}, {6, OpSize, "d/a"}, {7, OpClose, "d/a"},
	}
	if len(ops) != len(want) {
		t.Fatalf("ops = %v, want %v", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Fatalf("op %d = %v, want %v", i, ops[i], want[i])
		}
	}
	if e.Ops() != 8 {
		t.Fatalf("Ops() = %d", e.Ops())
	}
	// FS ops not in the script are counted too.
	for _, op := range []func() error{
		func() error { _, err := e.Open("d/a"); return err },
		func() error { _, err := e.OpenAppend("d/a"); return err },
		func() error { _, err := e.List("d"); return err },
		func() error { _, err := e.Stat("d/a"); return err },
		func() error { return e.Rename("d/a", "d/b") },
		func() error { return e.Remove("d/b") },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	kinds := []OpKind{OpOpen, OpOpenAppend, OpList, OpStat, OpRename, OpRemove}
	for i, k := range kinds {
		if ops[8+i].Kind != k || ops[8+i].Index != int64(8+i) {
			t.Fatalf("op %d = %v, want kind %v", 8+i, ops[8+i], k)
		}
	}
	if ops[12].Name != "d/a -> d/b" {
		t.Fatalf("rename op name %q", ops[12].Name)
	}
}

func TestErrorFSFailAt(t *testing.T) {
	for i := int64(0); i < 8; i++ {
		m := NewMem()
		var seen []int64
		inj := FailAt(i, EIO)
		e := NewErrorFS(m, func(op Op) error { seen = append(seen, op.Index); return inj(op) })
		err := script(e)
		if !errors.Is(err, EIO) || !errors.Is(err, syscall.EIO) || !errors.Is(err, ErrInjected) {
			t.Fatalf("FailAt(%d): script error %v", i, err)
		}
		if !strings.Contains(err.Error(), "(op "+string(rune('0'+i))+")") || !strings.HasPrefix(err.Error(), "vfs: ") {
			t.Fatalf("FailAt(%d): error message %q", i, err)
		}
		if int64(len(seen)) != i+1 || e.Ops() != i+1 {
			t.Fatalf("FailAt(%d): script stopped after %d ops (Ops=%d)", i, len(seen), e.Ops())
		}
	}
	// The failed op is not performed: failing the Create (op 1) leaves no file.
	m := NewMem()
	_ = script(NewErrorFS(m, FailAt(1, EIO)))
	wantNotExist(t, m, "d/a")
	// Failing the first Write (op 2) leaves the file empty; nothing else fails.
	e := NewErrorFS(NewMem(), FailAt(2, ENOSPC))
	f, _ := e.Create("x") // op 0
	if _, err := f.Write([]byte("a")); err != nil {
		t.Fatal(err) // op 1
	}
	if n, err := f.Write([]byte("b")); n != 0 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("op 2 = %d, %v", n, err)
	}
	if _, err := f.Write([]byte("c")); err != nil {
		t.Fatal(err) // op 3
	}
	if sz, _ := f.Size(); sz != 2 {
		t.Fatalf("size %d, want 2", sz)
	}
}

func TestErrorFSFailFrom(t *testing.T) {
	m := NewMem()
	e := NewErrorFS(m, FailFrom(4, EIO))
	if err := script(e); !errors.Is(err, EIO) {
		t.Fatalf("script error %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := e.Stat("d/a"); !errors.Is(err, EIO) {
			t.Fatalf("op after FailFrom point = %v", err)
		}
	}
	if e.Ops() != 8 {
		t.Fatalf("Ops = %d, want 8", e.Ops())
	}
	// The SyncDir (op 4) never happened: the file is gone after a crash.
	wantNotExist(t, m.Crash(nil), "d/a")
	wantContent(t, m, "d/a", "one")
}

func TestErrorFSFailKind(t *testing.T) {
	m := NewMem()
	e := NewErrorFS(m, FailKind(OpWrite, 1, ENOSPC))
	f, err := e.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	results := make([]error, 4)
	for i := range results {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		_, results[i] = f.Write([]byte{byte('0' + i)})
	}
	for i, err := range results {
		if (i == 1) != (err != nil) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	wantContent(t, m, "a", "023")

	e = NewErrorFS(NewMem(), FailKind(OpSync, -1, EIO))
	f, _ = e.Create("a")
	for range 3 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("Sync = %v, want EIO", err)
		}
	}
}

func TestErrorFSTornWrites(t *testing.T) {
	m := NewMem()
	e := NewErrorFS(m, FailKind(OpWrite, 1, EIO))
	e.SetTornWrites(true)
	f, _ := e.Create("a")
	if _, err := f.Write([]byte("head|")); err != nil {
		t.Fatal(err)
	}
	n, err := f.Write([]byte("0123456789"))
	if !errors.Is(err, EIO) || n != 5 {
		t.Fatalf("torn Write = %d, %v; want 5, EIO", n, err)
	}
	wantContent(t, m, "a", "head|01234")

	// Odd length: len/2 rounds down. Off: nothing written.
	m = NewMem()
	e = NewErrorFS(m, FailKind(OpWrite, -1, EIO))
	e.SetTornWrites(true)
	f, _ = e.Create("a")
	if n, _ := f.Write([]byte("abcde")); n != 2 {
		t.Fatalf("torn odd write n = %d", n)
	}
	e.SetTornWrites(false)
	if n, _ := f.Write([]byte("xyz")); n != 0 {
		t.Fatalf("untorn failed write n = %d", n)
	}
	wantContent(t, m, "a", "ab")
}

func TestErrorFSSetCounted(t *testing.T) {
	var ops []Op
	e := NewErrorFS(NewMem(), func(op Op) error {
		ops = append(ops, op)
		return EIO
	})
	e.SetCounted(OpSync, OpSyncDir)
	if err := e.MkdirAll("d"); err != nil {
		t.Fatal(err)
	}
	f, err := e.Create("d/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, EIO) {
		t.Fatalf("Sync = %v", err)
	}
	if err := e.SyncDir("d"); !errors.Is(err, EIO) {
		t.Fatalf("SyncDir = %v", err)
	}
	if len(ops) != 2 || ops[0] != (Op{0, OpSync, "d/a"}) || ops[1] != (Op{1, OpSyncDir, "d"}) {
		t.Fatalf("ops = %v", ops)
	}
	if e.Ops() != 2 {
		t.Fatalf("Ops = %d", e.Ops())
	}
	e.SetCounted()
	if _, err := e.Stat("d/a"); !errors.Is(err, EIO) {
		t.Fatalf("Stat after SetCounted() = %v", err)
	}
}

func TestErrorFSInnerErrorsPassThrough(t *testing.T) {
	e := NewErrorFS(NewMem(), nil)
	if _, err := e.Open("missing"); !IsNotExist(err) || errors.Is(err, ErrInjected) {
		t.Fatalf("Open missing = %v", err)
	}
	if e.Ops() != 1 {
		t.Fatalf("Ops = %d", e.Ops())
	}
}
