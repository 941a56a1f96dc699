package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// funcPots is a Pots made of a function: for the plumbing tests below,
// which need a pot that blocks, panics or breaks its contract (the API
// tests use real pots).
type funcPots func(ctx context.Context, member string, req *pb.PotRequest) (*pb.PotResponse, error)

func (f funcPots) Handle(ctx context.Context, member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	return f(ctx, member, req)
}

func newFuncServer(t *testing.T, pots funcPots, inFlightMax int) (*Server, string) {
	t.Helper()
	logger, _ := testkit.Logger(t)
	s, err := New(Config{Pots: pots, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, InFlightMax: inFlightMax, RequestTimeout: time.Second,
		Logger: logger})
	require.NoError(t, err)
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	return s, tok
}

func serve(s *Server, method, path, token string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// TestInFlightLimit: past InFlightMax a request is a 503 at once, and the
// health endpoints still answer.
func TestInFlightLimit(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s, tok := newFuncServer(t, func(ctx context.Context, _ string, _ *pb.PotRequest) (*pb.PotResponse, error) {
		once.Do(func() {
			close(entered)
			<-release
		})
		return &pb.PotResponse{Result: &pb.PotResponse_Pot{Pot: &pb.PotView{MemberId: "M1"}}}, nil
	}, 1)
	done := make(chan int)
	go func() { done <- serve(s, "GET", "/v1/pots/M1", tok).Code }()
	<-entered
	rec := serve(s, "GET", "/v1/pots/M2", tok)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "second request past the limit: status")
	assert.NotEmpty(t, rec.Header().Get("Retry-After"), "second request past the limit: Retry-After")
	rec = serve(s, "GET", "/healthz", "")
	assert.Equal(t, http.StatusOK, rec.Code, "healthz at the limit: status")
	close(release)
	assert.Equal(t, http.StatusOK, <-done, "first request: status")
	rec = serve(s, "GET", "/v1/pots/M2", tok)
	assert.Equal(t, http.StatusOK, rec.Code, "after the first ended: status; body %s", rec.Body)
}

// TestBrokenPot: a pot that panics, answers nothing, answers the wrong kind
// of result or an unknown problem code is a generic 500 problem with
// nothing of the cause in it; the request id is the client's.
func TestBrokenPot(t *testing.T) {
	cases := map[string]funcPots{
		"panic": func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
			panic("secret invariant broken")
		},
		"nil answer": func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) { return nil, nil },
		"wrong result": func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
			return &pb.PotResponse{Result: &pb.PotResponse_Ack{Ack: &pb.Ack{}}}, nil
		},
		"unknown code": func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
			return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: "secret-code", Detail: "secret"}}}, nil
		},
		// A call that panicked on its way (cluster.Call recovers it): a bug,
		// not a pot that is away (503).
		"call panicked": func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
			return nil, &recovered.Panic{Where: "cluster-call", Value: "secret invariant broken"}
		},
	}
	for name, pots := range cases {
		s, tok := newFuncServer(t, pots, 0)
		rec := serve(s, "GET", "/v1/pots/M1", tok, "X-Request-Id", "req-42")
		var p Problem
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "%s: decode %s", name, rec.Body)
		assert.Equal(t, http.StatusInternalServerError, rec.Code, "%s: status", name)
		assert.Equal(t, "internal", p.Code, "%s: problem code", name)
		assert.Equal(t, "req-42", p.RequestID, "%s: problem requestId", name)
		assert.Equal(t, "req-42", rec.Header().Get("X-Request-Id"), "%s: X-Request-Id", name)
		assert.NotContains(t, rec.Body.String(), "secret", "%s: body", name)
	}
}

