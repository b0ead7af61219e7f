//go:build !linux

package bench

import "time"

// shortSleep is time.Sleep where nanosleep(2) is not wired up.
func shortSleep(d time.Duration) { time.Sleep(d) }
