package actors

import (
	"context"
	"sync"
	"time"
)

// deadlineContext is context.WithDeadline(context.Background(), d) that
// starts its timer only if someone asks for Done. A pot bounds every append
// by AppendTimeout, and the Pebble journal only looks at Err before it
// queues the append: WithDeadline's timer and contexts cost a durable pot
// command about 3% of its CPU for nothing (docs/performance.md). A journal
// that waits on Done (JetStream) gets the timer then.
type deadlineContext struct {
	deadline  time.Time
	doneOnce  sync.Once
	done      chan struct{}
	timer     *time.Timer
	closeOnce sync.Once
}

var _ context.Context = (*deadlineContext)(nil)

func newDeadlineContext(timeout time.Duration) *deadlineContext {
	return &deadlineContext{deadline: time.Now().Add(timeout)}
}

func (c *deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineContext) Done() <-chan struct{} {
	c.doneOnce.Do(func() {
		c.done = make(chan struct{})
		if d := time.Until(c.deadline); d > 0 {
			c.timer = time.AfterFunc(d, c.expire)
		} else {
			c.expire()
		}
	})
	return c.done
}

// Err is DeadlineExceeded once the deadline has passed, and Done is then
// closed (the context contract: Err is nil until Done is closed).
func (c *deadlineContext) Err() error {
	if time.Now().Before(c.deadline) {
		return nil
	}
	c.Done()
	c.expire()
	return context.DeadlineExceeded
}

func (c *deadlineContext) Value(any) any { return nil }

func (c *deadlineContext) expire() {
	c.closeOnce.Do(func() {
		if c.done != nil { // nil: stopped before anyone asked for Done
			close(c.done)
		}
	})
}

// stop releases the timer, if Done started one.
func (c *deadlineContext) stop() {
	c.doneOnce.Do(func() {}) // no timer from now on
	if c.timer != nil {
		c.timer.Stop()
	}
}
