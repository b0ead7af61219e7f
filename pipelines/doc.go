// Package pipelines is weir's stream processor: a pipeline reads topics as
// a consumer group, runs batches of records through a chain of stages and
// writes the results to topics.
//
// # Spec
//
// A pipeline is one YAML document (Load, Parse):
//
//	pipeline: NAME                      # letters, digits, . _ -; names the default group weir-pipeline-NAME
//	input: {topics: [T, ...], group: G, start: earliest | latest | OFFSET | RFC3339}
//	stages:                             # in order; each item one kind, optional name and on_error
//	  - filter: EXPR                    # boolean
//	  - map: EXPR | {value: EXPR, key: EXPR, headers: EXPR}
//	  - key: EXPR
//	  - route: {OUTPUT: EXPR | true, ...}   # first case that holds
//	output: TOPIC | {default: TOPIC, OUTPUT: TOPIC, ...}
//	on_error: skip | halt | retry | {policy: dead_letter, topic: T} | {policy: retry, attempts, backoff, max_backoff, then}
//	batch: {max_records: N}             # default 10000
//	tests: [{name, input: [RECORD], expect: {OUTPUT: [RECORD]}, failed: N}]
//
// Decoding is strict and complete: every unknown field, wrong type,
// unknown kind, undefined output and expression that does not compile is
// reported at once as a SpecError with file:line:col (inside the
// expression for expression errors) and a hint; nothing is checked per
// record at run time that could have been checked at load.
//
// # Expressions
//
// Stages are expr-lang programs over key (string), value (the value
// decoded from JSON, or the value as a string when it is not JSON),
// headers, timestamp, topic, partition and offset. When an expression reads
// value only through chains of constant field names, the value is scanned
// once (jsonscan.go: it must be one valid JSON object, as encoding/json
// would decode it) and only those fields are decoded, into environment
// slots the expression is rewritten to read (lazy.go); otherwise, and for
// any value that is not such an object, the value is decoded whole and the
// original expression runs. Either way the result is the same.
//
// # Execution invariants
//
//   - At-least-once: a batch's input offsets are committed only after
//     every output and dead letter of it is acknowledged. A crash re-reads
//     at most the batches not yet committed (at most two).
//   - Order: one input partition's outputs are written in input order;
//     keyed outputs go to murmur2(key) % partitions, unkeyed ones to the
//     input partition modulo the output's partitions.
//   - A failed record never blocks its neighbours: its policy writes it
//     to a dead-letter topic with provenance headers, skips it, retries it
//     through the whole chain, or halts the pipeline before it (committing
//     what came before).
//   - Bounded memory: at most three batches are held (read ahead, being
//     processed, being acknowledged); a slow stage or broker slows the
//     reading.
//
// Run executes a Spec against Kafka-protocol brokers (franz-go), or, with
// RunOptions.Local, reads and appends through a broker in the same process
// while keeping group membership and commits on the Kafka protocol.
package pipelines
