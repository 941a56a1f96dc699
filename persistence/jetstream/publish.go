package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/acme/mastertrust/internal/pause"
)

// Publishing through a leader election. When the server leading a stream
// goes away, a publish to it gets no answer (or "no responders") until the
// stream's other replicas elect a new leader, a few seconds later. An
// append then tries again within its caller's deadline, each try bounded by
// publishAttemptTimeout, rather than fail the pot's command: the outcome
// of a try that got no answer is resolved by JetStream itself, never
// guessed, because every try carries the same Nats-Msg-Id. A message the
// old leader stored and replicated is a duplicate to the new one, which
// answers with the original's sequence; one it did not replicate was never
// acknowledged and is stored now. A try that meets the first one still in
// the replicas' pipeline fails its expected last subject sequence, a
// conflict the caller already resolves by reading the stream.

const (
	// publishAttemptTimeout bounds one try: well past a healthy replicated
	// publish (milliseconds), short enough to try twice or more within a
	// pot command's deadline while a stream elects a leader.
	publishAttemptTimeout = 1500 * time.Millisecond
	// publishRetryPause is the pause after a try that failed at once ("no
	// responders": no leader yet), doubled up to publishRetryPauseMax.
	publishRetryPause    = 50 * time.Millisecond
	publishRetryPauseMax = 400 * time.Millisecond
)

// publishDurably publishes msg, trying again while the stream has no
// leader that answers, until ctx ends. It sets msg's Nats-Msg-Id.
func (s *Store) publishDurably(ctx context.Context, msg *nats.Msg) (*natsjs.PubAck, error) {
	msg.Header.Set(natsjs.MsgIDHeader, nuid.Next())
	wait := publishRetryPause
	for {
		attempt, cancel := context.WithTimeout(ctx, publishAttemptTimeout)
		ack, err := s.js.PublishMsg(attempt, msg)
		cancel()
		if err == nil || !leaderAway(err) || ctx.Err() != nil {
			return ack, err
		}
		if pause.For(ctx, wait) != nil {
			return nil, err
		}
		wait = min(2*wait, publishRetryPauseMax)
	}
}

// leaderAway reports whether a publish failed for want of a stream leader
// that answers: no answer in time, or no one to answer. Not an API error
// (the leader answered and refused: a conflict, a limit).
func leaderAway(err error) bool {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, natsjs.ErrNoStreamResponse)
}
