package actors

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// The pot grain. One activation per member (the cluster's placement sees to
// that, mostly; the journal's expected version sees to the rest). For each
// request it decides against its state as it will be once everything before
// it is durable, applies the events, and queues the reply. Events are
// appended in batches: a request that queues events is appended at once if
// nothing else waits in the pot's mailbox; otherwise it queues a
// flushWaiting message to the pot itself, behind the messages already
// there, so the requests that arrived together (or while the last append
// was under way) are decided first and appended as one synced write.
// The append runs in the pot's own mailbox run, which waits for it: a busy
// pot makes one write for many requests, and an idle pot's command costs
// no hand-off to another goroutine and back (docs/performance.md). A reply
// is sent only when every event it reflects is durable; if an append fails,
// every reply queued behind it becomes "unavailable" and the activation
// stops, so that the next request recovers the pot from the journal.
//
// The pot's files: this one handles a request (load → decide → persist →
// reply); pot_appender.go batches and appends the events (potAppender:
// durable and waiting); pot_reply.go builds and sends the replies;
// pot_recovery.go activates the pot from its snapshot and events, and saves
// snapshots; pot_lifecycle.go makes pots (mailboxes, workers), sheds calls
// and stops activations.

// potActor is one activation of a pot.
type potActor struct {
	deps *PotDeps
	idle idleTimer
	// stopping: the activation has passivated (its poison pill is queued);
	// requests still ahead of the pill are answered "unavailable" (the
	// retry activates the pot afresh) rather than started and lost.
	stopping bool
	// poisoned: the activation has sent itself its poison pill (it
	// passivated or failed); its replies from then on wait in held until
	// it has stopped (see stop).
	poisoned bool
	// flushQueued: a flushWaiting message is in the mailbox.
	flushQueued bool
	held        []heldReply

	member string
	pot    *domain.Pot // the durable state plus the events waiting in appender
	// appender appends the pot's events: its durable version and the
	// batches waiting for their append.
	appender potAppender
	// snapshot: the last snapshot saved, and what was appended since.
	snapshot snapshotProgress

	// mailbox is the activation's mailbox (nil if grainMailbox did not see
	// it), asked whether messages wait behind the one being handled.
	mailbox actor.Mailbox
	failed  error // set when the activation must not go on
	// stoppedIn is set once the activation has stopped: the system it
	// answers late requests through (see late).
	stoppedIn *actor.ActorSystem
}

// Receive handles one message.
func (a *potActor) Receive(ctx actor.Context) {
	defer a.recoverPanic(ctx)
	switch msg := ctx.Message().(type) {
	case *protocluster.ClusterInit:
		if msg.Identity == nil {
			a.failed = errors.New("activated without a cluster identity")
		} else {
			a.activate(msg.Identity.Identity)
		}
		if a.failed != nil {
			// Answer what is already waiting ("unavailable"), then stop:
			// the next request activates the pot afresh and retries.
			a.stop(ctx)
			return
		}
		a.idle.start(ctx)
	case *pb.PotCall:
		// PotClient's request: the only way to a pot (see PotClient.Handle).
		a.idle.touch()
		if msg.Request == nil {
			a.respond(ctx, &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{
				Code: problem.InvalidRequest, Detail: "a call without a request"}}}, msg.CallId)
			return
		}
		if a.shed(ctx, msg) {
			return
		}
		a.handle(ctx, msg.Request, msg.CallId)
	case flushWaiting:
		a.flushQueued = false
		a.flush(ctx)
	case idleCheck:
		if !a.stopping && a.idle.expired(ctx, a.appender.busy()) {
			a.passivate(ctx)
		}
	case *actor.Stopped:
		a.stopped(ctx)
	}
}

// handle answers one request. A command goes load → decide → persist →
// reply: what deciding needs is gathered, the command decided and its
// events applied to the pot, then the events are queued for the next
// append and the reply behind them, to go once they are durable. req is
// the caller's: read, never modified.
func (a *potActor) handle(ctx actor.Context, req *pb.PotRequest, call uint64) {
	if a.stopping {
		a.respond(ctx, unavailable(), call)
		return
	}
	r := reply{to: ctx.Sender(), call: call, command: commandName(req)}
	if a.failed != nil {
		a.enqueue(ctx, r.with(unavailable(), "failed"), nil)
		return
	}
	cmd, isCommand, err := command(req)
	if err != nil {
		a.enqueue(ctx, r.with(a.problemResponse(err), "refused"), nil)
		return
	}
	if !isCommand {
		a.enqueue(ctx, a.queryReply(req, r), nil)
		return
	}
	openFrom, release := a.deps.Market.Hold()
	queued := false
	defer func() {
		if !queued {
			release() // a panic before the reply was queued must not hold cut-offs up
		}
	}()
	r.release = release
	r, events := a.decide(ctx, req, cmd, openFrom, r)
	queued = true
	a.enqueue(ctx, r, events)
}

