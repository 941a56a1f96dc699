package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// idleTimer passivates a grain after a quiet period, with its own timer
// message instead of protoactor's receive timeout: that one's timer goroutine
// writes the actor context while the mailbox reads it (the race detector
// reports it), and switches itself off when it fires while the grain is busy,
// so such a grain would never passivate.
//
// With a residentCap (pots), a grain also passivates early: once quiet for
// the cap's shorter period while its node holds more grains of its kind than
// the cap. Its first check then comes after that shorter period; a grain
// that finds the node under the cap waits for the rest of its idle period,
// so that under the cap it costs one more timer event per activation, not
// one per shorter period.
type idleTimer struct {
	idle time.Duration
	// resident, if set, is its kind's cap on the node's active grains;
	// nil (the dealing grains): the grain passivates after idle only.
	resident *residentCap
	last     time.Time // the last request
	timer    *time.Timer
}

// residentCap bounds, softly, the active grains of a kind on a node: while
// more than max are active, a grain quiet for idle passivates without
// waiting for its idle timer's full period. The kind's grains share one.
//
// The bound is soft: grains that checked while the node was under it wait
// for their full idle period (at most max of them at once, since each saw
// at most max active, itself included), and grains used within the last
// idle have not checked yet; many grains checking at once may all see the
// node over it and take it below.
type residentCap struct {
	max  int64
	idle time.Duration
	// active counts the node's active grains of the kind; the grains keep
	// it (see potActor's activate and Stopped).
	active *atomic.Int64
}

// over reports whether the node holds more active grains than the cap.
func (c *residentCap) over() bool { return c.active.Load() > c.max }

// idleCheck is the timer's message to its grain.
type idleCheck struct{}

// start arms the timer (idle 0: never passivate).
func (t *idleTimer) start(ctx actor.Context) {
	if t.idle <= 0 {
		return
	}
	t.last = time.Now()
	t.arm(ctx, t.firstCheck())
}

// firstCheck is how long after a request the grain first checks whether
// it may passivate: its idle period, or its cap's if shorter.
func (t *idleTimer) firstCheck() time.Duration {
	if t.resident != nil && t.resident.idle < t.idle {
		return t.resident.idle
	}
	return t.idle
}

// touch records a request.
func (t *idleTimer) touch() { t.last = time.Now() }

func (t *idleTimer) arm(ctx actor.Context, after time.Duration) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	t.timer = time.AfterFunc(after, func() { root.Send(self, idleCheck{}) })
}

// expired reports, on an idleCheck, whether the grain may passivate: it has
// been quiet for the idle period, or for its cap's period while the node is
// over the cap. If not (or if busy), it re-arms: for the rest of the cap's
// period while over the cap, else for the rest of the idle period.
func (t *idleTimer) expired(ctx actor.Context, busy bool) bool {
	if t.idle <= 0 {
		return false
	}
	if busy {
		t.arm(ctx, t.firstCheck())
		return false
	}
	quiet := time.Since(t.last)
	if quiet >= t.idle {
		return true
	}
	if c := t.resident; c != nil && c.over() {
		if quiet >= c.idle {
			return true
		}
		t.arm(ctx, c.idle-quiet)
		return false
	}
	t.arm(ctx, t.idle-quiet)
	return false
}

// stop stops the timer.
func (t *idleTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
	}
}
