package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
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
// Invariant: pot is the durable state plus the events of waiting, in order
// (the batch being appended stays first in waiting until it is durable);
// durable is the journal's version of the stream.

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
	held     []heldReply

	member  string
	stream  string
	group   uint32
	pot     *domain.Pot
	durable uint64 // the stream's version in the journal
	// snapshot: the last snapshot saved, and what was appended since.
	snapshot snapshotProgress

	waiting []*batch // decided, not yet durable, in order
	// flushQueued: a flushWaiting message is in the mailbox.
	flushQueued bool
	// mailbox is the activation's mailbox (nil if potMailbox did not see
	// it), asked whether messages wait behind the one being handled.
	mailbox actor.Mailbox
	failed  error // set when the activation must not go on
}

// batch is one append and the replies that wait for it.
type batch struct {
	events  []persistence.NewEvent
	replies []reply
}

type reply struct {
	to      *actor.PID
	call    uint64 // the PotCall's, copied into resp
	resp    *pb.PotResponse
	command string // for metrics
	outcome string
	// release ends the command's hold on the market (see Market.Hold) once
	// the reply goes: its events are durable, or they never will be.
	release func()
	// later, if set, computes resp when the reply is due (everything before
	// it durable), off the pot's mailbox: a read of the history read model,
	// which waits for the history to catch up (History.WaitVersion).
	later func() *pb.PotResponse
}

// heldReply is a reply of a stopping activation, sent once it stopped.
type heldReply struct {
	to   *actor.PID
	resp *pb.PotResponse
}

// flushWaiting tells a pot to append what is waiting.
type flushWaiting struct{}

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
	mailboxes := potMailboxes()
	return func(idleTimeout time.Duration) *protocluster.Kind {
		props := actor.PropsFromProducer(func() actor.Actor {
			return &potActor{deps: deps, idle: idleTimer{idle: idleTimeout, resident: resident}}
		},
			actor.WithDispatcher(dispatcher), actor.WithMailbox(mailboxes))
		return protocluster.NewKind(PotKind, props)
	}
}

// potMailbox is protoactor's mailbox, which hands itself to its pot when
// protoactor links the two (after the pot is made, before its first
// message), so that the pot can ask how many messages wait (enqueue).
type potMailbox struct{ actor.Mailbox }

// potMailboxes makes pots' mailboxes.
func potMailboxes() actor.MailboxProducer {
	unbounded := actor.Unbounded()
	return func() actor.Mailbox { return potMailbox{unbounded()} }
}

func (m potMailbox) RegisterHandlers(invoker actor.MessageInvoker, d actor.Dispatcher) {
	if c, ok := invoker.(actor.Context); ok {
		if a, ok := c.Actor().(*potActor); ok {
			a.mailbox = m.Mailbox
		}
	}
	m.Mailbox.RegisterHandlers(invoker, d)
}

// The goroutines of a node's pots (see workers): up to potWorkersIdleMax
// stay parked between mailbox runs, enough for 64 busy callers' pots, each
// run waiting for its append; a mailbox run handles up to
// potMailboxThroughput messages before it yields (protoactor's default).
const (
	potWorkersIdleMax    = 256
	potMailboxThroughput = 300
)

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
		if !a.stopping && a.idle.expired(ctx, len(a.waiting) > 0) {
			a.passivate(ctx)
		}
	case *actor.Stopped:
		a.idle.stop()
		for _, h := range a.held {
			ctx.Send(h.to, h.resp)
		}
		a.held = nil
		for _, b := range a.waiting {
			// Replies nobody will send (the node was killed mid-append).
			a.deps.pending.Add(-int64(len(b.replies)))
		}
		a.waiting = nil
		if a.pot != nil { // activated
			a.deps.active.Add(-1)
			if m := a.deps.Metrics; m != nil {
				m.ActivePots.Dec()
			}
		}
	}
}

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
		Detail: detail + "; retry with the same idempotency key"}}}, call.CallId)
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
// mailbox between the pill and the stop, where protoactor drops a request
// without an answer and the caller waits for its timeout.
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
	if a.failed == nil && !a.poisoned && len(a.waiting) == 0 && a.snapshot.version < a.durable {
		a.saveSnapshot(true)
	}
	a.stop(ctx)
}

