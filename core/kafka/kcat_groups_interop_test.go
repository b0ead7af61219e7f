//go:build interop

package kafka

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/group"
)

// kcatGroupFormat prints partition, offset and value (values are plain
// ASCII without '|' or newlines).
const kcatGroupFormat = `%p|%o|%s\n`

// kcatGroupArgs are the arguments of a balanced (-G) consumer that starts
// from the beginning when the group has no offsets and exits once it has
// reached the end of every partition assigned to it.
func kcatGroupArgs(addr, groupID, topic string) []string {
	return []string{"-b", addr, "-m", "20", "-G", groupID, "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", kcatGroupFormat, topic}
}

type kcatGroupMsg struct {
	partition int32
	offset    int64
	value     string
}

func parseKcatGroup(t *testing.T, out []byte) []kcatGroupMsg {
	t.Helper()
	var msgs []kcatGroupMsg
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 {
			t.Fatalf("kcat output line %q", line)
		}
		p, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("kcat output line %q", line)
		}
		msgs = append(msgs, kcatGroupMsg{int32(p), o, f[2]})
	}
	return msgs
}

// startKcat starts kcat and returns a function waiting for it (a non-zero
// exit, a hang or errors on stderr fail the test).
func startKcat(t *testing.T, args ...string) func() []byte {
	t.Helper()
	bin, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is required for the interop tests (apt-get install kcat): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("kcat %s: %v", strings.Join(args, " "), err)
	}
	return func() []byte {
		t.Helper()
		defer cancel()
		err := cmd.Wait()
		if ctx.Err() != nil {
			t.Fatalf("kcat %s: timed out\nstderr:\n%s", strings.Join(args, " "), stderr.Bytes())
		}
		if err != nil {
			t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		if strings.Contains(stderr.String(), "ERROR") || strings.Contains(stderr.String(), "Failed") {
			t.Fatalf("kcat %s reported errors:\n%s", strings.Join(args, " "), stderr.Bytes())
		}
		t.Logf("kcat %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return stdout.Bytes()
	}
}

// produceSpread produces perPart records with values
// "<phase>-p<partition>-<i>" to every partition and returns the values.
func produceSpread(t *testing.T, addr, topic, phase string, partitions int32, perPart int) []string {
	t.Helper()
	var recs []*kgo.Record
	var vals []string
	for i := range perPart {
		for p := range partitions {
			v := fmt.Sprintf("%s-p%d-%03d", phase, p, i)
			vals = append(vals, v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	cl := newClient(t, addr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return vals
}

// TestKcatBalancedConsumers runs two kcat -G (librdkafka's balanced
// consumer: FindCoordinator v2, JoinGroup v5 with MEMBER_ID_REQUIRED,
// SyncGroup v3, Heartbeat v3, OffsetFetch v7, OffsetCommit v7, LeaveGroup
// v1) processes in one group: they split the partitions, every record is
// consumed exactly once across them, their commits reach the end of every
// partition, and a later kcat -G run of the group reads only what was
// produced after.
func TestKcatBalancedConsumers(t *testing.T) {
	tb := startBroker(t, func(b *broker.Config, _ *Config) {
		// Both processes join the group's first generation.
		b.Groups.Group.InitialRebalanceDelay = 1500 * time.Millisecond
	})
	const topic, groupID, parts = "kcat-group", "kcat-g", int32(6)
	tb.createTopic(t, topic, parts)
	phase1 := produceSpread(t, tb.addr, topic, "p1", parts, 20)

	wait1 := startKcat(t, kcatGroupArgs(tb.addr, groupID, topic)...)
	wait2 := startKcat(t, kcatGroupArgs(tb.addr, groupID, topic)...)
	out1, out2 := parseKcatGroup(t, wait1()), parseKcatGroup(t, wait2())

	seen := map[string]int{}
	partsOf := func(msgs []kcatGroupMsg) []int32 {
		var ps []int32
		for _, m := range msgs {
			seen[m.value]++
			if want := fmt.Sprintf("-p%d-", m.partition); !strings.Contains(m.value, want) {
				t.Errorf("kcat read %q from partition %d", m.value, m.partition)
			}
			if !slices.Contains(ps, m.partition) {
				ps = append(ps, m.partition)
			}
		}
		slices.Sort(ps)
		return ps
	}
	ps1, ps2 := partsOf(out1), partsOf(out2)
	t.Logf("kcat 1 read %d records from partitions %v; kcat 2 read %d from %v", len(out1), ps1, len(out2), ps2)
	if len(out1) == 0 || len(out2) == 0 {
		t.Errorf("the two consumers did not share the topic: %d and %d records", len(out1), len(out2))
	}
	for _, p := range ps1 {
		if slices.Contains(ps2, p) {
			t.Errorf("partition %d read by both consumers", p)
		}
	}
	var bad []string
	for _, v := range phase1 {
		if seen[v] != 1 {
			bad = append(bad, fmt.Sprintf("%s x%d", v, seen[v]))
		}
	}
	if len(bad) > 0 || len(seen) != len(phase1) {
		t.Fatalf("records not consumed exactly once across the two consumers (%d distinct of %d): %v", len(seen), len(phase1), bad[:min(len(bad), 10)])
	}

	// Their commits (on close) reached the end of every partition.
	offs := tb.b.Coordinator().FetchOffsets(groupID, nil)
	for p := range parts {
		if o, ok := offs[group.TopicPartition{Topic: topic, Partition: p}]; !ok || o.Offset != 20 {
			t.Errorf("committed offset of %s/%d: %+v (present %v), want 20", topic, p, o, ok)
		}
	}
	if g, ok := tb.b.Coordinator().DescribeGroup(groupID); !ok || g.State != "Empty" || len(g.Members) != 0 {
		t.Errorf("after both consumers exited: %+v, want an Empty group", g)
	}

	// A later run resumes after the committed offsets.
	phase2 := produceSpread(t, tb.addr, topic, "p2", parts, 5)
	out3 := parseKcatGroup(t, startKcat(t, kcatGroupArgs(tb.addr, groupID, topic)...)())
	var got []string
	for _, m := range out3 {
		got = append(got, m.value)
		if m.offset < 20 {
			t.Errorf("later run read %s/%d@%d, below the committed offset 20", topic, m.partition, m.offset)
		}
	}
	sort.Strings(got)
	want := slices.Clone(phase2)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("later kcat -G run read %d records, want exactly the %d new ones: %v", len(got), len(want), got[:min(len(got), 10)])
	}
}
