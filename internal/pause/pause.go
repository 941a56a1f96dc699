// Package pause waits between the attempts of a retry loop.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends: then it returns ctx's error at once
// (and stops its timer, so that a long pause leaves nothing behind).
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
