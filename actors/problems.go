package actors

import (
	"errors"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
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
// unreadable requests are invalid requests; anything else unknown is a bug,
// reported as unavailable so that nothing is claimed done.
func potProblem(err error) *pb.Problem {
	if p := refused(err); p != nil {
		return p
	}
	var ve *domain.ValueError
	if errors.As(err, &ve) || errors.Is(err, errBadRequest) {
		return &pb.Problem{Code: problem.InvalidRequest, Detail: err.Error()}
	}
	return &pb.Problem{Code: problem.Unavailable, Detail: "the pot could not complete the request"}
}

// failureProblem is the wire form of a system grain's failure: nothing was
// refused, the request could not be carried out now (a journal or another
// grain did not answer, or a bug). Its detail is the Go error, for the
// caller's log; the gateway shows none of it and answers unavailable.
func failureProblem(err error) *pb.Problem {
	return &pb.Problem{Code: problem.OperationFailed, Detail: err.Error()}
}
