package group

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func sameSubs(n int, topics ...string) []Subscription {
	subs := make([]Subscription, n)
	for i := range subs {
		subs[i] = Subscription{Member: fmt.Sprintf("m%d", i), Topics: topics}
	}
	return subs
}

// checkPlan: every partition is owned (assigned or pending revocation) at
// most once, and assigned partitions exist and are subscribed.
func checkPlan(t *testing.T, name string, subs []Subscription, parts map[string]int32, p Plan) map[TopicPartition]string {
	t.Helper()
	owner := map[TopicPartition]string{}
	for m, tps := range p.Assigned {
		var sub Subscription
		for _, s := range subs {
			if s.Member == m {
				sub = s
			}
		}
		for _, tp := range tps {
			if tp.Partition < 0 || tp.Partition >= parts[tp.Topic] || !subscribed(sub, tp.Topic) {
				t.Fatalf("%s: %s assigned %v, which it cannot own", name, m, tp)
			}
			if o, dup := owner[tp]; dup {
				t.Fatalf("%s: %v assigned to %s and %s", name, tp, o, m)
			}
			owner[tp] = m
		}
	}
	return owner
}

func TestRangeAndRoundRobin(t *testing.T) {
	parts := map[string]int32{"a": 5, "b": 3}
	subs := sameSubs(2, "a", "b")
	r := RangeAssignor{}.Assign(subs, parts)
	if fmt.Sprint(r.Assigned["m0"]) != "[{a 0} {a 1} {a 2} {b 0} {b 1}]" || fmt.Sprint(r.Assigned["m1"]) != "[{a 3} {a 4} {b 2}]" {
		t.Fatalf("range: %v", r.Assigned)
	}
	rr := RoundRobinAssignor{}.Assign(subs, parts)
	if fmt.Sprint(rr.Assigned["m0"]) != "[{a 0} {a 2} {a 4} {b 1}]" || fmt.Sprint(rr.Assigned["m1"]) != "[{a 1} {a 3} {b 0} {b 2}]" {
		t.Fatalf("roundrobin: %v", rr.Assigned)
	}
	// A member subscribed to one topic only gets that topic.
	subs = []Subscription{{Member: "x", Topics: []string{"a"}}, {Member: "y", Topics: []string{"a", "b"}}}
	for _, a := range []Assignor{RangeAssignor{}, RoundRobinAssignor{}, CooperativeStickyAssignor{}} {
		p := a.Assign(subs, parts)
		owner := checkPlan(t, a.Name(), subs, parts, p)
		if len(owner) != 8 {
			t.Fatalf("%s: %d of 8 partitions assigned", a.Name(), len(owner))
		}
	}
}

// TestCooperativeSticky simulates rebalances as members come and go: each
// round applies the previous plan (members own what they were assigned),
// reruns until no revocations remain, and checks balance and stickiness.
func TestCooperativeSticky(t *testing.T) {
	parts := map[string]int32{"orders": 6, "clicks": 7}
	total := 13
	a := CooperativeStickyAssignor{}
	owned := map[string][]TopicPartition{}
	members := []string{}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 40; step++ {
		// Add or remove a member.
		if len(members) < 2 || (rng.IntN(2) == 0 && len(members) < 6) {
			members = append(members, fmt.Sprintf("w%02d", step))
		} else {
			i := rng.IntN(len(members))
			delete(owned, members[i])
			members = append(members[:i], members[i+1:]...)
		}
		before := map[TopicPartition]string{}
		for m, tps := range owned {
			for _, tp := range tps {
				before[tp] = m
			}
		}
		for round := 0; ; round++ {
			if round > 2 {
				t.Fatalf("step %d: still revoking after %d rounds", step, round)
			}
			subs := make([]Subscription, len(members))
			for i, m := range members {
				subs[i] = Subscription{Member: m, Topics: []string{"orders", "clicks"}, Owned: owned[m]}
			}
			p := a.Assign(subs, parts)
			checkPlan(t, "sticky", subs, parts, p)
			// A revoked partition is not assigned to anyone in the same round.
			for m, tps := range p.Revoked {
				for _, tp := range tps {
					for m2, as := range p.Assigned {
						for _, x := range as {
							if x == tp {
								t.Fatalf("step %d: %v revoked from %s and assigned to %s in one round", step, tp, m, m2)
							}
						}
					}
				}
			}
			owned = p.Assigned
			if len(p.Revoked) == 0 {
				break
			}
		}
		// Balanced, complete.
		n, lo, hi := 0, total, 0
		for _, m := range members {
			k := len(owned[m])
			n += k
			lo, hi = min(lo, k), max(hi, k)
		}
		if n != total || hi-lo > 1 {
			t.Fatalf("step %d: %d partitions over %d members, counts %d..%d", step, n, len(members), lo, hi)
		}
		// Sticky: a partition whose owner survived moves only if that owner
		// was above its share.
		moved := 0
		for _, m := range members {
			for _, tp := range owned[m] {
				if prev, ok := before[tp]; ok && prev != m {
					moved++
				}
			}
		}
		if limit := total/len(members) + 1; moved > limit {
			t.Fatalf("step %d: %d partitions moved between surviving members", step, moved)
		}
	}
}
