// Package natsstream creates JetStream streams so that processes starting
// at once all end up with them.
//
// On a fresh NATS cluster several nodes start together and each asks for
// the same replicated streams. JetStream answers the twins of a creation in
// flight with "stream name already in use", and a request that reaches the
// meta leader while the stream's Raft group is still electing its leader
// can time out, though the stream is then created. CreateOrUpdateStream
// passes either on as a failed start. Ensure looks the stream up first,
// creates it if absent, and on an error a concurrent creator or a cluster
// still forming explains, looks again and retries with backoff until the
// caller's context ends.
package natsstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/internal/pause"
)

const (
	// attemptTimeout bounds one look-up, creation or update, so that a
	// request lost while the cluster elects a leader is retried within
	// the caller's time instead of using all of it.
	attemptTimeout = 5 * time.Second
	// retryWaitMin and retryWaitMax bound the backoff between attempts.
	retryWaitMin = 50 * time.Millisecond
	retryWaitMax = time.Second
)

// JetStream's error codes that a retry may outlive.
const (
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008 // JSClusterNotAvailErr: temporarily unavailable
	errCodeClusterIncomplete   jetstream.ErrorCode = 10004 // JSClusterIncompleteErr
	errCodeClusterNotLeader    jetstream.ErrorCode = 10009 // JSClusterNotLeaderErr: the meta leader is changing
	errCodeClusterNoPeers      jetstream.ErrorCode = 10005 // JSClusterNoPeersErrF: peers not known yet on a forming cluster
)

// Ensure returns the stream cfg.Name, creating it with cfg if it does not
// exist. With update, an existing stream whose settings differ from cfg's
// (Differs) is updated to cfg; without, it is returned as it is, for the
// caller to check. Errors that a concurrent creator or a forming cluster
// explain are retried until ctx ends; others are returned at once.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, update bool) (jetstream.Stream, error) {
	wait := retryWaitMin
	for {
		st, err := attempt(ctx, js, cfg, update)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil || !retriable(err) {
			return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
		}
		if perr := pause.For(ctx, wait); perr != nil {
			return nil, fmt.Errorf("stream %s: %w (last error: %w)", cfg.Name, perr, err)
		}
		wait = min(2*wait, retryWaitMax)
	}
}

func attempt(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, update bool) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	st, err := js.Stream(ctx, cfg.Name)
	switch {
	case err == nil:
		if update && Differs(st.CachedInfo().Config, cfg) {
			return js.UpdateStream(ctx, cfg)
		}
		return st, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// A twin's creation may land between the look-up and this: it
		// comes back as "already in use" and the next turn finds it.
		return js.CreateStream(ctx, cfg)
	default:
		return nil, err
	}
}

// retriable reports whether err may pass: a twin's creation in flight, a
// request that timed out or found no responder while the cluster elects
// its leaders, a cluster still forming.
func retriable(err error) bool {
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNotAvailable, errCodeClusterIncomplete, errCodeClusterNotLeader, errCodeClusterNoPeers:
			return true
		}
	}
	return false
}

// Differs reports whether have (a stream's configuration, as the server
// returns it) lacks one of want's settings. A zero limit in want is the
// server's default, which have shows filled in (-1, 1 replica, 2 minutes
// of duplicates): only limits want sets are compared.
func Differs(have, want jetstream.StreamConfig) bool {
	set := func(w int64, h int64) bool { return w != 0 && w != h }
	return have.Description != want.Description ||
		!slices.Equal(have.Subjects, want.Subjects) ||
		have.Retention != want.Retention ||
		have.Storage != want.Storage ||
		have.Discard != want.Discard ||
		have.AllowDirect != want.AllowDirect ||
		have.DenyDelete != want.DenyDelete ||
		have.DenyPurge != want.DenyPurge ||
		have.AllowAtomicPublish != want.AllowAtomicPublish ||
		set(int64(want.Replicas), int64(have.Replicas)) ||
		set(int64(want.MaxAge), int64(have.MaxAge)) ||
		set(want.MaxBytes, have.MaxBytes) ||
		set(want.MaxMsgs, have.MaxMsgs) ||
		set(want.MaxMsgsPerSubject, have.MaxMsgsPerSubject) ||
		set(int64(want.MaxMsgSize), int64(have.MaxMsgSize)) ||
		set(int64(want.Duplicates), int64(have.Duplicates))
}
