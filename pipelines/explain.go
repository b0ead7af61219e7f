package pipelines

import (
	"fmt"
	"io"
	"strings"
)

// Explain prints the resolved plan: where the pipeline reads, each stage
// with what it does and its error policy, and where each output goes.
func (s *Spec) Explain(w io.Writer) {
	fmt.Fprintf(w, "pipeline %s (%s)\n", s.Name, s.File)
	fmt.Fprintf(w, "  input:    topics %s, consumer group %s, start %s when the group has no offset\n",
		strings.Join(s.Input.Topics, ", "), s.Input.Group, s.Input.Start)
	fmt.Fprintf(w, "  batches:  up to %d records; offsets committed after every output of a batch is acknowledged\n", s.Batch.Records)
	fmt.Fprintf(w, "  on error: %s\n", s.OnError)
	for i, st := range s.Stages {
		fmt.Fprintf(w, "  stage %d  %-12s %s: %s\n", i+1, st.Name, st.Kind, st.Summary)
		if st.OnError != nil {
			fmt.Fprintf(w, "           on error: %s\n", st.OnError)
		}
	}
	if len(s.Stages) == 0 {
		fmt.Fprintln(w, "  (no stages: records are copied as they are)")
	}
	for _, o := range s.Outputs {
		what := "records routed to " + o.Name
		if o.Name == "default" {
			what = "records no route names"
		}
		fmt.Fprintf(w, "  output   %-12s -> topic %s (%s; keyed records by murmur2(key), unkeyed by input partition)\n", o.Name, o.Topic, what)
	}
	if len(s.Tests) > 0 {
		fmt.Fprintf(w, "  tests:    %d (weir pipeline test %s)\n", len(s.Tests), s.File)
	}
}

// ExplainKinds prints every stage kind with its fields and an example.
func ExplainKinds(w io.Writer) {
	for _, k := range Kinds() {
		fmt.Fprintf(w, "%s: %s\n", k.Name, k.Summary)
		for _, f := range k.Fields {
			fmt.Fprintf(w, "    %s\n", f)
		}
		fmt.Fprintf(w, "  example: %s\n\n", k.Example)
	}
}