// TestWrongResultOnEveryPotRoute: every member endpoint that calls a pot
// answers a reply of the wrong kind (an Ack) with a 500 problem, not an
// empty or partial view.
func TestWrongResultOnEveryPotRoute(t *testing.T) {
	s, tok := newFuncServer(t, func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
		return &pb.PotResponse{Result: &pb.PotResponse_Ack{Ack: &pb.Ack{}}}, nil
	}, 0)
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/pots", `{"memberId":"M000001"}`},
		{"GET", "/v1/pots/M000001", ""},
		{"POST", "/v1/pots/M000001/contributions", `{"amount":"10.00"}`},
		{"POST", "/v1/pots/M000001/withdrawals", `{"amount":"10.00"}`},
		{"POST", "/v1/pots/M000001/orders", `{"type":"buy","asset":"GB00BD8R3K42","amount":"5.00"}`},
		{"GET", "/v1/pots/M000001/orders", ""},
		{"GET", "/v1/pots/M000001/orders/M000001-1", ""},
		{"DELETE", "/v1/pots/M000001/orders/M000001-1", ""},
		{"PUT", "/v1/pots/M000001/risk-profile", `{"riskProfile":""}`},
		{"GET", "/v1/pots/M000001/statement", ""},
	}
	for _, rt := range routes {
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Idempotency-Key", "k-1")
		if rt.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		var p Problem
		assert.Equal(t, http.StatusInternalServerError, rec.Code, "%s %s: status; body %s", rt.method, rt.path, rec.Body)
		assert.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "%s %s: decode %s", rt.method, rt.path, rec.Body)
		assert.Equal(t, "internal", p.Code, "%s %s: problem code", rt.method, rt.path)
	}
}

// TestTimeoutFromContext: a pot that never answers is cut off at
// RequestTimeout with a 503, and the pot's context is cancelled.
func TestTimeoutFromContext(t *testing.T) {
	cancelled := make(chan struct{})
	s, tok := newFuncServer(t, func(ctx context.Context, _ string, _ *pb.PotRequest) (*pb.PotResponse, error) {
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}, 0)
	start := time.Now()
	rec := serve(s, "POST", "/v1/pots/M1/contributions", tok, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusBadRequest, rec.Code, "contribution without a body: status")
	rec = serve(s, "GET", "/v1/pots/M1", tok)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "hung pot: status; body %s", rec.Body)
	require.Equal(t, "1", rec.Header().Get("Retry-After"), "hung pot: Retry-After")
	d := time.Since(start)
	require.GreaterOrEqual(t, d, time.Second, "time to answer, want RequestTimeout (1 s)")
	require.LessOrEqual(t, d, 3*time.Second, "time to answer, want RequestTimeout (1 s)")
	<-cancelled
}

// TestUncanonicalPaths: a path ServeMux would redirect to its cleaned form
// (307, text/html) is a 404 problem instead, for every method; canonical
// paths reach the mux as before.
func TestUncanonicalPaths(t *testing.T) {
	s := newTestServer(t)
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	for _, p := range []string{
		"/v1/pots/M1/../../v1/assets", "//v1/assets", "/v1//assets", "/v1/assets//", "/./v1/assets", "/v1/./assets",
		"/v1/assets/.", "/v1/assets/..", "/v1/pots/M1/orders/..", "//", "/..", "/v1/pots/M1/../M2",
	} {
		for _, method := range []string{"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "CONNECT"} {
			req := httptest.NewRequest(method, "http://gateway"+p, nil)
			req.URL.Path, req.URL.RawPath = p, "" // as the request line gave it
			req.Header.Set("Authorization", "Bearer "+tok)
			if method == "GET" {
				// The case is real: the mux alone redirects it.
				rec := httptest.NewRecorder()
				s.mux.ServeHTTP(rec, req)
				assert.Equal(t, http.StatusTemporaryRedirect, rec.Code, "GET %s: the mux alone: status", p)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			ok := assert.Equal(t, http.StatusNotFound, rec.Code, "%s %s: status", method, p)
			ok = assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), "%s %s: Content-Type", method, p) && ok
			ok = assert.Empty(t, rec.Header().Get("Location"), "%s %s: Location", method, p) && ok
			if !ok || method == "HEAD" {
				continue
			}
			var prob Problem
			if method != "HEAD" && assert.NoError(t, json.Unmarshal(rec.Body.Bytes(), &prob), "%s %s: decode %q", method, p, rec.Body) {
				assert.Equal(t, problem.NotFound, prob.Code, "%s %s: problem code", method, p)
			}
		}
	}
	for p, want := range map[string]int{
		"/v1/assets":          http.StatusOK,
		"/v1/assets/":         http.StatusNotFound, // no route, no redirect
		"/v1/pots/M1%2F..":    http.StatusBadRequest,
		"/v1/pots/M1/.x":      http.StatusNotFound,
		"/v1/pots/M1/x..y":    http.StatusNotFound,
		"/v1/pots/..M1":       http.StatusBadRequest, // a (malformed) member id
		"/healthz":            http.StatusOK,
		"/v1/reconciliations": http.StatusMethodNotAllowed,
	} {
		rec := serve(s, "GET", p, tok)
		assert.Equal(t, want, rec.Code, "GET %s: status", p)
		assert.Empty(t, rec.Header().Get("Location"), "GET %s: Location", p)
	}
}

