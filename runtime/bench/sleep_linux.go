package bench

import (
	"syscall"
	"time"
)

// shortSleep blocks the calling thread for about d with nanosleep(2), which
// overshoots by ~0.1 ms here; time.Sleep below a millisecond overshoots to
// about 1 ms when the Go scheduler has nothing else to run (its netpoller
// waits in whole milliseconds).
func shortSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
