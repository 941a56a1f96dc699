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
	"testing"
	"time"

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
	if err != nil {
		t.Fatal(err)
	}
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
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
	if rec := serve(s, "GET", "/v1/pots/M2", tok); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second request past the limit: %d %v", rec.Code, rec.Header())
	}
	if rec := serve(s, "GET", "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("healthz at the limit: %d", rec.Code)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("first request: %d", code)
	}
	if rec := serve(s, "GET", "/v1/pots/M2", tok); rec.Code != http.StatusOK {
		t.Errorf("after the first ended: %d %s", rec.Code, rec.Body)
	}
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
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s: %v: %s", name, err, rec.Body)
		}
		if rec.Code != http.StatusInternalServerError || p.Code != "internal" || p.RequestID != "req-42" ||
			strings.Contains(rec.Body.String(), "secret") || rec.Header().Get("X-Request-Id") != "req-42" {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
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
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusInternalServerError || p.Code != "internal" {
			t.Errorf("%s %s: %d %s, want a 500 internal problem", rt.method, rt.path, rec.Code, rec.Body)
		}
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
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("no body: %d", rec.Code)
	}
	rec = serve(s, "GET", "/v1/pots/M1", tok)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("hung pot: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Fatalf("answered after %s, want RequestTimeout (1 s)", d)
	}
	<-cancelled
}

// TestUncanonicalPaths: a path ServeMux would redirect to its cleaned form
// (307, text/html) is a 404 problem instead, for every method; canonical
// paths reach the mux as before.
func TestUncanonicalPaths(t *testing.T) {
	s := newTestServer(t)
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
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
				if rec.Code != http.StatusTemporaryRedirect {
					t.Errorf("GET %s: the mux alone answers %d, want its 307", p, rec.Code)
				}
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" ||
				rec.Header().Get("Location") != "" {
				t.Errorf("%s %s: %d %v, want a 404 problem", method, p, rec.Code, rec.Header())
				continue
			}
			var prob Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &prob); err != nil && method != "HEAD" {
				t.Errorf("%s %s: %v in %q", method, p, err, rec.Body)
			} else if method != "HEAD" && prob.Code != problem.NotFound {
				t.Errorf("%s %s: problem %+v", method, p, prob)
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
		if rec.Code != want || rec.Header().Get("Location") != "" {
			t.Errorf("GET %s: %d %v, want %d", p, rec.Code, rec.Header(), want)
		}
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
	if err != nil {
		t.Fatal(err)
	}
	tok, err := SignToken(testSecret, Claims{Role: RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	before := recovered.Count("gateway")
	rec := serve(s, "GET", "/v1/pots/M1", tok)
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	id := rec.Header().Get("X-Request-Id")
	if rec.Code != http.StatusInternalServerError || p.Status != http.StatusInternalServerError || p.Code != "internal" ||
		id == "" || p.RequestID != id || rec.Header().Get("Content-Type") != "application/problem+json" ||
		strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("answered %d %v %s, want a 500 internal problem with the request id and no detail", rec.Code, rec.Header(), rec.Body)
	}
	if got := recovered.Count("gateway") - before; got != 1 {
		t.Errorf("counted %v panics, want 1", got)
	}
	out := logs.String()
	if n := strings.Count(out, "stack="); n != 1 || !strings.Contains(out, "request_id="+id) || !strings.Contains(out, "secret invariant broken") {
		t.Errorf("logged %d stacks (want 1, with the request id and the panic):\n%s", n, out)
	}
	metrics := serve(s, "GET", "/metrics", "")
	if !strings.Contains(metrics.Body.String(), `mastertrust_panics_total{where="gateway"}`) ||
		!strings.Contains(metrics.Body.String(), `mastertrust_http_requests_total{code="500",route="GET /v1/pots/{memberId}"} 1`) {
		t.Errorf("/metrics lacks the panic or the 500:\n%s", metrics.Body)
	}
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
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
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
	if got := recovered.Count("gateway") - before; got != 1 {
		t.Errorf("counted %v panics, want 1", got)
	}
}

// TestReadinessCheckPanic: a readiness check that panics (it runs on a
// goroutine of its own, where nothing else would recover it) makes the
// gateway not ready, and is counted; the process goes on.
func TestReadinessCheckPanic(t *testing.T) {
	logger, _ := testkit.Logger(t)
	s, err := New(Config{Pots: funcPots(nil), Cluster: nopCluster{}, Ready: func(context.Context) error { panic("test: the check panics") },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	before := recovered.Count("readiness-check")
	if rec := serve(s, "GET", "/readyz", ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a panicking check: %d %s", rec.Code, rec.Body)
	}
	if got := recovered.Count("readiness-check") - before; got != 1 {
		t.Errorf("counted %v panics, want 1", got)
	}
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
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s: %v: %s", path, err, rec.Body)
		}
		if rec.Code != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != "query" {
			t.Errorf("GET %s: %d %s, want a 400 naming the query", path, rec.Code, rec.Body)
		}
	}
	if rec := serve(s, "GET", "/v1/pots/M1/orders?limit=5&status=accepted", tok); rec.Code != http.StatusOK {
		t.Errorf("a well-formed query: %d %s", rec.Code, rec.Body)
	}
}
