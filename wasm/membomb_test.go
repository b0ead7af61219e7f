package wasm

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/abi"
)

// bombLEB appends v as a signed LEB128 (i32.const, i64.const operands);
// bombULEB as an unsigned one (sizes, counts, indices, limits).
func bombLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func bombULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// bombGrowModule hand-assembles an ABI v1 module that needs no runtime: its
// alloc always answers offset 1024, its init accepts any config, and its
// process scans the batch for the byte 0xB0. Without it, the module emits
// one output (value "ok") per input record. With it, the module grows its
// memory by 16 pages (1 MiB) at a time and fills each new MiB with 0xAA
// (so the host really has to back it), forever; when memory.grow returns
// -1 it traps (unreachable). Its memory starts at one page; maxPages > 0
// declares a maximum (e.g. 65536 = 4 GiB), else none.
func bombGrowModule(maxPages uint32) []byte {
	const (
		i32, i64 = 0x7f, 0x7e
		replyAt  = 32768
		ptr, n   = 0, 1 // process's parameters
		li, ln   = 2, 3 // and locals: the scan index, the record count
		lo       = 4    // the write position / memory.grow's result
	)
	var mod []byte
	mod = append(mod, 0, 'a', 's', 'm', 1, 0, 0, 0)
	section := func(id byte, body []byte) {
		mod = append(mod, id)
		mod = bombULEB(mod, uint64(len(body)))
		mod = append(mod, body...)
	}
	name := func(b []byte, s string) []byte { return append(bombULEB(b, uint64(len(s))), s...) }
	i32c := func(b []byte, v int64) []byte { return bombLEB(append(b, 0x41), v) }
	get := func(b []byte, l byte) []byte { return append(b, 0x20, l) }
	set := func(b []byte, l byte) []byte { return append(b, 0x21, l) }
	mem := func(b []byte, op byte, align, off uint64) []byte { // load/store memarg
		return bombULEB(bombULEB(append(b, op), align), off)
	}

	// Types: 0 (i32) -> i32; 1 (i32, i32) -> i64.
	section(1, []byte{2, 0x60, 1, i32, 1, i32, 0x60, 2, i32, i32, 1, i64})
	section(3, []byte{3, 0, 1, 1}) // alloc, init, process
	if maxPages > 0 {
		section(5, bombULEB([]byte{1, 1, 1}, uint64(maxPages)))
	} else {
		section(5, []byte{1, 0, 1})
	}
	exp := []byte{4}
	exp = append(name(exp, "memory"), 2, 0)
	exp = append(name(exp, abi.ExportAlloc), 0, 0)
	exp = append(name(exp, abi.ExportInit), 0, 1)
	exp = append(name(exp, abi.ExportProcess), 0, 2)
	section(7, exp)

	alloc := append(i32c([]byte{0}, 1024), 0x0b)
	init := append(bombLEB([]byte{0, 0x42}, 0), 0x0b) // i64.const 0: an empty reply

	p := []byte{1, 3, i32} // three i32 locals
	// Scan: for i = ptr; i < ptr+len; i++ { if mem[i] == 0xB0 { bomb } }
	p = set(get(p, ptr), li)
	p = append(p, 0x02, 0x40, 0x03, 0x40) // block, loop
	p = append(get(get(get(p, li), ptr), n), 0x6a, 0x4f, 0x0d, 1)
	p = mem(get(p, li), 0x2d, 0, 0) // i32.load8_u
	p = append(i32c(p, 0xB0), 0x46, 0x04, 0x40)
	// The bomb: loop { o = memory.grow(16); if o == -1 { unreachable }; memory.fill(o<<16, 0xAA, 1 MiB) }
	p = append(p, 0x03, 0x40)
	p = append(i32c(p, 16), 0x40, 0, 0x22, lo)
	p = append(i32c(p, -1), 0x46, 0x04, 0x40, 0x00, 0x0b)
	p = append(i32c(get(p, lo), 16), 0x74)
	p = i32c(i32c(p, 0xAA), 1<<20)
	p = append(p, 0xfc, 0x0b, 0)
	p = append(p, 0x0c, 0, 0x0b) // br to the grow loop; end loop
	p = append(p, 0x0b)          // end if
	p = append(i32c(get(p, li), 1), 0x6a)
	p = append(set(p, li), 0x0c, 0, 0x0b, 0x0b) // br to the scan loop; end loop; end block
	// Results at replyAt: status 0, count n (read from the batch after the
	// topic), n outputs {source i, output "", key null, value "ok",
	// timestamp 0, no headers}, no failures.
	p = mem(get(get(p, ptr), ptr), 0x28, 2, 0)
	p = mem(append(p, 0x6a), 0x28, 0, 4)
	p = set(p, ln)
	p = mem(i32c(i32c(p, replyAt), 0), 0x3a, 0, 0)
	p = mem(get(i32c(p, replyAt), ln), 0x36, 0, 1)
	p = set(i32c(p, replyAt+5), lo)
	p = set(i32c(p, 0), li)
	p = append(p, 0x02, 0x40, 0x03, 0x40)
	p = append(get(get(p, li), ln), 0x4f, 0x0d, 1)
	p = mem(get(get(p, lo), li), 0x36, 0, 0)
	p = mem(i32c(get(p, lo), 0), 0x36, 0, 4)
	p = mem(i32c(get(p, lo), -1), 0x36, 0, 8)
	p = mem(i32c(get(p, lo), 2), 0x36, 0, 12)
	p = mem(i32c(get(p, lo), int64('o')|int64('k')<<8), 0x3b, 0, 16)
	p = mem(bombLEB(append(get(p, lo), 0x42), 0), 0x37, 0, 18)
	p = mem(i32c(get(p, lo), 0), 0x36, 0, 26)
	p = set(append(i32c(get(p, lo), 30), 0x6a), lo)
	p = set(append(i32c(get(p, li), 1), 0x6a), li)
	p = append(p, 0x0c, 0, 0x0b, 0x0b)
	p = mem(i32c(get(p, lo), 0), 0x36, 0, 0)
	// Reply: replyAt<<32 | (o + 4 - replyAt).
	p = bombLEB(append(p, 0x42), replyAt<<32)
	p = append(i32c(append(i32c(get(p, lo), 4), 0x6a), replyAt), 0x6b, 0xad, 0x84, 0x0b)

	code := []byte{3}
	for _, body := range [][]byte{alloc, init, p} {
		code = append(bombULEB(code, uint64(len(body))), body...)
	}
	section(10, code)
	return mod
}

