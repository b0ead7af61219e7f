package pipelines

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// head is the smallest valid spec; bad cases append to it, so their lines
// start at 4.
const head = "pipeline: p\ninput: {topics: [in]}\noutput: out\n"

// wantErr is one expected SpecError: its position, and substrings of its
// message and hint ("" for the hint: there must be none).
type wantErr struct {
	pos, msg, hint string
}

func checkSpecErrors(t *testing.T, src string, err error, want []wantErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", src)
	}
	if !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("error does not wrap ErrInvalidSpec: %v", err)
	}
	var es SpecErrors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, not SpecErrors: %v", err, err)
	}
	if len(es) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v\nspec:\n%s", len(es), len(want), err, numbered(src))
	}
	for i, w := range want {
		e := es[i]
		if !errors.Is(e, ErrInvalidSpec) {
			t.Errorf("error %d does not wrap ErrInvalidSpec", i)
		}
		if got := e.Pos.String(); got != w.pos {
			t.Errorf("error %d at %s, want %s: %v\nspec:\n%s", i, got, w.pos, e, numbered(src))
		}
		if !strings.Contains(e.Msg, w.msg) {
			t.Errorf("error %d: message %q does not contain %q", i, e.Msg, w.msg)
		}
		if w.hint == "" && e.Hint != "" || !strings.Contains(e.Hint, w.hint) {
			t.Errorf("error %d: hint %q, want one containing %q", i, e.Hint, w.hint)
		}
		if strings.Contains(e.Msg, "\n") {
			t.Errorf("error %d: message has a newline: %q", i, e.Msg)
		}
		if s := e.Error(); !strings.HasPrefix(s, w.pos+": ") {
			t.Errorf("error %d: %q does not start with its position", i, s)
		}
	}
}

