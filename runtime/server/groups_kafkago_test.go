package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestLog records the API key and version of every request a client
// writes, by parsing the frames on its connections.
type requestLog struct {
	mu   sync.Mutex
	seen map[int16]map[int16]bool
}

func (l *requestLog) versions(key kmsg.Key) []int16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var vs []int16
	for v := range l.seen[key.Int16()] {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

func (l *requestLog) String() string {
	l.mu.Lock()
	keys := make([]int16, 0, len(l.seen))
	for k := range l.seen {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %v", kmsg.NameForKey(k), l.versions(kmsg.Key(k))))
	}
	return strings.Join(parts, ", ")
}

type loggedConn struct {
	net.Conn
	log *requestLog
	buf []byte // bytes of a frame not yet complete
}

func (c *loggedConn) Write(b []byte) (int, error) {
	c.buf = append(c.buf, b...)
	for len(c.buf) >= 8 {
		size := int(binary.BigEndian.Uint32(c.buf))
		key, version := int16(binary.BigEndian.Uint16(c.buf[4:])), int16(binary.BigEndian.Uint16(c.buf[6:]))
		if len(c.buf) < 4+size {
			break
		}
		c.log.mu.Lock()
		if c.log.seen == nil {
			c.log.seen = map[int16]map[int16]bool{}
		}
		if c.log.seen[key] == nil {
			c.log.seen[key] = map[int16]bool{}
		}
		c.log.seen[key][version] = true
		c.log.mu.Unlock()
		c.buf = c.buf[4+size:]
	}
	return c.Conn.Write(b)
}

// TestKafkaGoReaderGroup: three segmentio/kafka-go readers in one group
// (JoinGroup v1/v2, SyncGroup v0, Heartbeat v0, OffsetCommit v2,
// OffsetFetch v1, FindCoordinator v0 — versions below the ones that know
// MEMBER_ID_REQUIRED) share a six-partition topic two partitions each and
// commit; records produced once the group is stable are consumed exactly
// once, each reader reading only its own partitions; after the readers
// close, the committed offsets are the end offsets.
func TestKafkaGoReaderGroup(t *testing.T) {
	t.Parallel()
	b := groupBroker(t)
	const topic, group, parts = "kgo-readers", "kafka-go-g", int32(6)
	createTopic(t, b.addr(), topic, parts, nil)
	adm := newAdmin(t, b.addr())
	led := newLedger()
	reqs := &requestLog{}
	partsOf := map[string]map[int]bool{} // reader -> partitions of the records it read
	var mu sync.Mutex

	phase1 := produceSpread(t, b.addr(), topic, "p1", parts, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers []*kafka.Reader
	var wg sync.WaitGroup
	kds := make([]*killDialer, 3)
	cancels := make([]context.CancelFunc, 3)
	for i := range 3 {
		name := fmt.Sprintf("kafka-go-%d", i)
		kd := &killDialer{}
		kds[i] = kd
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := kd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &loggedConn{Conn: c, log: reqs}, nil
		}
		ctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.addr()}, GroupID: group, Topic: topic,
			Dialer:   &kafka.Dialer{ClientID: name, Timeout: 5 * time.Second, DialFunc: dial},
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond,
			SessionTimeout: groupSessionTimeout, HeartbeatInterval: groupHeartbeat, RebalanceTimeout: 10 * time.Second,
			JoinGroupBackoff: 200 * time.Millisecond, ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
			StartOffset: kafka.FirstOffset,
			ErrorLogger: kafka.LoggerFunc(func(f string, args ...any) { t.Logf(name+": "+f, args...) }),
		})
		readers = append(readers, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, io.EOF) {
						t.Errorf("%s: fetch: %v", name, err)
					}
					return
				}
				led.add(name, string(m.Value))
				mu.Lock()
				if partsOf[name] == nil {
					partsOf[name] = map[int]bool{}
				}
				if strings.HasPrefix(string(m.Value), "p2-") {
					partsOf[name][m.Partition] = true
				}
				mu.Unlock()
				// A commit can fail across a rebalance (the generation
				// moved on); the next owner then reads the record again.
				if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
					t.Logf("%s: commit %s/%d@%d: %v", name, m.Topic, m.Partition, m.Offset, err)
				}
			}
		}()
	}
	killed := -1
	closeReaders := sync.OnceFunc(func() {
		for i, r := range readers {
			if err := r.Close(); err != nil && i != killed {
				t.Errorf("reader close: %v", err)
			}
		}
		cancel()
		wg.Wait()
	})
	t.Cleanup(closeReaders)

	led.waitAll(t, "phase 1", phase1, 30*time.Second)
	// Wait for the group to settle with three members, two partitions each.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := describeGroup(t, adm, group)
		ok := d.State == "Stable" && len(d.Members) == 3
		for _, m := range d.Members {
			a, isConsumer := m.Assigned.AsConsumer()
			ok = ok && isConsumer && len(a.Topics) == 1 && len(a.Topics[0].Partitions) == 2
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group never settled with 3 members of 2 partitions: state %s, %d members", d.State, len(d.Members))
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkDescribed(t, adm, group, topic, "range", 3, 2, parts)
	waitCommitted(t, adm, group, topic, parts)
	t.Logf("phase 1: %d of %d records read twice while readers joined", led.duplicates(phase1), len(phase1))

	phase2 := produceSpread(t, b.addr(), topic, "p2", parts, 20)
	led.waitAll(t, "phase 2", phase2, 20*time.Second)
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 2 (stable group)", phase2)
	mu.Lock()
	var shares []string
	for name, ps := range partsOf {
		var l []int
		for p := range ps {
			l = append(l, p)
		}
		sort.Ints(l)
		shares = append(shares, fmt.Sprintf("%s %v", name, l))
		if len(ps) != 2 {
			t.Errorf("%s read phase 2 from partitions %v, want its 2", name, l)
		}
	}
	mu.Unlock()
	sort.Strings(shares)
	if len(shares) != 3 {
		t.Errorf("phase 2 read by %d readers, want 3: %v", len(shares), shares)
	}
	t.Logf("phase 2 shares: %v", shares)

	// Phase 3: kill one reader without a LeaveGroup (its connections are cut
	// and it can dial no more). When its session expires the two survivors
	// take its partitions, three each, and every record is read at least
	// once.
	killed = 2
	killedAt := time.Now()
	kds[killed].kill()
	cancels[killed]()
	phase3 := produceSpread(t, b.addr(), topic, "p3", parts, 20)
	led.waitAll(t, "phase 3 (after a reader died)", phase3, 30*time.Second)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d := describeGroup(t, adm, group)
		ok := d.State == "Stable" && len(d.Members) == 2
		for _, m := range d.Members {
			a, isConsumer := m.Assigned.AsConsumer()
			ok = ok && isConsumer && len(a.Topics) == 1 && len(a.Topics[0].Partitions) == 3
		}
		if ok {
			t.Logf("kafka-go: survivors own 3 partitions each %v after the kill", time.Since(killedAt).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill: state %s with %d members, want 2 members of 3 partitions", d.State, len(d.Members))
		}
	}
	t.Logf("phase 3: %d of %d records read twice (processed by the dead reader, not committed)", led.duplicates(phase3), len(phase3))

	// The readers heartbeat every 250ms; wait for one before closing.
	for deadline := time.Now().Add(10 * time.Second); len(reqs.versions(kmsg.Heartbeat)) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("kafka-go readers sent no Heartbeat")
		}
	}
	closeReaders()
	waitCommitted(t, adm, group, topic, parts)
	if d := describeGroup(t, adm, group); d.State != "Empty" {
		t.Errorf("after the readers closed: state %s with %d members, want Empty", d.State, len(d.Members))
	}
	t.Logf("kafka-go requests: %v", reqs)
	for _, want := range []struct {
		key kmsg.Key
		ok  func(int16) bool
	}{
		{kmsg.FindCoordinator, func(v int16) bool { return v == 0 }},
		{kmsg.JoinGroup, func(v int16) bool { return v == 1 || v == 2 }},
		{kmsg.SyncGroup, func(v int16) bool { return v == 0 }},
		{kmsg.Heartbeat, func(v int16) bool { return v == 0 }},
		{kmsg.OffsetCommit, func(v int16) bool { return v == 2 }},
		{kmsg.OffsetFetch, func(v int16) bool { return v == 1 }},
		{kmsg.LeaveGroup, func(v int16) bool { return v == 0 }},
	} {
		vs := reqs.versions(want.key)
		if len(vs) == 0 || !slices.ContainsFunc(vs, want.ok) {
			t.Errorf("kafka-go sent %s versions %v, not the expected old version", kmsg.NameForKey(want.key.Int16()), vs)
		}
	}
}
