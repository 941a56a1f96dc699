// Package actors holds the actor shells of mastertrust: the pot grain, and
// (with the dealing cycle) the aggregators and asset books. A shell loads
// state, asks domain to decide, makes the events durable, and replies; the
// business rules are all in domain.
package actors

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
)

// PotKind is the grain kind of pots: the proto service name.
const PotKind = "Pot"

// PotStream is the journal stream of a member's pot.
func PotStream(memberID string) string { return "pot/" + memberID }

// PotGroup is the pot group of a member: it partitions the journal's feed,
// the aggregators and the rebalance sweep. FNV-1a is stable across
// processes and releases, which the group of an existing stream must be.
func PotGroup(memberID string, potGroups uint32) uint32 {
	h := fnv.New32a()
	h.Write([]byte(memberID))
	return h.Sum32() % potGroups
}

// The journal's groups: pots are spread over all but the last, which holds
// the system's own streams (prices, cut-offs, aggregators, asset books,
// cycles, reconciliations), so that a node can follow prices and cut-offs by
// reading one small feed.

// PotGroups is the number of groups pots are spread over.
func PotGroups(j persistence.Journal) uint32 { return j.Groups() - 1 }

// SystemGroup is the group of the system's streams.
func SystemGroup(j persistence.Journal) uint32 { return j.Groups() - 1 }

// JournalGroupsMin: one pot group and the system group.
const JournalGroupsMin = 2

// PotConfig configures the pot grains of a node.
type PotConfig struct {
	// SnapshotEvery: a pot saves a snapshot once at least this many events
	// were appended since its last one, and they weigh at least as much as
	// it did (snapshotDue): recovery replays no more than about that many
	// events or the state's weight in events. Default: 100.
	SnapshotEvery uint64
	// AppendTimeout bounds one journal append. Past it the pot answers
	// "unavailable" and stops (the append may still land: its retry, with
	// the same idempotency key, finds out). Default: 5 s.
	AppendTimeout time.Duration
	// BatchEventsMax bounds the events of one append: a pot appends
	// whatever its mailbox held, in batches up to this size. It must not
	// exceed persistence.AppendEventsMax. Default: 256.
	BatchEventsMax int
	// RecoveriesMax bounds the pots of one node recovering (reading their
	// journal) at once, so that a node taking over many pots does not
	// stampede the journal. Default: 64.
	RecoveriesMax int
	// PendingMax bounds the requests a node's pots hold unanswered: decided
	// and waiting for their append to be durable, or queued behind one.
	// Past it a pot answers a member's request "unavailable" at once,
	// without deciding it (nothing is done; the retry is safe), instead of
	// queueing it behind work the journal cannot keep up with. The dealing
	// cycle's commands are never refused: the cycle sends them at its own
	// bounded pace. Default: defaultPotPendingMax.
	PendingMax int
	// ResidentMax bounds, softly, the pots a node keeps active: while more
	// are, a pot quiet for ResidentIdle passivates (saving a snapshot if it
	// appended since its last) without waiting for its idle timeout. The
	// node then holds about ResidentMax pots plus those used within the
	// last ResidentIdle (see residentCap). Negative: no bound, pots
	// passivate after their idle timeout only. Default:
	// DefaultPotResidentMax.
	ResidentMax int
	// ResidentIdle is how long a pot must have been quiet to passivate
	// early while the node is over ResidentMax. Past the kind's idle
	// timeout it changes nothing. Default: DefaultPotResidentIdle.
	ResidentIdle time.Duration
}

// DefaultPotResidentMax: a resident pot holds ~5.8 KB of heap after the
// bench cycle's setup (docs/performance.md), so 100,000 pots are ~0.55 GiB,
// a bounded share of a node's memory however many members it serves. A
// node on the project's 2 cores makes at most ~30,000 commands/s, so it
// touches at most ~60,000 pots in DefaultPotResidentIdle: a node reaches
// the bound only by holding pots quiet for seconds, and under it pots
// passivate after their idle timeout as before (the bench cycle's default
// 100,000 pots run as they did).
const DefaultPotResidentMax = 100_000

// DefaultPotResidentIdle: 2 s is far longer than the gaps between the
// requests of one caller's burst, or between a dealing step's calls to one
// pot, so an early passivation seldom costs an activation soon after; and
// short enough that a node over the bound sheds its quiet pots in seconds.
// An activation after it reads one snapshot (a pot saves one when it
// passivates) instead of the pot's events.
const DefaultPotResidentIdle = 2 * time.Second

