package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// idleTimer passivates a grain after a quiet period, with its own timer
// message instead of protoactor's receive timeout: that one's timer goroutine
// writes the actor context while the mailbox reads it (the race detector
// reports it), and switches itself off when it fires while the grain is busy,
// so such a grain would never passivate.
type idleTimer struct {
	idle  time.Duration
	last  time.Time // the last request
	timer *time.Timer
}

// idleCheck is the timer's message to its grain.
type idleCheck struct{}

// start arms the timer (idle 0: never passivate).
func (t *idleTimer) start(ctx actor.Context) {
	if t.idle <= 0 {
		return
	}
	t.last = time.Now()
	t.arm(ctx, t.idle)
}

// touch records a request.
func (t *idleTimer) touch() { t.last = time.Now() }

func (t *idleTimer) arm(ctx actor.Context, after time.Duration) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	t.timer = time.AfterFunc(after, func() { root.Send(self, idleCheck{}) })
}

// expired reports, on an idleCheck, whether the grain has been quiet for
// the idle period and may passivate; if not (or if busy), it re-arms.
func (t *idleTimer) expired(ctx actor.Context, busy bool) bool {
	if t.idle <= 0 {
		return false
	}
	if busy {
		t.arm(ctx, t.idle)
		return false
	}
	if rest := t.idle - time.Since(t.last); rest > 0 {
		t.arm(ctx, rest)
		return false
	}
	return true
}

// stop stops the timer.
func (t *idleTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
	}
}
