package actors

import "github.com/asynkron/protoactor-go/actor"

// The grains' mailboxes (pots and the system grains): protoactor's
// unbounded mailbox, linked to its grain when protoactor links the two
// (after the grain is made, before its first message).
//
// protoactor drops without a word the messages still in an actor's mailbox
// once it has stopped: those queued behind its poison pill (placement's,
// the grain's own when it fails or passivates) and those sent before it
// left the registry. Their callers would wait for their whole timeout (a
// dealing step's is minutes); instead the grain answers them (late).
//
// A pot is also handed its mailbox, to ask how many messages wait
// (enqueue).

// lateAnswerer is a grain that answers the requests reaching it after it
// stopped.
type lateAnswerer interface {
	// late reports whether the grain has stopped; if so, it answers msg
	// (an envelope, or a bare message) if it is a request.
	late(msg any) bool
}

// grainMailbox is protoactor's mailbox, which hands itself to its pot and
// its stopped grain's messages to the grain.
type grainMailbox struct{ actor.Mailbox }

// grainMailboxes makes grains' mailboxes.
func grainMailboxes() actor.MailboxProducer {
	unbounded := actor.Unbounded()
	return func() actor.Mailbox { return grainMailbox{unbounded()} }
}

func (m grainMailbox) RegisterHandlers(invoker actor.MessageInvoker, d actor.Dispatcher) {
	if c, ok := invoker.(actor.Context); ok {
		if a, ok := c.Actor().(*potActor); ok {
			a.mailbox = m.Mailbox
		}
		if a, ok := c.Actor().(lateAnswerer); ok {
			invoker = lateInvoker{MessageInvoker: invoker, grain: a}
		}
	}
	m.Mailbox.RegisterHandlers(invoker, d)
}

// lateInvoker gives a stopped grain the messages protoactor would drop.
type lateInvoker struct {
	actor.MessageInvoker
	grain lateAnswerer
}

func (i lateInvoker) InvokeUserMessage(msg any) {
	if !i.grain.late(msg) {
		i.MessageInvoker.InvokeUserMessage(msg)
	}
}
