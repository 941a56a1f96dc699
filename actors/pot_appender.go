package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/acme/mastertrust/persistence"
)

// potAppender is a pot's write side, split as Orleans' JournaledGrain
// splits confirmed and tentative state: durable is the confirmed version
// (the stream's version in the journal), waiting the tentative batches,
// decided and applied to the pot but not yet durable. A batch is appended
// only once the one before it is durable, and its replies go only then.
//
// Invariant: the pot is the durable state plus the events of waiting, in
// order (the batch being appended stays first in waiting until it is
// durable).
type potAppender struct {
	deps    *PotDeps
	stream  string
	group   uint32
	durable uint64   // the stream's version in the journal
	waiting []*batch // decided, not yet durable, in order
}

// batch is one append and the replies that wait for it.
type batch struct {
	events  []persistence.NewEvent
	replies []reply
}

// flushWaiting tells a pot to append what is waiting.
type flushWaiting struct{}

// busy reports whether batches wait for their append.
func (w *potAppender) busy() bool { return len(w.waiting) > 0 }

// queue puts a reply (with the events it waits for) behind everything
// decided before it: into the last waiting batch, or into a new one if the
// events would take that past BatchEventsMax. A reply with nothing before
// it and no events has nothing to wait for: queue leaves it and reports
// false, and it goes at once.
func (w *potAppender) queue(r reply, events []persistence.NewEvent) bool {
	if len(events) == 0 && len(w.waiting) == 0 {
		return false
	}
	last := len(w.waiting) - 1
	if last < 0 || (len(events) > 0 && len(w.waiting[last].events)+len(events) > w.deps.Config.BatchEventsMax) {
		w.waiting = append(w.waiting, &batch{})
		last++
	}
	b := w.waiting[last]
	b.events = append(b.events, events...)
	b.replies = append(b.replies, r)
	w.deps.pending.Add(1)
	return true
}

// appendFirst appends the first waiting batch (nil: none waits) and takes
// it out of waiting once it is durable; its replies are then due. A batch
// with no events is due at once: everything before it is durable. On an
// error the batch stays first in waiting, and durable where it was.
func (w *potAppender) appendFirst() (*batch, error) {
	if len(w.waiting) == 0 {
		return nil, nil
	}
	b := w.waiting[0]
	if len(b.events) > 0 {
		version, err := w.append(b.events)
		if err != nil {
			return nil, err
		}
		if want := w.durable + uint64(len(b.events)); version != want {
			member := strings.TrimPrefix(w.stream, PotStream("")) // the appender keeps only the stream
			panic(fmt.Sprintf("actors: pot %s: append returned version %d, want %d", member, version, want))
		}
		w.durable = version
	}
	// Clear the slot: an idle pot must not keep its last batch (events,
	// replies, the callers' futures) alive in the array's spare room.
	w.waiting[0] = nil
	w.waiting = w.waiting[1:]
	w.deps.pending.Add(-int64(len(b.replies)))
	return b, nil
}

// append appends events after the durable version and waits until they are
// durable.
func (w *potAppender) append(events []persistence.NewEvent) (uint64, error) {
	start := time.Now()
	actx := newDeadlineContext(w.deps.Config.AppendTimeout)
	defer actx.stop()
	version, err := w.deps.Journal.Append(actx, persistence.AppendRequest{
		Stream: w.stream, Group: w.group, ExpectedVersion: w.durable, Events: events})
	if m := w.deps.Metrics; m != nil {
		m.AppendSeconds.Observe(time.Since(start).Seconds())
		m.BatchEvents.Observe(float64(len(events)))
	}
	return version, err
}

// drop takes every waiting batch out: none of them will be appended by
// this activation.
func (w *potAppender) drop() []*batch {
	waiting := w.waiting
	w.waiting = nil
	for _, b := range waiting {
		w.deps.pending.Add(-int64(len(b.replies)))
	}
	return waiting
}

// enqueue queues a reply (with the events it waits for) behind everything
// decided before it, and has the pot flush once the messages already in its
// mailbox are handled: at once if none wait (a pot's usual case, which then
// costs no second message), else after them, so that their events join the
// same append. A reply with nothing before it and no events goes at once.
func (a *potActor) enqueue(ctx actor.Context, r reply, events []persistence.NewEvent) {
	if !a.appender.queue(r, events) {
		a.send(ctx, r)
		return
	}
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
// is durable, and answers their replies; then saves a snapshot if one is
// due.
func (a *potActor) flush(ctx actor.Context) {
	for a.failed == nil {
		b, err := a.appender.appendFirst()
		if err != nil {
			a.appendFailed(ctx, err)
			return
		}
		if b == nil {
			break
		}
		for _, e := range b.events {
			a.snapshot.eventBytes += len(e.Data)
		}
		for _, r := range b.replies {
			a.send(ctx, r)
		}
	}
	if a.failed == nil && snapshotDue(a.appender.durable, a.snapshot, a.deps.Config.SnapshotEvery) {
		a.saveSnapshot(false)
	}
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
		"member", a.member, "expected_version", a.appender.durable, "err", err)
	a.failed = err
	a.stop(ctx)
	a.failWaiting(ctx)
}

// failWaiting answers every waiting reply "unavailable" and drops the
// batches: they will never be acknowledged by this activation.
func (a *potActor) failWaiting(ctx actor.Context) {
	for _, b := range a.appender.drop() {
		for _, r := range b.replies {
			a.send(ctx, reply{to: r.to, call: r.call, resp: unavailable(), command: r.command, outcome: "failed", release: r.release})
		}
	}
}
