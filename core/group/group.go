package group

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// State is a group's state.
type State int

const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Config holds coordinator-wide group settings.
type Config struct {
	// InitialRebalanceDelay holds an empty group's first join phase open
	// this long (extended as members arrive, up to RebalanceTimeout) so a
	// fleet starting together rebalances once; Kafka's
	// group.initial.rebalance.delay.ms. Default 3s; negative means 0.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound members' session
	// timeouts; defaults 6s and 30m.
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// MaxSize is the most members a group may have; 0 means no limit.
	MaxSize int
	// MemberIDSalt, when set, is put into every member id the group hands
	// out (clientID-SALT-N), so ids stay unique across coordinator restarts,
	// where N starts again; the host sets a random one. Empty gives
	// clientID-N, which the script tests rely on.
	MemberIDSalt string
}

func (c Config) withDefaults() Config {
	if c.InitialRebalanceDelay == 0 {
		c.InitialRebalanceDelay = 3 * time.Second
	}
	if c.InitialRebalanceDelay < 0 {
		c.InitialRebalanceDelay = 0
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	return c
}

// Protocol is one assignment protocol a member supports, with its
// subscription metadata (opaque to the coordinator).
type Protocol struct {
	Name     string
	Metadata []byte
}

// Member is a group member.
type Member struct {
	ID, InstanceID, ClientID, ClientHost string
	SessionTimeout, RebalanceTimeout     time.Duration
	Protocols                            []Protocol
	Assignment                           []byte

	lastSeen   time.Time
	joinHandle uint64 // parked join, when joinWaiting
	joinWait   bool
	syncHandle uint64
	syncWait   bool
}

func (m *Member) metadataFor(protocol string) []byte {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// JoinRequest is a JoinGroup. Handle identifies the request to the host; the
// response carries it back.
type JoinRequest struct {
	Handle                                     uint64
	MemberID, InstanceID, ClientID, ClientHost string
	SessionTimeout, RebalanceTimeout           time.Duration
	ProtocolType                               string
	Protocols                                  []Protocol
	RequireKnownMemberID                       bool // JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED
}

// JoinMember is a member as the leader sees it in its join response.
type JoinMember struct {
	MemberID, InstanceID string
	Metadata             []byte
}

// JoinResponse answers a JoinRequest.
type JoinResponse struct {
	Handle         uint64
	Code           Code
	Generation     int32
	ProtocolType   string
	Protocol       string
	Leader         string
	MemberID       string
	Members        []JoinMember // only for the leader
	SkipAssignment bool         // a static leader rejoined: keep the current assignment
}

// SyncRequest is a SyncGroup; the leader's carries the assignments.
type SyncRequest struct {
	Handle                 uint64
	MemberID, InstanceID   string
	Generation             int32
	ProtocolType, Protocol string
	Assignments            map[string][]byte
}

// SyncResponse answers a SyncRequest.
type SyncResponse struct {
	Handle                 uint64
	Code                   Code
	ProtocolType, Protocol string
	Assignment             []byte
}

// Effects are what an input caused: responses to deliver (possibly to
// requests parked earlier) and whether the group's metadata changed and
// should be persisted.
type Effects struct {
	Joins   []JoinResponse
	Syncs   []SyncResponse
	Persist bool
}

func (e *Effects) add(o Effects) {
	e.Joins = append(e.Joins, o.Joins...)
	e.Syncs = append(e.Syncs, o.Syncs...)
	e.Persist = e.Persist || o.Persist
}

// Group is one consumer group's state machine. It is not safe for
// concurrent use; the host serializes inputs per group.
type Group struct {
	ID           string
	State        State
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string
	Members      map[string]*Member
	// StateSince is when the group entered its current state.
	StateSince time.Time

	cfg        Config
	static     map[string]string    // instance id -> member id
	pending    map[string]time.Time // member ids handed out with MEMBER_ID_REQUIRED, by expiry
	joinDue    time.Time            // PreparingRebalance: when the join phase completes at the latest
	initialDue time.Time            // PreparingRebalance from Empty: the initial delay's current end
	nextID     int
	offsets    map[TopicPartition]Offset
}

// New returns an empty group.
func New(id string, cfg Config, now time.Time) *Group {
	return &Group{ID: id, cfg: cfg.withDefaults(), Members: map[string]*Member{}, static: map[string]string{},
		pending: map[string]time.Time{}, offsets: map[TopicPartition]Offset{}, StateSince: now}
}

func (g *Group) setState(s State, now time.Time) {
	if g.State != s {
		g.State, g.StateSince = s, now
	}
}

// newMemberID returns clientID[-SALT]-N for the next N not in use.
func (g *Group) newMemberID(clientID string) string {
	if clientID == "" {
		clientID = "member"
	}
	for {
		g.nextID++
		id := fmt.Sprintf("%s-%d", clientID, g.nextID)
		if g.cfg.MemberIDSalt != "" {
			id = fmt.Sprintf("%s-%s-%d", clientID, g.cfg.MemberIDSalt, g.nextID)
		}
		if _, used := g.Members[id]; used {
			continue
		}
		if _, used := g.pending[id]; used {
			continue
		}
		return id
	}
}

// supportsProtocols reports whether the member's protocols fit the group:
// same protocol type, and at least one protocol every member supports.
func (g *Group) supportsProtocols(ptype string, ps []Protocol) bool {
	if len(ps) == 0 || ptype == "" {
		return false
	}
	if len(g.Members) == 0 {
		return true
	}
	if ptype != g.ProtocolType {
		return false
	}
	for _, p := range ps {
		all := true
		for _, m := range g.Members {
			if m.metadataFor(p.Name) == nil && !slices.ContainsFunc(m.Protocols, func(q Protocol) bool { return q.Name == p.Name }) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// Join handles a JoinGroup.
func (g *Group) Join(now time.Time, r JoinRequest) Effects {
	fail := func(c Code) Effects {
		return Effects{Joins: []JoinResponse{{Handle: r.Handle, Code: c, MemberID: r.MemberID, Generation: -1}}}
	}
	switch {
	case g.State == Dead:
		return fail(CoordinatorNotAvailable)
	case r.SessionTimeout < g.cfg.MinSessionTimeout || r.SessionTimeout > g.cfg.MaxSessionTimeout:
		return fail(InvalidSessionTimeout)
	}
	if r.RebalanceTimeout <= 0 {
		r.RebalanceTimeout = r.SessionTimeout // JoinGroup v0 has no rebalance timeout
	}
	if r.MemberID == "" {
		return g.joinUnknown(now, r, fail)
	}
	if g.fenced(r.InstanceID, r.MemberID) {
		return fail(FencedInstanceID)
	}
	m, ok := g.Members[r.MemberID]
	if !ok {
		if _, isPending := g.pending[r.MemberID]; isPending {
			delete(g.pending, r.MemberID)
			if !g.supportsProtocols(r.ProtocolType, r.Protocols) {
				return fail(InconsistentGroupProtocol)
			}
			return g.addMemberAndRebalance(now, r, r.MemberID)
		}
		return fail(UnknownMemberID)
	}
	if !g.supportsProtocols(r.ProtocolType, r.Protocols) {
		return fail(InconsistentGroupProtocol)
	}
	m.lastSeen = now
	switch g.State {
	case PreparingRebalance:
		g.updateMember(m, r)
		return g.park(now, m, r.Handle)
	case CompletingRebalance, Stable:
		// Nothing changed: answer with the current generation. In Stable a
		// rejoining leader always triggers a rebalance (it rejoins to
		// reassign, e.g. after seeing new partitions), as in Kafka.
		same := slices.EqualFunc(m.Protocols, r.Protocols, protocolEqual)
		if same && (g.State == CompletingRebalance || m.ID != g.Leader) {
			return Effects{Joins: []JoinResponse{g.joinResponse(m, r.Handle)}}
		}
		g.updateMember(m, r)
		eff := g.prepareRebalance(now)
		eff.add(g.park(now, m, r.Handle))
		return eff
	}
	return fail(UnknownServerError)
}

func protocolEqual(a, b Protocol) bool {
	return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
}

func (g *Group) joinUnknown(now time.Time, r JoinRequest, fail func(Code) Effects) Effects {
	if !g.supportsProtocols(r.ProtocolType, r.Protocols) {
		return fail(InconsistentGroupProtocol)
	}
	if r.InstanceID != "" {
		if oldID, ok := g.static[r.InstanceID]; ok {
			return g.replaceStatic(now, r, oldID)
		}
		return g.addMemberAndRebalance(now, r, g.newMemberID(r.ClientID))
	}
	if g.cfg.MaxSize > 0 && len(g.Members)+len(g.pending) >= g.cfg.MaxSize {
		return fail(GroupMaxSizeReached)
	}
	id := g.newMemberID(r.ClientID)
	if r.RequireKnownMemberID {
		g.pending[id] = now.Add(r.SessionTimeout)
		return Effects{Joins: []JoinResponse{{Handle: r.Handle, Code: MemberIDRequired, MemberID: id, Generation: -1}}}
	}
	return g.addMemberAndRebalance(now, r, id)
}

// replaceStatic gives a restarting static member a new member id. In a
// Stable group with unchanged protocols it keeps its assignment and no
// rebalance happens; otherwise the group rebalances.
func (g *Group) replaceStatic(now time.Time, r JoinRequest, oldID string) Effects {
	old := g.Members[oldID]
	var eff Effects
	if old.joinWait { // the old incarnation's parked requests are fenced
		eff.Joins = append(eff.Joins, JoinResponse{Handle: old.joinHandle, Code: FencedInstanceID, MemberID: oldID, Generation: -1})
	}
	if old.syncWait {
		eff.Syncs = append(eff.Syncs, SyncResponse{Handle: old.syncHandle, Code: FencedInstanceID})
	}
	newID := g.newMemberID(r.ClientID)
	m := &Member{ID: newID, InstanceID: r.InstanceID, Assignment: old.Assignment, lastSeen: now}
	g.updateMember(m, r)
	delete(g.Members, oldID)
	g.Members[newID] = m
	g.static[r.InstanceID] = newID
	wasLeader := g.Leader == oldID
	if wasLeader {
		g.Leader = newID
	}
	if g.State == Stable && slices.EqualFunc(old.Protocols, r.Protocols, protocolEqual) {
		resp := g.joinResponse(m, r.Handle)
		if wasLeader {
			resp.SkipAssignment = true // the leader must not reassign: nothing changed
		}
		eff.Joins = append(eff.Joins, resp)
		eff.Persist = true
		return eff
	}
	if g.State == PreparingRebalance {
		eff.add(g.park(now, m, r.Handle))
		return eff
	}
	eff.add(g.prepareRebalance(now))
	eff.add(g.park(now, m, r.Handle))
	return eff
}

// fenced reports whether a request names a static instance that now
// belongs to another member id: an older incarnation of a restarted member.
func (g *Group) fenced(instanceID, memberID string) bool {
	if instanceID == "" {
		return false
	}
	cur, ok := g.static[instanceID]
	return ok && cur != memberID
}

func (g *Group) updateMember(m *Member, r JoinRequest) {
	m.ClientID, m.ClientHost = r.ClientID, r.ClientHost
	m.SessionTimeout, m.RebalanceTimeout = r.SessionTimeout, r.RebalanceTimeout
	m.Protocols = slices.Clone(r.Protocols)
}

func (g *Group) addMemberAndRebalance(now time.Time, r JoinRequest, id string) Effects {
	m := &Member{ID: id, InstanceID: r.InstanceID, lastSeen: now}
	g.updateMember(m, r)
	if len(g.Members) == 0 {
		g.ProtocolType = r.ProtocolType
	}
	g.Members[id] = m
	if r.InstanceID != "" {
		g.static[r.InstanceID] = id
	}
	var eff Effects
	if g.State != PreparingRebalance {
		eff.add(g.prepareRebalance(now))
	} else if !g.initialDue.IsZero() {
		// Members still arriving for the first rebalance: extend the delay.
		g.initialDue = minTime(now.Add(g.cfg.InitialRebalanceDelay), g.joinDue)
	}
	eff.add(g.park(now, m, r.Handle))
	return eff
}

// prepareRebalance starts a join phase: parked syncs are told to rejoin.
func (g *Group) prepareRebalance(now time.Time) Effects {
	var eff Effects
	for _, m := range g.Members {
		if m.syncWait {
			eff.Syncs = append(eff.Syncs, SyncResponse{Handle: m.syncHandle, Code: RebalanceInProgress})
			m.syncWait = false
		}
	}
	fromEmpty := g.State == Empty
	g.setState(PreparingRebalance, now)
	var maxRebalance time.Duration
	for _, m := range g.Members {
		maxRebalance = max(maxRebalance, m.RebalanceTimeout)
	}
	g.joinDue = now.Add(maxRebalance)
	g.initialDue = time.Time{}
	if fromEmpty && g.cfg.InitialRebalanceDelay > 0 {
		g.initialDue = minTime(now.Add(g.cfg.InitialRebalanceDelay), g.joinDue)
	}
	return eff
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// park holds a member's join until the join phase completes; it may
// complete now.
func (g *Group) park(now time.Time, m *Member, handle uint64) Effects {
	m.joinWait, m.joinHandle = true, handle
	return g.maybeCompleteJoin(now)
}

// maybeCompleteJoin ends the join phase when every member has rejoined (and
// any initial delay is over) or the rebalance timeout passed; members that
// did not rejoin are removed.
func (g *Group) maybeCompleteJoin(now time.Time) Effects {
	if g.State != PreparingRebalance {
		return Effects{}
	}
	allJoined := true
	for _, m := range g.Members {
		if !m.joinWait {
			allJoined = false
		}
	}
	if !g.initialDue.IsZero() && now.Before(g.initialDue) && now.Before(g.joinDue) {
		return Effects{}
	}
	if !allJoined && now.Before(g.joinDue) {
		return Effects{}
	}
	for id, m := range g.Members {
		if !m.joinWait {
			g.removeMember(id)
		}
	}
	g.initialDue = time.Time{}
	g.Generation++
	if len(g.Members) == 0 {
		g.setState(Empty, now)
		g.Protocol, g.Leader = "", ""
		return Effects{Persist: true}
	}
	g.Protocol = g.selectProtocol()
	if _, ok := g.Members[g.Leader]; !ok {
		g.Leader = g.sortedMemberIDs()[0]
	}
	g.setState(CompletingRebalance, now)
	var eff Effects
	for _, id := range g.sortedMemberIDs() {
		m := g.Members[id]
		m.lastSeen = now
		eff.Joins = append(eff.Joins, g.joinResponse(m, m.joinHandle))
		m.joinWait = false
	}
	return eff
}

func (g *Group) joinResponse(m *Member, handle uint64) JoinResponse {
	resp := JoinResponse{Handle: handle, Code: None, Generation: g.Generation, ProtocolType: g.ProtocolType,
		Protocol: g.Protocol, Leader: g.Leader, MemberID: m.ID}
	if m.ID == g.Leader {
		for _, id := range g.sortedMemberIDs() {
			o := g.Members[id]
			resp.Members = append(resp.Members, JoinMember{MemberID: o.ID, InstanceID: o.InstanceID, Metadata: o.metadataFor(g.Protocol)})
		}
	}
	return resp
}

// selectProtocol picks the protocol every member supports that ranks
// highest in the members' preference lists (a vote, as Kafka does).
func (g *Group) selectProtocol() string {
	votes := map[string]int{}
	var candidates []string
	first := g.Members[g.sortedMemberIDs()[0]]
	for _, p := range first.Protocols {
		ok := true
		for _, m := range g.Members {
			if !slices.ContainsFunc(m.Protocols, func(q Protocol) bool { return q.Name == p.Name }) {
				ok = false
			}
		}
		if ok {
			candidates = append(candidates, p.Name)
		}
	}
	for _, m := range g.Members {
		for _, p := range m.Protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *Group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.Members))
	for id := range g.Members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (g *Group) removeMember(id string) {
	m := g.Members[id]
	if m == nil {
		return
	}
	delete(g.Members, id)
	if m.InstanceID != "" && g.static[m.InstanceID] == id {
		delete(g.static, m.InstanceID)
	}
	if g.Leader == id {
		g.Leader = ""
		if ids := g.sortedMemberIDs(); len(ids) > 0 {
			g.Leader = ids[0]
		}
	}
}

// Sync handles a SyncGroup.
func (g *Group) Sync(now time.Time, r SyncRequest) Effects {
	fail := func(c Code) Effects { return Effects{Syncs: []SyncResponse{{Handle: r.Handle, Code: c}}} }
	if g.State == Dead {
		return fail(CoordinatorNotAvailable)
	}
	m, ok := g.Members[r.MemberID]
	switch {
	case g.fenced(r.InstanceID, r.MemberID):
		return fail(FencedInstanceID)
	case !ok:
		return fail(UnknownMemberID)
	case r.Generation != g.Generation:
		return fail(IllegalGeneration)
	case (r.ProtocolType != "" && r.ProtocolType != g.ProtocolType) || (r.Protocol != "" && r.Protocol != g.Protocol):
		return fail(InconsistentGroupProtocol)
	}
	m.lastSeen = now
	switch g.State {
	case PreparingRebalance:
		return fail(RebalanceInProgress)
	case Stable:
		return Effects{Syncs: []SyncResponse{{Handle: r.Handle, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Assignment: m.Assignment}}}
	}
	// CompletingRebalance
	m.syncWait, m.syncHandle = true, r.Handle
	if r.MemberID != g.Leader {
		return Effects{}
	}
	for id, mm := range g.Members {
		mm.Assignment = r.Assignments[id]
	}
	g.setState(Stable, now)
	eff := Effects{Persist: true}
	for _, id := range g.sortedMemberIDs() {
		mm := g.Members[id]
		if mm.syncWait {
			eff.Syncs = append(eff.Syncs, SyncResponse{Handle: mm.syncHandle, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Assignment: mm.Assignment})
			mm.syncWait = false
		}
	}
	return eff
}

// Heartbeat handles a Heartbeat and returns its error code.
func (g *Group) Heartbeat(now time.Time, memberID, instanceID string, generation int32) Code {
	if g.State == Dead {
		return CoordinatorNotAvailable
	}
	m, ok := g.Members[memberID]
	switch {
	case g.fenced(instanceID, memberID):
		return FencedInstanceID
	case !ok:
		return UnknownMemberID
	}
	m.lastSeen = now
	switch {
	case g.State == PreparingRebalance:
		return RebalanceInProgress
	case generation != g.Generation:
		return IllegalGeneration
	}
	return None
}

// LeaveMember names a member leaving: by member id, or by instance id.
type LeaveMember struct{ MemberID, InstanceID string }

// Leave handles a LeaveGroup for one or more members (v3+ batches them).
func (g *Group) Leave(now time.Time, members []LeaveMember) ([]Code, Effects) {
	codes := make([]Code, len(members))
	var eff Effects
	left := false
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != "" {
			cur, ok := g.static[lm.InstanceID]
			switch {
			case !ok:
				codes[i] = UnknownMemberID
				continue
			case id != "" && id != cur:
				codes[i] = FencedInstanceID
				continue
			}
			id = cur
		}
		m, ok := g.Members[id]
		if !ok {
			if _, p := g.pending[id]; p {
				delete(g.pending, id)
				continue
			}
			codes[i] = UnknownMemberID
			continue
		}
		if m.joinWait {
			eff.Joins = append(eff.Joins, JoinResponse{Handle: m.joinHandle, Code: UnknownMemberID, MemberID: id, Generation: -1})
		}
		if m.syncWait {
			eff.Syncs = append(eff.Syncs, SyncResponse{Handle: m.syncHandle, Code: UnknownMemberID})
		}
		g.removeMember(id)
		left = true
	}
	if left {
		eff.add(g.membershipChanged(now))
	}
	return codes, eff
}

// membershipChanged reacts to members leaving or expiring.
func (g *Group) membershipChanged(now time.Time) Effects {
	switch g.State {
	case Stable, CompletingRebalance:
		if len(g.Members) == 0 {
			g.setState(Empty, now)
			g.Generation++
			g.Protocol, g.Leader = "", ""
			return Effects{Persist: true}
		}
		return g.prepareRebalance(now)
	case PreparingRebalance:
		return g.maybeCompleteJoin(now)
	}
	return Effects{}
}

// Tick advances time: members whose session expired are removed, pending
// member ids expire, and a join phase whose deadline passed completes.
func (g *Group) Tick(now time.Time) Effects {
	var eff Effects
	for id, due := range g.pending {
		if !now.Before(due) {
			delete(g.pending, id)
		}
	}
	expired := false
	for _, id := range g.sortedMemberIDs() {
		m := g.Members[id]
		// A member parked in a join is governed by the rebalance deadline.
		if m.joinWait {
			continue
		}
		if now.Sub(m.lastSeen) >= m.SessionTimeout {
			if m.syncWait {
				eff.Syncs = append(eff.Syncs, SyncResponse{Handle: m.syncHandle, Code: UnknownMemberID})
			}
			g.removeMember(id)
			expired = true
		}
	}
	if expired {
		eff.add(g.membershipChanged(now))
	}
	eff.add(g.maybeCompleteJoin(now))
	return eff
}

// NextDeadline is the earliest time at which Tick may change something, so
// the host can schedule its next tick; zero when nothing is pending.
func (g *Group) NextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, due := range g.pending {
		consider(due)
	}
	for _, m := range g.Members {
		if !m.joinWait {
			consider(m.lastSeen.Add(m.SessionTimeout))
		}
	}
	if g.State == PreparingRebalance {
		consider(g.joinDue)
		consider(g.initialDue)
	}
	return next
}
