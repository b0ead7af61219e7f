package pipelines

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/stagetest"
)

// The built-in stage kinds pass the stage conformance suite. Each model
// below is written from the kind's documentation in plain Go, without
// expr-lang or the stage's code.

var errModel = errors.New("the model fails this record")

// confInput is record i of a stream mixing JSON objects (some without
// the fields the expressions read, some with fields of the wrong type),
// other JSON, text that is not JSON, and nulls.
func confInput(i int) sdk.Record {
	r := sdk.Record{
		Topic:     "in",
		Partition: int32(i % 3),
		Offset:    int64(i),
		Timestamp: time.UnixMilli(1_795_856_400_000 + int64(i)),
	}
	if i%6 != 0 {
		r.Key = []byte("k" + strconv.Itoa(i%5))
	}
	if i%4 == 1 {
		r.Headers = []sdk.Header{{Key: "trace", Value: []byte(strconv.Itoa(i))}, {Key: "empty", Value: nil}}
	}
	countries := []string{"NZ", "AU", "US", ""}
	switch {
	case i%11 == 5:
		r.Value = nil
	case i%7 == 3:
		r.Value = []byte("plain text " + strconv.Itoa(i))
	case i%17 == 8:
		r.Value = []byte(`[1, 2, 3]`)
	case i%19 == 4:
		r.Value = []byte(`{"n": "7", "country": "NZ", "name": "text-n"}`)
	case i%23 == 9:
		r.Value = []byte(`"a JSON string"`)
	case i%29 == 14:
		r.Value = []byte(fmt.Sprintf(`{"n": 1, "country": "US", "name": "text-%d"}`, i))
	case i%13 == 0:
		r.Value = []byte(fmt.Sprintf(`{"country": %q, "name": %d}`, countries[i%4], i))
	default:
		name := fmt.Sprintf(`"u%d"`, i%13)
		switch i % 10 {
		case 7:
			name = "true" // a boolean name: not a key
		case 2:
			name = "null"
		case 4:
			name = strconv.Itoa(i)
		}
		country := fmt.Sprintf("%q", countries[i%4])
		if i%4 == 3 {
			country = "null"
		}
		r.Value = []byte(fmt.Sprintf(`{"n": %d, "country": %s, "name": %s, "extra": {"deep": [%d]}}`, i%50, country, name, i))
	}
	return r
}

// object decodes a value as expressions see it, when it is a JSON object.
func object(v []byte) (map[string]any, bool) {
	if v == nil {
		return nil, false
	}
	var m map[string]any
	if json.Unmarshal(v, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// number is field f of m when it is a JSON number.
func number(m map[string]any, f string) (float64, bool) {
	n, ok := m[f].(float64)
	return n, ok
}

func confSpec(t testing.TB, output, stageLine string) *Stage {
	t.Helper()
	src := "pipeline: conf\ninput: {topics: [in]}\noutput: " + output + "\nstages:\n  - " + stageLine + "\n"
	s, err := Parse("conf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s.Stages[0]
}

func TestConformanceFilter(t *testing.T) {
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor {
			return confSpec(t, "out", `filter: 'value.n > 20 && value.country != "AU"'`).proc
		},
		Input: confInput,
		Expect: func(in sdk.Record) ([]sdk.Record, error) {
			m, ok := object(in.Value)
			if !ok {
				return nil, errModel // no field n of a non-object
			}
			n, ok := number(m, "n")
			if !ok {
				return nil, errModel // nil or a string compared with 20
			}
			if n > 20 && m["country"] != "AU" {
				return []sdk.Record{in}, nil
			}
			return nil, nil
		},
		Covers: []string{"filter", "fail"},
	})
}

func TestConformanceMap(t *testing.T) {
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor {
			return confSpec(t, "out", `map: '{"id": value.n * 2, "who": key, "c": value.country}'`).proc
		},
		Input: confInput,
		Expect: func(in sdk.Record) ([]sdk.Record, error) {
			m, ok := object(in.Value)
			if !ok {
				return nil, errModel
			}
			n, ok := number(m, "n")
			if !ok {
				return nil, errModel
			}
			c := "null"
			if s, ok := m["country"].(string); ok {
				c = strconv.Quote(s)
			}
			// JSON with the keys sorted, as encoding/json writes maps; a
			// null key reads as "".
			out := in
			out.Value = []byte(fmt.Sprintf(`{"c":%s,"id":%s,"who":%s}`, c, strconv.FormatFloat(n*2, 'f', -1, 64), strconv.Quote(string(in.Key))))
			return []sdk.Record{out}, nil
		},
		Covers: []string{"fail"},
	})
}

func TestConformanceKey(t *testing.T) {
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor {
			return confSpec(t, "out", `key: 'value.name'`).proc
		},
		Input: confInput,
		Expect: func(in sdk.Record) ([]sdk.Record, error) {
			m, ok := object(in.Value)
			if !ok {
				return nil, errModel
			}
			out := in
			switch name := m["name"].(type) {
			case nil:
				out.Key = nil
			case string:
				out.Key = []byte(name)
			case float64:
				out.Key = []byte(strconv.FormatFloat(name, 'f', -1, 64))
			default:
				return nil, errModel // booleans and the rest are no keys
			}
			return []sdk.Record{out}, nil
		},
		Covers: []string{"fail"},
	})
}

func TestConformanceRoute(t *testing.T) {
	stagetest.Run(t, stagetest.Stage{
		New: func(t testing.TB) sdk.Processor {
			return confSpec(t, "{big: b, nz: n, text: x}", `route: {big: 'value.n > 40', nz: 'value.country == "NZ"', text: 'value.name startsWith "text"'}`).proc
		},
		Input: confInput,
		Expect: func(in sdk.Record) ([]sdk.Record, error) {
			m, ok := object(in.Value)
			if !ok {
				return nil, errModel
			}
			out := in
			n, ok := number(m, "n")
			switch {
			case !ok:
				return nil, errModel // the first case fails: nil or a string > 40
			case n > 40:
				out.Output = "big"
			case m["country"] == "NZ":
				out.Output = "nz"
			default:
				// startsWith needs a string: a number or boolean name
				// fails the record; null starts with nothing.
				name, ok := m["name"].(string)
				if m["name"] == nil {
					return nil, nil
				}
				if !ok {
					return nil, errModel
				}
				if len(name) < 4 || name[:4] != "text" {
					return nil, nil // no case: dropped
				}
				out.Output = "text"
			}
			return []sdk.Record{out}, nil
		},
		Covers: []string{"filter", "fail"},
	})
}
