package gateway

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
)

// Validation at the edge: what can be checked without the pot's state is
// checked here, so that a malformed request is a 400 that names each bad
// field and never reaches (or costs) a pot. The pot checks again (it is the
// authority); the two agree because both use domain's parsers.

// Limits of identifiers and headers.
const (
	// memberIDBytesMax bounds a member id (docs/decisions.md): scheme
	// member numbers are ~10 characters; 64 leaves room for any scheme's
	// prefix and keeps the journal stream name "pot/<id>" far below
	// persistence.StreamNameBytesMax (128).
	memberIDBytesMax = 64
	// orderIDBytesMax bounds an order id: a pot's ids are
	// "<member id>-<sequence>", at most 64 + 1 + 20 (a uint64) bytes.
	orderIDBytesMax = memberIDBytesMax + 1 + 20
	// idempotencyKeyBytesMax is docs/api.md's bound on Idempotency-Key (the
	// pot's is the same).
	idempotencyKeyBytesMax = 128
	// riskProfileBytesMax bounds a risk profile name (the catalogue's are
	// single words).
	riskProfileBytesMax = 64
	// requestIDBytesMax bounds an X-Request-Id taken from a client or proxy;
	// a longer one is replaced by the gateway's own.
	requestIDBytesMax = 128
	// ordersLimitMax is the largest page of GET …/orders (the pot's own
	// page bound, actors' ordersPageMax).
	ordersLimitMax = 200
	// statementLimitMax is the largest page of GET …/statement (actors'
	// statementPageMax).
	statementLimitMax = 1000
	// cursorBytesMax bounds a page cursor (a statement's nextAfter: the
	// history's position, base64url).
	cursorBytesMax = 64
)

// memberIDRule describes valid member ids, for error messages and tokens.
const memberIDRule = "1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'"

// idChar reports whether c may appear in a member or order id.
func idChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return false
		}
	}
	return true
}

// validMemberID reports whether s is a member id: ^[A-Za-z0-9_-]{1,64}$.
func validMemberID(s string) bool { return validID(s, memberIDBytesMax) }

// validOrderID reports whether s can be an order id.
func validOrderID(s string) bool { return validID(s, orderIDBytesMax) }

// validCursor reports whether s can be a page cursor the platform handed
// out: ^[A-Za-z0-9_-]{1,64}$ (the pot checks what it means).
func validCursor(s string) bool { return validID(s, cursorBytesMax) }

// printableASCII reports whether every byte of s is visible ASCII
// (0x21–0x7E: no spaces, no control characters).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FieldError names one bad part of a request: a body field by its JSON name
// ("amount"), a path or query parameter by its name ("memberId", "limit"), a
// header by its name ("Idempotency-Key"), or "body" for the body as a
// whole.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// code is the problem the error calls for when it is not a 400
	// invalid-request (415 for a body not declared JSON, 428 for a missing
	// Idempotency-Key); see invalid.
	code string
}

// fieldErrors collects the bad fields of one request.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// addProblem records an error that calls for the problem code, whose
// detail is the message.
func (fe *fieldErrors) addProblem(code, field, format string, args ...any) {
	*fe = append(*fe, FieldError{Field: field, Message: fmt.Sprintf(format, args...), code: code})
}

// idempotencyKey returns the request's Idempotency-Key, or a new random key
// made by the gateway when there is none: a client that sends no key gets
// no deduplication, so its blind retry is a new request (which is why the
// requests that move money need one: requiredIdempotencyKey).
func idempotencyKey(r *http.Request, fe *fieldErrors) string {
	values := r.Header.Values("Idempotency-Key")
	switch {
	case len(values) == 0:
		return "gw-" + rand.Text()
	case len(values) > 1:
		fe.add("Idempotency-Key", "must be given once")
		return ""
	}
	k := values[0]
	if k == "" || len(k) > idempotencyKeyBytesMax || !printableASCII(k) {
		fe.add("Idempotency-Key", "must be 1 to %d printable ASCII characters (0x21-0x7E)", idempotencyKeyBytesMax)
	}
	return k
}

// requiredIdempotencyKey is idempotencyKey for the requests that move money
// or place or cancel an order: without the header such a request is refused
// (428 idempotency-key-required), because a client's retry of it, after a
// timeout or a lost answer, could not be told from a second request and
// would pay or trade twice.
func requiredIdempotencyKey(r *http.Request, fe *fieldErrors) string {
	if len(r.Header.Values("Idempotency-Key")) == 0 {
		fe.addProblem(problem.IdempotencyKeyRequired, "Idempotency-Key",
			"this request moves money or places or cancels an order: send an Idempotency-Key header (1 to %d "+
				"printable ASCII characters, new for each request), so that a retry of it is answered, not done twice",
			idempotencyKeyBytesMax)
		return ""
	}
	return idempotencyKey(r, fe)
}