// bombProcStatus reads fields (in bytes) of /proc/self/status.
func bombProcStatus(t *testing.T, fields ...string) []uint64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(fields))
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		for i, f := range fields {
			if k == f {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					t.Fatalf("%s: %v", sc.Text(), err)
				}
				out[i] = kb << 10
			}
		}
	}
	return out
}

const mib = 1 << 20

// bombLiveHeap is the Go heap marked live by the last GC.
func bombLiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestMemoryBomb: a module that allocates without end, under a memory
// limit of 64 MiB, fails its own record only, its neighbours in the batch
// are delivered, and the host does not pay more than the limit for it.
//
// What is measured, and why. wazero (v1.12, no experimental memory
// allocator, WithMemoryCapacityFromMax off, as host.go configures it)
// backs a guest's linear memory with an ordinary Go []byte holding the
// module's minimum pages; nothing reserves the maximum. Each memory.grow
// under the limit appends to that slice: Go allocates a larger one (about
// 1.25x), copies, and the old one is garbage, which the next allocations
// (each larger) cannot reuse and the scavenger returns to the OS only
// slowly. The limit itself is exact: memory.grow past it returns -1
// without allocating, and a module declaring a larger maximum (even
// 4 GiB) is clamped to the limit when compiled. So what a bomb costs the
// host is physical memory resident in this process: the guest's pages it
// touched, the grow copies, and the garbage not yet returned. That is the
// peak resident set (VmHWM, reset before each bomb through
// /proc/self/clear_refs) less the resident set before the bomb, which the
// test bounds by the limit plus a quarter. Then, after each round (a GC
// and a return of free memory to the OS), neither the live Go heap nor
// the resident set may have grown: bombs in a row do not accumulate.
// Virtual size is not measured: address space reserved and never touched
// costs the host nothing.
func TestMemoryBomb(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("measures /proc/self/status")
	}
	const pages = 1024 // 64 MiB
	const limit = pages << 16
	ctx := context.Background()
	rt := newRuntime(t, pages)
	goGuest, err := rt.Compile(ctx, "misbehave", build(t, "./testdata/misbehave"))
	if err != nil {
		t.Fatal(err)
	}
	grow, err := rt.Compile(ctx, "grow", bombGrowModule(0))
	if err != nil {
		t.Fatal(err)
	}
	grow4G, err := rt.Compile(ctx, "grow-max-4g", bombGrowModule(65536))
	if err != nil {
		t.Fatal(err)
	}
	canReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	if !canReset {
		t.Log("cannot reset the peak resident set (/proc/self/clear_refs): the peak is not asserted")
	}
	// The race detector's shadow of the heap is resident and not given
	// back: the resident set then says nothing about the guest.
	raced := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			raced = raced || st.Key == "-race" && st.Value == "true"
		}
	}
	if raced {
		t.Log("race detector on: the resident set is not asserted")
	}
	for _, tc := range []struct {
		name string
		m    *Module
		bomb string
		want []string // the neighbours' output values
	}{
		{"go guest oom", goGuest, "oom", []string{"A", "B", "C", "D"}},
		{"memory.grow loop", grow, "\xb0", []string{"ok", "ok", "ok", "ok"}},
		{"memory.grow loop, declared max 4 GiB", grow4G, "\xb0", []string{"ok", "ok", "ok", "ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			s := NewStage(tc.m, []byte("{}"), nil, &stderr)
			defer s.Close(ctx)
			values := []string{"a", "b", tc.bomb, "c", "d"}
			in := make([]sdk.Record, len(values))
			for i, v := range values {
				in[i] = sdk.Record{Value: []byte(v), Topic: "t", Offset: int64(i)}
			}
			var live0, rss0, worst uint64
			saysMemory := true
			for round := range 4 {
				runtime.GC()
				debug.FreeOSMemory()
				live := bombLiveHeap()
				rss := bombProcStatus(t, "VmRSS")[0]
				if round == 0 {
					live0, rss0 = live, rss
				}
				if canReset {
					if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
						t.Fatal(err)
					}
				}
				discarded := s.Discarded
				var res sdk.Results
				if err := s.Process(ctx, in, &res); err != nil {
					t.Fatal(err)
				}
				peak := bombProcStatus(t, "VmHWM")[0]
				if err := sdk.Check(len(in), &res); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, o := range res.Out {
					if o.Source == 2 {
						t.Fatalf("round %d: the bomb gave an output: %+v", round, o)
					}
					got = append(got, string(o.Record.Value))
				}
				if strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Fatalf("round %d: outputs %q, want %q", round, got, tc.want)
				}
				if len(res.Failed) != 1 || res.Failed[0].Source != 2 {
					t.Fatalf("round %d: failures %+v, want the bomb's alone", round, res.Failed)
				}
				if s.Discarded == discarded {
					t.Fatalf("round %d: no instance was discarded", round)
				}
				msg := res.Failed[0].Err.Error()
				saysMemory = saysMemory && strings.Contains(msg, "memory")
				first, _, _ := strings.Cut(msg, "\n")
				growth := peak - min(peak, rss)
				worst = max(worst, growth)
				t.Logf("round %d: %d bombs (instances discarded); resident before %d MiB, peak %d MiB (+%d MiB); live heap before %.1f MiB; error: %s",
					round, s.Discarded-discarded, rss/mib, peak/mib, growth/mib, float64(live)/mib, first)
			}
			runtime.GC()
			debug.FreeOSMemory()
			live, rss := bombLiveHeap(), bombProcStatus(t, "VmRSS")[0]
			t.Logf("after 4 rounds: live heap %.1f MiB (was %.1f), resident %d MiB (was %d)", float64(live)/mib, float64(live0)/mib, rss/mib, rss0/mib)
			if live > live0+8*mib {
				t.Errorf("the live heap grew from %d to %d MiB over the rounds", live0/mib, live/mib)
			}
			if rss > rss0+limit/2 && !raced {
				t.Errorf("the resident set grew from %d to %d MiB over the rounds", rss0/mib, rss/mib)
			}
			if tc.bomb == "oom" && !strings.Contains(stderr.String(), "out of memory") {
				t.Errorf("guest stderr %q does not say out of memory", stderr.String())
			}
			if canReset && !raced {
				// Guest memory is a mapping of the limit, grown in place
				// (linearmem_linux.go): a Go slice grown by copying cost
				// 2 to 5 times the limit here.
				if worst > limit+limit/4 {
					t.Errorf("a bomb grew the resident set by up to %d MiB for a guest limited to %d MiB", worst/mib, limit/mib)
				}
			}
			if !saysMemory {
				t.Error("the failed record's error does not say memory")
			}
		})
	}
}
