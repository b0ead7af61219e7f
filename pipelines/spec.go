package pipelines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Spec is a decoded, validated pipeline file. Stages hold their compiled
// processors; a Spec is ready to run.
type Spec struct {
	File    string
	Name    string
	Input   Input
	Stages  []*Stage
	Outputs []Output // sorted by name; "default" is the unrouted records'
	OnError Policy
	Batch   BatchLimits
	Tests   []TestCase

	raw []byte // the spec's text, to compile more copies of the stages
}

// compileStages compiles another copy of the stages: a stage is used by
// one goroutine at a time, so each Run of a Spec gets its own. A Spec not
// made by Parse has only its own Stages.
func (s *Spec) compileStages() ([]*Stage, error) {
	if s.raw == nil {
		return s.Stages, nil
	}
	c, err := Parse(s.File, s.raw)
	if err != nil {
		return nil, err
	}
	return c.Stages, nil
}

// Input is where a pipeline reads.
type Input struct {
	Topics []string
	// Group is the consumer group whose committed offsets say where the
	// pipeline resumes; default DefaultGroup(the pipeline name).
	Group string
	// Start applies when the group has no committed offset for a
	// partition (and on a replay).
	Start Start
}

// StartKind is where a pipeline starts reading a partition without a
// committed offset.
type StartKind int

const (
	StartEarliest StartKind = iota
	StartLatest
	StartOffset
	StartTime
)

// Start is a start position: earliest, latest, an offset, or the first
// record at or after a time.
type Start struct {
	Kind   StartKind
	Offset int64
	Time   time.Time
}

func (s Start) String() string {
	switch s.Kind {
	case StartLatest:
		return "latest"
	case StartOffset:
		return "offset " + strconv.FormatInt(s.Offset, 10)
	case StartTime:
		return "time " + s.Time.Format(time.RFC3339Nano)
	}
	return "earliest"
}

