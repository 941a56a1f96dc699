package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/internal/recovered"
)

// The system's grains (aggregators, asset books, cycles, prices) share one
// shell: a grain handles one request at a time, to completion, and answers
// it. Unlike pots they are few and their requests are long (a cycle step),
// so there is nothing to batch. As for pots, a panic stops the activation
// instead of letting protoactor restart an instance that would never see
// its ClusterInit again.

// grainLogic is one kind's behaviour.
type grainLogic interface {
	// activate loads the grain's state for its identity. The grain's own
	// stream is made with f, which it trips on a version conflict (see
	// fence).
	activate(identity string, f *fence) error
	// handle answers one request (its encoded bytes).
	handle(request []byte) proto.Message
	// failure is the kind's response for an error.
	failure(err error) proto.Message
}

// newGrainKind returns a cluster kind constructor for a kind whose grains
// run logic made by newLogic.
func newGrainKind(name string, log *slog.Logger, newLogic func() grainLogic) func(idleTimeout time.Duration) *protocluster.Kind {
	return func(idleTimeout time.Duration) *protocluster.Kind {
		props := actor.PropsFromProducer(func() actor.Actor {
			return &grainShell{kind: name, log: log, logic: newLogic(), idle: idleTimer{idle: idleTimeout}}
		}, actor.WithMailbox(grainMailboxes()))
		return protocluster.NewKind(name, props)
	}
}

type grainShell struct {
	kind     string
	log      *slog.Logger
	logic    grainLogic
	idle     idleTimer
	identity string
	fence    fence
	failed   error
	// held are the answers of an activation that failed, sent once it
	// has stopped (see answerFailed).
	held []heldAnswer
	// stoppedIn is set once the activation has stopped: the system it
	// answers late requests through (see late).
	stoppedIn *actor.ActorSystem
}

// fence records that another activation of the grain appended to its
// stream (placement is eventually consistent: for a while a grain can be
// active on two members). This activation's state is then behind the
// journal and each of its appends would conflict again, for ever: it must
// stop, and the next activation reloads the stream. The grain's stream
// trips it (systemStream.append), from the grain's mailbox or from a run in
// the background (a cycle's); the shell checks it around every request.
type fence struct {
	mu  sync.Mutex
	err error // mu guards: the first conflict
}

// trip records a version conflict. A nil fence (a stream no grain owns, as
// the alarms stream: appendOnce reloads and retries) records nothing.
func (f *fence) trip(err error) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// tripped is the conflict recorded, or nil.
func (f *fence) tripped() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

type heldAnswer struct {
	to  *actor.PID
	msg proto.Message
}

// answerFailed answers a request to an activation that failed (its
// activation, or a panic) and is stopping. The answer goes out only once
// the activation has stopped, when protoactor has taken it out of the
// registry: a caller that retries then reaches a fresh activation, not
// this one (which would fail again) nor its mailbox between the poison
// pill and the stop (a request there is answered failed too: see
// grainMailbox).
func (g *grainShell) answerFailed(ctx actor.Context, err error) {
	if to := ctx.Sender(); to != nil {
		g.held = append(g.held, heldAnswer{to: to, msg: g.logic.failure(err)})
	}
}

func (g *grainShell) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			g.fail(ctx, recovered.Report(g.log, "grain/"+g.kind, r, "identity", g.identity, "message", fmt.Sprintf("%T", ctx.Message()),
				"then", "stopping the activation; the next request activates the grain afresh from the journal"))
			if _, ok := ctx.Message().(*protocluster.GrainRequest); ok {
				g.answerFailed(ctx, fmt.Errorf("%s %s failed", g.kind, g.identity))
			}
		}
	}()
	switch msg := ctx.Message().(type) {
	case *protocluster.ClusterInit:
		err := errors.New("activated without a cluster identity")
		if msg.Identity != nil {
			g.identity = msg.Identity.Identity
			err = g.logic.activate(g.identity, &g.fence)
		}
		if err != nil {
			g.log.Error("grain activation failed", "kind", g.kind, "identity", g.identity, "err", err)
			g.fail(ctx, err) // after answering what waits; the next request retries
			return
		}
		g.idle.start(ctx)
	case *protocluster.GrainRequest:
		g.idle.touch()
		g.checkFence(ctx)
		if g.failed == nil {
			resp := g.logic.handle(msg.MessageData)
			// An answer decided on a stale state is not given: the retry
			// must reach an activation that reloaded the stream.
			if g.checkFence(ctx); g.failed == nil {
				ctx.Respond(resp)
				return
			}
		}
		g.answerFailed(ctx, fmt.Errorf("%s %s unavailable: %w", g.kind, g.identity, g.failed))
	case idleCheck:
		busy := false
		if b, ok := g.logic.(interface{ busy() bool }); ok {
			busy = b.busy() // a run going on in the background
		}
		if g.checkFence(ctx); g.failed == nil && g.idle.expired(ctx, busy) {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopped:
		g.idle.stop()
		g.stoppedIn = ctx.ActorSystem()
		for _, h := range g.held {
			ctx.Send(h.to, h.msg)
		}
		g.held = nil
	}
}

// fail stops an activation that must not go on (its activation failed, it
// panicked, its stream moved on without it): it sends itself its poison
// pill once; requests until the pill are answered with failed (see
// answerFailed).
func (g *grainShell) fail(ctx actor.Context, err error) {
	if g.failed != nil {
		return // stopping already
	}
	g.failed = err
	ctx.Poison(ctx.Self())
}

// checkFence stops the activation once another activation appended to its
// stream (see fence).
func (g *grainShell) checkFence(ctx actor.Context) {
	if err := g.fence.tripped(); err != nil && g.failed == nil {
		g.log.Warn("another activation of the grain appended to its stream; stopping this one", "kind", g.kind, "identity", g.identity, "err", err)
		g.fail(ctx, err)
	}
}

// late answers a request that reached the activation's mailbox after it
// stopped (see grainMailbox) with the kind's failure: nothing was done,
// and asking again reaches a fresh activation.
func (g *grainShell) late(msg any) bool {
	if g.stoppedIn == nil {
		return false
	}
	if _, m, sender := actor.UnwrapEnvelope(msg); sender != nil {
		if _, ok := m.(*protocluster.GrainRequest); ok {
			g.stoppedIn.Root.Send(sender, g.logic.failure(fmt.Errorf("%s %s stopped before it reached the request", g.kind, g.identity)))
		}
	}
	return true
}
