// Command testplugin is a weir plugin for the tests of package plugins: a
// record's value says what to do. "panic" panics (the record fails);
// "exit" ends the process; "garbage"
// replies with an output naming an input that does not exist; "env"
// returns the plugin's environment, one variable per output; "split:N"
// returns N copies; "sleep:MS" sleeps and returns "SLEPT"; "drop" returns nothing; "fail" fails the record; any
// other value comes back upper-cased, prefixed by the config's "prefix".
// The config {"refuse": true} is refused.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/plugins/plugin"
	"github.com/weirstream/weir/sdk"
)

type proc struct {
	prefix string
	each   *plugin.Func
}

func (p *proc) Configure(config []byte) error {
	var c struct {
		Prefix string
		Refuse bool
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return err
	}
	if c.Refuse {
		return errors.New("refusing as asked")
	}
	p.prefix = c.Prefix
	return nil
}

func (p *proc) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	for _, r := range in {
		if string(r.Value) == "garbage" {
			res.Emit(len(in)+5, r)
			return nil
		}
	}
	return p.each.Process(ctx, in, res)
}

func main() {
	p := &proc{}
	p.each = plugin.PerRecord(func(r sdk.Record) ([]sdk.Record, error) {
		v := string(r.Value)
		switch {
		case v == "panic":
			panic("asked to")
		case v == "exit":
			os.Exit(3)
		case v == "env":
			var outs []sdk.Record
			for _, e := range os.Environ() {
				outs = append(outs, sdk.Record{Key: r.Key, Value: []byte(e)})
			}
			return outs, nil
		case strings.HasPrefix(v, "sleep:"):
			ms, _ := strconv.Atoi(v[len("sleep:"):])
			time.Sleep(time.Duration(ms) * time.Millisecond)
			r.Value = []byte("SLEPT")
			return []sdk.Record{r}, nil
		case v == "drop":
			return nil, nil
		case v == "fail":
			return nil, errors.New("failed as asked")
		case strings.HasPrefix(v, "split:"):
			n, _ := strconv.Atoi(v[len("split:"):])
			outs := make([]sdk.Record, n)
			for i := range outs {
				outs[i] = r
			}
			return outs, nil
		}
		r.Value = append([]byte(p.prefix), bytes.ToUpper(r.Value)...)
		return []sdk.Record{r}, nil
	})
	plugin.Serve(p)
}