// ParseStart parses earliest, latest, an offset (a non-negative integer)
// or an RFC 3339 time.
func ParseStart(s string) (Start, error) {
	switch s {
	case "earliest", "":
		return Start{Kind: StartEarliest}, nil
	case "latest":
		return Start{Kind: StartLatest}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return Start{Kind: StartOffset, Offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Start{Kind: StartTime, Time: t}, nil
	}
	return Start{}, fmt.Errorf("start %q: want earliest, latest, an offset or an RFC 3339 time like 2026-11-28T09:00:00Z", s)
}

// Output is a named output and its topic.
type Output struct {
	Name  string
	Topic string
	pos   Pos
}

// PolicyKind says what happens to a record a stage fails on.
type PolicyKind string

const (
	PolicyDeadLetter PolicyKind = "dead_letter"
	PolicySkip       PolicyKind = "skip"
	PolicyRetry      PolicyKind = "retry"
	PolicyHalt       PolicyKind = "halt"
)

// Policy is an error policy. Retry runs the failed record through the
// stage again up to Attempts times in all, with exponential backoff from
// Backoff to MaxBackoff, then applies Then (dead_letter, skip or halt).
type Policy struct {
	Kind       PolicyKind
	Topic      string // dead_letter (also Then == dead_letter)
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	Then       PolicyKind
}

func (p Policy) String() string {
	switch p.Kind {
	case PolicyDeadLetter:
		return "dead_letter to " + p.Topic
	case PolicyRetry:
		s := fmt.Sprintf("retry %d attempts, backoff %v..%v, then %s", p.Attempts, p.Backoff, p.MaxBackoff, p.Then)
		if p.Then == PolicyDeadLetter {
			s += " to " + p.Topic
		}
		return s
	}
	return string(p.Kind)
}

// BatchLimits bound what the executor holds in memory: at most Records
// input records per batch, and while the outputs of one batch are being
// acknowledged, nothing more is read.
type BatchLimits struct {
	Records int
}

// Stage is one stage of a pipeline, compiled.
type Stage struct {
	Kind    string
	Name    string // default: kind and index, e.g. "filter#1"
	Summary string // what it does, for explain
	OnError *Policy
	Pos     Pos
	proc    processor
}

// DefaultBatchRecords is the default BatchLimits.Records.
const DefaultBatchRecords = 10000

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// Load reads and validates a pipeline file.
func Load(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	return Parse(path, raw)
}

// Parse decodes and validates a pipeline spec; file names it in errors.
// Every problem is reported, each with file:line:col, as SpecErrors.
func Parse(file string, raw []byte) (*Spec, error) {
	d := &decoder{file: file, raw: raw}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	empty := SpecErrors{{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: "empty file", Hint: "start with pipeline: NAME"}}
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // no document at all: empty or only comments
			return nil, empty
		}
		return nil, SpecErrors{yamlError(file, raw, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, SpecErrors{{Pos: Pos{File: file, Line: extra.Line, Col: extra.Column}, Msg: "a second YAML document: one pipeline per file"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, SpecErrors{yamlError(file, raw, err)}
	}
	if len(doc.Content) == 0 {
		return nil, empty
	}
	root := doc.Content[0]
	s := &Spec{File: file, Batch: BatchLimits{Records: DefaultBatchRecords}, raw: raw}
	fs := d.fields(root, "pipeline", "pipeline", "input", "stages", "output", "on_error", "batch", "tests")
	if fs == nil {
		return nil, d.errs
	}
	if f, ok := fs["pipeline"]; !ok {
		d.errorf(root, "start with pipeline: NAME", "missing field \"pipeline\" (the pipeline's name)")
	} else if name, ok := d.nonEmpty(f.val, "pipeline"); ok {
		if !nameRE.MatchString(name) {
			d.errorf(f.val, "letters, digits, '.', '_' and '-', up to 200", "pipeline: name %q has characters that cannot name a consumer group or topic", name)
		}
		s.Name = name
		d.pipeline = name
	}
	if f, ok := fs["input"]; !ok {
		d.errorf(root, "input: {topics: [TOPIC]}", "missing field \"input\"")
	} else {
		s.Input = d.input(f.val)
	}
	if s.Input.Group == "" && s.Name != "" {
		s.Input.Group = DefaultGroup(s.Name)
	}
	s.OnError = Policy{Kind: PolicyHalt}
	if f, ok := fs["on_error"]; ok {
		if p, ok := d.policy(f.val, "on_error"); ok {
			s.OnError = p
		}
	}
	if f, ok := fs["batch"]; ok {
		bf := d.fields(f.val, "batch", "max_records")
		if v, ok := bf["max_records"]; ok {
			if n, ok := d.integer(v.val, "batch.max_records", 1, 100000); ok {
				s.Batch.Records = int(n)
			}
		}
	}
	outPos := Pos{File: file, Line: root.Line, Col: root.Column}
	if f, ok := fs["output"]; !ok {
		d.errorf(root, "output: TOPIC, or output: {default: TOPIC, NAME: TOPIC}", "missing field \"output\"")
	} else {
		outPos = d.pos(f.key)
		s.Outputs = d.outputs(f.val)
	}
	if f, ok := fs["stages"]; ok {
		s.Stages = d.stages(f.val)
	}
	d.checkRoutes(s, outPos)
	if f, ok := fs["tests"]; ok {
		s.Tests = d.tests(f.val, s)
	}
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool {
			a, b := d.errs[i].Pos, d.errs[j].Pos
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		return nil, d.errs
	}
	return s, nil
}

// yamlError turns a yaml.v3 error ("yaml: line N: ...") into a
// positioned SpecError. yaml.v3 counts lines from 1 in scanner errors but
// from 0 in parser errors (and omits "line 0"), so parser errors are moved
// down a line. An unknown alias names no line; it is looked up in raw.
func yamlError(file string, raw []byte, err error) *SpecError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, strings.TrimSpace(after)
			}
		}
	}
	if slices.Contains(yamlParserErrors, msg) || line == 0 {
		line++
	}
	col := 1
	if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		if i := bytes.Index(raw, []byte("*"+strings.TrimSuffix(name, "' referenced"))); i >= 0 {
			line = 1 + bytes.Count(raw[:i], []byte("\n"))
			col = 1 + utf8.RuneCount(raw[bytes.LastIndexByte(raw[:i], '\n')+1:i])
		}
	}
	return &SpecError{Pos: Pos{File: file, Line: line, Col: col}, Msg: "YAML: " + msg}
}

// yamlParserErrors are the messages of yaml.v3's parser (as opposed to its
// scanner): their line numbers count from 0.
var yamlParserErrors = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

func (d *decoder) input(n *yaml.Node) Input {
	var in Input
	fs := d.fields(n, "input", "topics", "group", "start")
	if fs == nil {
		return in
	}
	if f, ok := fs["topics"]; !ok {
		d.errorf(n, "topics: [TOPIC, ...]", "input: missing field \"topics\"")
	} else if ts, ok := d.strList(f.val, "input.topics"); ok {
		in.Topics = ts
	}
	if f, ok := fs["group"]; ok {
		if g, ok := d.nonEmpty(f.val, "input.group"); ok {
			in.Group = g
		}
	}
	if f, ok := fs["start"]; ok {
		v := resolve(f.val)
		st, err := ParseStart(v.Value)
		if v.Kind != yaml.ScalarNode {
			d.errorf(v, "earliest, latest, 42, or 2026-11-28T09:00:00Z", "input.start: want a start position, got %s", kindName(v))
		} else if err != nil {
			d.errorf(v, "earliest, latest, 42, or 2026-11-28T09:00:00Z", "input.start: %q is not a start position", v.Value)
		}
		in.Start = st
	}
	return in
}