func numbered(src string) string {
	var b strings.Builder
	for i, l := range strings.Split(src, "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	long := "value.s == \"" + strings.Repeat("a", MaxExprLen) + "\""
	// 1+1+...+1 > 0: under MaxExprLen bytes, over MaxExprNodes nodes.
	nodes := strings.Repeat("1+", MaxExprNodes/2+10) + "1 > 0"
	if len(nodes) > MaxExprLen {
		t.Fatal("node-budget expression is too long")
	}
	cases := []struct {
		name string
		src  string
		want []wantErr
	}{
		// YAML itself.
		{"yaml unclosed flow mapping", "pipeline: p\ninput: {topics: [a]\noutput: b\n",
			[]wantErr{{"p.yaml:2:1", "YAML: did not find expected ',' or '}'", ""}}},
		{"yaml unclosed flow sequence", "pipeline: p\ninput:\n  topics: [a\noutput: b\n",
			[]wantErr{{"p.yaml:3:1", "YAML: did not find expected ',' or ']'", ""}}},
		{"yaml bad indentation", "pipeline: p\ninput:\n  topics: a\n bad: 1\n",
			[]wantErr{{"p.yaml:4:1", "YAML: did not find expected key", ""}}},
		{"yaml tab indentation", "pipeline: p\n\tinput: x\n",
			[]wantErr{{"p.yaml:2:1", "YAML: found a tab character that violates indentation", ""}}},
		{"yaml unterminated quote", "pipeline: p\ninput: \"abc\noutput: b\n",
			[]wantErr{{"p.yaml:2:1", "YAML: found unexpected end of stream", ""}}},
		{"yaml error on line 1", "a: b: c\n",
			[]wantErr{{"p.yaml:1:1", "YAML: mapping values are not allowed in this context", ""}}},
		{"yaml list item in a mapping", "- a\nb: 1\n",
			[]wantErr{{"p.yaml:2:1", "YAML: did not find expected '-' indicator", ""}}},
		{"yaml unknown alias", head + "on_error: *policy\n",
			[]wantErr{{"p.yaml:4:11", "YAML: unknown anchor 'policy' referenced", ""}}},
		{"second document", head + "---\npipeline: q\n",
			[]wantErr{{"p.yaml:4:1", "a second YAML document: one pipeline per file", ""}}},
		{"second document, empty", head + "---\n",
			[]wantErr{{"p.yaml:4:1", "a second YAML document", ""}}},
		{"second document with a syntax error", head + "---\na: [\n",
			[]wantErr{{"p.yaml:6:1", "YAML: did not find expected node content", ""}}},
		{"empty file", "",
			[]wantErr{{"p.yaml:1:1", "empty file", "start with pipeline: NAME"}}},
		{"only comments", "# a pipeline\n\n",
			[]wantErr{{"p.yaml:1:1", "empty file", "start with pipeline: NAME"}}},
		{"root a list", "- pipeline: p\n",
			[]wantErr{{"p.yaml:1:1", "pipeline: want a mapping, got a list", ""}}},
		{"root a string", "hello\n",
			[]wantErr{{"p.yaml:1:1", "pipeline: want a mapping, got a string", ""}}},
		{"root null", "null\n",
			[]wantErr{{"p.yaml:1:1", "pipeline: want a mapping, got null", ""}}},

		// The top level.
		{"missing pipeline", "input: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:1", `missing field "pipeline"`, "start with pipeline: NAME"}}},
		{"missing input and output", "pipeline: p\n",
			[]wantErr{
				{"p.yaml:1:1", `missing field "input"`, "input: {topics: [TOPIC]}"},
				{"p.yaml:1:1", `missing field "output"`, "output: TOPIC"},
			}},
		{"missing input.topics", "pipeline: p\ninput: {group: g}\noutput: b\n",
			[]wantErr{{"p.yaml:2:8", `input: missing field "topics"`, "topics: [TOPIC, ...]"}}},
		{"unknown top-level field", head + "stagse: []\n",
			[]wantErr{{"p.yaml:4:1", `unknown field "stagse"`, `did you mean "stages"?`}}},
		{"unknown top-level field, far from any", head + "zzzzzzzzzzzz: 1\n",
			[]wantErr{{"p.yaml:4:1", `unknown field "zzzzzzzzzzzz"`, "known: pipeline, input, stages"}}},
		{"unknown input field", "pipeline: p\ninput: {topics: [a], grup: g}\noutput: b\n",
			[]wantErr{{"p.yaml:2:22", `input: unknown field "grup"`, `did you mean "group"?`}}},
		{"field given twice", head + "output: other\n",
			[]wantErr{{"p.yaml:4:1", `pipeline: "output" given twice`, ""}}},
		{"pipeline a number", "pipeline: 42\ninput: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:11", "pipeline: want a string, got a number", "quote it: '42'"}}},
		{"pipeline true", "pipeline: true\ninput: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:11", "pipeline: want a string, got a boolean", "quote it: 'true'"}}},
		{"pipeline a quoted number is fine, a list is not", "pipeline: [p]\ninput: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:11", "pipeline: want a string, got a list", ""}}},
		{"pipeline empty", "pipeline: ''\ninput: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:11", "pipeline: must not be empty", ""}}},
		{"pipeline bad characters", "pipeline: my pipeline\ninput: {topics: [a]}\noutput: b\n",
			[]wantErr{{"p.yaml:1:11", `name "my pipeline" has characters`, "letters, digits"}}},
		{"topics a mapping", "pipeline: p\ninput: {topics: {a: 1}}\noutput: b\n",
			[]wantErr{{"p.yaml:2:17", "input.topics: want a list of strings, got a mapping", ""}}},
		{"topics empty list", "pipeline: p\ninput: {topics: []}\noutput: b\n",
			[]wantErr{{"p.yaml:2:17", "input.topics: the list is empty", ""}}},
		{"topics with a number", "pipeline: p\ninput: {topics: [a, 7]}\noutput: b\n",
			[]wantErr{{"p.yaml:2:21", "input.topics: want a string, got a number", "quote it: '7'"}}},
		{"input a string", "pipeline: p\ninput: a\noutput: b\n",
			[]wantErr{{"p.yaml:2:8", "input: want a mapping, got a string", ""}}},
		{"group empty", "pipeline: p\ninput: {topics: [a], group: ' '}\noutput: b\n",
			[]wantErr{{"p.yaml:2:29", "input.group: must not be empty", ""}}},
		{"start bad", "pipeline: p\ninput: {topics: [a], start: soon}\noutput: b\n",
			[]wantErr{{"p.yaml:2:29", `input.start: "soon" is not a start position`, "earliest, latest, 42, or 2026-11-28T09:00:00Z"}}},
		{"start negative", "pipeline: p\ninput: {topics: [a], start: -1}\noutput: b\n",
			[]wantErr{{"p.yaml:2:29", `input.start: "-1" is not a start position`, "earliest, latest"}}},
		{"start a bad time", "pipeline: p\ninput: {topics: [a], start: 2026-13-01T00:00:00Z}\noutput: b\n",
			[]wantErr{{"p.yaml:2:29", `"2026-13-01T00:00:00Z" is not a start position`, "earliest, latest"}}},
		{"start a list", "pipeline: p\ninput: {topics: [a], start: [1]}\noutput: b\n",
			[]wantErr{{"p.yaml:2:29", "input.start: want a start position, got a list", "earliest, latest"}}},
		{"output empty mapping", "pipeline: p\ninput: {topics: [a]}\noutput: {}\n",
			[]wantErr{{"p.yaml:3:9", "output: no outputs", "output: {default: TOPIC}"}}},
		{"output empty string", "pipeline: p\ninput: {topics: [a]}\noutput: ''\n",
			[]wantErr{{"p.yaml:3:9", "output: must not be empty", ""}}},
		{"output topic a number", "pipeline: p\ninput: {topics: [a]}\noutput: {default: 5}\n",
			[]wantErr{{"p.yaml:3:19", "output.default: want a string, got a number", "quote it: '5'"}}},
		{"output a list", "pipeline: p\ninput: {topics: [a]}\noutput: [a]\n",
			[]wantErr{{"p.yaml:3:9", "output: want a mapping, got a list", ""}}},
		{"batch max_records 0", head + "batch: {max_records: 0}\n",
			[]wantErr{{"p.yaml:4:22", "batch.max_records: 0 is out of range [1, 100000]", ""}}},
		{"batch max_records too big", head + "batch: {max_records: 100001}\n",
			[]wantErr{{"p.yaml:4:22", "batch.max_records: 100001 is out of range [1, 100000]", ""}}},
		{"batch max_records a string", head + "batch: {max_records: lots}\n",
			[]wantErr{{"p.yaml:4:22", "batch.max_records: want an integer, got a string", ""}}},
		{"batch max_records a float", head + "batch: {max_records: 1.5}\n",
			[]wantErr{{"p.yaml:4:22", "batch.max_records: want an integer, got a number", ""}}},
		{"batch unknown field", head + "batch: {max_bytes: 1}\n",
			[]wantErr{{"p.yaml:4:9", `batch: unknown field "max_bytes"`, "known: max_records"}}},

		// Stages.
		{"stages a mapping", head + "stages: {filter: 'true'}\n",
			[]wantErr{{"p.yaml:4:9", "stages: want a list, got a mapping", "- filter: 'EXPR'"}}},
		{"stage a string", head + "stages:\n  - filter\n",
			[]wantErr{{"p.yaml:5:5", "stage: want a mapping, got a string", "each stage is a mapping"}}},
		{"unknown stage kind", head + "stages:\n  - flter: 'value.x > 1'\n",
			[]wantErr{{"p.yaml:5:5", `stage: unknown stage kind "flter"`, `did you mean "filter"?`}}},
		{"unknown stage kind, far from any", head + "stages:\n  - transform: value\n",
			[]wantErr{{"p.yaml:5:5", `unknown stage kind "transform"`, "known: filter, key, map, plugin, route, wasm, name, on_error"}}},
		{"two kinds in one stage", head + "stages:\n  - filter: 'true'\n    map: value\n",
			[]wantErr{{"p.yaml:6:5", `stage: both "filter" and "map" in one stage`, "one kind per list item"}}},
		{"two kinds in one stage, other order", head + "stages:\n  - map: value\n    filter: 'true'\n",
			[]wantErr{{"p.yaml:6:5", `stage: both "map" and "filter" in one stage`, "one kind per list item"}}},
		{"stage without a kind", head + "stages:\n  - name: x\n",
			[]wantErr{{"p.yaml:5:5", "stage: no stage kind", "known kinds: filter, key, map, plugin, route, wasm"}}},
		{"stage without a kind, in flow style after an error on the line", head + "stages: [{flter: 'true'}, {name: x}]\n",
			[]wantErr{
				{"p.yaml:4:11", `unknown stage kind "flter"`, `did you mean "filter"?`},
				{"p.yaml:4:27", "stage: no stage kind", "known kinds"},
			}},
		{"stage kind twice", head + "stages:\n  - filter: 'true'\n    filter: 'false'\n",
			[]wantErr{{"p.yaml:6:5", `stage: "filter" given twice`, ""}}},
		{"duplicate stage names", head + "stages:\n  - filter: 'true'\n    name: a\n  - map: value\n    name: a\n",
			[]wantErr{{"p.yaml:8:11", `stage: a second stage named "a"`, "stage names must be unique"}}},
		{"name clashing with a default name", head + "stages:\n  - filter: 'true'\n    name: 'filter#2'\n  - filter: 'true'\n",
			[]wantErr{{"p.yaml:7:5", `stage: a second stage named "filter#2"`, "give it a name: field"}}},
		{"stage name empty", head + "stages:\n  - filter: 'true'\n    name: ''\n",
			[]wantErr{{"p.yaml:6:11", "stage name: must not be empty", ""}}},

		// Expressions: positions point inside the scalar, at the problem.
		{"expr syntax, single-quoted", head + "stages:\n  - filter: 'value.x >> 1'\n",
			[]wantErr{{"p.yaml:5:23", `filter: unexpected token Operator(">")`, "fields: key, value"}}},
		{"expr syntax, double-quoted", head + "stages:\n  - filter: \"value.x >> 1\"\n",
			[]wantErr{{"p.yaml:5:23", `filter: unexpected token Operator(">")`, "fields: key, value"}}},
		{"expr syntax, plain", head + "stages:\n  - filter: value.x >> 1\n",
			[]wantErr{{"p.yaml:5:22", `filter: unexpected token Operator(">")`, "fields: key, value"}}},
		{"expr syntax, literal block", head + "stages:\n  - filter: |\n      value.x > 1 &&\n        value.y >> 2\n",
			[]wantErr{{"p.yaml:7:18", `filter: unexpected token Operator(">")`, "fields: key, value"}}},
		{"expr syntax, literal block with an indentation indicator", head + "stages:\n  - filter: |2\n       value.x >> 1\n",
			[]wantErr{{"p.yaml:6:17", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, folded block", head + "stages:\n  - filter: >\n      value.x > 1 &&\n      value.y >> 2\n",
			[]wantErr{{"p.yaml:7:16", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, plain over two lines", head + "stages:\n  - filter: value.x > 1 && (\n      value.y >> 2)\n",
			[]wantErr{{"p.yaml:6:16", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, double-quoted with escapes", head + "stages:\n  - filter: \"value.s == \\\"\u00e9\\\" && value.x >> 1\"\n",
			[]wantErr{{"p.yaml:5:43", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, single-quoted with quotes", head + "stages:\n  - filter: 'value.s == ''it'' && value.x >> 1'\n",
			[]wantErr{{"p.yaml:5:44", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, flow mapping", head + "stages: [{name: z, filter: 'value.x >> 1'}]\n",
			[]wantErr{{"p.yaml:4:38", `unexpected token Operator(">")`, "fields"}}},
		{"expr syntax, with a tag and an anchor", head + "stages:\n  - filter: !!str value.x >> 1\n  - filter: &e 'value.x >> 1'\n",
			[]wantErr{
				{"p.yaml:5:28", `unexpected token Operator(">")`, "fields"},
				{"p.yaml:6:26", `unexpected token Operator(">")`, "fields"},
			}},
		{"expr syntax, double-quoted with an escaped line break", head + "stages:\n  - filter: \"\\x41 >> 1 &&\\\n      value.x >> 1\"\n",
			[]wantErr{{"p.yaml:5:20", `unexpected token Operator(">")`, "fields"}}},
		{"expr unexpected end", head + "stages:\n  - key: 'value.x +'\n",
			[]wantErr{{"p.yaml:5:19", "key: unexpected token EOF", "fields"}}},
		{"filter not boolean", head + "stages:\n  - filter: '1 + 2'\n",
			[]wantErr{{"p.yaml:5:13", "filter: expected bool, but got int", "true/false expression"}}},
		{"filter a string", head + "stages:\n  - filter: '\"yes\"'\n",
			[]wantErr{{"p.yaml:5:13", "filter: expected bool, but got string", "true/false expression"}}},
		{"route condition not boolean", "pipeline: p\ninput: {topics: [a]}\noutput: {big: b}\nstages:\n  - route: {big: 'offset + 1'}\n",
			[]wantErr{{"p.yaml:5:18", "route big: expected bool, but got int", "true/false expression"}}},
		{"unknown field in the environment", head + "stages:\n  - filter: 'vaule.x > 1'\n",
			[]wantErr{{"p.yaml:5:14", "filter: unknown name vaule", "fields: key, value, headers, timestamp, topic, partition, offset"}}},
		{"unknown name in map", head + "stages:\n  - map: '{\"a\": valeu}'\n",
			[]wantErr{{"p.yaml:5:17", "map: unknown name valeu", "fields: key, value"}}},
		{"field of a string", head + "stages:\n  - filter: 'key.x == 1'\n",
			[]wantErr{{"p.yaml:5:18", "filter: type string has no field x", "fields"}}},
		{"expression too long", head + "stages:\n  - filter: '" + long + "'\n",
			[]wantErr{{"p.yaml:5:13", fmt.Sprintf("filter: expression of %d bytes, more than %d", len(long), MaxExprLen), "split the work over several stages"}}},
		// Where expr-lang gave up: after about MaxExprNodes nodes.
		{"expression over the node budget", head + "stages:\n  - filter: '" + nodes + "'\n",
			[]wantErr{{"p.yaml:5:1015", "expression exceeds maximum allowed nodes", fmt.Sprintf("at most %d nodes", MaxExprNodes)}}},
		{"expression empty", head + "stages:\n  - filter: ''\n",
			[]wantErr{{"p.yaml:5:13", "filter: must not be empty", ""}}},
		{"expression a number", head + "stages:\n  - filter: 1\n",
			[]wantErr{{"p.yaml:5:13", "filter: want a string, got a number", "quote it: '1'"}}},
		{"map empty mapping", head + "stages:\n  - map: {}\n",
			[]wantErr{{"p.yaml:5:10", "map: nothing to map", "map: {value: EXPR}"}}},
		{"map unknown field", head + "stages:\n  - map: {vale: 'value'}\n",
			[]wantErr{{"p.yaml:5:11", `map: unknown field "vale"`, `did you mean "value"?`}}},
		{"map errors in two fields", head + "stages:\n  - map: {value: 'x1', key: 'x2'}\n",
			[]wantErr{
				{"p.yaml:5:19", "map.value: unknown name x1", "fields"},
				{"p.yaml:5:30", "map.key: unknown name x2", "fields"},
			}},

		// Error policies.
		{"unknown policy", head + "on_error: skpi\n",
			[]wantErr{{"p.yaml:4:11", `on_error: unknown policy "skpi"`, `did you mean "skip"?`}}},
		{"unknown policy in a mapping", head + "on_error: {policy: hlt}\n",
			[]wantErr{{"p.yaml:4:20", `on_error: unknown policy "hlt"`, `did you mean "halt"?`}}},
		{"policy missing", head + "on_error: {topic: dlq}\n",
			[]wantErr{{"p.yaml:4:11", `on_error: missing field "policy"`, "policy: dead_letter | skip | retry | halt"}}},
		{"dead_letter shorthand without topic", head + "on_error: dead_letter\n",
			[]wantErr{{"p.yaml:4:11", "on_error: dead_letter needs a topic", "on_error: {policy: dead_letter, topic: TOPIC}"}}},
		{"dead_letter without topic", head + "on_error: {policy: dead_letter}\n",
			[]wantErr{{"p.yaml:4:11", "on_error: dead_letter needs a topic", "topic: NAME.dlq"}}},
		{"dead_letter empty topic", head + "on_error: {policy: dead_letter, topic: ''}\n",
			[]wantErr{{"p.yaml:4:40", "on_error.topic: must not be empty", ""}}},
		{"retry then dead_letter without topic", head + "on_error: {policy: retry, then: dead_letter}\n",
			[]wantErr{{"p.yaml:4:11", "on_error: dead_letter needs a topic", "topic: NAME.dlq"}}},
		{"retry attempts 0", head + "on_error: {policy: retry, attempts: 0}\n",
			[]wantErr{{"p.yaml:4:37", "on_error.attempts: 0 is out of range [1, 1000]", ""}}},
		{"retry attempts too many", head + "on_error: {policy: retry, attempts: 1001}\n",
			[]wantErr{{"p.yaml:4:37", "on_error.attempts: 1001 is out of range [1, 1000]", ""}}},
		{"retry attempts a string", head + "on_error: {policy: retry, attempts: many}\n",
			[]wantErr{{"p.yaml:4:37", "on_error.attempts: want an integer, got a string", ""}}},
		{"retry backoff without unit", head + "on_error: {policy: retry, backoff: 5}\n",
			[]wantErr{{"p.yaml:4:36", `on_error.backoff: "5" is not a duration`, "write a number with a unit: 500ms, 2s, 1m"}}},
		{"retry max_backoff negative", head + "on_error: {policy: retry, max_backoff: -1s}\n",
			[]wantErr{{"p.yaml:4:40", `on_error.max_backoff: "-1s" is not a duration`, "with a unit"}}},
		{"retry backoff a list", head + "on_error: {policy: retry, backoff: [1s]}\n",
			[]wantErr{{"p.yaml:4:36", "on_error.backoff: want a duration like 500ms or 2s, got a list", ""}}},
		{"retry then retry", head + "on_error: {policy: retry, then: retry}\n",
			[]wantErr{{"p.yaml:4:33", `on_error.then: "retry" is not a policy to apply after the retries`, "dead_letter, skip or halt"}}},
		{"retry then unknown", head + "on_error: {policy: retry, then: later}\n",
			[]wantErr{{"p.yaml:4:33", `on_error.then: "later" is not a policy`, "dead_letter, skip or halt"}}},
		{"topic on skip", head + "on_error: {policy: skip, topic: dlq}\n",
			[]wantErr{{"p.yaml:4:26", `on_error: "topic" does not apply to policy skip`, ""}}},
		{"attempts on halt", head + "on_error: {policy: halt, attempts: 3}\n",
			[]wantErr{{"p.yaml:4:26", `on_error: "attempts" does not apply to policy halt`, ""}}},
		{"topic on retry then halt", head + "on_error: {policy: retry, topic: dlq}\n",
			[]wantErr{{"p.yaml:4:27", "on_error: topic applies only to dead_letter", ""}}},
		{"unknown field in a policy", head + "on_error: {policy: retry, attempt: 3}\n",
			[]wantErr{{"p.yaml:4:27", `on_error: unknown field "attempt"`, `did you mean "attempts"?`}}},
		{"stage policy", head + "stages:\n  - filter: 'true'\n    name: f\n    on_error: {policy: dead_letter}\n",
			[]wantErr{{"p.yaml:7:15", "stage f on_error: dead_letter needs a topic", "topic: NAME.dlq"}}},

		// Routes and outputs.
		{"route to an undefined output", "pipeline: p\ninput: {topics: [a]}\noutput: {default: b, hi: c}\nstages:\n  - route: {hi: 'value.x > 1', nope: 'value.x < 0'}\n",
			[]wantErr{{"p.yaml:5:32", `route "nope": no output of that name`, "add it under output: nope: TOPIC"}}},
		{"an output no route uses", "pipeline: p\ninput: {topics: [a]}\noutput: {default: b, hi: c, lo: d}\nstages:\n  - route: {hi: 'value.x > 1'}\n",
			[]wantErr{{"p.yaml:3:29", `output "lo": no route sends records to it`, "add it to a route stage, or remove it"}}},
		{"no route and no default output", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c}\n",
			[]wantErr{
				{"p.yaml:3:1", "no route stage, so every record goes to the default output, and there is none", "name it default: TOPIC, or add a route stage"},
				{"p.yaml:3:10", `output "hi": no route sends records to it`, "add it to a route stage"},
			}},
		{"route false", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c, lo: d}\nstages:\n  - route: {hi: 'value.x > 1', lo: false}\n",
			[]wantErr{{"p.yaml:5:36", "route lo: false never routes", "remove the case, or give a condition"}}},
		{"cases after an always-true case", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c, lo: d}\nstages:\n  - route:\n      hi: true\n      lo: value.x > 1\n",
			[]wantErr{{"p.yaml:7:7", `route: the cases after "hi" (always true) are never reached`, "move it last"}}},
		{"route condition does not compile", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c}\nstages:\n  - route: {hi: 'value.x >> 1'}\n",
			[]wantErr{{"p.yaml:5:27", `route hi: unexpected token Operator(">")`, "fields"}}},
		{"route a list", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c}\nstages:\n  - route: [hi]\n",
			[]wantErr{{"p.yaml:5:12", "route: want a mapping of output names to conditions, got a list", "route: {OUTPUT: 'EXPR', default: true}"}}},
		{"route empty", head + "stages:\n  - route: {}\n",
			[]wantErr{{"p.yaml:5:12", "route: no outputs", "route: {OUTPUT: 'EXPR'}"}}},
		{"route output twice", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: c}\nstages:\n  - route: {hi: 'true', hi: 'false'}\n",
			[]wantErr{{"p.yaml:5:25", `route: output "hi" given twice`, ""}}},

		// Tests.
		{"tests not a list", head + "tests: {}\n",
			[]wantErr{{"p.yaml:4:8", "tests: want a list of cases, got a mapping", ""}}},
		{"test without input", head + "tests:\n  - name: t\n",
			[]wantErr{{"p.yaml:5:5", `test "t": missing field "input"`, "input: [{key: K, value: V}]"}}},
		{"test expects an unknown output", head + "tests:\n  - input: []\n    expect: {nope: []}\n",
			[]wantErr{{"p.yaml:6:14", `test "case 1" expect: no output named "nope"`, "outputs: default"}}},
		{"test failed negative", head + "tests:\n  - input: []\n    failed: -1\n",
			[]wantErr{{"p.yaml:6:13", "test failed: -1 is out of range", ""}}},
		{"test record unknown field", head + "tests:\n  - input: [{vlaue: 1}]\n",
			[]wantErr{{"p.yaml:5:14", `test "case 1" input 1: unknown field "vlaue"`, `did you mean "value"?`}}},

		// Several problems at once, in file order.
		{"several errors in file order", "pipeline: 42\ninput: {topics: {}}\noutput: {hi: c}\nstages:\n  - flter: x\n  - filter: 'vaule > 1'\n  - route: {hi: true, lo: 'true'}\non_error: skpi\nbatch: {max_records: 0}\n",
			[]wantErr{
				{"p.yaml:1:11", "pipeline: want a string, got a number", "quote it"},
				{"p.yaml:2:17", "input.topics: want a list of strings, got a mapping", ""},
				{"p.yaml:5:5", `unknown stage kind "flter"`, "did you mean"},
				{"p.yaml:6:14", "unknown name vaule", "fields"},
				{"p.yaml:7:23", "cases after \"hi\"", "move it last"},
				{"p.yaml:8:11", `unknown policy "skpi"`, "did you mean"},
				{"p.yaml:9:22", "batch.max_records: 0 is out of range", ""},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("p.yaml", []byte(c.src))
			if s != nil {
				t.Errorf("Parse returned a spec with errors")
			}
			checkSpecErrors(t, c.src, err, c.want)
		})
	}
}

func TestParseGood(t *testing.T) {
	src := `# a full spec
pipeline: payments.big-NZ_1
input:
  topics: [payments, refunds]
  group: my-group
  start: 2026-11-28T09:00:00Z
stages:
  - filter: 'value.country == "NZ"'
  - map: '{"user": key, "amount": value.amount}'
    name: shape
    on_error: skip
  - key: 'value.user'
    on_error: {policy: dead_letter, topic: payments.dlq}
  - map:
      value: value
      key: key
      headers: '{"h": "v"}'
    on_error: retry
  - route:
      big: 'value.amount > 1000'
      small: value.amount <= 10
      default: true
    on_error: {policy: retry, attempts: 5, backoff: 10ms, max_backoff: 1s, then: dead_letter, topic: dlq}
output:
  small: small-payments
  default: other-payments
  big: big-payments
on_error: {policy: retry, backoff: 10s}
batch: {max_records: 500}
tests:
  - name: one big
    input:
      - {key: u1, value: {country: NZ, amount: 5000}}
    expect:
      big: [{key: u1, value: {user: u1, amount: 5000}}]
  - input: []
    failed: 0
`
	s, err := Parse("full.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.File != "full.yaml" || s.Name != "payments.big-NZ_1" {
		t.Errorf("file %q name %q", s.File, s.Name)
	}
	wantStart := Start{Kind: StartTime, Time: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	if fmt.Sprint(s.Input.Topics) != "[payments refunds]" || s.Input.Group != "my-group" ||
		s.Input.Start.Kind != wantStart.Kind || !s.Input.Start.Time.Equal(wantStart.Time) {
		t.Errorf("input %+v", s.Input)
	}
	type stageWant struct {
		kind, name, summary string
		onError             *Policy
		line                int
	}
	retry := Policy{Kind: PolicyRetry, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: PolicyHalt}
	wants := []stageWant{
		{"filter", "filter#1", `keep records where value.country == "NZ"`, nil, 8},
		{"map", "shape", `value = {"user": key, "amount": value.amount}`, &Policy{Kind: PolicySkip}, 9},
		{"key", "key#1", "key = value.user", &Policy{Kind: PolicyDeadLetter, Topic: "payments.dlq"}, 12},
		{"map", "map#2", `value = value; key = key; headers = {"h": "v"}`, &retry, 14},
		{"route", "route#1", "first of: big if value.amount > 1000, small if value.amount <= 10, default always",
			&Policy{Kind: PolicyRetry, Attempts: 5, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second, Then: PolicyDeadLetter, Topic: "dlq"}, 19},
	}
	if len(s.Stages) != len(wants) {
		t.Fatalf("%d stages, want %d", len(s.Stages), len(wants))
	}
	for i, w := range wants {
		st := s.Stages[i]
		if st.Kind != w.kind || st.Name != w.name || st.Summary != w.summary {
			t.Errorf("stage %d: kind %q name %q summary %q, want %q %q %q", i, st.Kind, st.Name, st.Summary, w.kind, w.name, w.summary)
		}
		if (st.OnError == nil) != (w.onError == nil) || st.OnError != nil && *st.OnError != *w.onError {
			t.Errorf("stage %d: on_error %v, want %v", i, st.OnError, w.onError)
		}
		if st.Pos != (Pos{File: "full.yaml", Line: w.line, Col: 5}) {
			t.Errorf("stage %d at %v, want line %d col 5", i, st.Pos, w.line)
		}
		if st.proc == nil {
			t.Errorf("stage %d has no processor", i)
		}
	}
	var outs []string
	for _, o := range s.Outputs {
		outs = append(outs, o.Name+"="+o.Topic)
	}
	if got := strings.Join(outs, " "); got != "big=big-payments default=other-payments small=small-payments" {
		t.Errorf("outputs %s, want sorted by name", got)
	}
	if want := (Policy{Kind: PolicyRetry, Attempts: 3, Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second, Then: PolicyHalt}); s.OnError != want {
		t.Errorf("on_error %+v, want %+v (max_backoff raised to backoff)", s.OnError, want)
	}
	if s.Batch.Records != 500 {
		t.Errorf("batch %d", s.Batch.Records)
	}
	if len(s.Tests) != 2 || s.Tests[0].Name != "one big" || s.Tests[1].Name != "case 2" || len(s.Tests[0].Input) != 1 {
		t.Fatalf("tests %+v", s.Tests)
	}
	if in := s.Tests[0].Input[0]; string(in.Key) != "u1" || string(in.Value) != `{"amount":5000,"country":"NZ"}` || in.Topic != "payments" {
		t.Errorf("test input %+v", in)
	}
	res, err := s.RunTests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) > 0 {
			t.Errorf("test %s: %v", r.Case.Name, r.Problems)
		}
	}
	var b strings.Builder
	s.Explain(&b)
	for _, want := range []string{"pipeline payments.big-NZ_1 (full.yaml)", "consumer group my-group", "start time 2026-11-28T09:00:00Z",
		"up to 500 records", "on error: retry 3 attempts, backoff 10s..10s, then halt", "stage 2  shape", "on error: skip",
		"on error: dead_letter to payments.dlq", "then dead_letter to dlq", "output   big          -> topic big-payments", "tests:    2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseDefaults(t *testing.T) {
	cases := []struct {
		name, src string
		check     func(t *testing.T, s *Spec)
	}{
		{"minimal", head, func(t *testing.T, s *Spec) {
			if s.Input.Group != "weir-pipeline-p" {
				t.Errorf("group %q, want weir-pipeline-p", s.Input.Group)
			}
			if s.Input.Start.Kind != StartEarliest || s.Input.Start.String() != "earliest" {
				t.Errorf("start %v", s.Input.Start)
			}
			if len(s.Outputs) != 1 || s.Outputs[0].Name != "default" || s.Outputs[0].Topic != "out" {
				t.Errorf("outputs %+v: a plain string is the default output", s.Outputs)
			}
			if s.OnError != (Policy{Kind: PolicyHalt}) || s.OnError.String() != "halt" {
				t.Errorf("on_error %+v, want halt", s.OnError)
			}
			if s.Batch.Records != DefaultBatchRecords {
				t.Errorf("batch %d", s.Batch.Records)
			}
			if len(s.Stages) != 0 || len(s.Tests) != 0 {
				t.Errorf("stages %d tests %d", len(s.Stages), len(s.Tests))
			}
		}},
		{"topics as one string", "pipeline: p\ninput: {topics: one}\noutput: out\n", func(t *testing.T, s *Spec) {
			if fmt.Sprint(s.Input.Topics) != "[one]" {
				t.Errorf("topics %v", s.Input.Topics)
			}
		}},
		{"yes is a string name", "pipeline: yes\ninput: {topics: [a]}\noutput: b\n", func(t *testing.T, s *Spec) {
			if s.Name != "yes" || s.Input.Group != "weir-pipeline-yes" {
				t.Errorf("name %q group %q", s.Name, s.Input.Group)
			}
		}},
		{"quoted number name", "pipeline: '42'\ninput: {topics: [a]}\noutput: b\n", func(t *testing.T, s *Spec) {
			if s.Name != "42" {
				t.Errorf("name %q", s.Name)
			}
		}},
		{"start earliest", "pipeline: p\ninput: {topics: [a], start: earliest}\noutput: b\n", func(t *testing.T, s *Spec) {
			if s.Input.Start != (Start{Kind: StartEarliest}) {
				t.Errorf("start %+v", s.Input.Start)
			}
		}},
		{"start latest", "pipeline: p\ninput: {topics: [a], start: latest}\noutput: b\n", func(t *testing.T, s *Spec) {
			if s.Input.Start != (Start{Kind: StartLatest}) || s.Input.Start.String() != "latest" {
				t.Errorf("start %+v", s.Input.Start)
			}
		}},
		{"start offset", "pipeline: p\ninput: {topics: [a], start: 42}\noutput: b\n", func(t *testing.T, s *Spec) {
			if s.Input.Start != (Start{Kind: StartOffset, Offset: 42}) || s.Input.Start.String() != "offset 42" {
				t.Errorf("start %+v", s.Input.Start)
			}
		}},
		{"start time with offset and fraction", "pipeline: p\ninput: {topics: [a], start: '2026-11-28T09:00:00.5+13:00'}\noutput: b\n", func(t *testing.T, s *Spec) {
			want := time.Date(2026, 11, 27, 20, 0, 0, 5e8, time.UTC)
			if s.Input.Start.Kind != StartTime || !s.Input.Start.Time.Equal(want) {
				t.Errorf("start %+v, want %v", s.Input.Start, want)
			}
		}},
		{"outputs sorted", "pipeline: p\ninput: {topics: [a]}\noutput: {zz: z, default: d, aa: a}\nstages:\n  - route: {zz: 'true'}\n  - route: {aa: 'true'}\n", func(t *testing.T, s *Spec) {
			if len(s.Outputs) != 3 || s.Outputs[0].Name != "aa" || s.Outputs[1].Name != "default" || s.Outputs[2].Name != "zz" {
				t.Errorf("outputs %+v", s.Outputs)
			}
		}},
		{"route without default output drops unrouted records", "pipeline: p\ninput: {topics: [a]}\noutput: {hi: h}\nstages:\n  - route: {hi: 'value > 1'}\n", func(t *testing.T, s *Spec) {
			if len(s.Stages) != 1 || s.Stages[0].Kind != "route" {
				t.Errorf("stages %+v", s.Stages)
			}
		}},
		{"retry shorthand", head + "on_error: retry\n", func(t *testing.T, s *Spec) {
			want := Policy{Kind: PolicyRetry, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: PolicyHalt}
			if s.OnError != want {
				t.Errorf("on_error %+v, want %+v", s.OnError, want)
			}
			if got := s.OnError.String(); got != "retry 3 attempts, backoff 100ms..5s, then halt" {
				t.Errorf("String %q", got)
			}
		}},
		{"retry mapping defaults", head + "on_error: {policy: retry}\n", func(t *testing.T, s *Spec) {
			want := Policy{Kind: PolicyRetry, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: PolicyHalt}
			if s.OnError != want {
				t.Errorf("on_error %+v, want %+v", s.OnError, want)
			}
		}},
		{"retry then skip", head + "on_error: {policy: retry, attempts: 1, backoff: 0s, then: skip}\n", func(t *testing.T, s *Spec) {
			want := Policy{Kind: PolicyRetry, Attempts: 1, Backoff: 0, MaxBackoff: 5 * time.Second, Then: PolicySkip}
			if s.OnError != want {
				t.Errorf("on_error %+v, want %+v", s.OnError, want)
			}
		}},
		{"skip shorthand", head + "on_error: skip\n", func(t *testing.T, s *Spec) {
			if s.OnError != (Policy{Kind: PolicySkip}) {
				t.Errorf("on_error %+v", s.OnError)
			}
		}},
		{"dead_letter", head + "on_error: {policy: dead_letter, topic: d}\n", func(t *testing.T, s *Spec) {
			if s.OnError != (Policy{Kind: PolicyDeadLetter, Topic: "d"}) || s.OnError.String() != "dead_letter to d" {
				t.Errorf("on_error %+v", s.OnError)
			}
		}},
		{"anchors and aliases", "pipeline: p\ninput: {topics: [a]}\noutput: b\nstages:\n  - filter: &cond 'value.x > 1'\n    on_error: &pol {policy: dead_letter, topic: d}\n  - filter: *cond\n    on_error: *pol\n", func(t *testing.T, s *Spec) {
			if len(s.Stages) != 2 || s.Stages[1].Summary != "keep records where value.x > 1" || *s.Stages[1].OnError != (Policy{Kind: PolicyDeadLetter, Topic: "d"}) {
				t.Errorf("stages %+v", s.Stages)
			}
		}},
		{"CRLF line endings", "pipeline: p\r\ninput: {topics: [a]}\r\noutput: b\r\n", func(t *testing.T, s *Spec) {
			if s.Name != "p" {
				t.Errorf("name %q", s.Name)
			}
		}},
		{"explicit document start", "---\n" + head, func(t *testing.T, s *Spec) {
			if s.Name != "p" {
				t.Errorf("name %q", s.Name)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("p.yaml", []byte(c.src))
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, numbered(c.src))
			}
			c.check(t, s)
		})
	}
}

// A CRLF file's expression errors are still positioned inside the scalar.
func TestParseErrorCRLF(t *testing.T) {
	src := "pipeline: p\r\ninput: {topics: [a]}\r\noutput: b\r\nstages:\r\n  - filter: |\r\n      value.x > 1 &&\r\n        value.y >> 2\r\n"
	_, err := Parse("p.yaml", []byte(src))
	checkSpecErrors(t, src, err, []wantErr{{"p.yaml:7:18", `unexpected token Operator(">")`, "fields"}})
}

func TestParseStart(t *testing.T) {
	for _, s := range []string{"", "earliest", "latest", "0", "42", "2026-11-28T09:00:00Z", "2026-11-28T09:00:00.123456789-05:00"} {
		if _, err := ParseStart(s); err != nil {
			t.Errorf("ParseStart(%q): %v", s, err)
		}
	}
	for _, s := range []string{"-1", "soon", "2026-11-28", "1e3", "0x10", "2026-11-28 09:00:00"} {
		if _, err := ParseStart(s); err == nil {
			t.Errorf("ParseStart(%q) accepted", s)
		}
	}
}

func TestLoad(t *testing.T) {
	path := t.TempDir() + "/p.yaml"
	if _, err := Load(path); err == nil || errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Load of a missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(head+"stagse: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var es SpecErrors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Pos.File != path || es[0].Pos.Line != 4 {
		t.Errorf("Load: %v", err)
	}
	if want := path + `:4:1: pipeline: unknown field "stagse" (hint: did you mean "stages"?)`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// Which of two kinds in one stage is reported does not depend on map
// iteration order.
func TestParseTwoKindsStable(t *testing.T) {
	src := head + "stages:\n  - route: {a: 'true'}\n    key: value\n    filter: 'true'\n    map: value\n"
	var first string
	for i := range 30 {
		_, err := Parse("p.yaml", []byte(src))
		if err == nil {
			t.Fatal("accepted")
		}
		if i == 0 {
			first = err.Error()
			continue
		}
		if err.Error() != first {
			t.Fatalf("run %d:\n%v\nrun 0:\n%s", i, err, first)
		}
	}
	for _, want := range []string{`p.yaml:6:5: stage: both "route" and "key"`, `p.yaml:7:5: stage: both "route" and "filter"`, `p.yaml:8:5: stage: both "route" and "map"`} {
		if !strings.Contains(first, want) {
			t.Errorf("errors lack %q:\n%s", want, first)
		}
	}
}
