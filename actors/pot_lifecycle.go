package actors

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// A pot activation's life around its requests: how a node makes pots (their
// mailboxes and the workers that run them), the calls a pot sheds before
// deciding them, and how an activation stops (passivation, failure, panic)
// without losing a caller's answer.

// NewPotKind returns the cluster kind of pot grains hosted by a node, with
// deps shared by them. idleTimeout passivates a pot without messages, and
// deps.Config.ResidentMax one quiet for ResidentIdle while the node holds
// more pots than that.
func NewPotKind(deps *PotDeps) func(idleTimeout time.Duration) *protocluster.Kind {
	deps.Config.EnsureDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	deps.recoveries = make(chan struct{}, deps.Config.RecoveriesMax)
	deps.pending = new(atomic.Int64)
	deps.active = new(atomic.Int64)
	var resident *residentCap
	if deps.Config.ResidentMax > 0 {
		resident = &residentCap{max: int64(deps.Config.ResidentMax), idle: deps.Config.ResidentIdle, active: deps.active}
	}
	deps.workers = newWorkers(potWorkersIdleMax, deps.Logger)
	dispatcher := deps.workers.dispatcher(potMailboxThroughput)
	mailboxes := grainMailboxes()
	return func(idleTimeout time.Duration) *protocluster.Kind {
		props := actor.PropsFromProducer(func() actor.Actor {
			return &potActor{deps: deps, idle: idleTimer{idle: idleTimeout, resident: resident}}
		},
			actor.WithDispatcher(dispatcher), actor.WithMailbox(mailboxes))
		return protocluster.NewKind(PotKind, props)
	}
}

// The goroutines of a node's pots (see workers): up to potWorkersIdleMax
// stay parked between mailbox runs, enough for 64 busy callers' pots, each
// run waiting for its append; a mailbox run handles up to
// potMailboxThroughput messages before it yields (protoactor's default).
const (
	potWorkersIdleMax    = 256
	potMailboxThroughput = 300
)

// shed answers a call "unavailable" at once, without deciding it, and
// reports true, when doing it would be wasted or would queue behind more
// than the journal can take: its caller's deadline has passed (nobody
// waits for the answer), or it is a member's request and the node's pots
// hold PendingMax requests waiting for the journal. Nothing is done, so
// the caller's retry with the same idempotency key is safe. The dealing
// cycle's commands are refused only when expired.
func (a *potActor) shed(ctx actor.Context, call *pb.PotCall) bool {
	var reason, detail string
	switch {
	case call.DeadlineUnixNano != 0 && time.Now().UnixNano() >= call.DeadlineUnixNano:
		reason, detail = "expired", "the call's deadline passed before the pot reached it; nothing was done"
	case a.deps.pending.Load() >= int64(a.deps.Config.PendingMax) && memberRequest(call.Request):
		reason, detail = "pending", "the node is at its limit of requests waiting for the journal; nothing was done"
	default:
		return false
	}
	if m := a.deps.Metrics; m != nil {
		m.Shed.WithLabelValues(reason).Inc()
		m.Requests.WithLabelValues(commandName(call.Request), "shed").Inc()
	}
	a.respond(ctx, &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: problem.Unavailable,
		Detail: detail + "; retry with the same idempotency key", Shed: true}}}, call.CallId)
	return true
}

// memberRequest reports whether req is a member's command or query, as
// opposed to one of the dealing cycle's commands.
func memberRequest(req *pb.PotRequest) bool {
	switch req.Command.(type) {
	case *pb.PotRequest_Rebalance, *pb.PotRequest_AllocateTrades, *pb.PotRequest_SettleTrades, *pb.PotRequest_RollOrder:
		return false
	}
	return true
}

// recoverPanic stops an activation that panicked (an invariant assertion,
// a bug) instead of letting protoactor restart it: a restarted grain is a
// fresh instance that never sees its ClusterInit again. Everything queued
// is answered "unavailable"; the next request recovers the pot from the
// journal, which the panic cannot have touched.
func (a *potActor) recoverPanic(ctx actor.Context) {
	r := recover()
	if r == nil {
		return
	}
	a.failed = recovered.Report(a.deps.Logger, "grain/"+PotKind, r, "member", a.member, "message", fmt.Sprintf("%T", ctx.Message()),
		"then", "stopping the activation; the next request recovers the pot from the journal")
	a.stop(ctx)
	a.failWaiting(ctx)
	if m, ok := ctx.Message().(*pb.PotCall); ok && m != nil {
		a.respond(ctx, unavailable(), m.CallId)
	}
}

// stop sends the activation its poison pill. Its replies from then on are
// held until it has stopped (Stopped), when protoactor has taken it out of
// the registry: a caller that retries on "unavailable" then reaches a
// fresh activation, not this one (which would refuse again) nor its
// mailbox between the pill and the stop (a request there is answered
// "unavailable" too: see grainMailbox).
func (a *potActor) stop(ctx actor.Context) {
	a.poisoned = true
	ctx.Poison(ctx.Self())
}

// passivate stops an activation that has been quiet long enough (see
// idleTimer). If it appended since its last snapshot, it saves one first,
// and waits for it: the next activation then reads the snapshot instead of
// replaying those events (a young pot would otherwise replay its whole
// history each time). Nothing is in flight (the idle timer waits for a pot
// with batches waiting), so the state is durable.
func (a *potActor) passivate(ctx actor.Context) {
	a.stopping = true
	if a.failed == nil && !a.poisoned && !a.appender.busy() && a.snapshot.version < a.appender.durable {
		a.saveSnapshot(true)
	}
	a.stop(ctx)
}

// stopped is the activation's end (protoactor's Stopped): the held replies
// go, and the node's counts let go of what the activation held.
//
// Batches may still wait here: a poison pill from outside (placement moving
// the pot to another member, the node stopping) can reach the mailbox ahead
// of the pot's own flushWaiting, which protoactor then drops unprocessed.
// A stopped activation writes nothing more (the pot may already be active
// elsewhere), so their callers are answered "unavailable" (they retry with
// the same idempotency key) and their market holds released: a cut-off
// waits for those holds.
func (a *potActor) stopped(ctx actor.Context) {
	a.idle.stop()
	a.stoppedIn = ctx.ActorSystem()
	a.failWaiting(ctx)
	for _, h := range a.held {
		ctx.Send(h.to, h.resp)
	}
	a.held = nil
	if a.pot != nil { // activated
		a.deps.active.Add(-1)
		if m := a.deps.Metrics; m != nil {
			m.ActivePots.Dec()
		}
	}
}

// late answers a request that reached the activation's mailbox after it
// stopped (see grainMailbox) "unavailable", as the pot answers one behind
// its own poison pill: nothing was done, and the retry reaches a fresh
// activation.
func (a *potActor) late(msg any) bool {
	if a.stoppedIn == nil {
		return false
	}
	if _, m, sender := actor.UnwrapEnvelope(msg); sender != nil {
		if call, ok := m.(*pb.PotCall); ok {
			resp := unavailable()
			resp.CallId = call.CallId
			a.stoppedIn.Root.Send(sender, resp)
		}
	}
	return true
}
