package bench

import (
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// fdLimit returns the soft and hard RLIMIT_NOFILE (the Go runtime raises
// the soft limit to the hard one at start-up).
func fdLimit() (soft, hard int64) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return -1, -1
	}
	clamp := func(v uint64) int64 { return int64(min(v, math.MaxInt64)) }
	return clamp(r.Cur), clamp(r.Max)
}

// dropCaches writes dirty pages out and drops the page cache, dentries and
// inodes (needs root).
func dropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}
