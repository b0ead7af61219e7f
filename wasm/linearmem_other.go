//go:build !linux

package wasm

import "github.com/tetratelabs/wazero/experimental"

// linearMemory is wazero's default elsewhere: a Go slice grown by copying.
var linearMemory experimental.MemoryAllocator
