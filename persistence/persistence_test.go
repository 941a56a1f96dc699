package persistence_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, ok.Validate(4), "request at the limits")
	for _, name := range []string{"pot/M000123", "agg/2026-11-23/17", "a:b_c-d"} {
		assert.NoError(t, persistence.ValidateStream("read", name), "ValidateStream(%q)", name)
	}
	bad := ok
	bad.Group = 4
	err := bad.Validate(4)
	var pe *persistence.Error
	require.ErrorIs(t, err, persistence.ErrInvalid, "group out of range")
	require.ErrorAs(t, err, &pe, "group out of range")
	require.Equal(t, "append", pe.Op, "group out of range: op")
	require.Equal(t, bad.Stream, pe.Stream, "group out of range: stream")
	assert.ErrorContains(t, err, "group 4 out of range [0, 4)", "group out of range: why")
	assert.NoError(t, (persistence.Snapshot{Stream: "pot/1", Version: 1, Data: make([]byte, persistence.SnapshotDataBytesMax)}).Validate(),
		"snapshot at the limit")
	assert.NoError(t, persistence.ValidateFeed(0, 1, 1), "ValidateFeed(0, 1, 1)")
	assert.ErrorIs(t, persistence.ValidateFeed(1, 1, 1), persistence.ErrInvalid, "ValidateFeed(1, 1, 1)")
}

// TestErrorMessages proves that an Error says what failed and unwraps to
// its sentinel.
func TestErrorMessages(t *testing.T) {
	conflict := &persistence.Error{Op: "append", Stream: "pot/1", ExpectedVersion: 3, ActualVersion: 5, Err: persistence.ErrVersionConflict}
	assert.EqualError(t, conflict, `persistence: append "pot/1": expected version 3, stream is at 5: persistence: version conflict`, "conflict")
	unknown := &persistence.Error{Op: "append", Stream: "pot/1", ExpectedVersion: 204, ActualUnknown: errors.New("timeout"),
		Err: persistence.ErrVersionConflict}
	assert.EqualError(t, unknown, `persistence: append "pot/1": expected version 204; could not read the stream's version (timeout): persistence: version conflict`,
		"conflict whose version could not be read")
	assert.ErrorIs(t, unknown, persistence.ErrVersionConflict)
	feed := &persistence.Error{Op: "read feed", Group: 7, Err: persistence.ErrClosed}
	assert.EqualError(t, feed, "persistence: read feed group 7: persistence: journal closed", "feed")
	// Unwrap reaches the sentinel, and only it.
	assert.ErrorIs(t, feed, persistence.ErrClosed, "feed")
	assert.NotErrorIs(t, feed, persistence.ErrInvalid, "feed")
}
