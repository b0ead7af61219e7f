package pipelines

import (
	"context"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weirstream/weir/sdk"
)

func init() {
	registerKind(&StageKind{
		Name:    "filter",
		Summary: "keep the records for which the expression is true, drop the rest",
		Fields:  []string{"filter: EXPR (boolean)"},
		Example: `- filter: 'value.country == "NZ" && value.amount > 100'`,
		build: func(d *decoder, n *yaml.Node) (processor, string, bool) {
			slots := &slotTable{}
			p, ok := d.compile(n, "filter", true, slots)
			if !ok {
				return nil, "", false
			}
			s := &filterStage{cond: p}
			s.ev = newEvaluator(p.use, slots)
			return s, "keep records where " + p.src, true
		},
	})
	registerKind(&StageKind{
		Name:    "map",
		Summary: "replace the value (and optionally the key and headers) with expression results",
		Fields: []string{
			"map: EXPR (the new value), or a mapping of:",
			"  value: EXPR    new value: strings and bytes as they are, null as null, anything else as JSON",
			"  key: EXPR      new key: a string, a number or null (the output partition follows the new key)",
			"  headers: EXPR  new headers: a map of string to string (replaces all headers)",
		},
		Example: `- map: '{"user": key, "amount": value.amount, "big": value.amount > 1000}'`,
		build:   buildMap,
	})
	registerKind(&StageKind{
		Name:    "key",
		Summary: "re-key the record; the output partition is murmur2(new key), as Kafka's producers place keys",
		Fields:  []string{"key: EXPR (a string, a number or null)"},
		Example: `- key: 'value.user_id'`,
		build: func(d *decoder, n *yaml.Node) (processor, string, bool) {
			slots := &slotTable{}
			p, ok := d.compile(n, "key", false, slots)
			if !ok {
				return nil, "", false
			}
			s := &mapStage{key: p}
			s.ev = newEvaluator(p.use, slots)
			return s, "key = " + p.src, true
		},
	})
	registerKind(&StageKind{
		Name:    "route",
		Summary: "send each record to the first output whose condition is true (in the order written); records no condition takes are dropped",
		Fields:  []string{"route: {OUTPUT: EXPR (boolean) or true, ...}"},
		Example: `- route: {high_value: 'value.big', default: true}`,
		build:   buildRoute,
	})
}

// filterStage keeps the records its condition holds for.
type filterStage struct {
	cond *program
	ev   evaluator
}

func (s *filterStage) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	for i := range in {
		s.ev.load(&in[i])
		v, err := s.ev.run(s.cond)
		if err != nil {
			res.Fail(i, fmt.Errorf("filter %s: %w", s.cond.src, err))
			continue
		}
		keep, ok := v.(bool)
		if !ok {
			res.Fail(i, fmt.Errorf("filter %s: gave %T, not a boolean", s.cond.src, v))
			continue
		}
		if keep {
			res.Emit(i, in[i])
		}
	}
	return ctx.Err()
}

// mapStage rewrites value, key and headers (those with an expression).
type mapStage struct {
	value, key, headers *program
	ev                  evaluator
}

func buildMap(d *decoder, n *yaml.Node) (processor, string, bool) {
	n = resolve(n)
	s := &mapStage{}
	s.ev.slots = &slotTable{}
	if n.Kind == yaml.ScalarNode {
		p, ok := d.compile(n, "map", false, s.ev.slots)
		if !ok {
			return nil, "", false
		}
		s.value = p
		s.ev.use = p.use
		return s, "value = " + p.src, true
	}
	fs := d.fields(n, "map", "value", "key", "headers")
	if fs == nil {
		return nil, "", false
	}
	if len(n.Content) == 0 { // (unknown fields are reported as such)
		d.errorf(n, "map: {value: EXPR}", "map: nothing to map")
		return nil, "", false
	}
	ok := true
	var parts []string
	for _, name := range []string{"value", "key", "headers"} {
		f, has := fs[name]
		if !has {
			continue
		}
		p, good := d.compile(f.val, "map."+name, false, s.ev.slots)
		ok = ok && good
		if !good {
			continue
		}
		s.ev.use.or(p.use)
		parts = append(parts, name+" = "+p.src)
		switch name {
		case "value":
			s.value = p
		case "key":
			s.key = p
		case "headers":
			s.headers = p
		}
	}
	return s, strings.Join(parts, "; "), ok
}

