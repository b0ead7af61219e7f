package server_test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKadmTopicAdmin round-trips topic administration through kadm and
// checks the error codes of the failure cases.
func TestKadmTopicAdmin(t *testing.T) {
	b := startBroker(t)
	adm := newAdmin(t, b.addr())
	ctx := testCtx(t, 30*time.Second)

	// Create with partitions and configs; the response describes the topic.
	cr, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000")}, "adm-a")
	if err != nil {
		t.Fatal(err)
	}
	if r := cr["adm-a"]; r.Err != nil || r.NumPartitions != 3 || r.ReplicationFactor != 1 || r.ID == (kadm.TopicID{}) {
		t.Fatalf("create adm-a: %+v", r)
	} else if c := r.Configs["retention.ms"]; c.Value == nil || *c.Value != "60000" {
		t.Fatalf("create adm-a: retention.ms in the response = %+v", c)
	}
	// -1 partitions: the broker default.
	if cr, err := adm.CreateTopics(ctx, -1, -1, nil, "adm-default"); err != nil || cr["adm-default"].Err != nil || cr["adm-default"].NumPartitions != 1 {
		t.Fatalf("create with defaults: %v %+v", err, cr["adm-default"])
	}
	// Validate-only creates nothing.
	if cr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "adm-dry"); err != nil || cr["adm-dry"].Err != nil {
		t.Fatalf("validate create: %v %+v", err, cr["adm-dry"])
	}
	if cr, err := adm.ValidateCreateTopics(ctx, 2, 1, map[string]*string{"retention.ms": kadm.StringPtr("soon")}, "adm-dry"); err != nil || !errors.Is(cr["adm-dry"].Err, kerr.InvalidConfig) {
		t.Fatalf("validate create with a bad config: %v %+v", err, cr["adm-dry"])
	}

	// Failures, each with its error code.
	long := strings.Repeat("x", 250)
	for _, c := range []struct {
		what       string
		name       string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
	}{
		{"duplicate", "adm-a", 1, 1, nil, kerr.TopicAlreadyExists},
		{"space in name", "bad name", 1, 1, nil, kerr.InvalidTopicException},
		{"slash in name", "bad/name", 1, 1, nil, kerr.InvalidTopicException},
		{"dot", ".", 1, 1, nil, kerr.InvalidTopicException},
		{"dot dot", "..", 1, 1, nil, kerr.InvalidTopicException},
		{"250 characters", long, 1, 1, nil, kerr.InvalidTopicException},
		{"unknown config", "adm-x", 1, 1, map[string]*string{"no.such.config": kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"non-numeric value", "adm-x", 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("forever")}, kerr.InvalidConfig},
		{"bad enum value", "adm-x", 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("sometimes")}, kerr.InvalidConfig},
		{"replication factor 3", "adm-x", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"too many partitions", "adm-x", 1_000_000, 1, nil, kerr.InvalidPartitions},
	} {
		cr, err := adm.CreateTopics(ctx, c.partitions, c.rf, c.configs, c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if got := cr[c.name].Err; !errors.Is(got, c.want) {
			t.Errorf("create (%s): %v, want %v", c.what, got, c.want)
		}
	}

	// kadm answers ListTopics from its client's metadata cache: list with a
	// fresh client to see the broker's current state.
	listTopics := func(topics ...string) (kadm.TopicDetails, error) {
		return newAdmin(t, b.addr()).ListTopics(ctx, topics...)
	}
	td, err := listTopics()
	if err != nil {
		t.Fatal(err)
	}
	if got := td.Names(); !slices.Equal(got, []string{"adm-a", "adm-default"}) {
		t.Fatalf("ListTopics = %v, want [adm-a adm-default] (nothing from validate-only or failed creates)", got)
	}
	if d := td["adm-a"]; len(d.Partitions) != 3 || d.ID == (kadm.TopicID{}) {
		t.Fatalf("ListTopics adm-a: %+v", d)
	}
	if td, err := listTopics("adm-missing"); err != nil || !errors.Is(td["adm-missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("ListTopics(adm-missing): %v %+v", err, td["adm-missing"])
	}

	describe := func(topic string) map[string]kadm.Config {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
		}
		out := map[string]kadm.Config{}
		for _, c := range rc.Configs {
			out[c.Key] = c
		}
		return out
	}
	cfg := describe("adm-a")
	if c := cfg["retention.ms"]; cfgValue(c) != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms: %+v", c)
	}
	if c := cfg["cleanup.policy"]; cfgValue(c) != "delete" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("cleanup.policy: %+v", c)
	}
	if rcs, err := adm.DescribeTopicConfigs(ctx, "adm-missing"); err == nil {
		if rc, _ := rcs.On("adm-missing", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("describe adm-missing: %+v", rc)
		}
	} else if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("describe adm-missing: %v", err)
	}

	// Incremental alter: set and delete; validate-only changes nothing.
	alterErr := func(topic string) func(kadm.AlterConfigsResponses, error) error {
		return func(resps kadm.AlterConfigsResponses, err error) error {
			if err != nil {
				return err
			}
			r, err := resps.On(topic, nil)
			if err != nil {
				return err
			}
			return r.Err
		}
	}
	if err := alterErr("adm-a")(adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "adm-a")); err != nil {
		t.Fatalf("validate alter: %v", err)
	}
	if c := describe("adm-a")["cleanup.policy"]; cfgValue(c) != "delete" {
		t.Fatalf("validate-only alter changed cleanup.policy to %s", cfgValue(c))
	}
	err = alterErr("adm-a")(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact,delete")},
		{Op: kadm.SetConfig, Name: "segment.ms", Value: kadm.StringPtr("3600000")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "adm-a"))
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
	cfg = describe("adm-a")
	if cfgValue(cfg["cleanup.policy"]) != "compact,delete" || cfgValue(cfg["segment.ms"]) != "3600000" ||
		cfg["retention.ms"].Source != kmsg.ConfigSourceDefaultConfig || cfgValue(cfg["retention.ms"]) != "604800000" {
		t.Fatalf("after alter: cleanup.policy %+v segment.ms %+v retention.ms %+v", cfg["cleanup.policy"], cfg["segment.ms"], cfg["retention.ms"])
	}
	for _, c := range []struct {
		what  string
		topic string
		ac    kadm.AlterConfig
		want  error
	}{
		{"bad value", "adm-a", kadm.AlterConfig{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("big")}, kerr.InvalidConfig},
		{"out of range", "adm-a", kadm.AlterConfig{Op: kadm.SetConfig, Name: "flush.messages", Value: kadm.StringPtr("0")}, kerr.InvalidConfig},
		{"unknown key", "adm-a", kadm.AlterConfig{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"unknown topic", "adm-missing", kadm.AlterConfig{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}, kerr.UnknownTopicOrPartition},
	} {
		if err := alterErr(c.topic)(adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{c.ac}, c.topic)); !errors.Is(err, c.want) {
			t.Errorf("alter (%s): %v, want %v", c.what, err, c.want)
		}
	}
	if c := describe("adm-a")["segment.bytes"]; c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("a failed alter changed segment.bytes: %+v", c)
	}

	// Partitions: grow by 2, then to 8; shrinking or unknown topics fail.
	if cp, err := adm.CreatePartitions(ctx, 2, "adm-a"); err != nil || cp["adm-a"].Err != nil {
		t.Fatalf("add partitions: %v %+v", err, cp)
	}
	if cp, err := adm.UpdatePartitions(ctx, 8, "adm-a"); err != nil || cp["adm-a"].Err != nil {
		t.Fatalf("set partitions: %v %+v", err, cp)
	}
	if cp, err := adm.UpdatePartitions(ctx, 4, "adm-a"); err != nil || !errors.Is(cp["adm-a"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrink partitions: %v %+v", err, cp)
	}
	if cp, err := adm.CreatePartitions(ctx, 1, "adm-missing"); err != nil || !errors.Is(cp["adm-missing"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("grow a missing topic: %v %+v", err, cp)
	}
	if td, err := listTopics("adm-a"); err != nil || len(td["adm-a"].Partitions) != 8 {
		t.Fatalf("after growing: %v %+v", err, td["adm-a"])
	}
	// The new partitions take writes.
	cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "adm-a", Partition: 7, Value: []byte("p7")}).FirstErr(); err != nil {
		t.Fatalf("produce to a new partition: %v", err)
	}

	// Delete; again is unknown; the name can be reused and starts empty.
	if dr, err := adm.DeleteTopics(ctx, "adm-a"); err != nil || dr["adm-a"].Err != nil {
		t.Fatalf("delete: %v %+v", err, dr)
	}
	if dr, err := adm.DeleteTopics(ctx, "adm-a"); err != nil || !errors.Is(dr["adm-a"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("delete again: %v %+v", err, dr)
	}
	if td, err := listTopics(); err != nil || !slices.Equal(td.Names(), []string{"adm-default"}) {
		t.Fatalf("after delete: %v %v", err, td.Names())
	}
	createTopic(t, b.addr(), "adm-a", 1, nil)
	if cfg := describe("adm-a"); cfgValue(cfg["cleanup.policy"]) != "delete" {
		t.Fatalf("recreated topic kept the old configs: %+v", cfg["cleanup.policy"])
	}
	end, err := adm.ListEndOffsets(ctx, "adm-a")
	if err != nil {
		t.Fatal(err)
	}
	if off, err := lookup(end, "adm-a", 0); err != nil || off != 0 {
		t.Fatalf("recreated topic: end offset %d %v", off, err)
	}
}