// decide loads what deciding cmd needs, decides it and applies the
// decision's events to the pot. It returns the reply and the events it
// waits for: none for a refusal or a failure, which leave the pot as it
// was.
func (a *potActor) decide(ctx actor.Context, req *pb.PotRequest, cmd domain.Command, openFrom domain.Date, r reply) (reply, []persistence.NewEvent) {
	dctx, err := a.load(cmd, openFrom)
	if err != nil {
		a.deps.Logger.Warn("pot history unavailable", "member", a.member, "err", err)
		return r.with(unavailable(), "failed"), nil
	}
	dec, err := domain.Decide(a.pot, cmd, dctx)
	if err != nil {
		return a.refused(ctx, err, r), nil
	}
	events, ok := a.encode(dec.Events)
	if !ok {
		return r.with(unavailable(), "failed"), nil
	}
	for _, e := range dec.Events {
		a.pot.Apply(e)
	}
	return a.commandReply(req, dec, dctx, r), events
}

// load is the context a command is decided in, with what the pot has
// retired and the command needs, read from the history: the record of a
// key the pot has forgotten, or the retired order a cancellation names.
func (a *potActor) load(cmd domain.Command, openFrom domain.Date) (*domain.Context, error) {
	dctx := a.context(openFrom)
	var err error
	if dctx.PastRequest, err = a.pastRequest(cmd); err != nil {
		return nil, err
	}
	if dctx.Retired, err = a.retiredOrder(cmd); err != nil {
		return nil, err
	}
	return dctx, nil
}

func (a *potActor) context(openFrom domain.Date) *domain.Context {
	return &domain.Context{Now: a.deps.Now(), Catalogue: a.deps.Catalogue, Calendar: a.deps.Calendar,
		Prices: a.deps.Market.Prices(), OpenFrom: openFrom}
}

// refused is the reply to a command Decide refused, unless this activation
// turns out to be stale: then it stops, and the reply is "unavailable".
func (a *potActor) refused(ctx actor.Context, err error, r reply) reply {
	if a.stale() {
		// Another activation wrote: the refusal may only reflect this
		// one's old state. Stop; the caller's retry reaches a fresh one.
		a.failed = errors.New("stale: another activation appended")
		a.deps.Logger.Warn("pot activation is stale; stopping it", "member", a.member, "version", a.appender.durable)
		a.stop(ctx)
		return r.with(unavailable(), "failed")
	}
	resp := a.problemResponse(err)
	return r.with(resp, outcomeOf(resp))
}

// stale reports whether, with nothing of its own in flight, the pot's
// stream has moved past this activation in the journal: a second activation
// wrote. A refusal is the moment to ask (it is rare, and a stale refusal is
// wrong); an append finds out by itself (a version conflict).
func (a *potActor) stale() bool {
	if a.appender.busy() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.AppendTimeout)
	defer cancel()
	events, err := a.deps.Journal.Read(ctx, a.appender.stream, a.appender.durable+1, 1)
	if err != nil {
		a.deps.Logger.Warn("pot staleness check failed", "member", a.member, "err", err)
		return false
	}
	return len(events) > 0
}

// encode is a decision's events in the journal's form. It reports false
// if one cannot be encoded: a bug, logged; the pot has not changed, and
// nothing is appended.
func (a *potActor) encode(events []domain.Event) ([]persistence.NewEvent, bool) {
	encoded := make([]persistence.NewEvent, 0, len(events))
	for _, e := range events {
		typ, data, err := codec.EncodePotEvent(e)
		if err != nil {
			a.deps.Logger.Error("encode pot event", "member", a.member, "event", e.EventType(), "err", err)
			return nil, false
		}
		encoded = append(encoded, persistence.NewEvent{Type: typ, Data: data})
	}
	return encoded, true
}