func (s *mapStage) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	for i := range in {
		out, err := s.apply(&in[i])
		if err != nil {
			res.Fail(i, err)
			continue
		}
		res.Emit(i, out)
	}
	return ctx.Err()
}

func (s *mapStage) apply(r *sdk.Record) (sdk.Record, error) {
	s.ev.load(r)
	out := *r
	if s.value != nil {
		v, err := s.ev.run(s.value)
		if err == nil {
			out.Value, err = encodeValue(v)
		}
		if err != nil {
			return out, fmt.Errorf("map value %s: %w", s.value.src, err)
		}
	}
	if s.key != nil {
		v, err := s.ev.run(s.key)
		if err == nil {
			out.Key, err = encodeKey(v)
		}
		if err != nil {
			return out, fmt.Errorf("key %s: %w", s.key.src, err)
		}
	}
	if s.headers != nil {
		v, err := s.ev.run(s.headers)
		if err != nil {
			return out, fmt.Errorf("map headers %s: %w", s.headers.src, err)
		}
		h, err := toHeaders(v)
		if err != nil {
			return out, fmt.Errorf("map headers %s: %w", s.headers.src, err)
		}
		out.Headers = h
	}
	return out, nil
}

func toHeaders(v any) ([]sdk.Header, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		if ms, ok := v.(map[string]string); ok {
			m = make(map[string]any, len(ms))
			for k, x := range ms {
				m[k] = x
			}
		} else {
			return nil, fmt.Errorf("want a map of header names to values, got %T", v)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	hs := make([]sdk.Header, 0, len(m))
	for _, k := range keys {
		b, err := encodeValue(m[k])
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		hs = append(hs, sdk.Header{Key: k, Value: b})
	}
	return hs, nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// routeStage names each record's output: the first case that holds.
type routeStage struct {
	cases []routeCase
	ev    evaluator
}

type routeCase struct {
	name   string
	cond   *program // nil: always
	pos    Pos
	always bool
}

func buildRoute(d *decoder, n *yaml.Node) (processor, string, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "route: {OUTPUT: 'EXPR', default: true}", "route: want a mapping of output names to conditions, got %s", kindName(n))
		return nil, "", false
	}
	s := &routeStage{}
	s.ev.slots = &slotTable{}
	ok := true
	var parts []string
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if seen[k.Value] {
			d.errorf(k, "", "route: output %q given twice", k.Value)
			ok = false
			continue
		}
		seen[k.Value] = true
		c := routeCase{name: k.Value, pos: d.pos(k)}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
			if v.Value != "true" {
				d.errorf(v, "remove the case, or give a condition", "route %s: false never routes", k.Value)
				ok = false
				continue
			}
			c.always = true
			parts = append(parts, k.Value+" always")
		} else {
			p, good := d.compile(v, "route "+k.Value, true, s.ev.slots)
			if !good {
				ok = false
				continue
			}
			c.cond = p
			s.ev.use.or(p.use)
			parts = append(parts, k.Value+" if "+p.src)
		}
		s.cases = append(s.cases, c)
	}
	if len(s.cases) == 0 && ok {
		d.errorf(n, "route: {OUTPUT: 'EXPR'}", "route: no outputs")
		ok = false
	}
	for i, c := range s.cases {
		if c.always && i < len(s.cases)-1 {
			d.errorf(n.Content[2*(i+1)], "move it last", "route: the cases after %q (always true) are never reached", c.name)
			ok = false
			break
		}
	}
	return s, "first of: " + strings.Join(parts, ", "), ok
}

func (s *routeStage) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
records:
	for i := range in {
		loaded := false
		for _, c := range s.cases {
			take := c.always
			if !take {
				if !loaded {
					s.ev.load(&in[i])
					loaded = true
				}
				v, err := s.ev.run(c.cond)
				if err != nil {
					res.Fail(i, fmt.Errorf("route %s %s: %w", c.name, c.cond.src, err))
					continue records
				}
				b, ok := v.(bool)
				if !ok {
					res.Fail(i, fmt.Errorf("route %s %s: gave %T, not a boolean", c.name, c.cond.src, v))
					continue records
				}
				take = b
			}
			if take {
				out := in[i]
				out.Output = c.name
				res.Emit(i, out)
				continue records
			}
		}
	}
	return ctx.Err()
}