func (d *decoder) outputs(n *yaml.Node) []Output {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		if t, ok := d.nonEmpty(n, "output"); ok {
			return []Output{{Name: "default", Topic: t, pos: d.pos(n)}}
		}
		return nil
	}
	fs := d.fields(n, "output")
	var out []Output
	for name, f := range fs {
		if t, ok := d.nonEmpty(f.val, "output."+name); ok {
			out = append(out, Output{Name: name, Topic: t, pos: d.pos(f.key)})
		}
	}
	if fs != nil && len(fs) == 0 {
		d.errorf(n, "output: {default: TOPIC}", "output: no outputs")
	}
	sortOutputs(out)
	return out
}

func sortOutputs(out []Output) {
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

func (d *decoder) policy(n *yaml.Node, what string) (Policy, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode {
		// Shorthand: on_error: skip | halt | retry.
		switch PolicyKind(n.Value) {
		case PolicySkip, PolicyHalt:
			return Policy{Kind: PolicyKind(n.Value)}, true
		case PolicyRetry:
			return Policy{Kind: PolicyRetry, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Then: PolicyHalt}, true
		case PolicyDeadLetter:
			d.errorf(n, "on_error: {policy: dead_letter, topic: TOPIC}", "%s: dead_letter needs a topic", what)
			return Policy{}, false
		}
		d.errorf(n, suggest(n.Value, []string{"dead_letter", "skip", "retry", "halt"}), "%s: unknown policy %q", what, n.Value)
		return Policy{}, false
	}
	fs := d.fields(n, what, "policy", "topic", "attempts", "backoff", "max_backoff", "then")
	if fs == nil {
		return Policy{}, false
	}
	f, ok := fs["policy"]
	if !ok {
		d.errorf(n, "policy: dead_letter | skip | retry | halt", "%s: missing field \"policy\"", what)
		return Policy{}, false
	}
	kind, ok := d.str(f.val, what+".policy")
	if !ok {
		return Policy{}, false
	}
	p := Policy{Kind: PolicyKind(kind)}
	allowed := map[PolicyKind][]string{
		PolicyDeadLetter: {"policy", "topic"},
		PolicySkip:       {"policy"},
		PolicyHalt:       {"policy"},
		PolicyRetry:      {"policy", "attempts", "backoff", "max_backoff", "then", "topic"},
	}
	fieldsOK, known := allowed[p.Kind]
	if !known {
		d.errorf(f.val, suggest(kind, []string{"dead_letter", "skip", "retry", "halt"}), "%s: unknown policy %q", what, kind)
		return Policy{}, false
	}
	good := true
	for name, fv := range fs {
		if !containsStr(fieldsOK, name) {
			d.errorf(fv.key, "", "%s: %q does not apply to policy %s", what, name, kind)
			good = false
		}
	}
	if t, ok := fs["topic"]; ok {
		if s, ok := d.nonEmpty(t.val, what+".topic"); ok {
			p.Topic = s
		} else {
			good = false
		}
	}
	if p.Kind == PolicyRetry {
		p.Attempts, p.Backoff, p.MaxBackoff, p.Then = 3, 100*time.Millisecond, 5*time.Second, PolicyHalt
		if v, ok := fs["attempts"]; ok {
			n, ok := d.integer(v.val, what+".attempts", 1, 1000)
			good = good && ok
			p.Attempts = int(n)
		}
		if v, ok := fs["backoff"]; ok {
			b, ok := d.duration(v.val, what+".backoff")
			good = good && ok
			p.Backoff = b
		}
		if v, ok := fs["max_backoff"]; ok {
			b, ok := d.duration(v.val, what+".max_backoff")
			good = good && ok
			p.MaxBackoff = b
		}
		if p.MaxBackoff < p.Backoff {
			p.MaxBackoff = p.Backoff
		}
		if v, ok := fs["then"]; ok {
			t, ok := d.str(v.val, what+".then")
			switch PolicyKind(t) {
			case PolicyDeadLetter, PolicySkip, PolicyHalt:
				p.Then = PolicyKind(t)
			default:
				if ok {
					d.errorf(v.val, "dead_letter, skip or halt", "%s.then: %q is not a policy to apply after the retries", what, t)
				}
				good = false
			}
		}
	}
	needTopic := p.Kind == PolicyDeadLetter || p.Kind == PolicyRetry && p.Then == PolicyDeadLetter
	if needTopic && p.Topic == "" && good {
		d.errorf(n, "topic: NAME.dlq", "%s: dead_letter needs a topic", what)
		good = false
	}
	if !needTopic && p.Topic != "" && good {
		d.errorf(fs["topic"].key, "", "%s: topic applies only to dead_letter", what)
		good = false
	}
	return p, good
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *decoder) stages(n *yaml.Node) []*Stage {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "stages:\n  - filter: 'EXPR'", "stages: want a list, got %s", kindName(n))
		return nil
	}
	var out []*Stage
	counts := map[string]int{}
	names := map[string]bool{}
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			d.errorf(item, "each stage is a mapping like - filter: 'EXPR'", "stage: want a mapping, got %s", kindName(item))
			continue
		}
		before := len(d.errs)
		fs := d.fields(item, "stage")
		var kind string
		var kf field
		// In file order, so that which of two kinds is reported is stable.
		for i := 0; i+1 < len(item.Content); i += 2 {
			k := item.Content[i].Value
			f, ok := fs[k]
			if !ok || f.key != item.Content[i] || k == "name" || k == "on_error" {
				continue
			}
			if _, ok := stageKinds[k]; !ok {
				d.errorf(f.key, suggest(k, append(KindNames(), "name", "on_error")), "stage: unknown stage kind %q", k)
				continue
			}
			if kind != "" {
				d.errorf(f.key, "one kind per list item: start another item with -", "stage: both %q and %q in one stage", kind, k)
				continue
			}
			kind, kf = k, f
		}
		if kind == "" {
			if len(d.errs) == before { // else an unknown kind was reported
				d.errorf(item, "known kinds: "+strings.Join(KindNames(), ", "), "stage: no stage kind")
			}
			continue
		}
		counts[kind]++
		st := &Stage{Kind: kind, Name: fmt.Sprintf("%s#%d", kind, counts[kind]), Pos: d.pos(kf.key)}
		dupAt, dupHint := kf.key, "give it a name: field"
		if f, ok := fs["name"]; ok {
			if name, ok := d.nonEmpty(f.val, "stage name"); ok {
				st.Name = name
				dupAt, dupHint = f.val, "stage names must be unique"
			}
		}
		d.stage = st.Name
		if names[st.Name] {
			d.errorf(dupAt, dupHint, "stage: a second stage named %q", st.Name)
		}
		names[st.Name] = true
		if f, ok := fs["on_error"]; ok {
			if p, ok := d.policy(f.val, "stage "+st.Name+" on_error"); ok {
				st.OnError = &p
			}
		}
		if proc, summary, ok := stageKinds[kind].build(d, kf.val); ok {
			st.proc, st.Summary = proc, summary
		}
		out = append(out, st)
	}
	return out
}

