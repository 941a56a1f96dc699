package actors

import (
	"errors"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Problem codes: the stable names of refusals on the wire. The gateway maps
// each to an HTTP status and an RFC 7807 type (gateway/problems.go); tests
// check the two tables agree.
const (
	CodePotNotFound         = "pot-not-found"
	CodePotAlreadyOpen      = "pot-already-open"
	CodeUnknownProfile      = "unknown-profile"
	CodeUnknownAsset        = "unknown-asset"
	CodeNoPrice             = "no-price"
	CodeInsufficientFunds   = "insufficient-funds"
	CodeInsufficientUnits   = "insufficient-units"
	CodeAmountAboveValue    = "amount-above-value"
	CodePotLimit            = "pot-limit"
	CodeOrderNotFound       = "order-not-found"
	CodeOrderCutOff         = "order-cut-off"
	CodeOrderNotCancellable = "order-not-cancellable"
	CodeIdempotencyConflict = "idempotency-conflict"
	CodeSameAsset           = "same-asset"
	CodeInvalidRequest      = "invalid-request"
	CodeSystemMismatch      = "system-mismatch"
	// CodeUnavailable: the pot could not make the request durable (its
	// journal failed or another activation won); nothing was acknowledged
	// and a retry with the same idempotency key is safe.
	CodeUnavailable = "unavailable"
)

// refusalCodes maps the domain's refusals to their codes.
var refusalCodes = []struct {
	err  error
	code string
}{
	{domain.ErrPotNotFound, CodePotNotFound},
	{domain.ErrPotAlreadyOpen, CodePotAlreadyOpen},
	{domain.ErrUnknownProfile, CodeUnknownProfile},
	{domain.ErrUnknownAsset, CodeUnknownAsset},
	{domain.ErrNoPrice, CodeNoPrice},
	{domain.ErrInsufficientFunds, CodeInsufficientFunds},
	{domain.ErrInsufficientUnits, CodeInsufficientUnits},
	{domain.ErrAmountAboveValue, CodeAmountAboveValue},
	{domain.ErrPotLimit, CodePotLimit},
	{domain.ErrOrderNotFound, CodeOrderNotFound},
	{domain.ErrOrderCutOff, CodeOrderCutOff},
	{domain.ErrOrderNotCancellable, CodeOrderNotCancellable},
	{domain.ErrIdempotencyConflict, CodeIdempotencyConflict},
	{domain.ErrSameAsset, CodeSameAsset},
	{domain.ErrInvalidCommand, CodeInvalidRequest},
	{domain.ErrSystemMismatch, CodeSystemMismatch},
}

// ProblemCodes lists every code a pot can answer with.
func ProblemCodes() []string {
	out := []string{CodeUnavailable}
	for _, r := range refusalCodes {
		out = append(out, r.code)
	}
	return out
}

// problem is the wire form of a refusal. Value errors and unreadable
// requests are invalid requests; anything else unknown is a bug, reported as
// unavailable so that nothing is claimed done.
func problem(err error) *pb.Problem {
	for _, r := range refusalCodes {
		if errors.Is(err, r.err) {
			// The refusal's own sentence, for people; the code says the rest.
			detail := err.Error()
			var refusal *domain.RefusalError
			if errors.As(err, &refusal) && refusal.Detail != "" {
				detail = refusal.Detail
			}
			return &pb.Problem{Code: r.code, Detail: detail}
		}
	}
	var ve *domain.ValueError
	if errors.As(err, &ve) || errors.Is(err, errBadRequest) {
		return &pb.Problem{Code: CodeInvalidRequest, Detail: err.Error()}
	}
	return &pb.Problem{Code: CodeUnavailable, Detail: "the pot could not complete the request"}
}
