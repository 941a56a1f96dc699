package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/acme/mastertrust/persistence"
)

// A pot's appends: its decided events wait in batches, each appended once
// the one before it is durable, and the replies behind them go then.

// batch is one append and the replies that wait for it.
type batch struct {
	events  []persistence.NewEvent
	replies []reply
}

// flushWaiting tells a pot to append what is waiting.
type flushWaiting struct{}

// enqueue queues a reply (with the events it waits for) behind everything
// decided before it, and has the pot flush once the messages already in its
// mailbox are handled: at once if none wait (a pot's usual case, which then
// costs no second message), else after them, so that their events join the
// same append. A reply with nothing before it and no events goes at once.
func (a *potActor) enqueue(ctx actor.Context, r reply, events []persistence.NewEvent) {
	if len(events) == 0 && len(a.waiting) == 0 {
		a.send(ctx, r)
		return
	}
	last := len(a.waiting) - 1
	if last < 0 || (len(events) > 0 && len(a.waiting[last].events)+len(events) > a.deps.Config.BatchEventsMax) {
		a.waiting = append(a.waiting, &batch{})
		last++
	}
	b := a.waiting[last]
	b.events = append(b.events, events...)
	b.replies = append(b.replies, r)
	a.deps.pending.Add(1)
	switch {
	case a.flushQueued:
	case a.mailbox != nil && a.mailbox.UserMessageCount() == 0:
		a.flush(ctx)
	default:
		a.flushQueued = true
		ctx.Send(ctx.Self(), flushWaiting{})
	}
}

// flush appends the waiting batches in order, each once the one before it
// is durable, and answers their replies (a batch with no events is answered
// at once: everything before it is durable).
func (a *potActor) flush(ctx actor.Context) {
	for a.failed == nil && len(a.waiting) > 0 {
		b := a.waiting[0]
		if len(b.events) > 0 {
			version, err := a.append(b.events)
			if err != nil {
				a.appendFailed(ctx, err)
				return
			}
			if want := a.durable + uint64(len(b.events)); version != want {
				panic(fmt.Sprintf("actors: pot %s: append returned version %d, want %d", a.member, version, want))
			}
			a.durable = version
			for _, e := range b.events {
				a.snapshot.eventBytes += len(e.Data)
			}
		}
		// Clear the slot: an idle pot must not keep its last batch (events,
		// replies, the callers' futures) alive in the array's spare room.
		a.waiting[0] = nil
		a.waiting = a.waiting[1:]
		a.deps.pending.Add(-int64(len(b.replies)))
		for _, r := range b.replies {
			a.send(ctx, r)
		}
	}
	if a.failed == nil && snapshotDue(a.durable, a.snapshot, a.deps.Config.SnapshotEvery) {
		a.saveSnapshot(false)
	}
}

// append appends events after the durable version and waits until they are
// durable.
func (a *potActor) append(events []persistence.NewEvent) (uint64, error) {
	start := time.Now()
	actx := newDeadlineContext(a.deps.Config.AppendTimeout)
	defer actx.stop()
	version, err := a.deps.Journal.Append(actx, persistence.AppendRequest{
		Stream: a.stream, Group: a.group, ExpectedVersion: a.durable, Events: events})
	if m := a.deps.Metrics; m != nil {
		m.AppendSeconds.Observe(time.Since(start).Seconds())
		m.BatchEvents.Observe(float64(len(events)))
	}
	return version, err
}

// appendFailed stops the activation after a failed append. The pot's state
// went ahead of the journal: nothing waiting may be acknowledged. Another
// activation may have won (a version conflict), or the outcome is unknown
// (a timeout): either way the next request recovers from the journal.
func (a *potActor) appendFailed(ctx actor.Context, err error) {
	level := slog.LevelWarn
	if !errors.Is(err, persistence.ErrVersionConflict) {
		level = slog.LevelError
	}
	a.deps.Logger.Log(context.Background(), level, "pot append failed; stopping the activation",
		"member", a.member, "expected_version", a.durable, "err", err)
	a.failed = err
	a.stop(ctx)
	a.failWaiting(ctx)
}

// failWaiting answers every waiting reply "unavailable" and drops the
// batches: they will never be acknowledged by this activation.
func (a *potActor) failWaiting(ctx actor.Context) {
	waiting := a.waiting
	a.waiting = nil
	for _, b := range waiting {
		a.deps.pending.Add(-int64(len(b.replies)))
		for _, r := range b.replies {
			a.send(ctx, reply{to: r.to, call: r.call, resp: unavailable(), command: r.command, outcome: "failed", release: r.release})
		}
	}
}
