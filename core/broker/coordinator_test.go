package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/core/group"
)

// A group that is gone — deleted, or forgotten after its offsets expired —
// must stay gone after a restart: the tombstones written for its offsets
// must not recreate it when __consumer_offsets is replayed.
func TestRemovedGroupsStayRemovedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	now := time.UnixMilli(1_700_000_000_000)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	open := func() *Broker {
		t.Helper()
		b, err := Open(Config{DataDir: dir, Now: clock, Groups: CoordinatorConfig{OffsetsRetention: time.Hour, TickInterval: 10 * time.Millisecond,
			Group: group.Config{InitialRebalanceDelay: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	if _, err := b.CreateTopic("t", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	c := b.Coordinator()
	ctx := context.Background()
	commit := func(groupID string) {
		t.Helper()
		offs := map[group.TopicPartition]group.Offset{{Topic: "t", Partition: 0}: {Offset: 5}, {Topic: "t", Partition: 1}: {Offset: 7}}
		if code, err := c.CommitOffsets(ctx, groupID, "", "", -1, offs); code != group.None || err != nil {
			t.Fatalf("commit to %s: %v %v", groupID, code, err)
		}
	}
	commit("deleted")
	commit("expired")
	commit("kept")
	// A group with metadata (it had a member) whose offsets then expire.
	jr, err := c.Join(ctx, "expired", group.JoinRequest{ClientID: "m", SessionTimeout: 10 * time.Second, ProtocolType: "consumer",
		Protocols: []group.Protocol{{Name: "range", Metadata: []byte{0}}}})
	if err != nil || jr.Code != group.None {
		t.Fatalf("join: %+v %v", jr, err)
	}
	if _, codes := c.Leave("expired", []group.LeaveMember{{MemberID: jr.MemberID}}); codes[0] != group.None {
		t.Fatalf("leave: %v", codes)
	}
	if code, err := c.DeleteGroup(ctx, "deleted"); code != group.None || err != nil {
		t.Fatalf("delete: %v %v", code, err)
	}
	// Only "expired" is old enough to expire; "kept" commits again later.
	mu.Lock()
	now = now.Add(30 * time.Minute)
	mu.Unlock()
	commit("kept")
	mu.Lock()
	now = now.Add(40 * time.Minute)
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := c.DescribeGroup("expired"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets of the long-empty group never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	check := func(when string) {
		t.Helper()
		var ids []string
		for _, g := range b.Coordinator().Groups() {
			ids = append(ids, g.ID)
		}
		if len(ids) != 1 || ids[0] != "kept" {
			t.Errorf("%s: groups %v, want [kept]", when, ids)
		}
		for _, id := range []string{"deleted", "expired"} {
			if offs := b.Coordinator().FetchOffsets(id, nil); len(offs) != 0 {
				t.Errorf("%s: group %s has offsets %v", when, id, offs)
			}
		}
		if offs := b.Coordinator().FetchOffsets("kept", nil); len(offs) != 2 {
			t.Errorf("%s: kept group has offsets %v, want 2", when, offs)
		}
	}
	check("before the restart")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open()
	defer b.Close()
	check("after the restart")
}

// TestMemberIDsUniqueAcrossRestarts: the member-id counter restarts with
// the broker, but ids carry a per-start salt, so a stale client's id is
// never handed to a new member.
func TestMemberIDsUniqueAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ids := map[string]bool{}
	for round := 0; round < 2; round++ {
		b, err := Open(Config{DataDir: dir, Groups: CoordinatorConfig{Group: group.Config{InitialRebalanceDelay: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.Coordinator().Join(context.Background(), "g", group.JoinRequest{ClientID: "c", SessionTimeout: 10 * time.Second,
			ProtocolType: "consumer", Protocols: []group.Protocol{{Name: "range", Metadata: []byte("m")}}})
		if err != nil || resp.Code != group.None {
			t.Fatalf("join: %+v %v", resp, err)
		}
		if ids[resp.MemberID] {
			t.Fatalf("member id %s handed out again after a restart", resp.MemberID)
		}
		ids[resp.MemberID] = true
		if _, codes := b.Coordinator().Leave("g", []group.LeaveMember{{MemberID: resp.MemberID}}); codes[0] != group.None {
			t.Fatalf("leave: %v", codes)
		}
		b.Close()
	}
}

// A request that fails, or a first JoinGroup (v4+) whose member never comes
// back with its id, must not leave a group behind: ListGroups would show a
// group nobody created, and any client could grow the coordinator's memory
// without bound with requests naming new group ids.
func TestFailedRequestsLeaveNoGroup(t *testing.T) {
	var mu sync.Mutex
	now := time.UnixMilli(1_700_000_000_000)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, err := Open(Config{DataDir: t.TempDir(), Now: clock, Groups: CoordinatorConfig{TickInterval: 10 * time.Millisecond,
		Group: group.Config{InitialRebalanceDelay: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := b.Coordinator()
	ctx := context.Background()
	protos := []group.Protocol{{Name: "range", Metadata: []byte{0}}}

	jr, err := c.Join(ctx, "bad-timeout", group.JoinRequest{ClientID: "m", SessionTimeout: time.Millisecond, ProtocolType: "consumer", Protocols: protos})
	if err != nil || jr.Code != group.InvalidSessionTimeout {
		t.Fatalf("join with a too short session: %+v %v", jr, err)
	}
	jr, err = c.Join(ctx, "no-protocols", group.JoinRequest{ClientID: "m", SessionTimeout: 10 * time.Second, ProtocolType: "consumer"})
	if err != nil || jr.Code != group.InconsistentGroupProtocol {
		t.Fatalf("join without protocols: %+v %v", jr, err)
	}
	offs := map[group.TopicPartition]group.Offset{{Topic: OffsetsTopic, Partition: 0}: {Offset: 1}}
	if code, err := c.CommitOffsets(ctx, "ghost", "ghost-member", "", 3, offs); err != nil || code == group.None {
		t.Fatalf("commit from an unknown member: %v %v", code, err)
	}
	if gs := c.Groups(); len(gs) != 0 {
		t.Fatalf("failed requests left groups behind: %+v", gs)
	}

	// The first join of a v4+ client gets MEMBER_ID_REQUIRED; the group
	// waits for that member id until its session timeout, then forgets it.
	jr, err = c.Join(ctx, "pending", group.JoinRequest{ClientID: "m", SessionTimeout: 10 * time.Second, ProtocolType: "consumer", Protocols: protos, RequireKnownMemberID: true})
	if err != nil || jr.Code != group.MemberIDRequired {
		t.Fatalf("first join: %+v %v", jr, err)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Groups()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("group of an expired pending member id never forgotten: %+v", c.Groups())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
