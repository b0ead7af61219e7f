//go:build wasip1

// Command misbehave is a test module: a record's value says how to fail.
// "panic" panics (the SDK turns it into the record's error), "exit" ends
// the guest (the call fails and the instance is lost), "loop" never
// returns, "oom" allocates past any memory limit; "print" writes a line
// to stdout (in two writes, "to stdout, in two writes") and one to stderr
// ("to stderr") and, like any other value, comes back upper-cased.
package main

import (
	"bytes"
	"os"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

var sink [][]byte

func init() {
	guest.Register(func(r sdk.Record) ([]sdk.Record, error) {
		switch string(r.Value) {
		case "panic":
			panic("asked to")
		case "exit":
			os.Exit(3)
		case "loop":
			for {
				sink = sink[:0]
			}
		case "print":
			os.Stdout.WriteString("to stdout, ")
			os.Stdout.WriteString("in two writes\n")
			os.Stderr.WriteString("to stderr\n")
		case "oom":
			for {
				sink = append(sink, make([]byte, 16<<20))
			}
		}
		r.Value = bytes.ToUpper(r.Value)
		return []sdk.Record{r}, nil
	})
}