// activate recovers the pot from its latest snapshot and the events after
// it. A failure leaves the activation answering "unavailable" until it stops.
func (a *potActor) activate(member string) {
	a.member, a.stream = member, PotStream(member)
	a.group = PotGroup(member, PotGroups(a.deps.Journal))
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
	a.pot, a.durable, a.snapshot = p, p.Version, recovered
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

// handle decides one request and queues its reply. req is the caller's:
// read, never modified.
func (a *potActor) handle(ctx actor.Context, req *pb.PotRequest, call uint64) {
	name := commandName(req)
	// answer is this request's reply: resp, once everything before it is
	// durable.
	answer := func(resp *pb.PotResponse, outcome string, release func()) reply {
		return reply{to: ctx.Sender(), call: call, resp: resp, command: name, outcome: outcome, release: release}
	}
	if a.stopping {
		a.respond(ctx, unavailable(), call)
		return
	}
	if a.failed != nil {
		a.enqueue(ctx, answer(unavailable(), "failed", nil), nil)
		return
	}
	cmd, isCommand, err := command(req)
	if err != nil {
		a.enqueue(ctx, answer(a.problemResponse(err), "refused", nil), nil)
		return
	}
	if !isCommand {
		if later, ok := a.historyQuery(req); ok {
			r := answer(nil, "ok", nil)
			r.later = later
			a.enqueue(ctx, r, nil)
			return
		}
		resp := a.query(req, a.context(a.deps.Market.OpenFrom()))
		a.enqueue(ctx, answer(resp, outcomeOf(resp), nil), nil)
		return
	}
	openFrom, release := a.deps.Market.Hold()
	queued := false
	defer func() {
		if !queued {
			release() // a panic before the reply was queued must not hold cut-offs up
		}
	}()
	dctx := a.context(openFrom)
	if dctx.PastRequest, err = a.pastRequest(cmd); err == nil {
		dctx.Retired, err = a.retiredOrder(cmd)
	}
	if err != nil {
		a.deps.Logger.Warn("pot history unavailable", "member", a.member, "err", err)
		queued = true
		a.enqueue(ctx, answer(unavailable(), "failed", release), nil)
		return
	}
	dec, err := domain.Decide(a.pot, cmd, dctx)
	if err != nil {
		queued = true
		if a.stale() {
			// Another activation wrote: the refusal may only reflect this
			// one's old state. Stop; the caller's retry reaches a fresh one.
			a.failed = errors.New("stale: another activation appended")
			a.deps.Logger.Warn("pot activation is stale; stopping it", "member", a.member, "version", a.durable)
			a.stop(ctx)
			a.enqueue(ctx, answer(unavailable(), "failed", release), nil)
			return
		}
		resp := a.problemResponse(err)
		a.enqueue(ctx, answer(resp, outcomeOf(resp), release), nil)
		return
	}
	events := make([]persistence.NewEvent, 0, len(dec.Events))
	for _, e := range dec.Events {
		typ, data, err := codec.EncodePotEvent(e)
		if err != nil {
			// A bug: the pot has not changed, nothing is appended.
			a.deps.Logger.Error("encode pot event", "member", a.member, "event", e.EventType(), "err", err)
			queued = true
			a.enqueue(ctx, answer(unavailable(), "failed", release), nil)
			return
		}
		events = append(events, persistence.NewEvent{Type: typ, Data: data})
	}
	for _, e := range dec.Events {
		a.pot.Apply(e)
	}
	resp := a.commandReply(req, dec, dctx)
	if resp == nil {
		// The command touched a retired order (a cancellation of a
		// cancelled one): read once its events are durable.
		r := answer(nil, "ok", release)
		r.later = a.retiredOrderReply(dec.Reply.RefID)
		queued = true
		a.enqueue(ctx, r, events)
		return
	}
	outcome := "ok"
	if dec.Reply.Replayed {
		outcome = "replayed"
	}
	queued = true
	a.enqueue(ctx, answer(resp, outcome, release), events)
}

// stale reports whether, with nothing of its own in flight, the pot's
// stream has moved past this activation in the journal: a second activation
// wrote. A refusal is the moment to ask (it is rare, and a stale refusal is
// wrong); an append finds out by itself (a version conflict).
func (a *potActor) stale() bool {
	if len(a.waiting) > 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.AppendTimeout)
	defer cancel()
	events, err := a.deps.Journal.Read(ctx, a.stream, a.durable+1, 1)
	if err != nil {
		a.deps.Logger.Warn("pot staleness check failed", "member", a.member, "err", err)
		return false
	}
	return len(events) > 0
}

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
	a.snapshot = snapshotProgress{version: a.durable, bytes: len(data)}
	if m := a.deps.Metrics; m != nil {
		m.SnapshotBytes.Observe(float64(len(data)))
	}
	snap := persistence.Snapshot{Stream: a.stream, Version: a.durable, Data: data}
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

