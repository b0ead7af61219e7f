package abi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/sdk"
	"github.com/weirstream/weir/sdk/jsonfield"
)

func TestRoundTrip(t *testing.T) {
	in := []sdk.Record{
		{Key: []byte("k"), Value: []byte("v"), Offset: 7, Partition: 2, Timestamp: time.UnixMilli(1700000000123), Headers: []sdk.Header{{Key: "a", Value: []byte("b")}, {Key: "n", Value: nil}}},
		{Key: nil, Value: []byte{}, Offset: 8, Timestamp: time.UnixMilli(5)},
	}
	got, err := DecodeBatch(AppendBatch(nil, "topic", in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Topic != "topic" || string(got[0].Key) != "k" || got[0].Offset != 7 || got[0].Partition != 2 ||
		!got[0].Timestamp.Equal(in[0].Timestamp) || len(got[0].Headers) != 2 || got[0].Headers[1].Value != nil ||
		got[1].Key != nil || got[1].Value == nil || len(got[1].Value) != 0 {
		t.Fatalf("%+v", got)
	}
	res := sdk.Results{}
	res.Emit(1, sdk.Record{Key: []byte("x"), Value: nil, Output: "hot", Timestamp: time.UnixMilli(9)})
	res.Fail(0, errors.New("bad"))
	var back sdk.Results
	if err := DecodeResults(AppendResults(nil, &res), nil, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Out) != 1 || back.Out[0].Source != 1 || back.Out[0].Record.Output != "hot" || back.Out[0].Record.Value != nil ||
		len(back.Failed) != 1 || back.Failed[0].Err.Error() != "bad" {
		t.Fatalf("%+v", back)
	}
	var be *BatchError
	if err := DecodeResults(AppendBatchError(nil, "nope"), nil, &back); !errors.As(err, &be) || be.Msg != "nope" {
		t.Fatalf("batch error: %v", err)
	}
}

// FuzzDecode: arbitrary bytes never panic, never allocate beyond what the
// input can hold, and what decodes (without fields) re-encodes to the same
// bytes.
func FuzzDecode(f *testing.F) {
	f.Add(AppendBatch(nil, "t", []sdk.Record{{Key: []byte("k"), Value: []byte("v")}}))
	var res sdk.Results
	res.Emit(0, sdk.Record{Value: []byte("v")})
	f.Add(AppendResults(nil, &res))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Add(AppendBatchFields(nil, "t", []sdk.Record{{Value: []byte(`{"a":1,"b":"x"}`)}, {Value: []byte("no")}}, jsonfield.New("a", "b")))
	f.Fuzz(func(t *testing.T, b []byte) {
		// With fields sections: a record's sections are reachable
		// without panicking once the batch decodes.
		fs := Fields{N: 2}
		if recs, err := AppendBatchRecordsFields(nil, &fs, b); err == nil {
			for k := range recs {
				spans, msg := fs.Record(k)
				if _, ok := fs.Spans(k); len(spans) != 2 || spanInPlace && ok != (msg == "") {
					t.Fatalf("record %d: %d spans, message %q, in place %v", k, len(spans), msg, ok)
				}
			}
		}
		if recs, err := DecodeBatch(b); err == nil {
			topic := ""
			if len(recs) > 0 {
				topic = recs[0].Topic
			} else if len(b) >= 4 {
				topic = string(b[4 : 4+int(uint32(b[0])|uint32(b[1])<<8|uint32(b[2])<<16|uint32(b[3])<<24)])
			}
			if again := AppendBatch(nil, topic, recs); !bytes.Equal(again, b) {
				t.Fatalf("batch %x re-encodes to %x", b, again)
			}
		}
		var r sdk.Results
		_ = DecodeResults(b, fuzzBatch, &r)
	})
}

var fuzzBatch = []sdk.Record{{Key: []byte("a")}, {Value: []byte("b")}}

// TestKept: an output that is its input unchanged crosses as a reference;
// a changed one (other value, other output, other timestamp) in full.
func TestKept(t *testing.T) {
	in, err := DecodeBatch(AppendBatch(nil, "t", []sdk.Record{
		{Key: []byte("k0"), Value: []byte("v0"), Timestamp: time.UnixMilli(1), Headers: []sdk.Header{{Key: "h", Value: []byte("x")}}},
		{Key: []byte("k1"), Value: []byte("v1"), Timestamp: time.UnixMilli(2)},
	}))
	if err != nil {
		t.Fatal(err)
	}
	// The same results into a KeptWriter and, for the full encoding, an
	// sdk.Results.
	var res sdk.Results
	var w KeptWriter
	w.Reset(nil, in)
	for _, sink := range []sdk.Sink{&res, &w} {
		sink.Emit(0, in[0]) // kept
		changed := in[1]
		changed.Value = []byte("v1") // equal bytes, other memory: sent in full
		sink.Emit(1, changed)
		routed := in[1]
		routed.Output = "hot"
		sink.Emit(1, routed)
		sink.Emit(1, in[1]) // kept again (fan-out of the same record)
		sink.Fail(0, errors.New("also bad"))
	}
	enc := w.Bytes()
	full := AppendResults(nil, &res)
	if len(enc) >= len(full) {
		t.Fatalf("kept encoding %d bytes, full %d", len(enc), len(full))
	}
	host := []sdk.Record{{Key: []byte("k0"), Value: []byte("v0"), Timestamp: time.UnixMilli(1), Headers: []sdk.Header{{Key: "h", Value: []byte("x")}}},
		{Key: []byte("k1"), Value: []byte("v1"), Timestamp: time.UnixMilli(2)}}
	var back sdk.Results
	if err := DecodeResults(enc, host, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Out) != 4 || &back.Out[0].Record.Value[0] != &host[0].Value[0] || &back.Out[3].Record.Key[0] != &host[1].Key[0] ||
		string(back.Out[1].Record.Value) != "v1" || &back.Out[1].Record.Value[0] == &host[1].Value[0] || back.Out[2].Record.Output != "hot" ||
		len(back.Failed) != 1 {
		t.Fatalf("%+v", back)
	}
	// A kept output naming an input the batch does not have is corrupt.
	var bad sdk.Results
	if err := DecodeResults(enc, host[:1], &bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("kept input out of range: %v", err)
	}
}

// BenchmarkDecodeBatch is a guest's decoding of a batch of 1000 200-byte
// JSON records, without and with the spans of two fields. Run it as Go
// compiled to WASM, as a guest runs it, with
//
//	GOOS=wasip1 GOARCH=wasm go test -exec 'wazero run' -run X -bench DecodeBatch ./sdk/abi
func BenchmarkDecodeBatch(b *testing.B) {
	recs := make([]sdk.Record, 1000)
	for i := range recs {
		recs[i] = sdk.Record{Key: fmt.Appendf(nil, "user-%06d", i), Offset: int64(i), Timestamp: time.UnixMilli(1700000000000),
			Value: fmt.Appendf(nil, `{"user_id":"user-%06d","country":"NZ","amount":%d,"currency":"NZD","page":"/products/widgets/%d","referrer":"https://example.com/search?q=widgets","ts":%d}`, i, i, i%50, 1700000000000+i)}
	}
	plain := AppendBatch(nil, "clicks", recs)
	withFields := AppendBatchFields(nil, "clicks", recs, jsonfield.New("country", "amount"))
	var dst []sdk.Record
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			var err error
			if dst, err = AppendBatchRecords(dst[:0], plain); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
	b.Run("fields", func(b *testing.B) {
		f := Fields{N: 2}
		for range b.N {
			var err error
			if dst, err = AppendBatchRecordsFields(dst[:0], &f, withFields); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
}

// TestFieldsRoundTrip: the fields sections AppendBatchFields writes come
// back from AppendBatchRecordsFields as jsonfield gives them, where they
// are in the batch (Spans) and decoded (Record); a value that is not a
// JSON object comes back with jsonfield's message and absent spans.
func TestFieldsRoundTrip(t *testing.T) {
	in := []sdk.Record{
		{Key: []byte("k"), Value: []byte(`{"b": "x\"y", "a": [1, 2]}`), Headers: []sdk.Header{{Key: "h", Value: []byte("v")}}},
		{Value: []byte(`not json`)},
		{Value: nil},
		{Value: []byte(`{"a": 1}`)},
	}
	s := jsonfield.New("a", "b")
	b := AppendBatchFields(nil, "t", in, s)
	f := Fields{N: 2}
	out, err := AppendBatchRecordsFields(nil, &f, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || string(out[0].Headers[0].Value) != "v" {
		t.Fatalf("records %+v", out)
	}
	for k, r := range in {
		scanErr := s.Scan(r.Value)
		want := fmt.Sprint(s.Spans())
		spans, msg := f.Record(k)
		if got := fmt.Sprint(spans); got != want || (scanErr == nil) != (msg == "") || scanErr != nil && scanErr.Error() != msg {
			t.Errorf("record %d: Record %s %q; jsonfield %s %v", k, got, msg, want, scanErr)
		}
		inPlace, ok := f.Spans(k)
		if ok != (scanErr == nil) || ok && fmt.Sprint(inPlace) != want {
			t.Errorf("record %d: Spans %v %v; jsonfield %s %v", k, inPlace, ok, want, scanErr)
		}
	}
	// Every cut of the batch is refused as corrupt, not read past.
	for n := range len(b) {
		if _, err := AppendBatchRecordsFields(nil, &Fields{N: 2}, b[:n]); err == nil {
			t.Fatalf("batch cut to %d of %d bytes decoded", n, len(b))
		}
	}
	// A batch decoded for more fields than it has is refused.
	if _, err := AppendBatchRecordsFields(nil, &Fields{N: 3}, b); err == nil {
		t.Fatal("a batch of 2 fields decoded as 3")
	}
}

func TestNames(t *testing.T) {
	names := []string{"a", "é", "country"}
	got, err := DecodeNames(AppendNames(nil, names))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("%q %v", got, err)
	}
	many := make([]string, MaxFields+1)
	for i := range many {
		many[i] = fmt.Sprint("f", i)
	}
	for b, want := range map[string]string{
		string(AppendNames(nil, many)):               "abi: 65 JSON field names, more than the 64 a module may name",
		string(AppendNames(nil, []string{"a", ""})):  "abi: JSON field name 1 is empty",
		string(AppendNames(nil, []string{"a", "a"})): `abi: JSON field "a" named twice`,
		string(AppendNames(nil, names)) + "x":        "1 bytes after the field names",
		string(AppendNames(nil, names)[:9]):          "corrupt",
	} {
		if _, err := DecodeNames([]byte(b)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeNames(%q) = %v, want an error saying %q", b, err, want)
		}
	}
}