// lockedBuffer collects log lines from concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestHandlerPanic: a handler that panics answers a 500 problem carrying
// the request id and nothing of the panic; the panic is logged once, with
// its stack, and counted in mastertrust_panics_total{where="gateway"},
// which /metrics serves.
func TestHandlerPanic(t *testing.T) {
	var logs lockedBuffer
	s, err := New(Config{Pots: funcPots(func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
		panic("secret invariant broken")
	}), Cluster: nopCluster{}, Ready: func(context.Context) error { return nil }, Catalogue: domain.DefaultCatalogue(),
		TokenSecret: testSecret, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	before := recovered.Count("gateway")
	rec := serve(s, "GET", "/v1/pots/M1", tok)
	var p Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "decode %s", rec.Body)
	id := rec.Header().Get("X-Request-Id")
	assert.Equal(t, http.StatusInternalServerError, rec.Code, "status")
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), "Content-Type")
	assert.Equal(t, http.StatusInternalServerError, p.Status, "problem status")
	assert.Equal(t, "internal", p.Code, "problem code")
	assert.NotEmpty(t, id, "X-Request-Id")
	assert.Equal(t, id, p.RequestID, "problem requestId")
	assert.NotContains(t, rec.Body.String(), "secret", "body")
	assert.EqualValues(t, 1, recovered.Count("gateway")-before, "panics counted")
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "stack="), "stacks logged:\n%s", out)
	assert.Contains(t, out, "request_id="+id, "the panic's log")
	assert.Contains(t, out, "secret invariant broken", "the panic's log")
	metrics := serve(s, "GET", "/metrics", "").Body.String()
	assert.Contains(t, metrics, `mastertrust_panics_total{where="gateway"}`, "/metrics: the panic")
	assert.Contains(t, metrics, `mastertrust_http_requests_total{code="500",route="GET /v1/pots/{memberId}"} 1`, "/metrics: the 500")
}

