package vfs

import (
	"testing"
)

func TestWriteFileAtomicIsDurableAndAllOrNothing(t *testing.T) {
	m := NewMem()
	if err := WriteFileAtomic(m, "/d", "f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(m.Crash(nil), "/d/f"); err != nil || string(b) != "one" {
		t.Fatalf("after crash: %q %v", b, err)
	}
	// A crash at every op of a replacement leaves "one" or "two", never a mix.
	for i := int64(0); ; i++ {
		m2 := m.Crash(nil)
		e := NewErrorFS(m2, FailFrom(i, EIO))
		err := WriteFileAtomic(e, "/d", "f", []byte("two"))
		b, rerr := ReadFile(m2.Crash(nil), "/d/f")
		if rerr != nil || (string(b) != "one" && string(b) != "two") {
			t.Fatalf("crash at op %d: %q %v", i, b, rerr)
		}
		if err == nil {
			if string(b) != "two" {
				t.Fatalf("WriteFileAtomic returned nil but the new content is not durable: %q", b)
			}
			break
		}
	}
}

func TestRemoveAll(t *testing.T) {
	m := NewMem()
	for _, f := range []string{"/r/a", "/r/s/b", "/r/s/t/c"} {
		if err := m.MkdirAll(f[:len(f)-2]); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileSync(m, f, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveAll(m, "/r"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.List("/r"); !IsNotExist(err) {
		t.Fatalf("/r still there: %v", err)
	}
	if err := RemoveAll(m, "/missing"); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
}
