// Package problem is the one table of the platform's problem codes: every
// refusal and failure a grain or the gateway answers with, its HTTP status
// and title, and, for a refusal the domain decides, the domain's sentinel
// error. Grains answer pb.Problem{Code, Detail} with these codes (package
// actors); the gateway turns a code into an RFC 7807 problem with the
// row's status and title (package gateway). docs/api.md ("Errors") and
// docs/openapi.yaml describe the same table, and this package's tests check
// that they agree.
//
// The package is a table and a few look-ups: no I/O, no actors, no clock.
// It sits above domain (it names the domain's sentinels) and below actors
// and gateway.
package problem

import (
	"errors"
	"net/http"

	"github.com/acme/mastertrust/domain"
)

// The codes: stable names on the wire and in the API (the last segment of
// a problem's type). A code is never renamed or reused; each is a row of
// table below.
const (
	// The pots' refusals.
	PotNotFound         = "pot-not-found"
	PotAlreadyOpen      = "pot-already-open"
	UnknownProfile      = "unknown-profile"
	UnknownAsset        = "unknown-asset"
	NoPrice             = "no-price"
	InsufficientFunds   = "insufficient-funds"
	InsufficientUnits   = "insufficient-units"
	AmountAboveValue    = "amount-above-value"
	PotLimit            = "pot-limit"
	OrderNotFound       = "order-not-found"
	OrderCutOff         = "order-cut-off"
	OrderNotCancellable = "order-not-cancellable"
	IdempotencyConflict = "idempotency-conflict"
	// IdempotencyKeyExpired: the key was used longer ago than the pots
	// remember results (7 days); the request is never applied twice.
	IdempotencyKeyExpired = "idempotency-key-expired"
	SameAsset             = "same-asset"
	SystemMismatch        = "system-mismatch"
	// InvalidRequest: a malformed request, refused by the gateway or by a
	// pot (a value error, an unreadable command).
	InvalidRequest = "invalid-request"
	// Unavailable: not now, retry. A pot answers it when it could not make
	// the request durable (its journal failed, another activation won):
	// nothing was acknowledged and a retry with the same idempotency key is
	// safe. The gateway answers it for anything that did not answer in time.
	Unavailable = "unavailable"

	// The operators' refusals: prices, cycles and reconciliations.
	InvalidPrices = "invalid-prices"
	// PricesConflict: other prices are recorded for the date; a correction
	// needs a reason.
	PricesConflict = "prices-conflict"
	// PricesUsed: a cycle has dealt at the date's prices; they are never
	// corrected.
	PricesUsed = "prices-used"
	// NoPrices: a cycle for a date without prices.
	NoPrices        = "no-prices"
	NotDealingDay   = "not-dealing-day"
	OutsideWindow   = "outside-window"
	EarlierDayOpen  = "earlier-day-open"
	AsOfUnavailable = "as-of-unavailable"
	// NotFound: no such cycle, prices or reconciliation (a system grain),
	// or no such path (the gateway).
	NotFound = "not-found"
	// OperationFailed: a system grain could not carry out a request now (a
	// journal or another grain did not answer, or a bug); nothing was
	// refused, and asking again is safe. Its detail is a Go error for the
	// log: the gateway answers Unavailable instead.
	OperationFailed = "operation-failed"

	// Why a cycle run or a reconciliation stopped (a run's problem).
	//
	// CycleInterrupted: a step could not finish (a node, the journal or a
	// grain did not answer in time, or the process stopped); running the
	// cycle again resumes it.
	CycleInterrupted = "cycle-interrupted"
	// CustodianSilent: the custodian has not reported every order in time;
	// running the cycle again keeps waiting (orders are resent).
	CustodianSilent = "custodian-silent"
	// CustodianMismatch: the only reports of an order differ from it
	// (units, side or price) and were refused, or (in journals written
	// before reports were refused) a recorded execution differs from its
	// batch: an operator must look before anything is allocated. A refused
	// report leaves the order waiting: running the cycle again keeps
	// waiting for a matching one.
	CustodianMismatch = "custodian-mismatch"
	// PricesFeedConflict: the custodian's price feed holds other prices for
	// the day than ACME recorded: the custodian would execute at them.
	PricesFeedConflict = "prices-feed-conflict"
	// CycleUnavailable: this node cannot run cycles (no custodian
	// connection).
	CycleUnavailable = "cycle-unavailable"
	// ReconciliationInterrupted: a reconciliation run could not finish;
	// running it again retries.
	ReconciliationInterrupted = "reconciliation-interrupted"

	// The gateway's own.
	Unauthorized     = "unauthorized"
	Forbidden        = "forbidden"
	MethodNotAllowed = "method-not-allowed"
	// UnsupportedMediaType: a body that is not sent as application/json.
	UnsupportedMediaType = "unsupported-media-type"
	// IdempotencyKeyRequired: a request that moves money or places or
	// cancels an order without an Idempotency-Key.
	IdempotencyKeyRequired = "idempotency-key-required"
	// Internal: a broken contract inside the platform; its detail says
	// nothing (the log has it).
	Internal = "internal"
)