func (a *potActor) send(ctx actor.Context, r reply) {
	if r.release != nil {
		r.release()
	}
	if r.later != nil && r.to != nil && !a.poisoned {
		to, call, command, metrics, root := r.to, r.call, r.command, a.deps.Metrics, ctx.ActorSystem().Root
		a.deps.workers.Go(func() {
			resp := r.later()
			if metrics != nil {
				metrics.Requests.WithLabelValues(command, outcomeOf(resp)).Inc()
			}
			resp.CallId = call
			root.Send(to, resp)
		})
		return
	}
	if r.later != nil {
		r.resp = unavailable() // stopping: the retry reaches a fresh activation
	}
	if r.resp.Version == 0 && a.pot != nil {
		r.resp.Version = a.durable
	}
	if m := a.deps.Metrics; m != nil {
		m.Requests.WithLabelValues(r.command, r.outcome).Inc()
	}
	if r.to == nil {
		return // nobody is waiting (a fire-and-forget message)
	}
	r.resp.CallId = r.call
	if a.poisoned {
		a.held = append(a.held, heldReply{to: r.to, resp: r.resp})
		return
	}
	ctx.Send(r.to, r.resp)
}

func (a *potActor) context(openFrom domain.Date) *domain.Context {
	return &domain.Context{Now: a.deps.Now(), Catalogue: a.deps.Catalogue, Calendar: a.deps.Calendar,
		Prices: a.deps.Market.Prices(), OpenFrom: openFrom}
}

func (a *potActor) viewer(dctx *domain.Context) viewer {
	return viewer{cat: a.deps.Catalogue, isCutOff: dctx.IsCutOff}
}

// commandReply is the reply to a decided command: the resource it made or
// touched, as the pot stands after it (for a repeat, the same resource as
// the first time, as it stands now).
func (a *potActor) commandReply(req *pb.PotRequest, dec domain.Decision, dctx *domain.Context) *pb.PotResponse {
	v := a.viewer(dctx)
	resp := &pb.PotResponse{Replayed: dec.Reply.Replayed, Version: a.pot.Version}
	switch req.Command.(type) {
	case *pb.PotRequest_OpenPot, *pb.PotRequest_SetRiskProfile:
		resp.Result = &pb.PotResponse_Pot{Pot: v.pot(a.pot, dctx.Prices)}
	case *pb.PotRequest_Contribute, *pb.PotRequest_Withdraw:
		resp.Result = &pb.PotResponse_Movement{Movement: v.movement(a.pot, a.pot.Movements[dec.Reply.RefID])}
	case *pb.PotRequest_PlaceOrder, *pb.PotRequest_CancelOrder:
		o := a.pot.Orders[dec.Reply.RefID]
		if o == nil {
			return nil // retired: see handle
		}
		resp.Result = &pb.PotResponse_Order{Order: v.order(o)}
	default:
		resp.Result = &pb.PotResponse_Ack{Ack: &pb.Ack{}}
	}
	return resp
}

