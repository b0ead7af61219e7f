package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// SubjectHeartbeat is where workers announce themselves.
const SubjectHeartbeat = "weir.workers.heartbeat"

// Heartbeat is a worker's announcement, published every interval: who it
// is, how many partitions it takes, and which pipeline versions it can
// run. A worker going away cleanly sends one last heartbeat with Leaving.
type Heartbeat struct {
	ID       string `json:"id"`
	Capacity int    `json:"capacity"`
	// Pipelines maps each pipeline the worker can run to its version.
	Pipelines map[string]string `json:"pipelines,omitempty"`
	// Incarnation tells a restarted worker (same ID) from its former self:
	// the start time in nanoseconds.
	Incarnation int64 `json:"incarnation"`
	Leaving     bool  `json:"leaving,omitempty"`
	// Running is what the worker does for each pipeline it runs now
	// (weir pipeline status gathers it); it changes with every beat and
	// is not a membership change.
	Running map[string]PipelineRun `json:"running,omitempty"`
	// Sent is when the worker sent the heartbeat, by its clock: rates are
	// differences between two heartbeats of one worker.
	Sent time.Time `json:"sent"`
}

// PipelineRun is one pipeline on one worker, as of a heartbeat.
type PipelineRun struct {
	// Revision is the deployed revision the worker runs.
	Revision uint64 `json:"revision"`
	// State is "running", "restarting" or "halted"; Error the last error.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Partitions are the input partitions the worker owns, as
	// "topic/partition".
	Partitions []string `json:"partitions"`
	// Counters since the worker started this revision.
	In       int64 `json:"in"`
	Out      int64 `json:"out"`
	Filtered int64 `json:"filtered"`
	Failed   int64 `json:"failed"`
}

// EventKind is what changed in the membership.
type EventKind int

const (
	// Joined: a worker not in the membership was heard.
	Joined EventKind = iota
	// Changed: a member's capacity or pipelines changed, or it restarted
	// (a new incarnation: what it owned before is no longer its).
	Changed
	// Left: a member said goodbye, or missed heartbeats for the timeout.
	Left
)

func (k EventKind) String() string {
	return [...]string{"joined", "changed", "left"}[k]
}

// Event is one change of the membership.
type Event struct {
	Kind   EventKind
	Worker Heartbeat
	// Why a worker left: "goodbye" or "timeout"; why it changed:
	// "restarted" or "announcement".
	Why string
}

// Membership is the set of live workers as heartbeats reveal it. It does
// no I/O and reads no clock: the caller feeds it heartbeats and the time,
// so its rules are tested without a network. A worker is a member from
// its first heartbeat until it says goodbye or no heartbeat arrives for
// the timeout.
type Membership struct {
	timeout time.Duration
	members map[string]*member
}

type member struct {
	hb       Heartbeat
	lastSeen time.Time
}

// NewMembership makes an empty membership with the session timeout.
func NewMembership(timeout time.Duration) *Membership {
	return &Membership{timeout: timeout, members: map[string]*member{}}
}

// Observe takes a heartbeat heard at now and returns what it changed.
func (m *Membership) Observe(hb Heartbeat, now time.Time) []Event {
	cur := m.members[hb.ID]
	switch {
	case hb.Leaving:
		if cur == nil || cur.hb.Incarnation != hb.Incarnation {
			return nil // a goodbye of an incarnation already gone
		}
		delete(m.members, hb.ID)
		return []Event{{Kind: Left, Worker: cur.hb, Why: "goodbye"}}
	case cur == nil:
		m.members[hb.ID] = &member{hb: hb, lastSeen: now}
		return []Event{{Kind: Joined, Worker: hb}}
	case hb.Incarnation < cur.hb.Incarnation:
		return nil // a late heartbeat of a former incarnation
	}
	cur.lastSeen = now
	if hb.Incarnation != cur.hb.Incarnation {
		cur.hb = hb
		return []Event{{Kind: Changed, Worker: hb, Why: "restarted"}}
	}
	if hb.Capacity != cur.hb.Capacity || !mapsEqual(hb.Pipelines, cur.hb.Pipelines) {
		cur.hb = hb
		return []Event{{Kind: Changed, Worker: hb, Why: "announcement"}}
	}
	return nil
}

// Expire removes the members not heard from for the timeout by now.
func (m *Membership) Expire(now time.Time) []Event {
	var out []Event
	for id, mb := range m.members {
		if now.Sub(mb.lastSeen) >= m.timeout {
			delete(m.members, id)
			out = append(out, Event{Kind: Left, Worker: mb.hb, Why: "timeout"})
		}
	}
	slices.SortFunc(out, func(a, b Event) int { return strings.Compare(a.Worker.ID, b.Worker.ID) })
	return out
}