// checkRoutes checks that every route names an output and that records
// that no route takes have a default output.
func (d *decoder) checkRoutes(s *Spec, outPos Pos) {
	outputs := map[string]bool{}
	for _, o := range s.Outputs {
		outputs[o.Name] = true
	}
	routed := map[string]bool{}
	lastRoute := -1
	incomplete := false // a route stage with errors: its cases are unknown
	for i, st := range s.Stages {
		if st.Kind == "route" {
			lastRoute = i
		}
		r, ok := st.proc.(*routeStage)
		if !ok {
			incomplete = incomplete || st.Kind == "route"
			continue
		}
		for _, c := range r.cases {
			routed[c.name] = true
			if len(outputs) > 0 && !outputs[c.name] {
				d.errs = append(d.errs, &SpecError{Pos: c.pos, Msg: fmt.Sprintf("route %q: no output of that name", c.name),
					Hint: fmt.Sprintf("add it under output: %s: TOPIC", c.name)})
			}
		}
	}
	if len(s.Outputs) == 0 {
		return
	}
	if lastRoute < 0 && !outputs["default"] {
		d.errs = append(d.errs, &SpecError{Pos: outPos, Msg: "output: no route stage, so every record goes to the default output, and there is none",
			Hint: "name it default: TOPIC, or add a route stage"})
	}
	for _, o := range s.Outputs {
		if o.Name != "default" && !routed[o.Name] && !incomplete {
			d.errs = append(d.errs, &SpecError{Pos: o.pos, Msg: fmt.Sprintf("output %q: no route sends records to it", o.Name),
				Hint: "add it to a route stage, or remove it"})
		}
	}
}

// DefaultGroup is the consumer group of a pipeline whose input names none:
// "weir-pipeline-" + its name.
func DefaultGroup(pipeline string) string { return "weir-pipeline-" + pipeline }
