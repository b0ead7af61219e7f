package control

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func kinds(es []Event) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("%s %s %s", e.Worker.ID, e.Kind, e.Why))
	}
	return strings.Join(s, "; ")
}

// TestMembershipRules: joins, changes, restarts, goodbyes and timeouts,
// on a clock the test moves.
func TestMembershipRules(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := NewMembership(time.Second)
	a := Heartbeat{ID: "a", Capacity: 4, Incarnation: 1}
	b := Heartbeat{ID: "b", Capacity: 4, Incarnation: 1}
	steps := []struct {
		what string
		got  []Event
		want string
	}{
		{"a first heard", m.Observe(a, at(0)), "a joined "},
		{"b first heard", m.Observe(b, at(100)), "b joined "},
		{"a again, same", m.Observe(a, at(500)), ""},
		{"nothing expired yet", m.Expire(at(1050)), ""},
		{"a changes capacity", m.Observe(Heartbeat{ID: "a", Capacity: 8, Incarnation: 1}, at(1100)), "a changed announcement"},
		{"b silent for 1 s", m.Expire(at(1100)), "b left timeout"},
		{"a restarts", m.Observe(Heartbeat{ID: "a", Capacity: 8, Incarnation: 2}, at(1200)), "a changed restarted"},
		{"a's former self, late", m.Observe(Heartbeat{ID: "a", Capacity: 1, Incarnation: 1}, at(1300)), ""},
		{"a goodbye of the former self", m.Observe(Heartbeat{ID: "a", Incarnation: 1, Leaving: true}, at(1300)), ""},
		{"a says goodbye", m.Observe(Heartbeat{ID: "a", Incarnation: 2, Leaving: true}, at(1400)), "a left goodbye"},
		{"b comes back", m.Observe(b, at(1500)), "b joined "},
	}
	for _, s := range steps {
		if got := kinds(s.got); got != s.want {
			t.Fatalf("%s: %q, want %q", s.what, got, s.want)
		}
	}
	if ms := m.Members(); len(ms) != 1 || ms[0].ID != "b" {
		t.Fatalf("members %+v", ms)
	}
}

// TestMembershipOverNATS: three workers announce themselves through an
// embedded NATS server; one says goodbye, one goes silent (its connection
// closed without a goodbye): both leave, the silent one within the
// session timeout and a check interval.
func TestMembershipOverNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := Start(ctx, Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	var events []Event
	leftAt := map[string]time.Time{}
	const timeout = 500 * time.Millisecond
	go p.WatchMembers(ctx, timeout, func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
		if e.Kind == Left {
			leftAt[e.Worker.ID] = time.Now()
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: events %s", what, kinds(events))
			}
		}
	}
	// Each worker has a connection of its own, as worker processes do.
	workers := map[string]context.CancelFunc{}
	planes := map[string]*Plane{}
	done := map[string]chan error{}
	for _, id := range []string{"w1", "w2", "w3"} {
		wp, err := Start(ctx, Options{URLs: []string{p.URL()}})
		if err != nil {
			t.Fatal(err)
		}
		planes[id] = wp
		wctx, stop := context.WithCancel(ctx)
		workers[id] = stop
		d := make(chan error, 1) // the goroutine must not read the map the loop writes
		done[id] = d
		go func() {
			d <- wp.Announce(wctx, 50*time.Millisecond, func() Heartbeat { return Heartbeat{ID: id, Capacity: 4} })
		}()
	}
	waitFor("three joins", func() bool { return len(events) == 3 })
	workers["w1"]()
	if err := <-done["w1"]; err != nil {
		t.Fatal(err)
	}
	goodbye := time.Now()
	waitFor("w1's goodbye", func() bool { return !leftAt["w1"].IsZero() })
	silent := time.Now()
	planes["w2"].nc.Close() // gone without a goodbye
	waitFor("w2 timed out", func() bool { return !leftAt["w2"].IsZero() })
	mu.Lock()
	defer mu.Unlock()
	if d := leftAt["w1"].Sub(goodbye); d > timeout/2 {
		t.Errorf("a goodbye took %v to be seen", d)
	}
	if d := leftAt["w2"].Sub(silent); d < timeout-60*time.Millisecond || d > timeout+timeout/4+200*time.Millisecond {
		t.Errorf("a silent worker left after %v (timeout %v)", d, timeout)
	}
	var last []string
	for _, e := range events {
		last = append(last, e.Worker.ID+" "+e.Kind.String()+" "+e.Why)
	}
	t.Logf("events: %s; w1 left %v after its goodbye, w2 %v after going silent", strings.Join(last, ", "), leftAt["w1"].Sub(goodbye), leftAt["w2"].Sub(silent))
	for _, e := range events {
		if e.Worker.ID == "w3" && e.Kind != Joined {
			t.Errorf("w3, alive all along: %s", e.Kind)
		}
	}
	workers["w3"]()
	workers["w2"]()
	for _, wp := range planes {
		wp.Close()
	}
}