// query answers a read from the pot as it will stand once everything
// before it is durable (the reply waits for that).
func (a *potActor) query(req *pb.PotRequest, dctx *domain.Context) *pb.PotResponse {
	if !a.pot.Opened {
		return a.problemResponse(&domain.RefusalError{Err: domain.ErrPotNotFound, Detail: "member " + a.member + " has no pot"})
	}
	v := a.viewer(dctx)
	resp := &pb.PotResponse{Version: a.pot.Version}
	switch q := req.Command.(type) {
	case *pb.PotRequest_GetPot:
		resp.Result = &pb.PotResponse_Pot{Pot: v.pot(a.pot, dctx.Prices)}
	case *pb.PotRequest_GetOrder:
		o, ok := a.pot.Orders[q.GetOrder.OrderId]
		if !ok {
			return a.problemResponse(&domain.RefusalError{Err: domain.ErrOrderNotFound, Detail: "no order " + q.GetOrder.OrderId})
		}
		resp.Result = &pb.PotResponse_Order{Order: v.order(o)}
	default: // the history's (historyQuery)
		panic(fmt.Sprintf("actors: pot query %T", q))
	}
	return resp
}

// respond answers the message being handled: at once, or once the
// activation has stopped if it is stopping (see stop).
func (a *potActor) respond(ctx actor.Context, resp *pb.PotResponse, call uint64) {
	resp.CallId = call
	if a.poisoned {
		if to := ctx.Sender(); to != nil {
			a.held = append(a.held, heldReply{to: to, resp: resp})
		}
		return
	}
	ctx.Respond(resp)
}

func (a *potActor) problemResponse(err error) *pb.PotResponse {
	return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: potProblem(err, a.deps.Logger, "member", a.member)}}
}

// outcomeOf is the metrics outcome of a reply that is not a replay: failed
// if the pot could not answer it (unavailable), refused for any other
// problem, else ok.
func outcomeOf(resp *pb.PotResponse) string {
	switch p := resp.GetProblem(); {
	case p == nil:
		return "ok"
	case p.Code == problem.Unavailable:
		return "failed"
	}
	return "refused"
}

func unavailable() *pb.PotResponse {
	return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: problem.Unavailable,
		Detail: "the pot could not make the request durable; retry with the same idempotency key"}}}
}

// commandName names a request for metrics and logs.
func commandName(req *pb.PotRequest) string {
	switch req.Command.(type) {
	case *pb.PotRequest_OpenPot:
		return "open_pot"
	case *pb.PotRequest_Contribute:
		return "contribute"
	case *pb.PotRequest_Withdraw:
		return "withdraw"
	case *pb.PotRequest_PlaceOrder:
		return "place_order"
	case *pb.PotRequest_CancelOrder:
		return "cancel_order"
	case *pb.PotRequest_SetRiskProfile:
		return "set_risk_profile"
	case *pb.PotRequest_Rebalance:
		return "rebalance"
	case *pb.PotRequest_AllocateTrades:
		return "allocate_trades"
	case *pb.PotRequest_SettleTrades:
		return "settle_trades"
	case *pb.PotRequest_RollOrder:
		return "roll_order"
	case *pb.PotRequest_GetPot:
		return "get_pot"
	case *pb.PotRequest_ListOrders:
		return "list_orders"
	case *pb.PotRequest_GetOrder:
		return "get_order"
	case *pb.PotRequest_GetStatement:
		return "get_statement"
	}
	return "unknown"
}
