package actors

import (
	"context"
	"errors"
	"log/slog"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// Every grain answers a refusal or a failure with a pb.Problem: a code of
// internal/problem's table (the gateway maps it to an HTTP status) and a
// sentence.

// refused is the wire form of a domain refusal: its row of the table and
// the refusal's own sentence (the code says the rest). It is nil for any
// other error.
func refused(err error) *pb.Problem {
	t, ok := problem.Of(err)
	if !ok {
		return nil
	}
	return &pb.Problem{Code: t.Code, Detail: problem.Detail(err)}
}

// potProblem is the wire form of a pot's refusal. Value errors and
// unreadable requests are invalid requests. Anything else is a journal that
// failed or a bug: it is answered unavailable, so that nothing is claimed
// done, and its cause, which the answer does not carry, is logged here with
// attrs (the member): at WARN for a journal that did not answer in time or
// is closing (the caller retries), else at ERROR.
func potProblem(err error, log *slog.Logger, attrs ...any) *pb.Problem {
	if p := refused(err); p != nil {
		return p
	}
	var ve *domain.ValueError
	if errors.As(err, &ve) || errors.Is(err, errBadRequest) {
		return &pb.Problem{Code: problem.InvalidRequest, Detail: err.Error()}
	}
	level := slog.LevelError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, persistence.ErrClosed) {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "pot request failed; answered unavailable", append(attrs, "err", err)...)
	return &pb.Problem{Code: problem.Unavailable, Detail: "the pot could not complete the request"}
}

// failureProblem is the wire form of a system grain's failure: nothing was
// refused, the request could not be carried out now (a journal or another
// grain did not answer, or a bug). Its detail is the Go error, for the
// caller's log; the gateway shows none of it and answers unavailable.
func failureProblem(err error) *pb.Problem {
	return &pb.Problem{Code: problem.OperationFailed, Detail: err.Error()}
}
