package kafka

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/core/broker"
	"github.com/weirstream/weir/core/record"
)

// FuzzRequest feeds one frame body (header and request, no size prefix)
// through conn.handle, the function every connection runs on each frame,
// against a real broker. It must not panic, and it must either refuse the
// frame (the connection would close) or return one well-formed response
// frame: the size prefix matches, the correlation id is the request's, and
// the body decodes as the response to that key and version.
//
// Run: go test -run='^$' -fuzz=FuzzRequest -fuzztime=120s ./core/kafka/
func FuzzRequest(f *testing.F) {
	for _, pick := range []func(versionRange) int16{
		func(r versionRange) int16 { return r.min },
		func(r versionRange) int16 { return (r.min + r.max) / 2 },
		func(r versionRange) int16 { return r.max },
	} {
		for i, req := range sampleRequests(f, pick) {
			f.Add(encodeRequest(req, int32(i))[4:])
		}
	}
	// Produce at every version and with every codec; the header-only
	// ApiVersions v0; ApiVersions above our max; acks=0.
	for v := int16(0); v <= supported[kmsg.Produce.Int16()].max; v++ {
		req := produceRequest(v, "fz", 0, testBatch(f, record.Codec(v%5), 3, "seed"))
		f.Add(encodeRequest(req, 1)[4:])
	}
	req := produceRequest(9, "fz", 0, testBatch(f, record.CodecZstd, 3, "acks0"))
	req.Acks = 0
	f.Add(encodeRequest(req, 2)[4:])
	f.Add(rawHeader(kmsg.ApiVersions.Int16(), 0, 3))
	f.Add(append(rawHeader(kmsg.ApiVersions.Int16(), 9, 4), 1, 2, 3))
	f.Add(append(rawHeader(kmsg.Metadata.Int16(), 12, 5), 1, 0, 2, 'a', 'b', 0, 0, 0))

	dir := f.TempDir()
	b, err := broker.Open(broker.Config{
		DataDir:       dir,
		Logger:        testLogger(),
		MaxPartitions: 8, // the fuzzer creates topics; keep each one cheap
		TopicDefaults: map[string]string{"flush.messages": "9223372036854775807"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })

	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > testMaxRequest {
			return // the connection refuses frames over MaxRequestBytes before handle
		}
		in := append([]byte(nil), body...)
		resp, _, err := handleOnce(b, in, 20*time.Millisecond)
		if err != nil {
			return
		}
		key := int16(binary.BigEndian.Uint16(body))
		version := int16(binary.BigEndian.Uint16(body[2:]))
		req := kmsg.RequestForKey(key)
		if resp == nil {
			if pr, ok := req.(*kmsg.ProduceRequest); ok {
				pr.SetVersion(version)
				b := body[10+max(0, int(int16(binary.BigEndian.Uint16(body[8:])))):]
				if pr.IsFlexible() {
					r := &reader{b: b}
					kmsg.SkipTags(r)
					b = r.b
				}
				if pr.ReadFrom(b) == nil && pr.Acks == 0 {
					return // acks=0: no response, as Kafka
				}
			}
			t.Fatalf("%s v%d: no response and no error", kmsg.NameForKey(key), version)
		}
		if len(resp) < 8 || int(binary.BigEndian.Uint32(resp)) != len(resp)-4 {
			t.Fatalf("%s v%d: response size prefix does not match its %d bytes", kmsg.NameForKey(key), version, len(resp))
		}
		if key == kmsg.ApiVersions.Int16() && version > supported[key].max {
			version = 0 // KIP-511: answered in v0
		}
		corr := int32(binary.BigEndian.Uint32(body[4:]))
		if _, err := decodeResponse(resp[4:], req, version, corr); err != nil {
			t.Fatalf("%s v%d: %v", kmsg.NameForKey(key), version, err)
		}
	})
}

// handleOnce runs one frame body through conn.handle on a fresh Server in
// front of b. Requests that park (a Fetch waiting for MinBytes, JoinGroup
// waiting for members) are released after park by shutting that Server
// down, which answers them with what they have.
func handleOnce(b *broker.Broker, body []byte, park time.Duration) ([]byte, int16, error) {
	srv := NewServer(Config{Broker: b, Logger: testLogger(), AdvertisedHost: "127.0.0.1", AdvertisedPort: 9092})
	stop := time.AfterFunc(park, func() { srv.Shutdown(context.Background()) })
	defer stop.Stop()
	return (&conn{s: srv}).handle(body)
}
