package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopicOptions are the settings of a new topic.
type CreateTopicOptions struct {
	// Partitions is the partition count; -1 asks for the broker's default.
	Partitions int32
	// ReplicationFactor is the replica count of every partition; -1 asks for the broker's default.
	ReplicationFactor int16
	// Configs are topic config overrides (retention.ms, cleanup.policy, ...).
	Configs []KV
}

// CreateTopic creates the topic name.
func CreateTopic(ctx context.Context, o Options, name string, co CreateTopicOptions) error {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	var configs map[string]*string
	if len(co.Configs) > 0 {
		configs = make(map[string]*string, len(co.Configs))
		for _, kv := range co.Configs {
			configs[kv.Key] = kadm.StringPtr(kv.Value)
		}
	}
	resp, err := adm.CreateTopic(ctx, co.Partitions, co.ReplicationFactor, configs, name)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic %s: %w%s", name, resp.Err, detail(resp.ErrMessage))
	}
	return nil
}

func detail(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// TopicSummary is one row of ListTopics.
type TopicSummary struct {
	Name       string
	Partitions int
	Replicas   int // replication factor (replicas of partition 0)
	Internal   bool
}

// ListTopics lists the cluster's topics sorted by name; internal topics (__consumer_offsets, ...) only if
// internal is true.
func ListTopics(ctx context.Context, o Options, internal bool) ([]TopicSummary, error) {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	var tds kadm.TopicDetails
	if internal {
		tds, err = adm.ListTopicsWithInternal(ctx)
	} else {
		tds, err = adm.ListTopics(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	out := make([]TopicSummary, 0, len(tds))
	for _, td := range tds {
		if td.Err != nil {
			return nil, topicErr(td.Topic, td.Err)
		}
		s := TopicSummary{Name: td.Topic, Partitions: len(td.Partitions), Internal: td.IsInternal}
		if p, ok := td.Partitions[0]; ok {
			s.Replicas = len(p.Replicas)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PrintTopics writes topics as a table.
func PrintTopics(w io.Writer, topics []TopicSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPARTITIONS\tREPLICAS")
	for _, t := range topics {
		name := t.Name
		if t.Internal {
			name += " (internal)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", name, t.Partitions, t.Replicas)
	}
	return tw.Flush()
}

// PartitionInfo describes one partition of a topic.
type PartitionInfo struct {
	Partition     int32
	Leader        int32
	LeaderEpoch   int32
	Replicas      []int32
	ISR           []int32
	LogStart      int64 // first offset still in the log
	HighWatermark int64 // offset after the last committed record
	Err           error // a partition-level error from metadata or offset listing, if any
}

// ConfigEntry is one topic config as the broker reports it.
type ConfigEntry struct {
	Key       string
	Value     *string // nil: no value (or sensitive)
	Sensitive bool
	// Source is the Kafka config source (DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG, STATIC_BROKER_CONFIG, ...).
	Source string
	// Overridden is true when the topic sets the value itself (source DYNAMIC_TOPIC_CONFIG); otherwise it is
	// inherited from the broker or its defaults.
	Overridden bool
}

// TopicDescription is the result of DescribeTopic.
type TopicDescription struct {
	Name       string
	ID         string
	Internal   bool
	Partitions []PartitionInfo // sorted by partition
	Configs    []ConfigEntry   // sorted by key
}

// DescribeTopic reports a topic's partitions (leader, replicas, log start and high watermark) and configs.
func DescribeTopic(ctx context.Context, o Options, name string) (*TopicDescription, error) {
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()

	tds, err := adm.ListTopicsWithInternal(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe topic %s: %w", name, err)
	}
	td, ok := tds[name]
	if !ok {
		return nil, &UnknownTopicError{Topic: name}
	}
	if td.Err != nil {
		return nil, topicErr(name, td.Err)
	}
	d := &TopicDescription{Name: name, Internal: td.IsInternal}
	if td.ID != (kadm.TopicID{}) {
		d.ID = td.ID.String()
	}

	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe topic %s: list start offsets: %w", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe topic %s: list end offsets: %w", name, err)
	}
	for _, pd := range td.Partitions.Sorted() {
		pi := PartitionInfo{
			Partition: pd.Partition, Leader: pd.Leader, LeaderEpoch: pd.LeaderEpoch,
			Replicas: pd.Replicas, ISR: pd.ISR, Err: pd.Err, LogStart: -1, HighWatermark: -1,
		}
		if lo, ok := starts.Lookup(name, pd.Partition); ok {
			pi.LogStart = lo.Offset
			if pi.Err == nil {
				pi.Err = lo.Err
			}
		}
		if lo, ok := ends.Lookup(name, pd.Partition); ok {
			pi.HighWatermark = lo.Offset
			if pi.Err == nil {
				pi.Err = lo.Err
			}
		}
		d.Partitions = append(d.Partitions, pi)
	}

	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("describe topic %s: configs: %w", name, err)
	}
	rc, err := rcs.On(name, nil)
	if err != nil {
		return nil, topicErr(name, err)
	}
	if rc.Err != nil {
		return nil, fmt.Errorf("describe topic %s: configs: %w%s", name, rc.Err, detail(rc.ErrMessage))
	}
	for _, c := range rc.Configs {
		d.Configs = append(d.Configs, ConfigEntry{
			Key: c.Key, Value: c.Value, Sensitive: c.Sensitive, Source: c.Source.String(),
			Overridden: c.Source == kmsg.ConfigSourceDynamicTopicConfig,
		})
	}
	sort.Slice(d.Configs, func(i, j int) bool { return d.Configs[i].Key < d.Configs[j].Key })
	return d, nil
}

// Config returns the entry for key, if the broker reported it.
func (d *TopicDescription) Config(key string) (ConfigEntry, bool) {
	for _, c := range d.Configs {
		if c.Key == key {
			return c, true
		}
	}
	return ConfigEntry{}, false
}

// Print writes the description: a header, a partition table and a config table.
func (d *TopicDescription) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\t%s\n", d.Name)
	if d.ID != "" {
		fmt.Fprintf(tw, "ID\t%s\n", d.ID)
	}
	if d.Internal {
		fmt.Fprintf(tw, "INTERNAL\ttrue\n")
	}
	fmt.Fprintf(tw, "PARTITIONS\t%d\n", len(d.Partitions))
	if len(d.Partitions) > 0 {
		fmt.Fprintf(tw, "REPLICAS\t%d\n", len(d.Partitions[0].Replicas))
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}

	withErr := false
	for _, p := range d.Partitions {
		withErr = withErr || p.Err != nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG-START\tHIGH-WATERMARK"
	if withErr {
		head += "\tERROR"
	}
	fmt.Fprintln(tw, head)
	for _, p := range d.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s", p.Partition, p.Leader, p.LeaderEpoch,
			ints(p.Replicas), ints(p.ISR), offset(p.LogStart), offset(p.HighWatermark))
		if withErr {
			e := "-"
			if p.Err != nil {
				e = p.Err.Error()
			}
			fmt.Fprintf(tw, "\t%s", e)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONFIG\tVALUE\tSOURCE")
	for _, c := range d.Configs {
		v := "-"
		switch {
		case c.Sensitive:
			v = "(sensitive)"
		case c.Value != nil:
			v = *c.Value
		}
		src := "default"
		if c.Overridden {
			src = "override"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\n", c.Key, v, src, c.Source)
	}
	return tw.Flush()
}

func ints(xs []int32) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func offset(o int64) string {
	if o < 0 {
		return "-"
	}
	return fmt.Sprint(o)
}

// DeleteTopics deletes the named topics. Every topic is attempted; the error joins the failures, one per topic
// ("topic X does not exist" for unknown ones).
func DeleteTopics(ctx context.Context, o Options, names ...string) error {
	if len(names) == 0 {
		return errors.New("no topics to delete")
	}
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	resps, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var errs []error
	for _, n := range names {
		r, ok := resps[n]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("delete topic %s: no answer from the broker", n))
		case r.Err != nil:
			e := topicErr(n, r.Err)
			if _, unknown := e.(*UnknownTopicError); !unknown {
				e = fmt.Errorf("delete topic %s: %w%s", n, r.Err, detail(r.ErrMessage))
			}
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// AlterTopicConfig changes a topic's configs with IncrementalAlterConfigs: set assigns values, del removes
// overrides so the topic falls back to the broker default. Other configs are left as they are.
func AlterTopicConfig(ctx context.Context, o Options, name string, set []KV, del []string) error {
	if len(set) == 0 && len(del) == 0 {
		return errors.New("nothing to change: give --set key=value or --delete key")
	}
	var acs []kadm.AlterConfig
	for _, kv := range set {
		acs = append(acs, kadm.AlterConfig{Op: kadm.SetConfig, Name: kv.Key, Value: kadm.StringPtr(kv.Value)})
	}
	for _, k := range del {
		acs = append(acs, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	adm, done, err := connectAdmin(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := withTimeout(ctx, o)
	defer cancel()
	resps, err := adm.AlterTopicConfigs(ctx, acs, name)
	if err != nil {
		return fmt.Errorf("alter topic %s: %w", name, err)
	}
	r, err := resps.On(name, nil)
	if err != nil {
		return fmt.Errorf("alter topic %s: no answer from the broker", name)
	}
	if r.Err != nil {
		e := topicErr(name, r.Err)
		if _, unknown := e.(*UnknownTopicError); !unknown {
			e = fmt.Errorf("alter topic %s: %w%s", name, r.Err, detail(r.ErrMessage))
		}
		return e
	}
	return nil
}
