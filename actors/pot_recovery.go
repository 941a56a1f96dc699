package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
)

// A pot's recovery: an activation reads its latest snapshot and the events
// after it (RecoverPot), and saves snapshots as it goes (when one is due,
// see snapshotDue, and when it passivates), so that the next activation
// replays few events.

// activate recovers the pot from its latest snapshot and the events after
// it. A failure leaves the activation answering "unavailable" until it stops.
func (a *potActor) activate(member string) {
	a.member = member
	a.appender = potAppender{deps: a.deps, stream: PotStream(member), group: PotGroup(member, PotGroups(a.deps.Journal))}
	start := time.Now()
	a.deps.recoveries <- struct{}{}
	defer func() { <-a.deps.recoveries }()
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.AppendTimeout)
	defer cancel()
	p, recovered, err := RecoverPot(ctx, a.deps.Journal, member, a.deps.Logger)
	if err != nil {
		a.failed = err
		a.deps.Logger.Error("pot recovery failed", "member", member, "err", err)
		return
	}
	a.pot, a.appender.durable, a.snapshot = p, p.Version, recovered
	a.deps.active.Add(1) // until Stopped
	if m := a.deps.Metrics; m != nil {
		m.Activations.Inc()
		m.ActivePots.Inc()
		m.RecoverySeconds.Observe(time.Since(start).Seconds())
	}
}

// recoverReadPage bounds the events read in one journal read on recovery.
const recoverReadPage = 1000

// RecoverPot rebuilds a member's pot from its latest snapshot (if it can be
// read) and the events after it, checking versions are contiguous. It
// returns the pot, and the snapshot used (none: zero) with the bytes of the
// events replayed after it.
func RecoverPot(ctx context.Context, j persistence.Journal, member string, log *slog.Logger) (*domain.Pot, snapshotProgress, error) {
	stream := PotStream(member)
	p := domain.NewPot(member)
	var used snapshotProgress
	snap, found, err := j.LoadSnapshot(ctx, stream)
	if err != nil {
		return nil, used, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	if found {
		sp, err := codec.DecodePotSnapshot(snap.Data)
		switch {
		case errors.Is(err, codec.ErrSnapshotFormat):
			// Written by an older version: replaced by the next snapshot.
			log.Info("ignoring pot snapshot of another format", "member", member, "version", snap.Version)
		case err != nil:
			// A snapshot is a cache: replay from the start instead.
			log.Warn("ignoring unreadable pot snapshot", "member", member, "version", snap.Version, "err", err)
		case sp.Version != snap.Version || sp.MemberID != member:
			log.Warn("ignoring mismatched pot snapshot", "member", member, "version", snap.Version, "state_version", sp.Version)
		default:
			p, used = sp, snapshotProgress{version: snap.Version, bytes: len(snap.Data)}
		}
	}
	err = eachEvent(ctx, j, stream, p.Version+1, func(e persistence.Event) error {
		de, err := codec.DecodePotEvent(e.Type, e.Data)
		if err != nil {
			return err
		}
		p.Apply(de)
		used.eventBytes += len(e.Data)
		return nil
	})
	if err != nil {
		return nil, snapshotProgress{}, err
	}
	return p, used, nil
}

// saveSnapshot saves the pot's state, which is durable now (nothing in
// flight): in the background after an append, or, with wait (the pot is
// passivating), before it returns, so that the pot's next activation finds
// it. A snapshot that fails to save costs only a longer recovery.
//
// Saves never go back in time: the journal keeps the newer of two
// snapshots of a stream (persistence.Journal.SaveSnapshot; a background
// save still under way when the passivation's newer one lands is then
// dropped). And were an older one read, recovery replays the events after
// its version, so a snapshot's age costs time, never correctness.
func (a *potActor) saveSnapshot(wait bool) {
	data, err := codec.EncodePotSnapshot(a.pot)
	if err != nil {
		a.deps.Logger.Error("pot snapshot", "member", a.member, "err", err)
		return
	}
	durable := a.appender.durable
	a.snapshot = snapshotProgress{version: durable, bytes: len(data)}
	if m := a.deps.Metrics; m != nil {
		m.SnapshotBytes.Observe(float64(len(data)))
	}
	snap := persistence.Snapshot{Stream: a.appender.stream, Version: durable, Data: data}
	journal, timeout, log := a.deps.Journal, a.deps.Config.AppendTimeout, a.deps.Logger
	save := func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := journal.SaveSnapshot(ctx, snap); err != nil {
			log.Warn("pot snapshot not saved", "member", snap.Stream, "version", snap.Version, "err", err)
		}
	}
	if wait {
		save()
		return
	}
	a.deps.workers.Go(save)
}
