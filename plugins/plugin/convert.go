package plugin

import (
	"time"

	"github.com/weirstream/weir/plugins/pluginpb"
	"github.com/weirstream/weir/sdk"
)

// ToPB appends the protocol form of records to dst. The messages alias
// the records' bytes.
func ToPB(dst []*pluginpb.Record, in []sdk.Record) []*pluginpb.Record {
	for i := range in {
		r := &in[i]
		m := &pluginpb.Record{Key: r.Key, Value: r.Value, TimestampMs: r.Timestamp.UnixMilli(), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		m.Headers = headersToPB(r.Headers)
		dst = append(dst, m)
	}
	return dst
}

// FromPB appends the records of the protocol form to dst; they alias the
// messages' bytes. A nil key or value is an absent field in the message
// (proto3 optional) and an empty one a present, empty field, so the
// difference Kafka makes between them survives the trip.
func FromPB(dst []sdk.Record, in []*pluginpb.Record) []sdk.Record {
	for _, m := range in {
		r := sdk.Record{Key: m.Key, Value: m.Value, Timestamp: time.UnixMilli(m.TimestampMs), Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
		r.Headers = HeadersFromPB(m.Headers)
		dst = append(dst, r)
	}
	return dst
}

// ResultsToPB is the protocol form of a batch's results.
func ResultsToPB(res *sdk.Results) *pluginpb.Results {
	out := &pluginpb.Results{Outputs: make([]*pluginpb.Output, len(res.Out)), Failures: make([]*pluginpb.Failure, len(res.Failed))}
	for i := range res.Out {
		o := &res.Out[i]
		out.Outputs[i] = &pluginpb.Output{Source: int32(o.Source), Output: o.Record.Output, Key: o.Record.Key, Value: o.Record.Value,
			Headers: headersToPB(o.Record.Headers), TimestampMs: o.Record.Timestamp.UnixMilli()}
	}
	for i, f := range res.Failed {
		msg := "failed"
		if f.Err != nil {
			msg = f.Err.Error()
		}
		out.Failures[i] = &pluginpb.Failure{Source: int32(f.Source), Error: msg}
	}
	return out
}

func headersToPB(hs []sdk.Header) []*pluginpb.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*pluginpb.Header, len(hs))
	for i, h := range hs {
		out[i] = &pluginpb.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

// HeadersFromPB is the sdk form of a message's headers (aliasing their
// bytes); nil for none.
func HeadersFromPB(hs []*pluginpb.Header) []sdk.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]sdk.Header, len(hs))
	for i, h := range hs {
		out[i] = sdk.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
