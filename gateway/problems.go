package gateway

import (
	"net/http"
	"strings"

	"github.com/acme/mastertrust/actors"
)

// ProblemTypeBase prefixes every problem type URI: a problem's type is
// ProblemTypeBase + its code, e.g.
// https://mastertrust.acme.example/problems/insufficient-funds.
const ProblemTypeBase = "https://mastertrust.acme.example/problems/"

// Problem is an RFC 7807 problem details body (application/problem+json).
// Code, RequestID and Errors are extension members: the stable code (the
// last segment of Type), the request's X-Request-Id, and for a 400 every
// bad field.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Code      string       `json:"code"`
	RequestID string       `json:"requestId,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// The gateway's own problem codes (the pots' are in actors/problems.go).
const (
	codeInvalidRequest   = actors.CodeInvalidRequest // 400, shared with the pots
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not-found"
	codeMethodNotAllowed = "method-not-allowed"
	// codeUnsupportedMediaType: a body that is not sent as
	// application/json (415).
	codeUnsupportedMediaType = "unsupported-media-type"
	// codeIdempotencyKeyRequired: a request that moves money or places or
	// cancels an order without an Idempotency-Key (428).
	codeIdempotencyKeyRequired = "idempotency-key-required"
	codeUnavailable            = actors.CodeUnavailable // 503, shared with the pots
	codeInternal               = "internal"
)

// problemKind is one row of the problem table.
type problemKind struct {
	status int
	title  string
}

// problemTable maps every problem code, the pots' (actors.ProblemCodes)
// and the gateway's, to its HTTP status and title. It is the only place a
// refusal becomes a status code: a business refusal is 422, an unknown pot
// or order 404, a reused idempotency key with another body 409, a
// malformed request 400, and anything that says "not now" 503 (with
// Retry-After).
var problemTable = map[string]problemKind{
	// The pots' refusals.
	actors.CodePotNotFound:         {http.StatusNotFound, "Pot not found"},
	actors.CodePotAlreadyOpen:      {http.StatusUnprocessableEntity, "Pot already open"},
	actors.CodeUnknownProfile:      {http.StatusUnprocessableEntity, "Unknown risk profile"},
	actors.CodeUnknownAsset:        {http.StatusUnprocessableEntity, "Unknown asset"},
	actors.CodeNoPrice:             {http.StatusUnprocessableEntity, "No price for the asset"},
	actors.CodeInsufficientFunds:   {http.StatusUnprocessableEntity, "Insufficient funds"},
	actors.CodeInsufficientUnits:   {http.StatusUnprocessableEntity, "Insufficient units"},
	actors.CodeAmountAboveValue:    {http.StatusUnprocessableEntity, "Amount above the pot's value"},
	actors.CodePotLimit:            {http.StatusUnprocessableEntity, "Above what a pot may hold"},
	actors.CodeOrderNotFound:       {http.StatusNotFound, "Order not found"},
	actors.CodeOrderCutOff:         {http.StatusUnprocessableEntity, "Order already cut off"},
	actors.CodeOrderNotCancellable: {http.StatusUnprocessableEntity, "Order cannot be cancelled"},
	actors.CodeIdempotencyConflict: {http.StatusConflict, "Idempotency key reused with another request"},
	actors.CodeSameAsset:           {http.StatusUnprocessableEntity, "Switch to the same asset"},
	actors.CodeSystemMismatch:      {http.StatusUnprocessableEntity, "Request does not match the pot"},
	actors.CodeInvalidRequest:      {http.StatusBadRequest, "Invalid request"},
	actors.CodeUnavailable:         {http.StatusServiceUnavailable, "Service unavailable"},
	// The operators' refusals (actors/prices.go).
	actors.CodePricesInvalid:   {http.StatusBadRequest, "Invalid prices"},
	actors.CodePricesConflict:  {http.StatusConflict, "Other prices are recorded for the date"},
	actors.CodePricesUsed:      {http.StatusUnprocessableEntity, "Prices already used by a cycle"},
	actors.CodeNoPrices:        {http.StatusConflict, "No prices for the date"},
	actors.CodeNotDealingDay:   {http.StatusUnprocessableEntity, "Not a dealing day"},
	actors.CodeOutsideWindow:   {http.StatusUnprocessableEntity, "Outside the dealing window"},
	actors.CodeEarlierDayOpen:  {http.StatusUnprocessableEntity, "An earlier dealing day is not complete"},
	actors.CodeAsOfUnavailable: {http.StatusUnprocessableEntity, "Reconciliation date not available"},
	// The gateway's own.
	codeUnauthorized:           {http.StatusUnauthorized, "Unauthorized"},
	codeForbidden:              {http.StatusForbidden, "Forbidden"},
	codeNotFound:               {http.StatusNotFound, "Not found"},
	codeMethodNotAllowed:       {http.StatusMethodNotAllowed, "Method not allowed"},
	codeUnsupportedMediaType:   {http.StatusUnsupportedMediaType, "Unsupported media type"},
	codeIdempotencyKeyRequired: {http.StatusPreconditionRequired, "Idempotency-Key required"},
	codeInternal:               {http.StatusInternalServerError, "Internal error"},
}

// retryAfterSeconds is the Retry-After of every 503: a pot that timed out
// is usually recovering (a failover, a journal hiccup) and answers within
// a second or two; clients add their own backoff.
const retryAfterSeconds = "1"

// newProblem is the problem of code with detail. An unknown code is a bug:
// it becomes an internal error, never a bare status.
func newProblem(code, detail string) *Problem {
	kind, ok := problemTable[code]
	if !ok {
		code, detail = codeInternal, ""
		kind = problemTable[codeInternal]
	}
	return &Problem{Type: ProblemTypeBase + code, Title: kind.title, Status: kind.status, Code: code, Detail: detail}
}

// fieldProblems are the problems a bad field can call for instead of a
// 400, in order of precedence: a body that is not JSON cannot be read at
// all; a request without its Idempotency-Key is not safe to retry, however
// its fields are fixed.
var fieldProblems = []string{codeUnsupportedMediaType, codeIdempotencyKeyRequired}

// invalid is the problem of a request with bad fields: the first of
// fieldProblems that one of them calls for, else the 400 naming each.
func invalid(fe fieldErrors) *Problem {
	for _, code := range fieldProblems {
		for _, e := range fe {
			if e.code == code {
				return newProblem(code, e.Message)
			}
		}
	}
	p := newProblem(codeInvalidRequest, "the request has invalid fields: see errors")
	if len(fe) == 1 {
		p.Detail = fe[0].Field + ": " + fe[0].Message
	}
	p.Errors = fe
	return p
}

// potDetail makes a pot's refusal detail fit for a client: the pot words
// it as a Go error ("domain: insufficient funds: buy of 20.00 with 0.00
// available"), whose "domain: <reason>: " prefix the problem's title
// already says, and whose package prefixes mean nothing to a client.
func potDetail(detail string) string {
	if rest, ok := strings.CutPrefix(detail, "domain: "); ok {
		if _, after, found := strings.Cut(rest, ": "); found {
			detail = after
		} else {
			detail = rest
		}
	}
	for _, prefix := range []string{"domain: ", "actors: "} {
		detail = strings.ReplaceAll(detail, prefix, "")
	}
	return detail
}
