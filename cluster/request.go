package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Request sends the message msg(callID, deadline) to identity's activation
// of kind and returns its reply: Call's contract (the node's timeout and
// retries, the same errors, ctx honoured) for the hot path of a kind with
// one method (the pots), without protoactor's cluster Request and its
// future. deadline is when the call gives up (the earlier of ctx's and the
// node's RequestTimeout): a grain that gets the message after it may drop
// the work, since no one waits for the reply.
//
// Why: a pot command is one grain call, and protoactor's cluster Request
// made a future per call (a process registered and removed under a new
// name, a timer, a condition variable, a lookup of the new name for the
// reply), a context with its own timer, options, and, when ctx can end, a
// goroutine to wait on both: a fifth of a durable pot command's CPU. Here
// the reply goes to a reply slot, a process registered once and reused by
// one call at a time, and the caller waits on its channel, ctx and a timer
// together.
//
// A slot is reused only after its call got its reply, and a call that ends
// without it (a timeout, ctx) unregisters its slot, so that a late reply
// finds no one. The grain must copy callID into its reply (a reply with
// GetCallId) so that a reply that is not the call's own (a grain answering
// one request twice) is dropped rather than taken for the next call's; a
// dead letter answers instead of the grain.
func Request(ctx context.Context, n *Node, identity, kind string, msg func(callID uint64, deadline time.Time) any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, classifyContextError(err)
	}
	if !n.enter() {
		return nil, ErrStopped
	}
	defer n.calls.Done()
	callDeadline := deadline(ctx, n.cfg.RequestTimeout)
	callID := n.callIDs.Add(1)
	req := msg(callID, callDeadline)
	slot := n.slots.get(n.system)
	defer func() {
		if slot != nil {
			n.slots.put(n.system, slot)
		}
	}()
	for attempt := 1; ; attempt++ {
		var watch memberWatch
		pid, ok := n.cluster.PidCache.Get(identity, kind)
		if ok {
			var departed bool
			if watch, departed = n.watchMember(pid.Address); departed {
				// Cached on a member that has left since: what reaches it
				// now is dropped, so never send there.
				n.cluster.PidCache.Remove(identity, kind)
				ok = false
			}
		}
		if !ok {
			var departed bool
			if pid = n.cluster.Get(identity, kind); pid != nil {
				watch, departed = n.watchMember(pid.Address)
			}
			if pid != nil && !departed {
				n.cluster.PidCache.Set(identity, kind, pid)
			} else {
				pid = nil // the lookup has not caught up with the topology yet
			}
		}
		if pid != nil {
			n.system.Root.RequestWithCustomSender(pid, req, slot.pid)
			reply, err := slot.wait(ctx, callID, time.Until(callDeadline), watch)
			if errors.Is(err, errMemberLeft) {
				// The activation's member left the topology while the call
				// waited (a graceful leave): it may never answer, as what
				// reaches a leaving member after its grains stopped is
				// dropped. The call goes to the new owner: a pot's request
				// is idempotent (its key), and a late answer from the old
				// one is as good (the same call).
				n.cluster.PidCache.Remove(identity, kind)
				continue
			}
			if err != nil {
				n.slots.discard(n.system, slot)
				slot = nil
				return nil, err
			}
			if _, dead := reply.(*actor.DeadLetterResponse); !dead {
				return reply, nil
			}
			n.cluster.PidCache.Remove(identity, kind)
			if attempt == 1 && attempt < n.cfg.RequestRetryCount {
				// The activation is gone (passivated, or moved by a
				// topology change): ask the owner again at once. Its
				// placement refuses an identity it does not own, so a
				// topology still catching up waits below.
				continue
			}
		}
		// No activation found, or it was gone: the topology may not have
		// caught up yet. Wait (as Call's retry action does), then retry.
		if attempt >= n.cfg.RequestRetryCount {
			what := "no activation found"
			if pid != nil {
				what = "dead letter"
			}
			return nil, fmt.Errorf("%w: %s %s/%s after %d attempts", ErrUnavailable, what, kind, identity, attempt)
		}
		wait := n.retryWait(attempt, callDeadline)
		if wait <= 0 {
			return nil, fmt.Errorf("%w: %s/%s: deadline passed between attempts", ErrTimeout, kind, identity)
		}
		if err := waitToRetry(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// replySlot is a process that takes the reply of one call at a time.
type replySlot struct {
	pid     *actor.PID
	replies chan any // buffered: a reply never waits
	timer   *time.Timer
	dead    atomic.Bool
}

// SendUserMessage implements actor.Process.
func (s *replySlot) SendUserMessage(_ *actor.PID, message any) {
	if s.dead.Load() {
		return // a late reply to a call that ended
	}
	select {
	case s.replies <- actor.UnwrapEnvelopeMessage(message):
	default: // a second reply to one request: protoactor never sends one
	}
}

// SendSystemMessage implements actor.Process.
func (s *replySlot) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (s *replySlot) Stop(*actor.PID) { s.dead.Store(true) }

// errMemberLeft: the member a call was sent to left the topology before it
// answered.
var errMemberLeft = errors.New("cluster: the member left")

// wait returns call's reply, or ErrTimeout after timeout, or ctx's error,
// or errMemberLeft once left says the member called has left.
func (s *replySlot) wait(ctx context.Context, call uint64, timeout time.Duration, left memberWatch) (any, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left for the call", ErrTimeout)
	}
	s.timer.Reset(timeout)
	defer s.timer.Stop()
	for {
		select {
		case <-left.changed:
			var gone bool
			if left, gone = left.again(); gone {
				return nil, errMemberLeft
			}
		case r := <-s.replies:
			if c, ok := r.(interface{ GetCallId() uint64 }); ok && c.GetCallId() != call {
				continue // a second reply to an earlier call
			}
			return r, nil
		case <-s.timer.C:
			return nil, fmt.Errorf("%w: no reply within %s", ErrTimeout, timeout.Round(time.Millisecond))
		case <-ctx.Done():
			return nil, classifyContextError(ctx.Err())
		}
	}
}

// replySlots keeps a node's idle slots for reuse.
type replySlots struct {
	mu   sync.Mutex
	free []*replySlot
}

// replySlotsIdleMax bounds the idle slots a node keeps: one per caller
// waiting at once is enough, and each is a registered process and a timer.
const replySlotsIdleMax = 1024

func (r *replySlots) get(system *actor.ActorSystem) *replySlot {
	r.mu.Lock()
	if n := len(r.free); n > 0 {
		s := r.free[n-1]
		r.free = r.free[:n-1]
		r.mu.Unlock()
		return s
	}
	r.mu.Unlock()
	s := &replySlot{replies: make(chan any, 1), timer: time.NewTimer(time.Hour)}
	s.timer.Stop()
	// NextId keeps the name unique in the registry, like a future's.
	s.pid, _ = system.ProcessRegistry.Add(s, "reply$"+system.ProcessRegistry.NextID())
	return s
}

func (r *replySlots) put(system *actor.ActorSystem, s *replySlot) {
	r.mu.Lock()
	if len(r.free) < replySlotsIdleMax {
		r.free = append(r.free, s)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.discard(system, s)
}

// discard unregisters a slot for good.
func (r *replySlots) discard(system *actor.ActorSystem, s *replySlot) {
	s.dead.Store(true)
	system.ProcessRegistry.Remove(s.pid)
}
