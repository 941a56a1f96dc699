package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Reporter is told of every exchange that breaks the contract; testing.TB
// is one.
type Reporter interface {
	Errorf(format string, args ...any)
}

// ReporterFunc is a Reporter made of a function.
type ReporterFunc func(format string, args ...any)

// Errorf calls f.
func (f ReporterFunc) Errorf(format string, args ...any) { f(format, args...) }

type unsaidKey struct{}

// Unsaid marks a request a test sends on purpose although the gateway
// refuses it for a reason the document cannot state (a repeated JSON key,
// an ISIN's check digit, an unknown query parameter): the transport then
// does not report that the document accepts what the gateway refused.
func Unsaid(ctx context.Context, why string) context.Context {
	return context.WithValue(ctx, unsaidKey{}, why)
}

// router finds the document's operation of a request, whatever the
// server's address (the tests' servers listen on free ports).
var (
	routerOnce sync.Once
	router     routers.Router
	routerErr  error
)

func (s *Spec) router() (routers.Router, error) {
	routerOnce.Do(func() {
		doc := *s.Doc
		doc.Servers = openapi3.Servers{{URL: "/"}}
		router, routerErr = gorillamux.NewRouter(&doc)
	})
	return router, routerErr
}

// Transport returns an http.RoundTripper that sends each request through
// base and checks the exchange against the document, telling report of
// anything that breaks it:
//
//   - The answer must be one the operation declares: its status, its
//     headers, its content type and its body, with no undeclared field
//     (every object schema of the document is closed).
//   - A request the document refuses must be refused (4xx): a 2xx means
//     the gateway accepted what the contract forbids.
//   - A request the document accepts must not be refused as malformed
//     (400, 415, 428): the gateway enforces a rule the document does not
//     state, unless the request is marked Unsaid.
//   - A request to a path or method the document does not list must be
//     answered with a 404 or 405 problem.
//
// Bodies are read whole (both ways), so Transport is for tests' clients
// of the JSON API. It is safe for concurrent use if base is.
func (s *Spec) Transport(base http.RoundTripper, report Reporter) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{spec: s, base: base, report: report}
}

type transport struct {
	spec   *Spec
	base   http.RoundTripper
	report Reporter
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	out := withBody(req, body)
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if msg := t.spec.check(withBody(req, body), resp, respBody); msg != "" {
		t.report.Errorf("%s %s → %d: breaks %s: %s", req.Method, req.URL.RequestURI(), resp.StatusCode, DocumentPath, msg)
	}
	return resp, nil
}

// withBody is a copy of req whose body reads body (none if nil).
func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	if body == nil {
		r.Body, r.GetBody, r.ContentLength = http.NoBody, nil, 0
		return r
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	return r
}

// check checks one exchange: req (whose body, if any, is unread), its
// answer and the answer's body. It returns what breaks the contract, or "".
func (s *Spec) check(req *http.Request, resp *http.Response, respBody []byte) string {
	rt, err := s.router()
	if err != nil {
		return "no router: " + err.Error()
	}
	ctx := context.Background()
	route, params, err := rt.FindRoute(req)
	if err != nil {
		return s.checkUnlisted(err, resp, respBody)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		ExcludeResponseBody:   req.Method == http.MethodHead,
	}
	opts.WithCustomSchemaErrorFunc(schemaMessage)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	var problems []string
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, "the answer: "+message(err))
	}
	switch status := resp.StatusCode; {
	case reqErr != nil && status < 300:
		problems = append(problems, "the document refuses the request ("+message(reqErr)+"), but the gateway accepted it")
	case reqErr == nil && (status == http.StatusBadRequest || status == http.StatusUnsupportedMediaType ||
		status == http.StatusPreconditionRequired) && req.Context().Value(unsaidKey{}) == nil:
		problems = append(problems, "the document accepts the request, but the gateway refused it: "+
			truncate(string(bytes.TrimSpace(respBody)), 400))
	}
	return strings.Join(problems, "; ")
}

// checkUnlisted checks the answer to a request whose path or method the
// document does not list: a 404 or 405 problem.
func (s *Spec) checkUnlisted(routeErr error, resp *http.Response, respBody []byte) string {
	want := http.StatusNotFound
	if errors.Is(routeErr, routers.ErrMethodNotAllowed) {
		want = http.StatusMethodNotAllowed
	}
	if resp.StatusCode != want {
		return fmt.Sprintf("the document does not list the request (%v), and the answer is not a %d", routeErr, want)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/problem+json" {
		return fmt.Sprintf("the answer to a request the document does not list is %q, not a problem", resp.Header.Get("Content-Type"))
	}
	if want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
		return "a 405 without Allow"
	}
	var v any
	if err := json.Unmarshal(respBody, &v); err != nil {
		return "the problem is not JSON: " + err.Error()
	}
	if err := s.Doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.VisitAsResponse(),
		openapi3.SetSchemaErrorMessageCustomizer(schemaMessage)); err != nil {
		return "the problem: " + message(err)
	}
	return ""
}

// schemaMessage words a schema error: where, why, and the value (bounded).
func schemaMessage(err *openapi3.SchemaError) string {
	value, _ := json.Marshal(err.Value)
	return fmt.Sprintf("at /%s: %s (value %s)", strings.Join(err.JSONPointer(), "/"), err.Reason, truncate(string(value), 200))
}

// message is an error on one line, bounded.
func message(err error) string {
	return truncate(strings.Join(strings.Fields(err.Error()), " "), 1200)
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