// Use is where a code is answered.
type Use int

const (
	// AsHTTP: the code is an HTTP problem, with the row's status and title.
	AsHTTP Use = iota
	// InRun: the code says why a cycle run or a reconciliation stopped; it
	// is part of an answer's body (a summary's problem), never a status.
	InRun
	// BetweenGrains: the code passes between grains and their callers only;
	// the gateway logs what it says and answers Unavailable.
	BetweenGrains
)

// Type is one row of the table: a problem type in RFC 7807's sense.
type Type struct {
	Code string
	// Status is the HTTP status of an AsHTTP code, 0 for the others.
	Status int
	// Title is a short summary for people, the same for every occurrence.
	Title string
	// Err is the domain's sentinel refused with this code (errors.Is), or
	// nil when the domain has none.
	Err error
	Use Use
}

// table is every code: its status, title and domain sentinel. A business
// refusal is 422, an unknown pot or order 404, a reused idempotency key or
// a conflict with what is recorded 409, a malformed request 400, anything
// that says "not now" 503 (with Retry-After).
var table = []Type{
	// The pots' refusals.
	{PotNotFound, http.StatusNotFound, "Pot not found", domain.ErrPotNotFound, AsHTTP},
	{PotAlreadyOpen, http.StatusUnprocessableEntity, "Pot already open", domain.ErrPotAlreadyOpen, AsHTTP},
	{UnknownProfile, http.StatusUnprocessableEntity, "Unknown risk profile", domain.ErrUnknownProfile, AsHTTP},
	{UnknownAsset, http.StatusUnprocessableEntity, "Unknown asset", domain.ErrUnknownAsset, AsHTTP},
	{NoPrice, http.StatusUnprocessableEntity, "No price for the asset", domain.ErrNoPrice, AsHTTP},
	{InsufficientFunds, http.StatusUnprocessableEntity, "Insufficient funds", domain.ErrInsufficientFunds, AsHTTP},
	{InsufficientUnits, http.StatusUnprocessableEntity, "Insufficient units", domain.ErrInsufficientUnits, AsHTTP},
	{AmountAboveValue, http.StatusUnprocessableEntity, "Amount above the pot's value", domain.ErrAmountAboveValue, AsHTTP},
	{PotLimit, http.StatusUnprocessableEntity, "Above what a pot may hold", domain.ErrPotLimit, AsHTTP},
	{OrderNotFound, http.StatusNotFound, "Order not found", domain.ErrOrderNotFound, AsHTTP},
	{OrderCutOff, http.StatusUnprocessableEntity, "Order already cut off", domain.ErrOrderCutOff, AsHTTP},
	{OrderNotCancellable, http.StatusUnprocessableEntity, "Order cannot be cancelled", domain.ErrOrderNotCancellable, AsHTTP},
	{IdempotencyConflict, http.StatusConflict, "Idempotency key reused with another request", domain.ErrIdempotencyConflict, AsHTTP},
	{IdempotencyKeyExpired, http.StatusConflict, "Idempotency key past its retention", domain.ErrIdempotencyKeyExpired, AsHTTP},
	{SameAsset, http.StatusUnprocessableEntity, "Switch to the same asset", domain.ErrSameAsset, AsHTTP},
	{SystemMismatch, http.StatusUnprocessableEntity, "Request does not match the pot", domain.ErrSystemMismatch, AsHTTP},
	{InvalidRequest, http.StatusBadRequest, "Invalid request", domain.ErrInvalidCommand, AsHTTP},
	{Unavailable, http.StatusServiceUnavailable, "Service unavailable", domain.ErrHistoryUnavailable, AsHTTP},

	// The operators' refusals.
	{InvalidPrices, http.StatusBadRequest, "Invalid prices", nil, AsHTTP},
	{PricesConflict, http.StatusConflict, "Other prices are recorded for the date", domain.ErrCorrectionNoReason, AsHTTP},
	{PricesUsed, http.StatusUnprocessableEntity, "Prices already used by a cycle", domain.ErrPricesUsed, AsHTTP},
	{NoPrices, http.StatusConflict, "No prices for the date", nil, AsHTTP},
	{NotDealingDay, http.StatusUnprocessableEntity, "Not a dealing day", domain.ErrNotDealingDay, AsHTTP},
	{OutsideWindow, http.StatusUnprocessableEntity, "Outside the dealing window", domain.ErrOutsideWindow, AsHTTP},
	{EarlierDayOpen, http.StatusUnprocessableEntity, "An earlier dealing day is not complete", domain.ErrEarlierDayOpen, AsHTTP},
	{AsOfUnavailable, http.StatusUnprocessableEntity, "Reconciliation date not available", domain.ErrAsOfUnavailable, AsHTTP},
	{NotFound, http.StatusNotFound, "Not found", nil, AsHTTP},
	{OperationFailed, 0, "Operation failed", nil, BetweenGrains},

	// A run's problem.
	{CycleInterrupted, 0, "Cycle interrupted", nil, InRun},
	{CustodianSilent, 0, "Custodian silent", nil, InRun},
	{CustodianMismatch, 0, "Execution differs from the batch", nil, InRun},
	{PricesFeedConflict, 0, "Other prices on the custodian's feed", nil, InRun},
	{CycleUnavailable, 0, "Cycles unavailable on this node", nil, InRun},
	{ReconciliationInterrupted, 0, "Reconciliation interrupted", nil, InRun},

	// The gateway's own.
	{Unauthorized, http.StatusUnauthorized, "Unauthorized", nil, AsHTTP},
	{Forbidden, http.StatusForbidden, "Forbidden", nil, AsHTTP},
	{MethodNotAllowed, http.StatusMethodNotAllowed, "Method not allowed", nil, AsHTTP},
	{UnsupportedMediaType, http.StatusUnsupportedMediaType, "Unsupported media type", nil, AsHTTP},
	{IdempotencyKeyRequired, http.StatusPreconditionRequired, "Idempotency-Key required", nil, AsHTTP},
	{Internal, http.StatusInternalServerError, "Internal error", nil, AsHTTP},
}

// byCode indexes table.
var byCode = func() map[string]Type {
	m := make(map[string]Type, len(table))
	for _, t := range table {
		m[t.Code] = t
	}
	return m
}()

// All returns every row of the table, in its order.
func All() []Type {
	return append([]Type(nil), table...)
}

// Lookup returns code's row.
func Lookup(code string) (Type, bool) {
	t, ok := byCode[code]
	return t, ok
}

// HTTP returns code's row if the gateway answers code as an HTTP problem.
func HTTP(code string) (Type, bool) {
	t, ok := byCode[code]
	return t, ok && t.Use == AsHTTP
}

// Of returns the row whose domain sentinel err is (errors.Is), if any.
func Of(err error) (Type, bool) {
	if err == nil {
		return Type{}, false
	}
	for _, t := range table {
		if t.Err != nil && errors.Is(err, t.Err) {
			return t, true
		}
	}
	return Type{}, false
}

// Detail is the sentence of a domain refusal for people: the
// *domain.RefusalError's detail, else the error's text.
func Detail(err error) string {
	var re *domain.RefusalError
	if errors.As(err, &re) && re.Detail != "" {
		return re.Detail
	}
	return err.Error()
}
