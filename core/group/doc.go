// Package group is the consumer-group coordinator as a state machine with no
// I/O: no goroutines, sockets, files or clock reads. Inputs are requests
// (join, sync, heartbeat, leave, commit) and ticks, each carrying the
// current time; outputs are responses, delivered through Effects, and
// persistence effects the host writes to its log.
//
// The same engine serves Kafka clients (package kafka parks a request until
// its response effect appears) and, later, weir's own pipeline workers.
//
// # States
//
//	Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//	  ▲                   ▲   ▲                                        │ leader syncs
//	  │ last member       │   └───────── join, leave, expiry ──────────┤
//	  │ leaves/expires    └──────────── join, leave, expiry ◀── Stable ◀┘
//	Dead: deleted; every request gets COORDINATOR_NOT_AVAILABLE.
//
// # Invariants
//
//   - The generation increases by one each time a join phase completes; a
//     sync, heartbeat or commit that names another generation is rejected
//     with ILLEGAL_GENERATION.
//   - Every parked join and sync receives exactly one response effect.
//   - A static member (group.instance.id) that rejoins with a new member id
//     while the group is Stable takes over its predecessor's identity and
//     assignment without a rebalance; the old member id is fenced.
package group
