package group

import (
	"testing"
	"time"
)

func TestSnapshotRestore(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := New("g", Config{InitialRebalanceDelay: -1}, now)
	req := func(h uint64, member, instance string) JoinRequest {
		return JoinRequest{Handle: h, MemberID: member, InstanceID: instance, ClientID: "c", SessionTimeout: 10 * time.Second,
			RebalanceTimeout: 10 * time.Second, ProtocolType: "consumer", Protocols: []Protocol{{Name: "range", Metadata: []byte("m")}}}
	}
	g.Join(now, req(1, "", "i1"))
	eff := g.Sync(now, SyncRequest{Handle: 2, MemberID: "c-1", Generation: 1, Assignments: map[string][]byte{"c-1": []byte("a1")}})
	if len(eff.Syncs) != 1 || eff.Syncs[0].Code != None || !eff.Persist {
		t.Fatalf("sync: %+v", eff)
	}
	g.Commit(now, map[TopicPartition]Offset{{"t", 0}: {Offset: 7}})
	snap := g.Snapshot()
	later := now.Add(time.Minute)
	r := Restore(snap, map[TopicPartition]Offset{{"t", 0}: {Offset: 7}}, Config{InitialRebalanceDelay: -1}, later)
	if r.State != Stable || r.Generation != 1 || r.Leader != "c-1" {
		t.Fatalf("restored %s gen %d leader %s", r.State, r.Generation, r.Leader)
	}
	if c := r.Heartbeat(later, "c-1", "i1", 1); c != None {
		t.Fatalf("heartbeat after restore: %s", c)
	}
	eff = r.Sync(later, SyncRequest{Handle: 3, MemberID: "c-1", Generation: 1})
	if len(eff.Syncs) != 1 || string(eff.Syncs[0].Assignment) != "a1" {
		t.Fatalf("assignment after restore: %+v", eff)
	}
	if o, ok := r.Offset(TopicPartition{"t", 0}); !ok || o.Offset != 7 {
		t.Fatalf("offset after restore: %+v %v", o, ok)
	}
	// A new member gets a fresh id, not one the restored members use.
	eff = r.Join(later, req(4, "", ""))
	if r.State != PreparingRebalance || r.sortedMemberIDs()[1] != "c-2" {
		t.Fatalf("join after restore: %s %v", r.State, r.sortedMemberIDs())
	}
	// Session expiry still works from the restore time.
	eff = r.Tick(later.Add(11 * time.Second))
	if _, ok := r.Members["c-1"]; ok {
		t.Fatalf("restored member that never heartbeats was not expired")
	}
}
