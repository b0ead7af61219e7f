package broker

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/weirstream/weir/core/vfs"
)

// removeHookFS calls hook before removing a file whose name ends with suffix.
type removeHookFS struct {
	vfs.FS
	suffix string
	hook   func()
}

func (f *removeHookFS) Remove(name string) error {
	if h := f.hook; h != nil && strings.HasSuffix(name, f.suffix) {
		f.hook = nil
		h()
	}
	return f.FS.Remove(name)
}

// A topic created (auto-created by a producer, say) while a topic of the
// same name is being deleted must not open the old partition directories
// — it would inherit the deleted data — nor be removed by the deletion
// finishing after it, losing the new topic's acknowledged records at the
// next restart.
func TestCreateDuringDeleteOfSameName(t *testing.T) {
	dir := t.TempDir()
	fsys := &removeHookFS{FS: vfs.OS, suffix: "/orders/topic.json"}
	open := func() *Broker {
		t.Helper()
		b, err := Open(Config{DataDir: dir, FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	if _, err := b.CreateTopic("orders", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Produce(context.Background(), "orders", 0, batch(t, -1, 0, 0, "old", string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	var createErr error
	fsys.hook = func() { _, createErr = b.CreateTopic("orders", 1, nil, false) }
	if err := b.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if createErr == nil {
		// The concurrent create won: it must be a new, empty topic that
		// survives the deletion.
		if offs, err := b.Offsets("orders", 0); err != nil || offs.HighWatermark != 0 {
			t.Fatalf("topic created during the deletion: offsets %+v, %v; want a new empty log", offs, err)
		}
		if _, err := vfs.OS.Stat(path.Join(dir, "topics", "orders", "topic.json")); err != nil {
			t.Fatalf("topic created during the deletion lost its topic.json: %v", err)
		}
	} else if !errors.Is(createErr, ErrTopicExists) {
		t.Fatalf("create during deletion: %v", createErr)
	} else if _, err := b.CreateTopic("orders", 1, nil, false); err != nil {
		t.Fatalf("create after the deletion finished: %v", err)
	}
	if _, err := b.Produce(context.Background(), "orders", 0, batch(t, -1, 0, 0, "new")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open()
	defer b.Close()
	offs, err := b.Offsets("orders", 0)
	if err != nil || offs.LogStart != 0 || offs.HighWatermark != 1 {
		t.Fatalf("after a restart: %+v, %v; want the new topic with its one record", offs, err)
	}
}
