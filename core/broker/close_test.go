package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/core/vfs"
)

// stuckCloseFS holds, once armed, every Create of a partition's producer
// state file (what a clean close writes) until release is closed.
type stuckCloseFS struct {
	vfs.FS
	armed   atomic.Bool
	held    atomic.Int64
	release chan struct{}
	once    sync.Once
}

func (f *stuckCloseFS) Create(name string) (vfs.File, error) {
	if f.armed.Load() && strings.Contains(name, producersFile) {
		f.held.Add(1)
		<-f.release
	}
	return f.FS.Create(name)
}

func (f *stuckCloseFS) open() { f.once.Do(func() { close(f.release) }) }

// TestCloseWithinDeadline: a close that cannot finish (its disk stuck)
// returns at its deadline with ErrCloseDeadline, starts no more partition
// closes, and the partitions it did not close come back whole at the next
// Open, as after a crash.
func TestCloseWithinDeadline(t *testing.T) {
	dir := t.TempDir()
	fsys := &stuckCloseFS{FS: vfs.OS, release: make(chan struct{})}
	t.Cleanup(fsys.open)
	b, err := Open(Config{DataDir: dir, FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	const parts = 40
	if _, err := b.CreateTopic("t", parts, nil, false); err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		for i := range 3 {
			if _, err := b.Produce(context.Background(), "t", int32(p), batch(t, -1, -1, -1, fmt.Sprint(p, "-", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	fsys.armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	within(t, 5*time.Second, "CloseWithin with the disk stuck", func() { err = b.CloseWithin(ctx) })
	took := time.Since(start)
	// Only partitions without producer state to write (those of
	// __consumer_offsets, if any) can have closed.
	var closed, total int
	if !errors.Is(err, ErrCloseDeadline) {
		t.Fatalf("CloseWithin = %v, want ErrCloseDeadline", err)
	}
	if _, serr := fmt.Sscanf(strings.TrimPrefix(err.Error(), ErrCloseDeadline.Error()+": "), "%d of %d partitions closed", &closed, &total); serr != nil ||
		total != parts+coordinatorPartitions(b) || closed > coordinatorPartitions(b) {
		t.Fatalf("CloseWithin = %v, want at most %d of %d partitions closed", err, coordinatorPartitions(b), parts+coordinatorPartitions(b))
	}
	if took > 2*time.Second {
		t.Fatalf("CloseWithin returned %v after a 300ms deadline", took)
	}
	// The closes under way were held; no others were started.
	held := fsys.held.Load()
	if held == 0 || held > partitionWorkers {
		t.Fatalf("%d closes reached the disk, want 1 to %d", held, partitionWorkers)
	}
	fsys.open()
	select {
	case <-b.closeDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the closes under way did not finish once the disk was back")
	}
	if n := fsys.held.Load(); n != held {
		t.Fatalf("%d more partitions were closed after the deadline", n-held)
	}
	// Once the work under way has ended, Close reports the partitions it
	// left as a deadline error, not as a clean close.
	if err := b.Close(); !errors.Is(err, ErrCloseDeadline) {
		t.Fatalf("Close after the deadline: %v, want ErrCloseDeadline", err)
	}

	b, err = Open(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for p := range parts {
		res, err := b.Fetch("t", int32(p), 0, 1<<20, true)
		if err != nil || res.HighWatermark != 3 {
			t.Fatalf("partition %d after the restart: high watermark %d, %v; want 3", p, res.HighWatermark, err)
		}
	}
	if err := b.CloseWithin(context.Background()); err != nil {
		t.Fatalf("a clean close: %v", err)
	}
}

// coordinatorPartitions is how many __consumer_offsets partitions b has.
func coordinatorPartitions(b *Broker) int {
	n := 0
	for _, ti := range b.Topics() {
		if ti.Internal {
			n += int(ti.Partitions)
		}
	}
	return n
}

// TestCloseConcurrent: Close called from several goroutines closes once
// and every call returns its result.
func TestCloseConcurrent(t *testing.T) {
	b, err := Open(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("t", 4, nil, false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = b.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
}
