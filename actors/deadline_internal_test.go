package actors

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlineContextBehavesLikeWithDeadline(t *testing.T) {
	t.Run("Err before and after the deadline, with Done closed", func(t *testing.T) {
		c := newDeadlineContext(20 * time.Millisecond)
		defer c.stop()
		if err := c.Err(); err != nil {
			t.Fatalf("Err before the deadline = %v", err)
		}
		if d, ok := c.Deadline(); !ok || time.Until(d) > 20*time.Millisecond {
			t.Fatalf("Deadline = %v, %v", d, ok)
		}
		time.Sleep(30 * time.Millisecond)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline = %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Err is DeadlineExceeded but Done is not closed")
		}
	})
	t.Run("Done closes at the deadline", func(t *testing.T) {
		c := newDeadlineContext(20 * time.Millisecond)
		defer c.stop()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after the deadline")
		}
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err after Done = %v", err)
		}
	})
	t.Run("stopped before Done was asked for", func(t *testing.T) {
		c := newDeadlineContext(time.Millisecond)
		c.stop()
		time.Sleep(5 * time.Millisecond)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) { // must not panic either
			t.Fatalf("Err = %v", err)
		}
	})
}
