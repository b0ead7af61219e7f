//go:build !linux

package bench

import "errors"

// fdLimit is unknown here: no check before starting.
func fdLimit() (soft, hard int64) { return -1, -1 }

func dropCaches() error { return errors.New("dropping the page cache is only supported on Linux") }
