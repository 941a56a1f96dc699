package gateway

import (
	"strings"

	"github.com/acme/mastertrust/internal/problem"
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

// retryAfterSeconds is the Retry-After of every 503: a pot that timed out
// is usually recovering (a failover, a journal hiccup) and answers within
// a second or two; clients add their own backoff.
const retryAfterSeconds = "1"

// newProblem is the problem of code with detail: the status and title of
// its row of internal/problem's table, the only place a refusal becomes a
// status. A code that is unknown, or not one answered over HTTP, is a bug:
// it becomes an internal error, never a bare status.
func newProblem(code, detail string) *Problem {
	t, ok := problem.HTTP(code)
	if !ok {
		t, _ = problem.HTTP(problem.Internal)
		detail = ""
	}
	return &Problem{Type: ProblemTypeBase + t.Code, Title: t.Title, Status: t.Status, Code: t.Code, Detail: detail}
}

// fieldProblems are the problems a bad field can call for instead of a
// 400, in order of precedence: a body that is not JSON cannot be read at
// all; a request without its Idempotency-Key is not safe to retry, however
// its fields are fixed.
var fieldProblems = []string{problem.UnsupportedMediaType, problem.IdempotencyKeyRequired}

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
	p := newProblem(problem.InvalidRequest, "the request has invalid fields: see errors")
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
