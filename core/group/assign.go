package group

import (
	"sort"
)

// Broker-side assignors, for weir's own pipeline workers (Kafka clients
// assign on the client side; the coordinator only relays their plan).

// Subscription is one member's input to an assignor: the topics it wants
// and, for sticky assignment, the partitions it owns now.
type Subscription struct {
	Member string
	Topics []string
	Owned  []TopicPartition
}

// Plan is an assignor's output. Assigned is what each member should own
// after this rebalance. Revoked is non-empty only for cooperative
// assignment: partitions a member must give up first; they are left out of
// Assigned everywhere, and a follow-up rebalance hands them to their new
// owners, so no partition is ever owned by two members at once.
type Plan struct {
	Assigned map[string][]TopicPartition
	Revoked  map[string][]TopicPartition
}

// Assignor computes a Plan from subscriptions and partition counts.
type Assignor interface {
	Name() string
	Assign(subs []Subscription, partitions map[string]int32) Plan
}

// Assignors by protocol name: "range", "roundrobin", "cooperative-sticky".
var Assignors = map[string]Assignor{
	"range":              RangeAssignor{},
	"roundrobin":         RoundRobinAssignor{},
	"cooperative-sticky": CooperativeStickyAssignor{},
}

func sortedSubs(subs []Subscription) []Subscription {
	s := append([]Subscription(nil), subs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Member < s[j].Member })
	return s
}

func subscribed(s Subscription, topic string) bool {
	for _, t := range s.Topics {
		if t == topic {
			return true
		}
	}
	return false
}

func sortedTopics(partitions map[string]int32) []string {
	ts := make([]string, 0, len(partitions))
	for t := range partitions {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

func newPlan(subs []Subscription) Plan {
	p := Plan{Assigned: map[string][]TopicPartition{}, Revoked: map[string][]TopicPartition{}}
	for _, s := range subs {
		p.Assigned[s.Member] = nil
	}
	return p
}

// RangeAssignor gives each member a contiguous range of every topic it
// subscribes to; the first members (by id) get one extra when the count
// does not divide (Kafka's RangeAssignor).
type RangeAssignor struct{}

func (RangeAssignor) Name() string { return "range" }

func (RangeAssignor) Assign(subs []Subscription, partitions map[string]int32) Plan {
	subs = sortedSubs(subs)
	plan := newPlan(subs)
	for _, t := range sortedTopics(partitions) {
		var ms []string
		for _, s := range subs {
			if subscribed(s, t) {
				ms = append(ms, s.Member)
			}
		}
		if len(ms) == 0 {
			continue
		}
		n := int(partitions[t])
		per, extra := n/len(ms), n%len(ms)
		p := 0
		for i, m := range ms {
			k := per
			if i < extra {
				k++
			}
			for j := 0; j < k; j++ {
				plan.Assigned[m] = append(plan.Assigned[m], TopicPartition{t, int32(p)})
				p++
			}
		}
	}
	return plan
}

// RoundRobinAssignor deals all partitions, sorted by topic and partition,
// to the subscribed members in turn (Kafka's RoundRobinAssignor).
type RoundRobinAssignor struct{}

func (RoundRobinAssignor) Name() string { return "roundrobin" }

func (RoundRobinAssignor) Assign(subs []Subscription, partitions map[string]int32) Plan {
	subs = sortedSubs(subs)
	plan := newPlan(subs)
	if len(subs) == 0 {
		return plan
	}
	next := 0
	for _, t := range sortedTopics(partitions) {
		for p := int32(0); p < partitions[t]; p++ {
			for tries := 0; tries < len(subs); tries++ {
				s := subs[next%len(subs)]
				next++
				if subscribed(s, t) {
					plan.Assigned[s.Member] = append(plan.Assigned[s.Member], TopicPartition{t, p})
					break
				}
			}
		}
	}
	return plan
}

// CooperativeStickyAssignor balances partitions (counts differ by at most
// one among members with the same subscriptions) while moving as few as
// possible, and moves them incrementally: a partition that changes owner is
// first only revoked from its old owner; the next rebalance assigns it.
type CooperativeStickyAssignor struct{}

func (CooperativeStickyAssignor) Name() string { return "cooperative-sticky" }

func (CooperativeStickyAssignor) Assign(subs []Subscription, partitions map[string]int32) Plan {
	subs = sortedSubs(subs)
	plan := newPlan(subs)
	if len(subs) == 0 {
		return plan
	}
	total := 0
	for _, n := range partitions {
		total += int(n)
	}
	quota, extra := total/len(subs), total%len(subs) // members may hold quota, and `extra` of them quota+1
	owner := map[TopicPartition]string{}
	bySub := map[string]Subscription{}
	for _, s := range subs {
		bySub[s.Member] = s
	}
	// 1. Keep what each member owns, up to its share.
	atExtra := 0
	for _, s := range subs {
		var keep []TopicPartition
		owned := append([]TopicPartition(nil), s.Owned...)
		sort.Slice(owned, func(i, j int) bool { return lessTP(owned[i], owned[j]) })
		for _, tp := range owned {
			if tp.Partition >= partitions[tp.Topic] || !subscribed(s, tp.Topic) || owner[tp] != "" {
				continue
			}
			limit := quota
			if atExtra < extra {
				limit = quota + 1
			}
			if len(keep) >= limit {
				continue
			}
			keep = append(keep, tp)
			owner[tp] = s.Member
		}
		if len(keep) > quota {
			atExtra++
		}
		plan.Assigned[s.Member] = keep
	}
	// 2. Hand out the rest to the least loaded subscribed member. load
	// counts pending (revoked-then-assigned) partitions too, so the next
	// rebalance's plan is balanced.
	prevOwner := map[TopicPartition]string{}
	for _, s := range subs {
		for _, tp := range s.Owned {
			prevOwner[tp] = s.Member
		}
	}
	load := map[string]int{}
	for m, tps := range plan.Assigned {
		load[m] = len(tps)
	}
	for _, t := range sortedTopics(partitions) {
		for p := int32(0); p < partitions[t]; p++ {
			tp := TopicPartition{t, p}
			if owner[tp] != "" {
				continue
			}
			best := ""
			for _, s := range subs {
				if subscribed(s, t) && (best == "" || load[s.Member] < load[best]) {
					best = s.Member
				}
			}
			if best == "" {
				continue
			}
			owner[tp] = best
			load[best]++
			// Cooperative: a partition another member still owns is only
			// revoked from it now; the next rebalance assigns it.
			if prev, ok := prevOwner[tp]; ok && prev != best {
				if _, stillMember := bySub[prev]; stillMember {
					plan.Revoked[prev] = append(plan.Revoked[prev], tp)
					continue
				}
			}
			plan.Assigned[best] = append(plan.Assigned[best], tp)
		}
	}
	for m := range plan.Assigned {
		tps := plan.Assigned[m]
		sort.Slice(tps, func(i, j int) bool { return lessTP(tps[i], tps[j]) })
	}
	for m := range plan.Revoked {
		sort.Slice(plan.Revoked[m], func(i, j int) bool { return lessTP(plan.Revoked[m][i], plan.Revoked[m][j]) })
	}
	return plan
}

func lessTP(a, b TopicPartition) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}
