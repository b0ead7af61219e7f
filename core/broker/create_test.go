package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/core/vfs"
)

// gateFS holds every Create of a file whose path contains match until
// release is closed; entered is closed when the first one arrives.
type gateFS struct {
	vfs.FS
	match   string
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	opened  sync.Once
}

// open releases the held calls and lets every later one through.
func (g *gateFS) open() { g.opened.Do(func() { close(g.release) }) }

func newGateFS(match string) *gateFS {
	return &gateFS{FS: vfs.OS, match: match, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateFS) Create(name string) (vfs.File, error) {
	if strings.Contains(name, g.match) {
		g.once.Do(func() { close(g.entered) })
		<-g.release
	}
	return g.FS.Create(name)
}

// within fails the test unless fn returns within d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// Creating a topic with many partitions takes seconds of fsyncs; requests
// for other topics must not wait behind it (they did, when the broker's
// lock was held for the whole creation), and the topic appears whole or
// not at all.
func TestCreateTopicDoesNotBlockOtherTopics(t *testing.T) {
	fsys := newGateFS("/topics/big/")
	b, err := Open(Config{DataDir: t.TempDir(), FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	t.Cleanup(fsys.open) // first, so a failed test does not hang in Close
	if _, err := b.CreateTopic("other", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() {
		_, err := b.CreateTopic("big", 40, nil, false)
		created <- err
	}()
	<-fsys.entered // the creation is under way, stuck in its first partition

	within(t, 10*time.Second, "requests to another topic during a creation", func() {
		if _, err := b.Produce(context.Background(), "other", 0, batch(t, -1, -1, -1, "a")); err != nil {
			t.Error(err)
		}
		if res, err := b.Fetch("other", 0, 0, 1<<20, true); err != nil || len(res.Records) == 0 {
			t.Errorf("fetch: %v, %d bytes", err, len(res.Records))
		}
		if names := b.Topics(); len(names) != 2 { // __consumer_offsets and other; big is not there yet
			t.Errorf("topics during the creation: %v", names)
		}
		if _, err := b.CreateTopic("big", 1, nil, false); !errors.Is(err, ErrTopicExists) {
			t.Errorf("second create of big: %v", err)
		}
		if _, err := b.Topic("big", false); !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("big before its creation finished: %v", err)
		}
		if _, err := b.Offsets("big", 0); !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("offsets of big before its creation finished: %v", err)
		}
	})
	// An auto-creating lookup waits for the creation in progress instead of
	// failing or creating a second topic.
	looked := make(chan TopicInfo, 1)
	go func() {
		ti, err := b.Topic("big", true)
		if err != nil {
			t.Error(err)
		}
		looked <- ti
	}()
	fsys.open()
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if ti := <-looked; ti.Partitions != 40 {
		t.Fatalf("auto-creating lookup during the creation: %+v", ti)
	}
	for p := int32(0); p < 40; p++ {
		if _, err := b.Produce(context.Background(), "big", p, batch(t, -1, -1, -1, fmt.Sprint(p))); err != nil {
			t.Fatal(err)
		}
	}
}

// Close during a creation waits for it; the topic is then closed cleanly
// with the others and is whole after a restart.
func TestCloseWaitsForCreateTopic(t *testing.T) {
	dir := t.TempDir()
	fsys := newGateFS("/topics/big/")
	b, err := Open(Config{DataDir: dir, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fsys.open)
	created := make(chan error, 1)
	go func() {
		_, err := b.CreateTopic("big", 30, nil, false)
		created <- err
	}()
	<-fsys.entered
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// Close has begun once new creations are refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.CreateTopic("late", 1, nil, false); errors.Is(err, ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a creation was in progress", err)
	default:
	}
	fsys.open()
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	b, err = Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ti, err := b.Topic("big", false); err != nil || ti.Partitions != 30 {
		t.Fatalf("big after restart: %+v, %v", ti, err)
	}
}

// Partitions are opened and closed concurrently; each must come back with
// its own data.
func TestManyPartitionsRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	if _, err := b.CreateTopic("many", n, nil, false); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < n; p++ {
		vals := make([]string, p%5+1)
		for i := range vals {
			vals[i] = fmt.Sprintf("p%d-%d", p, i)
		}
		if _, err := b.Produce(context.Background(), "many", p, batch(t, -1, -1, -1, vals...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for p := int32(0); p < n; p++ {
		off, err := b.Offsets("many", p)
		if err != nil || off.HighWatermark != int64(p%5+1) {
			t.Fatalf("partition %d: %+v, %v", p, off, err)
		}
		res, err := b.Fetch("many", p, 0, 1<<20, true)
		if err != nil || !strings.Contains(string(res.Records), fmt.Sprintf("p%d-0", p)) {
			t.Fatalf("partition %d: %v, %q", p, err, res.Records)
		}
	}
}
