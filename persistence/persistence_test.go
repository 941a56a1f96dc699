package persistence_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/acme/mastertrust/persistence"
)

// TestValidateAcceptsTheLimits proves that requests exactly at the limits
// are valid and one past any limit is ErrInvalid with the limit named.
func TestValidateAcceptsTheLimits(t *testing.T) {
	ok := persistence.AppendRequest{
		Stream: strings.Repeat("a", persistence.StreamNameBytesMax),
		Group:  3,
		Events: []persistence.NewEvent{{Type: strings.Repeat("T", persistence.EventTypeBytesMax), Data: make([]byte, persistence.EventDataBytesMax)}},
	}
	if err := ok.Validate(4); err != nil {
		t.Fatalf("request at the limits: %v", err)
	}
	for _, name := range []string{"pot/M000123", "agg/2026-11-23/17", "a:b_c-d"} {
		if err := persistence.ValidateStream("read", name); err != nil {
			t.Errorf("ValidateStream(%q): %v", name, err)
		}
	}
	bad := ok
	bad.Group = 4
	err := bad.Validate(4)
	var pe *persistence.Error
	if !errors.Is(err, persistence.ErrInvalid) || !errors.As(err, &pe) || pe.Op != "append" || pe.Stream != bad.Stream {
		t.Fatalf("group out of range: %v", err)
	}
	if !strings.Contains(err.Error(), "group 4 out of range [0, 4)") {
		t.Errorf("error %q does not say why", err)
	}
	if err := (persistence.Snapshot{Stream: "pot/1", Version: 1, Data: make([]byte, persistence.SnapshotDataBytesMax)}).Validate(); err != nil {
		t.Errorf("snapshot at the limit: %v", err)
	}
	if err := persistence.ValidateFeed(0, 1, 1); err != nil {
		t.Errorf("ValidateFeed(0, 1, 1): %v", err)
	}
	if err := persistence.ValidateFeed(1, 1, 1); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("ValidateFeed(1, 1, 1): %v, want ErrInvalid", err)
	}
}

// TestErrorMessages proves that an Error says what failed and unwraps to
// its sentinel.
func TestErrorMessages(t *testing.T) {
	conflict := &persistence.Error{Op: "append", Stream: "pot/1", ExpectedVersion: 3, ActualVersion: 5, Err: persistence.ErrVersionConflict}
	if got, want := conflict.Error(), `persistence: append "pot/1": expected version 3, stream is at 5: persistence: version conflict`; got != want {
		t.Errorf("conflict: %q, want %q", got, want)
	}
	feed := &persistence.Error{Op: "read feed", Group: 7, Err: persistence.ErrClosed}
	if got, want := feed.Error(), "persistence: read feed group 7: persistence: journal closed"; got != want {
		t.Errorf("feed: %q, want %q", got, want)
	}
	if !errors.Is(feed, persistence.ErrClosed) || errors.Is(feed, persistence.ErrInvalid) {
		t.Error("Unwrap does not reach the sentinel")
	}
}