// TestPanicAfterTheAnswerStarted: a handler that panics once part of its
// answer is out cannot answer a problem any more; the connection is
// aborted, so that the client does not take the part for a whole 200.
func TestPanicAfterTheAnswerStarted(t *testing.T) {
	s, _ := newFuncServer(t, nil, 0)
	h := s.instrument(route{method: "GET", pattern: "/partial", access: accessPublic,
		handle: func(w http.ResponseWriter, r *http.Request, _ Claims) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"half":`))
			assert.NoError(t, http.NewResponseController(w).Flush(), "flush")
			panic("after the headers")
		}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	before := recovered.Count("gateway")
	resp, err := http.Get(srv.URL + "/partial")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("read a whole answer (%d) from a handler that panicked in the middle of it", resp.StatusCode)
	}
	assert.EqualValues(t, 1, recovered.Count("gateway")-before, "panics counted")
}

// TestReadinessCheckPanic: a readiness check that panics (it runs on a
// goroutine of its own, where nothing else would recover it) makes the
// gateway not ready, and is counted; the process goes on.
func TestReadinessCheckPanic(t *testing.T) {
	logger, _ := testkit.Logger(t)
	s, err := New(Config{Pots: funcPots(nil), Cluster: nopCluster{}, Ready: func(context.Context) error { panic("test: the check panics") },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Logger: logger})
	require.NoError(t, err)
	before := recovered.Count("readiness-check")
	rec := serve(s, "GET", "/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "readyz with a panicking check: status; body %s", rec.Body)
	assert.EqualValues(t, 1, recovered.Count("readiness-check")-before, "panics counted")
}

// TestMalformedQueryIsRefused: a query the gateway cannot parse (a bad
// %-escape, a ';') is a 400 naming "query", like an unknown parameter, not
// read as if the malformed part were absent (?limit=5% listed a default
// page; ?%zz passed an endpoint that takes no parameters).
func TestMalformedQueryIsRefused(t *testing.T) {
	s, tok := newFuncServer(t, func(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
		return &pb.PotResponse{Result: &pb.PotResponse_Orders{Orders: &pb.OrderList{}}}, nil
	}, 0)
	for _, path := range []string{"/v1/pots/M1/orders?limit=5%", "/v1/pots/M1/orders?status=accepted;limit=5", "/v1/assets?%zz",
		"/v1/pots/M1/statement?from=2026-01-01&%gg=1"} {
		rec := serve(s, "GET", path, tok)
		var p Problem
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "GET %s: decode %s", path, rec.Body)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "GET %s: status", path)
		if assert.NotEmpty(t, p.Errors, "GET %s: problem errors", path) {
			assert.Equal(t, "query", p.Errors[0].Field, "GET %s: first error's field", path)
		}
	}
	rec := serve(s, "GET", "/v1/pots/M1/orders?limit=5&status=accepted", tok)
	assert.Equal(t, http.StatusOK, rec.Code, "a well-formed query: status; body %s", rec.Body)
}

// TestMovingPotIsCalledAgain: a call whose pot was moving (no member could
// take it, or the activation answered "unavailable" while stopping) is sent
// again, with the same request, within the request's deadline, and the
// member sees the answer, not a 503; a call the pot's node shed to protect
// itself is not sent again; a pot that stays away is a 503 once the
// deadline leaves no room for another try.
func TestMovingPotIsCalledAgain(t *testing.T) {
	stopping := &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: problem.Unavailable, Detail: "stopping"}}}
	shed := &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: problem.Unavailable, Detail: "at its limit", Shed: true}}}
	view := &pb.PotResponse{Result: &pb.PotResponse_Pot{Pot: &pb.PotView{MemberId: "M1"}}}
	cases := []struct {
		name    string
		answers []func() (*pb.PotResponse, error) // the last one repeats
		status  int
		calls   func(n int) bool
	}{
		{"owner left", []func() (*pb.PotResponse, error){
			func() (*pb.PotResponse, error) { return nil, cluster.ErrUnavailable },
			func() (*pb.PotResponse, error) { return nil, cluster.ErrUnavailable },
			func() (*pb.PotResponse, error) { return view, nil },
		}, http.StatusOK, func(n int) bool { return n == 3 }},
		{"activation stopping", []func() (*pb.PotResponse, error){
			func() (*pb.PotResponse, error) { return stopping, nil },
			func() (*pb.PotResponse, error) { return view, nil },
		}, http.StatusOK, func(n int) bool { return n == 2 }},
		{"shed", []func() (*pb.PotResponse, error){
			func() (*pb.PotResponse, error) { return shed, nil },
			func() (*pb.PotResponse, error) { return view, nil },
		}, http.StatusServiceUnavailable, func(n int) bool { return n == 1 }},
		{"away for good", []func() (*pb.PotResponse, error){
			func() (*pb.PotResponse, error) { return nil, cluster.ErrUnavailable },
		}, http.StatusServiceUnavailable, func(n int) bool { return n > 3 }},
	}
	for _, c := range cases {
		var calls atomic.Int64
		var requests []*pb.PotRequest
		var mu sync.Mutex
		s, tok := newFuncServer(t, func(_ context.Context, _ string, req *pb.PotRequest) (*pb.PotResponse, error) {
			mu.Lock()
			requests = append(requests, req)
			mu.Unlock()
			n := int(calls.Add(1))
			return c.answers[min(n, len(c.answers))-1]()
		}, 0)
		start := time.Now()
		rec := serve(s, "GET", "/v1/pots/M1", tok)
		took := time.Since(start)
		assert.Equal(t, c.status, rec.Code, "%s: status; body %s", c.name, rec.Body)
		assert.True(t, c.calls(int(calls.Load())), "%s: %d calls", c.name, calls.Load())
		assert.Less(t, took, 1500*time.Millisecond, "%s: within the request's deadline (1 s)", c.name)
		for _, req := range requests {
			assert.Same(t, requests[0], req, "%s: the same request each time", c.name)
		}
	}
}
