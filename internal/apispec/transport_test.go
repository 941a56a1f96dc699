package apispec_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/apispec"
)

// reports collects what a Transport reports.
type reports struct {
	mu  sync.Mutex
	got []string
}

func (r *reports) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf(format, args...))
}

func (r *reports) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

const (
	problem404 = `{"type":"https://mastertrust.acme.example/problems/not-found","title":"Not found","status":404,"code":"not-found","requestId":"r1"}`
	problem400 = `{"type":"https://mastertrust.acme.example/problems/invalid-request","title":"Invalid request","status":400,"code":"invalid-request","requestId":"r1","errors":[{"field":"amount","message":"bad"}]}`
	status200  = `{"status":"ok"}`
)

// TestTransport: the validating transport reports each way an exchange can
// break the contract, and nothing for one that keeps it. The server is a
// stub answering what each case says, so that the checks, not the
// gateway, are under test.
func TestTransport(t *testing.T) {
	spec, err := apispec.Load()
	require.NoError(t, err)
	type answer struct {
		status      int
		contentType string
		body        string
		header      []string
	}
	var (
		mu   sync.Mutex
		next answer
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		a := next
		mu.Unlock()
		for i := 0; i+1 < len(a.header); i += 2 {
			w.Header().Set(a.header[i], a.header[i+1])
		}
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	var rep reports
	client := &http.Client{Transport: spec.Transport(srv.Client().Transport, &rep),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	cases := []struct {
		name         string
		method, path string
		body         string
		header       []string
		unsaid       bool
		answer       answer
		want         string // in the report; "" for none
	}{
		{"a kept contract", "GET", "/healthz", "", nil, false,
			answer{200, "application/json", status200, nil}, ""},
		{"an undeclared field", "GET", "/healthz", "", nil, false,
			answer{200, "application/json", `{"status":"ok","uptime":3}`, nil}, "uptime"},
		{"a value outside its enum", "GET", "/healthz", "", nil, false,
			answer{200, "application/json", `{"status":"fine"}`, nil}, "the answer"},
		{"an undeclared status", "GET", "/healthz", "", nil, false,
			answer{418, "application/json", status200, nil}, "418"},
		{"an undeclared content type", "GET", "/healthz", "", nil, false,
			answer{200, "text/html", "<p>ok</p>", nil}, "the answer"},
		{"a 503 without Retry-After", "GET", "/readyz", "", nil, false,
			answer{503, "application/problem+json", `{"type":"https://mastertrust.acme.example/problems/unavailable","title":"Service unavailable","status":503,"code":"unavailable","requestId":"r1"}`, nil},
			"Retry-After"},
		{"a problem with the wrong code for its status", "GET", "/v1/assets", "", []string{"Authorization", "Bearer x"}, false,
			answer{401, "application/problem+json", strings.Replace(problem404, `"status":404`, `"status":401`, 1),
				[]string{"WWW-Authenticate", `Bearer realm="mastertrust"`}}, "the answer"},
		{"a forbidden request accepted", "POST", "/v1/pots/M1/contributions", `{"amount":"1.001"}`,
			[]string{"Content-Type", "application/json", "Idempotency-Key", "k1"}, false,
			answer{202, "application/json", `{}`, nil}, "the gateway accepted it"},
		{"an allowed request refused", "POST", "/v1/pots/M1/contributions", `{"amount":"1.00"}`,
			[]string{"Content-Type", "application/json", "Idempotency-Key", "k1"}, false,
			answer{400, "application/problem+json", problem400, nil}, "the gateway refused it"},
		{"an allowed request refused for an unsaid reason", "POST", "/v1/pots/M1/contributions", `{"amount":"1.00"}`,
			[]string{"Content-Type", "application/json", "Idempotency-Key", "k1"}, true,
			answer{400, "application/problem+json", problem400, nil}, ""},
		{"a forbidden request refused", "POST", "/v1/pots/M1/contributions", `{"amount":"1.00"}`,
			[]string{"Content-Type", "application/json"}, false,
			answer{428, "application/problem+json", strings.NewReplacer(`"status":404`, `"status":428`, "not-found", "idempotency-key-required").Replace(problem404), nil}, ""},
		{"an unlisted path answered with a problem", "GET", "/v1//assets", "", nil, false,
			answer{404, "application/problem+json", problem404, nil}, ""},
		{"an unlisted path redirected", "GET", "/v1/pots/M1/../../v1/assets", "", nil, false,
			answer{307, "text/html; charset=utf-8", `<a href="/v1/assets">Temporary Redirect</a>.`, []string{"Location", "/v1/assets"}}, "not a 404"},
		{"an unlisted method without Allow", "PATCH", "/v1/assets", "", nil, false,
			answer{405, "application/problem+json", strings.NewReplacer(`"status":404`, `"status":405`, "not-found", "method-not-allowed").Replace(problem404), nil}, "Allow"},
	}
	for _, c := range cases {
		mu.Lock()
		next = c.answer
		mu.Unlock()
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		ctx := context.Background()
		if c.unsaid {
			ctx = apispec.Unsaid(ctx, "the test says so")
		}
		req, err := http.NewRequestWithContext(ctx, c.method, srv.URL+c.path, body)
		require.NoError(t, err)
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Set(c.header[i], c.header[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err, "%s", c.name)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, c.answer.body, string(got), "%s: what the client read", c.name)
		reported := rep.take()
		if c.want == "" {
			assert.Empty(t, reported, "%s: reports", c.name)
		} else if assert.Len(t, reported, 1, "%s: reports", c.name) {
			assert.Contains(t, reported[0], c.want, "%s: the report", c.name)
			assert.Contains(t, reported[0], c.method+" ", "%s: the report names the request", c.name)
		}
	}
}