// TestHTTPMetricsAndHealth checks /healthz and that /metrics reflects
// traffic: Produce requests counted, partition high watermarks exported.
func TestHTTPMetricsAndHealth(t *testing.T) {
	b := startBroker(t)
	createTopic(t, b.addr(), "metered", 2, nil)
	cl := newClient(t, b.addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testCtx(t, 20*time.Second)
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "metered", Partition: 1, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	readLog(t, cl, "metered", 1) // some Fetch traffic too

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + b.srv.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("/debug/pprof/goroutine: %d %.200s", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	values := map[string]float64{} // "name{labels}" → value
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		values[line[:i]] = v
	}
	for series, want := range map[string]func(float64) bool{
		`weir_kafka_requests_total{api="Produce"}`:                       func(v float64) bool { return v >= 5 },
		`weir_kafka_requests_total{api="Fetch"}`:                         func(v float64) bool { return v >= 1 },
		`weir_partition_high_watermark{partition="1",topic="metered"}`:   func(v float64) bool { return v == 5 },
		`weir_partition_high_watermark{partition="0",topic="metered"}`:   func(v float64) bool { return v == 0 },
		`weir_partition_log_end_offset{partition="1",topic="metered"}`:   func(v float64) bool { return v == 5 },
		`weir_partition_log_size_bytes{partition="1",topic="metered"}`:   func(v float64) bool { return v > 0 },
		`weir_kafka_request_duration_seconds_count{api="Produce"}`:       func(v float64) bool { return v >= 5 },
		`weir_kafka_connections`:                                         func(v float64) bool { return v >= 1 },
		`weir_kafka_bytes_in_total`:                                      func(v float64) bool { return v > 0 },
		`weir_kafka_bytes_out_total`:                                     func(v float64) bool { return v > 0 },
		`weir_partition_log_start_offset{partition="1",topic="metered"}`: func(v float64) bool { return v == 0 },
		`weir_kafka_request_duration_seconds_count{api="ApiVersions"}`:   func(v float64) bool { return v >= 1 },
		`weir_kafka_requests_total{api="Metadata"}`:                      func(v float64) bool { return v >= 1 },
		`weir_kafka_requests_total{api="CreateTopics"}`:                  func(v float64) bool { return v >= 1 },
	} {
		v, ok := values[series]
		if !ok {
			t.Errorf("/metrics has no %s", series)
		} else if !want(v) {
			t.Errorf("/metrics: %s = %v", series, v)
		}
	}
}
