package actors

import (
	"errors"
	"fmt"
	"log/slog"
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
	// activate loads the grain's state for its identity.
	activate(identity string) error
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
		})
		return protocluster.NewKind(name, props)
	}
}

type grainShell struct {
	kind     string
	log      *slog.Logger
	logic    grainLogic
	idle     idleTimer
	identity string
	failed   error
	// held are the answers of an activation that failed, sent once it
	// has stopped (see answerFailed).
	held []heldAnswer
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
// pill and the stop, where protoactor drops a request without an answer
// and the caller waits for its timeout.
func (g *grainShell) answerFailed(ctx actor.Context, err error) {
	if to := ctx.Sender(); to != nil {
		g.held = append(g.held, heldAnswer{to: to, msg: g.logic.failure(err)})
	}
}

func (g *grainShell) Receive(ctx actor.Context) {
	defer func() {
		if r := recover(); r != nil {
			g.failed = recovered.Report(g.log, "grain/"+g.kind, r, "identity", g.identity, "message", fmt.Sprintf("%T", ctx.Message()),
				"then", "stopping the activation; the next request activates the grain afresh from the journal")
			if _, ok := ctx.Message().(*protocluster.GrainRequest); ok {
				g.answerFailed(ctx, fmt.Errorf("%s %s failed", g.kind, g.identity))
			}
			ctx.Poison(ctx.Self())
		}
	}()
	switch msg := ctx.Message().(type) {
	case *protocluster.ClusterInit:
		if msg.Identity == nil {
			g.failed = errors.New("activated without a cluster identity")
		} else {
			g.identity = msg.Identity.Identity
			g.failed = g.logic.activate(g.identity)
		}
		if g.failed != nil {
			g.log.Error("grain activation failed", "kind", g.kind, "identity", g.identity, "err", g.failed)
			ctx.Poison(ctx.Self()) // after answering what waits; the next request retries
			return
		}
		g.idle.start(ctx)
	case *protocluster.GrainRequest:
		g.idle.touch()
		if g.failed != nil {
			g.answerFailed(ctx, fmt.Errorf("%s %s unavailable: %w", g.kind, g.identity, g.failed))
			return
		}
		// A request behind the poison pill is handled to completion like
		// any other: this shell keeps nothing in flight between messages.
		ctx.Respond(g.logic.handle(msg.MessageData))
	case idleCheck:
		busy := false
		if b, ok := g.logic.(interface{ busy() bool }); ok {
			busy = b.busy() // a run going on in the background
		}
		if g.idle.expired(ctx, busy) {
			ctx.Poison(ctx.Self())
		}
	case *actor.Stopped:
		g.idle.stop()
		for _, h := range g.held {
			ctx.Send(h.to, h.msg)
		}
		g.held = nil
	}
}
