package domain

import (
	"errors"
	"fmt"
)

// Business refusals of pot commands. Each is a sentinel checked with
// errors.Is; Decide wraps it in a *RefusalError saying what exactly was
// refused. Each has one problem code, with its HTTP status, in the table of
// internal/problem (docs/api.md, "Errors": 422, 404, 409).
var (
	ErrPotNotFound         = errors.New("domain: pot not found")
	ErrPotAlreadyOpen      = errors.New("domain: pot already open")
	ErrUnknownProfile      = errors.New("domain: unknown risk profile")
	ErrUnknownAsset        = errors.New("domain: unknown asset")
	ErrNoPrice             = errors.New("domain: no price for asset")
	ErrInsufficientFunds   = errors.New("domain: insufficient funds")
	ErrInsufficientUnits   = errors.New("domain: insufficient units")
	ErrAmountAboveValue    = errors.New("domain: amount above pot value")
	ErrPotLimit            = errors.New("domain: pot value limit")
	ErrOrderNotFound       = errors.New("domain: order not found")
	ErrOrderCutOff         = errors.New("domain: order already cut off")
	ErrOrderNotCancellable = errors.New("domain: order not cancellable")
	ErrIdempotencyConflict = errors.New("domain: idempotency key reused with a different request")
	// ErrIdempotencyKeyExpired refuses a key used before, longer ago than
	// RequestRetention: the original result is no longer kept with the
	// pot, and the request must never be applied twice.
	ErrIdempotencyKeyExpired = errors.New("domain: idempotency key past its retention")
	// ErrHistoryUnavailable: the command names a retired order and the
	// member's history could not be read to decide it (try again).
	ErrHistoryUnavailable = errors.New("domain: history unavailable")
	ErrSameAsset          = errors.New("domain: switch from and to the same asset")
	ErrInvalidCommand     = errors.New("domain: invalid command")
	// ErrSystemMismatch refuses a system message (an execution, a
	// settlement, a roll) that does not fit the pot's state: a trade the pot
	// does not have, or an execution that would break an invariant. It means
	// a bug or a forged message; the sender must not retry it blindly.
	ErrSystemMismatch = errors.New("domain: system message does not match the pot")
)

// RefusalError is a refused command: the reason (one of the sentinels) and a
// sentence for the member or operator.
type RefusalError struct {
	Err    error
	Detail string
}

func (e *RefusalError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *RefusalError) Unwrap() error { return e.Err }

func refuse(err error, format string, args ...any) error {
	return &RefusalError{Err: err, Detail: fmt.Sprintf(format, args...)}
}
