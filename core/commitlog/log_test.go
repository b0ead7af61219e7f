package commitlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/weirstream/weir/core/record"
	"github.com/weirstream/weir/core/vfs"
)

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4096, IndexIntervalBytes: 256}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := 0; i < 100; i++ {
		b := testBatch(t, "b", 1+i%5, int64(1000+i))
		info, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		if info.BaseOffset != l.LogEndOffset()-int64(1+i%5) {
			t.Fatalf("base %d, leo %d", info.BaseOffset, l.LogEndOffset())
		}
		want = append(want, bytes.Clone(b))
	}
	l.SetHighWatermark(l.LogEndOffset())
	if got := readAll(t, l, 0); len(got) != len(want) {
		t.Fatalf("read %d batches, want %d", len(got), len(want))
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("expected several segments, got %v", l.Segments())
	}
	leo := l.LogEndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.LogEndOffset() != leo {
		t.Fatalf("leo after reopen %d, want %d", l.LogEndOffset(), leo)
	}
	got := readAll(t, l, 0)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after reopen", i)
		}
	}
	// Every offset reads the batch that holds it.
	for off := int64(0); off < leo; off++ {
		b, err := l.Read(off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if off < h.BaseOffset || off > h.LastOffset() {
			t.Fatalf("read(%d) returned batch %d..%d", off, h.BaseOffset, h.LastOffset())
		}
	}
	if _, err := l.Read(leo+1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
}

func TestRejectsBadBatches(t *testing.T) {
	l, err := Open(t.TempDir(), Options{MaxMessageBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	good := testBatch(t, "x", 3, 1)
	crc := bytes.Clone(good)
	crc[len(crc)-1] ^= 0xff
	magic := bytes.Clone(good)
	magic[16] = 1
	short := good[:len(good)-1]
	big := testBatch(t, string(bytes.Repeat([]byte("v"), 3000)), 1, 1)
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"crc":   {crc, record.ErrCRC},
		"magic": {magic, record.ErrMagic},
		"short": {short, record.ErrTruncated},
		"big":   {big, ErrBatchTooLarge},
	} {
		if _, err := l.Append(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	if l.LogEndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("rejected batches changed the log: leo %d size %d", l.LogEndOffset(), l.Size())
	}
}

func TestCleanReopenReadsNoData(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if _, err := l.Append(testBatch(t, "c", 4, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var logReads, logBytes int64
	efs := vfs.NewErrorFS(vfs.OS, func(op vfs.Op) error {
		if op.Kind == vfs.OpReadAt && len(op.Name) > 4 && op.Name[len(op.Name)-4:] == ".log" {
			logReads++
		}
		return nil
	})
	_ = logBytes
	l, err = Open(dir, Options{FS: efs, SegmentBytes: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// One header read per segment checks the last index entry; no scan.
	if n := int64(len(l.Segments())); logReads > n {
		t.Fatalf("clean open made %d reads of .log files for %d segments", logReads, n)
	}
}