// Members are the live workers, by ID.
func (m *Membership) Members() []Heartbeat {
	out := make([]Heartbeat, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, mb.hb)
	}
	slices.SortFunc(out, func(a, b Heartbeat) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Announce publishes a heartbeat every interval until ctx ends, then a
// goodbye: each one is what beat returns then (so its Running is
// current), with the ID and Incarnation of the first. It returns when the
// goodbye is flushed (or could not be), or at once when the connection is
// closed for good. While NATS reconnects, heartbeats are buffered by the
// client.
func (p *Plane) Announce(ctx context.Context, interval time.Duration, beat func() Heartbeat) error {
	hb := beat()
	if hb.ID == "" || strings.ContainsAny(hb.ID, " \t\r\n") {
		return fmt.Errorf("%w: worker id %q", ErrConfig, hb.ID)
	}
	id, incarnation := hb.ID, hb.Incarnation
	if incarnation == 0 {
		incarnation = time.Now().UnixNano()
	}
	publish := func(hb Heartbeat) error {
		hb.ID, hb.Incarnation, hb.Sent = id, incarnation, time.Now()
		b, err := json.Marshal(hb)
		if err != nil {
			return err
		}
		return p.nc.Publish(SubjectHeartbeat, b)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if p.nc.IsClosed() {
			return fmt.Errorf("control: worker %s: %w", id, nats.ErrConnectionClosed)
		}
		if err := publish(hb); err != nil && !errors.Is(err, nats.ErrConnectionReconnecting) {
			p.log.Warn("control plane: heartbeat not sent", "worker", id, "err", err)
		}
		select {
		case <-ctx.Done():
			hb = beat()
			hb.Leaving = true
			if err := publish(hb); err != nil {
				return err
			}
			return p.nc.FlushTimeout(2 * time.Second)
		case <-t.C:
			hb = beat()
		}
	}
}

// WatchMembers follows the heartbeats and calls fn with each membership
// change, from one goroutine, until ctx ends; a member silent for timeout
// leaves (checked every timeout/4). Malformed heartbeats are logged and
// ignored.
func (p *Plane) WatchMembers(ctx context.Context, timeout time.Duration, fn func(Event)) error {
	beats := make(chan Heartbeat, 256)
	sub, err := p.nc.Subscribe(SubjectHeartbeat, func(msg *nats.Msg) {
		var hb Heartbeat
		if err := json.Unmarshal(msg.Data, &hb); err != nil || hb.ID == "" {
			p.log.Warn("control plane: malformed heartbeat ignored", "data", string(msg.Data), "err", err)
			return
		}
		select {
		case beats <- hb:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("control: subscribe %s: %w", SubjectHeartbeat, err)
	}
	var once sync.Once
	unsub := func() { once.Do(func() { sub.Unsubscribe() }) }
	defer unsub()
	m := NewMembership(timeout)
	tick := time.NewTicker(max(timeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case hb := <-beats:
			for _, e := range m.Observe(hb, time.Now()) {
				fn(e)
			}
		case now := <-tick.C:
			for _, e := range m.Expire(now) {
				fn(e)
			}
		}
	}
}

// Heard is what CollectHeartbeats heard from one worker: its first and
// last heartbeat in the window (the same one when it beat once).
type Heard struct{ First, Last Heartbeat }

// CollectHeartbeats listens to the workers' heartbeats for d and returns
// what each worker (by ID) said first and last; a worker that said
// goodbye in the window is left out.
func (p *Plane) CollectHeartbeats(ctx context.Context, d time.Duration) (map[string]Heard, error) {
	var mu sync.Mutex
	heard := map[string]Heard{}
	sub, err := p.nc.Subscribe(SubjectHeartbeat, func(msg *nats.Msg) {
		var hb Heartbeat
		if json.Unmarshal(msg.Data, &hb) != nil || hb.ID == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if hb.Leaving {
			delete(heard, hb.ID)
			return
		}
		h, ok := heard[hb.ID]
		if !ok || h.First.Incarnation != hb.Incarnation {
			h.First = hb
		}
		h.Last = hb
		heard[hb.ID] = h
	})
	if err != nil {
		return nil, fmt.Errorf("control: subscribe %s: %w", SubjectHeartbeat, err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	return heard, ctx.Err()
}
