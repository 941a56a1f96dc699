package gateway

import (
	"net/http"
	"testing"

	"github.com/acme/mastertrust/actors"
)

// TestProblemTableCoversThePots: every code a pot can answer with has a
// row, with the status docs/api.md gives its kind of refusal.
func TestProblemTableCoversThePots(t *testing.T) {
	want := map[string]int{
		actors.CodePotNotFound:         http.StatusNotFound,
		actors.CodeOrderNotFound:       http.StatusNotFound,
		actors.CodeIdempotencyConflict: http.StatusConflict,
		actors.CodeInvalidRequest:      http.StatusBadRequest,
		actors.CodeUnavailable:         http.StatusServiceUnavailable,
	}
	for _, code := range actors.ProblemCodes() {
		kind, ok := problemTable[code]
		if !ok {
			t.Errorf("pot problem code %q is not in the problem table", code)
			continue
		}
		status, special := want[code]
		if !special {
			status = http.StatusUnprocessableEntity // a business refusal
		}
		if kind.status != status || kind.title == "" {
			t.Errorf("code %q: status %d title %q, want status %d and a title", code, kind.status, kind.title, status)
		}
		p := newProblem(code, "x")
		if p.Type != ProblemTypeBase+code || p.Code != code || p.Status != status {
			t.Errorf("newProblem(%q) = %+v", code, p)
		}
	}
	// The operators' codes, with their own statuses. operation-failed is
	// answered as the gateway's own 503 (writeOperationError), never by
	// its code.
	opStatus := map[string]int{
		actors.CodePricesInvalid:   http.StatusBadRequest,
		actors.CodePricesConflict:  http.StatusConflict,
		actors.CodePricesUsed:      http.StatusUnprocessableEntity,
		actors.CodeNoPrices:        http.StatusConflict,
		actors.CodeNotFound:        http.StatusNotFound,
		actors.CodeNotDealingDay:   http.StatusUnprocessableEntity,
		actors.CodeOutsideWindow:   http.StatusUnprocessableEntity,
		actors.CodeEarlierDayOpen:  http.StatusUnprocessableEntity,
		actors.CodeAsOfUnavailable: http.StatusUnprocessableEntity,
	}
	for _, code := range actors.OperationCodes() {
		if code == actors.CodeOperationFailed {
			continue
		}
		kind, ok := problemTable[code]
		if !ok || kind.status != opStatus[code] || kind.title == "" {
			t.Errorf("operation code %q maps to %+v (in the table: %v), want status %d", code, kind, ok, opStatus[code])
		}
	}
	if len(actors.OperationCodes()) != len(opStatus)+1 {
		t.Errorf("operation codes %v: want the %d of this test and %s", actors.OperationCodes(), len(opStatus), actors.CodeOperationFailed)
	}
	if p := newProblem("no-such-code", "secret detail"); p.Status != http.StatusInternalServerError || p.Detail != "" {
		t.Errorf("unknown code: %+v, want a bare 500", p)
	}
}

// TestPotDetail: the pot's Go error wording loses its package prefix.
func TestPotDetail(t *testing.T) {
	for in, want := range map[string]string{
		"domain: insufficient funds: buy of 20.00 with 0.00 available": "buy of 20.00 with 0.00 available",
		"domain: pot not found":                         "pot not found",
		"the pot could not complete the request":        "the pot could not complete the request",
		`cash "1.000": domain: too many decimal places`: `cash "1.000": too many decimal places`,
		"actors: bad request: order type 0":             "bad request: order type 0",
	} {
		if got := potDetail(in); got != want {
			t.Errorf("potDetail(%q) = %q, want %q", in, got, want)
		}
	}
}
