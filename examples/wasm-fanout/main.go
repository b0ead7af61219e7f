//go:build wasip1

// Command wasm-fanout is a weir WASM processor that splits a record into
// several: an order
//
//	{"order": "o1", "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
//
// becomes one record per item, in order, each with the item as its value
// and the order's id put first in it:
//
//	key "o1/0"  value {"order":"o1","sku":"A","qty":2}
//	key "o1/1"  value {"order":"o1","sku":"B","qty":1}
//
// The key is the order id, a slash and the item's index (from 0), or, with
// "key" in the config, that field of the item. Outputs keep the input's
// headers and timestamp. An order with an empty item list gives no record.
// The stage config names the fields, all optional:
//
//	{"id": "order", "items": "items", "key": "sku"}
//
// (id: the order-id field, a string or a number; items: the list field;
// key: the item field to key by, a string; default none). A record fails,
// with no outputs, when its value is not a JSON object, lacks the id or the
// list, or has an item that is not an object (or lacks the key field). An
// item's own field named like the id field is replaced by the order's id.
//
//	weir plugin build examples/wasm-fanout -o examples/wasm-fanout/fanout.wasm
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/guest"
)

func main() {}

type config struct{ ID, Items, Key string }

var cfg config

func init() {
	guest.OnInit(func(raw []byte) error {
		c, err := parseConfig(raw)
		cfg = c
		return err
	})
	guest.Register(split)
}

const example = `{"id": "order", "items": "items", "key": "sku"}`

func parseConfig(raw []byte) (config, error) {
	c := config{ID: "order", Items: "items"}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return c, fmt.Errorf("fan-out config: want an object like %s (all optional), got %s", example, raw)
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		var dst *string
		switch k {
		case "id":
			dst = &c.ID
		case "items":
			dst = &c.Items
		case "key":
			dst = &c.Key
		default:
			return c, fmt.Errorf(`fan-out config: unknown key %q (the keys are "id", "items" and "key": %s)`, k, example)
		}
		if err := json.Unmarshal(m[k], dst); err != nil || *dst == "" {
			return c, fmt.Errorf("fan-out config: %q is %s, not a field name", k, m[k])
		}
	}
	if c.ID == c.Items {
		return c, fmt.Errorf(`fan-out config: "id" and "items" are both %q`, c.ID)
	}
	return c, nil
}

func split(r sdk.Record) ([]sdk.Record, error) {
	if r.Value == nil {
		return nil, errors.New("value is null, not a JSON object")
	}
	var order map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &order); err != nil {
		if json.Valid(r.Value) {
			return nil, errors.New("value is not a JSON object")
		}
		return nil, fmt.Errorf("value is not JSON: %v", err)
	}
	id, ok := order[cfg.ID]
	if !ok {
		return nil, fmt.Errorf("value has no %q field", cfg.ID)
	}
	var idText string
	switch {
	case id[0] == '"':
		if err := json.Unmarshal(id, &idText); err != nil {
			return nil, err
		}
	case id[0] == '-' || id[0] >= '0' && id[0] <= '9':
		idText = string(id)
	default:
		return nil, fmt.Errorf("%q is %s, not a string or a number", cfg.ID, id)
	}
	list, ok := order[cfg.Items]
	if !ok {
		return nil, fmt.Errorf("value has no %q field", cfg.Items)
	}
	var items []json.RawMessage
	if list[0] != '[' || json.Unmarshal(list, &items) != nil {
		return nil, fmt.Errorf("%q is not a list", cfg.Items)
	}
	out := make([]sdk.Record, 0, len(items))
	for i, item := range items {
		v, key, err := itemValue(id, item)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", cfg.Items, i, err)
		}
		if cfg.Key == "" {
			key = []byte(idText + "/" + strconv.Itoa(i))
		}
		o := r
		o.Key, o.Value = key, v
		out = append(out, o)
	}
	return out, nil
}

// itemValue returns the item (a JSON object) as compact JSON with the
// order id first, and the value of its key field (if the config names one).
func itemValue(id, item json.RawMessage) (value, key []byte, err error) {
	var fields []json.RawMessage // name, value, name, value...
	if fields, err = members(item); err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{`)
	name, _ := json.Marshal(cfg.ID)
	b.Write(name)
	b.WriteByte(':')
	json.Compact(&b, id)
	for j := 0; j < len(fields); j += 2 {
		var n string
		if err := json.Unmarshal(fields[j], &n); err != nil {
			return nil, nil, err
		}
		if n == cfg.ID {
			continue
		}
		if cfg.Key != "" && n == cfg.Key {
			var k string
			if json.Unmarshal(fields[j+1], &k) != nil {
				return nil, nil, fmt.Errorf("the key field %q is %s, not a string", n, fields[j+1])
			}
			key = []byte(k)
		}
		b.WriteByte(',')
		b.Write(fields[j])
		b.WriteByte(':')
		json.Compact(&b, fields[j+1])
	}
	b.WriteByte('}')
	if cfg.Key != "" && key == nil {
		return nil, nil, fmt.Errorf("no key field %q", cfg.Key)
	}
	return b.Bytes(), key, nil
}

// members splits a JSON object, in order, into its raw field names and
// values.
func members(obj json.RawMessage) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []json.RawMessage
	for dec.More() {
		start := dec.InputOffset()
		if _, err := dec.Token(); err != nil { // the name
			return nil, err
		}
		name := bytes.TrimLeft(obj[start:dec.InputOffset()], " \t\r\n,")
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, name, v)
	}
	return out, nil
}
