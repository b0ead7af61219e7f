//go:build linux

package wasm

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// linearMemory backs each instance's memory with its own anonymous
// mapping of the memory's maximum (the runtime's limit): address space
// only, until the guest touches a page. Growing is a re-slice, never a
// copy, so a guest costs the host at most the limit, and closing the
// instance unmaps it, returning its pages at once.
var linearMemory experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return &mappedMemory{}
	}
	return &mappedMemory{b: b[:0]}
})

type mappedMemory struct{ b []byte }

func (m *mappedMemory) Reallocate(size uint64) []byte {
	if m.b == nil || size > uint64(cap(m.b)) {
		return nil
	}
	return m.b[:size]
}

func (m *mappedMemory) Free() {
	if m.b != nil {
		syscall.Munmap(m.b[:cap(m.b)])
		m.b = nil
	}
}