// defaultPotPendingMax: a node makes 5,000–30,000 durable commands/s on the
// project's 2 cores (HTTP orders and bare grain calls, docs/performance.md),
// so 1,024 waiting requests are 35–200 ms of work: well within the 5 s a
// caller waits, and 32 gateways' worth of their 32 requests in flight each.
// It is reached when the journal slows down (a slow disk, JetStream
// failing over) or more gateways than that press on one node: then the
// excess is refused in microseconds instead of timing out after seconds.
const defaultPotPendingMax = 1024

// EnsureDefaults fills zero fields with their defaults.
func (c *PotConfig) EnsureDefaults() {
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 100
	}
	if c.AppendTimeout == 0 {
		c.AppendTimeout = 5 * time.Second
	}
	if c.BatchEventsMax == 0 {
		c.BatchEventsMax = 256
	}
	if c.RecoveriesMax == 0 {
		c.RecoveriesMax = 64
	}
	if c.PendingMax == 0 {
		c.PendingMax = defaultPotPendingMax
	}
	if c.ResidentMax == 0 {
		c.ResidentMax = DefaultPotResidentMax
	}
	if c.ResidentIdle == 0 {
		c.ResidentIdle = DefaultPotResidentIdle
	}
}

// Validate reports every invalid field.
func (c *PotConfig) Validate() error {
	var problems []string
	if c.BatchEventsMax < 1 || c.BatchEventsMax > persistence.AppendEventsMax {
		problems = append(problems, fmt.Sprintf("BatchEventsMax %d not in [1, %d]", c.BatchEventsMax, persistence.AppendEventsMax))
	}
	if c.AppendTimeout < 0 {
		problems = append(problems, fmt.Sprintf("AppendTimeout %s is negative", c.AppendTimeout))
	}
	if c.RecoveriesMax < 0 {
		problems = append(problems, fmt.Sprintf("RecoveriesMax %d is negative", c.RecoveriesMax))
	}
	if c.PendingMax < 0 {
		problems = append(problems, fmt.Sprintf("PendingMax %d is negative", c.PendingMax))
	}
	if c.ResidentIdle < 0 {
		problems = append(problems, fmt.Sprintf("ResidentIdle %s is negative", c.ResidentIdle))
	}
	if len(problems) > 0 {
		return fmt.Errorf("actors: invalid pot config: %v", problems)
	}
	return nil
}

// PotDeps is what the pot grains of a node share.
type PotDeps struct {
	Journal   persistence.Journal
	Catalogue *domain.Catalogue
	Calendar  *domain.Calendar
	Market    Market
	Now       func() time.Time
	Config    PotConfig
	// History is the members' history read model: what pots have retired.
	History History
	Metrics *Metrics // may be nil
	Logger  *slog.Logger
	// recoveries is the semaphore of RecoveriesMax; see NewPotKind.
	recoveries chan struct{}
	// workers run the pots' mailboxes (which wait for their appends) and
	// snapshot saves; see NewPotKind.
	workers *workers
	// pending counts the replies the node's pots hold in their waiting
	// batches (see PotConfig.PendingMax); see NewPotKind.
	pending *atomic.Int64
	// active counts the node's active pots (recovered, not yet stopped),
	// for PotConfig.ResidentMax; see NewPotKind.
	active *atomic.Int64
}

// RecoveriesInProgress counts the node's pots reading their snapshots and
// events now (at most PotConfig.RecoveriesMax; others wait for a slot).
func (d *PotDeps) RecoveriesInProgress() int64 { return int64(len(d.recoveries)) }

// Stop lets the goroutines the pot grains kept for reuse exit, once the
// node that hosted them has stopped.
func (d *PotDeps) Stop() {
	if d.workers != nil {
		d.workers.stop()
	}
}

// eachEvent reads a stream's events from version from on, a page at a time,
// checking their versions are contiguous, and calls f for each.
func eachEvent(ctx context.Context, j persistence.Journal, stream string, from uint64, f func(persistence.Event) error) error {
	next := from
	for {
		events, err := j.Read(ctx, stream, next, recoverReadPage)
		if err != nil {
			return fmt.Errorf("read %s from %d: %w", stream, next, err)
		}
		for _, e := range events {
			if e.Version != next {
				return fmt.Errorf("read %s: version %d, want %d", stream, e.Version, next)
			}
			if err := f(e); err != nil {
				return fmt.Errorf("read %s version %d: %w", stream, e.Version, err)
			}
			next++
		}
		if len(events) < recoverReadPage {
			return nil
		}
	}
}
