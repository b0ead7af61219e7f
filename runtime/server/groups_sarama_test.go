package server_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaMember is a sarama consumer-group member: Setup reports the
// session's claims, ConsumeClaim processes (adds to the ledger) and marks
// each message; offsets are committed by sarama's autocommit and when a
// session ends.
type saramaMember struct {
	t      *testing.T
	name   string
	topic  string
	cg     sarama.ConsumerGroup
	dial   *killDialer
	dead   atomic.Bool
	own    *owners
	led    *ledger
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (m *saramaMember) Setup(s sarama.ConsumerGroupSession) error {
	if !m.dead.Load() {
		m.own.set(m.name, s.Claims()[m.topic])
	}
	return nil
}

func (m *saramaMember) Cleanup(sarama.ConsumerGroupSession) error {
	m.own.set(m.name, nil)
	return nil
}

func (m *saramaMember) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok || m.dead.Load() {
				return nil
			}
			m.led.add(m.name, string(msg.Value))
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

func startSaramaMember(t *testing.T, addr, group, topic, name string, strategy sarama.BalanceStrategy, own *owners, led *ledger) *saramaMember {
	t.Helper()
	m := &saramaMember{t: t, name: name, topic: topic, dial: &killDialer{}, own: own, led: led, done: make(chan struct{})}
	cfg := saramaConfig(sarama.V2_8_0_0)
	cfg.ClientID = name
	cfg.Net.Proxy.Enable, cfg.Net.Proxy.Dialer = true, m.dial
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = groupSessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = groupHeartbeat
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatalf("sarama consumer group %s: %v", name, err)
	}
	m.cg = cg
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { // sarama reports asynchronous errors here; a rebalance may produce some
		for err := range cg.Errors() {
			if !m.dead.Load() {
				t.Logf("sarama %s: %v", name, err)
			}
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil && !m.dead.Load() {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil && !m.dead.Load() {
				t.Logf("sarama %s: consume: %v", name, err)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

// kill simulates a crash: connections drop, processing stops, no
// LeaveGroup is sent.
func (m *saramaMember) kill() {
	m.dead.Store(true)
	m.dial.kill()
	m.cancel()
}

// close ends the session (committing what was marked) and leaves the group.
func (m *saramaMember) close() {
	m.once.Do(func() {
		m.cancel()
		closed := make(chan struct{})
		go func() {
			<-m.done
			if err := m.cg.Close(); err != nil && !m.dead.Load() {
				m.t.Errorf("sarama %s: close: %v", m.name, err)
			}
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(20 * time.Second):
			m.t.Errorf("sarama %s: Close hung", m.name)
		}
	})
}

// TestSaramaGroupFailover: three sarama members (range, round-robin and
// sticky strategies) share a six-partition topic two partitions each,
// consuming records waiting before they joined exactly once; one crashes
// mid-stream and the survivors take its partitions within
// session.timeout+1s, consuming every record at least once; one closes
// normally and the last member owns everything within 1s; committed offsets
// reach the end of every partition.
func TestSaramaGroupFailover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strategy func() sarama.BalanceStrategy
	}{
		{"range", sarama.NewBalanceStrategyRange},
		{"roundrobin", sarama.NewBalanceStrategyRoundRobin},
		{"sticky", sarama.NewBalanceStrategySticky},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testSaramaGroupFailover(t, tc.name, tc.strategy)
		})
	}
}

func testSaramaGroupFailover(t *testing.T, protocol string, strategy func() sarama.BalanceStrategy) {
	b := groupBroker(t)
	const topic, group, parts = "events", "sarama-g", int32(6)
	createTopic(t, b.addr(), topic, parts, nil)
	adm := newAdmin(t, b.addr())
	own, led := newOwners(), newLedger()

	phase1 := produceSpread(t, b.addr(), topic, "p1", parts, 30)
	ma := startSaramaMember(t, b.addr(), group, topic, "a", strategy(), own, led)
	mb := startSaramaMember(t, b.addr(), group, topic, "b", strategy(), own, led)
	mc := startSaramaMember(t, b.addr(), group, topic, "c", strategy(), own, led)
	own.waitNow(t, covering([]string{"a", "b", "c"}, parts, 2), 30*time.Second)
	led.waitAll(t, "phase 1", phase1, 20*time.Second)
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 1 (three members joining, clean)", phase1)
	checkDescribed(t, adm, group, topic, protocol, 3, 2, parts)
	t.Logf("stable: %v", own)

	phase2 := produceSpread(t, b.addr(), topic, "p2a", parts, 20)
	led.waitMember(t, "c", phase2, 20*time.Second)
	killed := time.Now()
	mc.kill()
	phase2 = append(phase2, produceSpread(t, b.addr(), topic, "p2b", parts, 20)...)
	at := own.waitAfter(t, killed, covering([]string{"a", "b"}, parts, 3), 20*time.Second)
	t.Logf("TIMING sarama %s crash: survivors own all %d partitions %v after the kill (session timeout %v)", protocol, parts, at.Sub(killed).Round(time.Millisecond), groupSessionTimeout)
	if d := at.Sub(killed); d > crashReassignBound {
		t.Errorf("crashed member's partitions reassigned after %v, want <= %v", d, crashReassignBound)
	}
	led.waitAll(t, "phase 2 (crash)", phase2, 20*time.Second)
	t.Logf("phase 2: %d of %d records consumed twice (processed by the crashed member, not committed)", led.duplicates(phase2), len(phase2))

	phase3 := produceSpread(t, b.addr(), topic, "p3a", parts, 10)
	led.waitAll(t, "phase 3a", phase3, 20*time.Second)
	left := time.Now()
	mb.close()
	at = own.waitAfter(t, left, covering([]string{"a"}, parts, 6), 20*time.Second)
	t.Logf("TIMING sarama %s leave: remaining member owns all %d partitions %v after Close", protocol, parts, at.Sub(left).Round(time.Millisecond))
	if d := at.Sub(left); d > leaveReassignBound {
		t.Errorf("leaving member's partitions reassigned after %v, want <= %v", d, leaveReassignBound)
	}
	phase3 = append(phase3, produceSpread(t, b.addr(), topic, "p3b", parts, 10)...)
	led.waitAll(t, "phase 3", phase3, 20*time.Second)
	ma.close()
	waitCommitted(t, adm, group, topic, parts)
	led.exactlyOnce(t, "phase 3 (clean leave)", phase3)
}