// checkAmount checks a cash amount: a JSON string like "100.00".
func checkAmount(fe *fieldErrors, field, s string) {
	if s == "" {
		fe.add(field, "is required")
		return
	}
	if _, err := domain.ParseAmount(s); err != nil {
		fe.add(field, "%s", valueMessage(err))
	}
}

// checkUnits checks a quantity of units of asset: at most the asset's unit
// places when the catalogue knows it, else at most domain.UnitDecimalsMax
// (the pot then refuses the unknown asset with a 422).
func checkUnits(fe *fieldErrors, cat *domain.Catalogue, field, s string, asset domain.ISIN) {
	places := domain.UnitDecimalsMax
	if a, ok := cat.Asset(asset); ok {
		places = a.UnitDecimals
	}
	if _, err := domain.ParseUnits(s, places); err != nil {
		fe.add(field, "%s", valueMessage(err))
	}
}

// checkPercent checks a percentage in (0, 100].
func checkPercent(fe *fieldErrors, field, s string) {
	if _, err := domain.ParsePercent(s); err != nil {
		fe.add(field, "%s", valueMessage(err))
	}
}

// checkISIN checks an ISIN and returns it ("" when bad or missing).
func checkISIN(fe *fieldErrors, field, s string) domain.ISIN {
	if s == "" {
		fe.add(field, "is required")
		return ""
	}
	isin, err := domain.ParseISIN(s)
	if err != nil {
		var ie *domain.ISINError
		if errors.As(err, &ie) {
			fe.add(field, "not a valid ISIN: %s", ie.Detail)
		} else {
			fe.add(field, "not a valid ISIN")
		}
		return ""
	}
	return isin
}

// checkRiskProfile checks the form of a profile name; whether the catalogue
// has it is the pot's decision (422 unknown-profile).
func checkRiskProfile(fe *fieldErrors, field, s string) {
	if len(s) > riskProfileBytesMax || !printableASCII(s) {
		fe.add(field, "must be at most %d printable ASCII characters", riskProfileBytesMax)
	}
}

// valueMessage turns a domain value error into a sentence for the client,
// without the package prefixes of Go error strings.
func valueMessage(err error) string {
	var ve *domain.ValueError
	if !errors.As(err, &ve) {
		return "not a valid value"
	}
	const example = `a decimal in a JSON string, such as "100.00"`
	switch {
	case errors.Is(ve.Err, domain.ErrMalformedNumber):
		if ve.Detail != "" {
			return "malformed number (" + ve.Detail + "): want " + example
		}
		return "malformed number: want " + example
	case errors.Is(ve.Err, domain.ErrTooManyDecimals):
		return "too many decimal places: " + ve.Detail
	case errors.Is(ve.Err, domain.ErrNotPositive):
		return "must be greater than zero"
	case errors.Is(ve.Err, domain.ErrOutOfRange):
		return "out of range: " + ve.Detail
	}
	return "not a valid value"
}

// checkDate parses an optional YYYY-MM-DD query parameter.
func checkDate(fe *fieldErrors, field, s string) (domain.Date, bool) {
	if s == "" {
		return domain.Date{}, false
	}
	d, err := domain.ParseDate(s)
	if err != nil {
		fe.add(field, "%s", dateMessage)
		return domain.Date{}, false
	}
	return d, true
}

// dateMessage says what a date must be (domain.ParseDate's rule).
const dateMessage = "must be a date YYYY-MM-DD, from 1900-01-01 to 2999-12-31"

// orderStatuses are the order statuses a list may be filtered by (docs/api.md).
var orderStatuses = []string{
	string(domain.OrderStatusAccepted), string(domain.OrderStatusCutOff), string(domain.OrderStatusExecuted),
	string(domain.OrderStatusSettled), string(domain.OrderStatusCancelled), string(domain.OrderStatusRejected),
}

// queryParams reads a request's query parameters, refusing unknown and
// repeated ones (a typo such as ?stauts= would otherwise silently list
// everything), and a query that does not parse: URL.Query drops a pair
// with a bad %-escape or a ';' without a word, which would read ?limit=5%
// as no limit.
func queryParams(r *http.Request, fe *fieldErrors, allowed ...string) map[string]string {
	out := map[string]string{}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		fe.add("query", "is not a valid query string: use & between parameters and %%-escape reserved characters")
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		values := q[name]
		switch {
		case !slices.Contains(allowed, name):
			if len(allowed) == 0 {
				fe.add(name, "unknown query parameter: this endpoint takes none")
			} else {
				fe.add(name, "unknown query parameter: want one of %s", strings.Join(allowed, ", "))
			}
		case len(values) > 1:
			fe.add(name, "must be given once")
		default:
			out[name] = values[0]
		}
	}
	return out
}
