// Package consume holds what both sides of the custodian protocol do with
// a JetStream durable consumer: pull its messages one at a time and keep
// pulling through failures (PullLoop), count a message's deliveries
// (NumDelivered), pace the redeliveries of a message that could not be
// handled yet (RetryDelay), and check a consumer's name (ValidConsumerName).
// ACME's client (package custodian) and the simulated custodian (package
// custodian/simulator) share it.
package consume

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// giveBackWaitMax bounds how long a stopping consumer waits for the
	// messages nats.go had already pulled, to put them back; they arrive
	// within a round trip, and one not put back is redelivered after
	// AckWait anyway.
	giveBackWaitMax = 2 * time.Second
	// recreateDelayMax bounds the pause between attempts to re-create a
	// consumer that failed.
	recreateDelayMax = 30 * time.Second
)

// PullLoop hands the messages of the durable consumer cons to handle, one at
// a time, until ctx is done. If the consumer fails (deleted by an operator, a
// connection nats.go could not recover) it is re-created from cfg after
// retry (doubling up to recreateDelayMax) and consuming goes on: a custodian
// link that stops silently would be found only by the missing reports. When
// ctx is done, the messages nats.go had pulled but handle had not seen are
// put back (Nak), so that the next consumer gets them at once rather than
// after AckWait.
func PullLoop(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig,
	cons jetstream.Consumer, pullMsgs int, retry time.Duration, log *slog.Logger,
	handle func(context.Context, jetstream.Msg)) {
	for {
		err := pullUntilError(ctx, cons, pullMsgs, log, handle)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
			log.Error("consumer stopped: the NATS connection is closed", "stream", stream, "consumer", cfg.Durable)
			return
		}
		log.Warn("consumer failed; re-creating it", "stream", stream, "consumer", cfg.Durable, "err", err)
		for delay := retry; ; delay = min(2*delay, recreateDelayMax) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			cons, err = js.CreateOrUpdateConsumer(ctx, stream, cfg)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("re-create consumer failed", "stream", stream, "consumer", cfg.Durable, "err", err)
		}
	}
}

// pullUntilError consumes until ctx is done or the iterator fails.
func pullUntilError(ctx context.Context, cons jetstream.Consumer, pullMsgs int, log *slog.Logger,
	handle func(context.Context, jetstream.Msg)) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(pullMsgs))
	if err != nil {
		return err
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				giveBack(it, log)
				return ctx.Err()
			}
			it.Stop()
			return err
		}
		handle(ctx, msg)
	}
}

// giveBack drains the iterator and puts back every message it still held.
func giveBack(it jetstream.MessagesContext, log *slog.Logger) {
	it.Drain()
	deadline := time.Now().Add(giveBackWaitMax)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			it.Stop()
			return
		}
		msg, err := it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			return
		}
		if err := msg.Nak(); err != nil {
			log.Debug("put back a pulled message", "subject", msg.Subject(), "err", err)
		}
	}
}

// NumDelivered is how many times msg has been delivered (1 for the first
// time; 1 if the metadata cannot be read).
func NumDelivered(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil || md.NumDelivered == 0 {
		return 1
	}
	return md.NumDelivered
}

// RetryDelay is the delay before the delivery after the n-th (1-based) of a
// message that could not be handled yet: base, doubling per delivery, at
// most max.
func RetryDelay(n uint64, base, max time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	// 2^20 × any sane base is beyond any sane max; stop doubling there so
	// the shift cannot overflow.
	const doublingsMax = 20
	d := base << min(n-1, doublingsMax)
	if d <= 0 || d > max {
		return max
	}
	return d
}

// ValidConsumerName reports whether JetStream accepts s as a durable
// consumer's name: it refuses names with these characters.
func ValidConsumerName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}
