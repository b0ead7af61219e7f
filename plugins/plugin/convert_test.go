package plugin

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/plugins/pluginpb"
	"github.com/weirstream/weir/sdk"
)

// TestRoundTrip: records survive the wire, including the difference
// between a null and an empty key or value.
func TestRoundTrip(t *testing.T) {
	in := []sdk.Record{
		{Key: nil, Value: nil, Topic: "t", Partition: 2, Offset: 7, Timestamp: time.UnixMilli(1700000000123)},
		{Key: []byte{}, Value: []byte{}, Topic: "t", Offset: 8, Timestamp: time.UnixMilli(1)},
		{Key: []byte("k"), Value: []byte("v"), Headers: []sdk.Header{{Key: "h", Value: []byte("x")}, {Key: "n", Value: nil}}, Topic: "u", Offset: 9, Timestamp: time.UnixMilli(2)},
	}
	wire, err := proto.Marshal(&pluginpb.Batch{Records: ToPB(nil, in)})
	if err != nil {
		t.Fatal(err)
	}
	var b pluginpb.Batch
	if err := proto.Unmarshal(wire, &b); err != nil {
		t.Fatal(err)
	}
	out := FromPB(nil, b.Records)
	for i := range in {
		a, o := in[i], out[i]
		if (a.Key == nil) != (o.Key == nil) || (a.Value == nil) != (o.Value == nil) || !bytes.Equal(a.Key, o.Key) || !bytes.Equal(a.Value, o.Value) {
			t.Errorf("record %d: key %q (nil %v) value %q (nil %v) came back as key %q (nil %v) value %q (nil %v)",
				i, a.Key, a.Key == nil, a.Value, a.Value == nil, o.Key, o.Key == nil, o.Value, o.Value == nil)
		}
		if !a.Timestamp.Equal(o.Timestamp) || a.Topic != o.Topic || a.Partition != o.Partition || a.Offset != o.Offset || len(a.Headers) != len(o.Headers) {
			t.Errorf("record %d: %+v came back as %+v", i, a, o)
		}
	}
}
