package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/testkit"
)

// fixedCluster reports the same members every time.
type fixedCluster []cluster.MemberInfo

func (f fixedCluster) Members(context.Context) ([]cluster.MemberInfo, error) { return f, nil }

// TestClusterViewsDisagree: GET /v1/cluster shows each member's own view and
// readings, and says which member sees the cluster otherwise than the
// gateway (a node that missed a join or a leave); a member that did not
// answer has no readings and no view.
func TestClusterViewsDisagree(t *testing.T) {
	logger, _ := testkit.Logger(t)
	members := fixedCluster{
		{ID: "a", Address: "127.0.0.1:1", Kinds: []string{"Pot"}, ActiveGrains: map[string]int64{actors.PotKind: 3, "AssetBook": 1},
			Sees: []string{"a", "b", "c"}, Gauges: map[string]int64{actors.GaugeRecoveries: 2, actors.GaugeCutOffHolds: 1,
				actors.GaugeHeapBytes: 5 << 20, actors.GaugeResidentBytes: 9 << 20}},
		{ID: "b", Address: "127.0.0.1:2", Kinds: []string{"Pot"}, ActiveGrains: map[string]int64{},
			Sees: []string{"a", "b"}, Gauges: map[string]int64{actors.GaugeRecoveries: 0, actors.GaugeCutOffHolds: 0}},
		{ID: "c", Address: "127.0.0.1:3", Kinds: []string{"Pot"}, StatsError: "timeout"},
	}
	s, err := New(Config{Pots: nopPots{}, Cluster: members, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Logger: logger})
	require.NoError(t, err)
	_, tok := newFuncServer(t, nil, 0)
	rec := serve(s, http.MethodGet, "/v1/cluster", tok)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	var got clusterJSON
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got.Members, 3)
	a, b, c := got.Members[0], got.Members[1], got.Members[2]
	require.NotNil(t, a.ActivePots)
	assert.Equal(t, int64(3), *a.ActivePots)
	assert.Equal(t, int64(1), a.ActiveGrains["AssetBook"], "the dealing grains it hosts")
	require.NotNil(t, a.RecoveriesInProgress)
	assert.Equal(t, int64(2), *a.RecoveriesInProgress)
	require.NotNil(t, a.CutOffHoldsOutstanding)
	assert.Equal(t, int64(1), *a.CutOffHoldsOutstanding)
	require.NotNil(t, a.HeapBytes)
	assert.Equal(t, int64(5<<20), *a.HeapBytes)
	require.NotNil(t, a.ResidentBytes)
	assert.Equal(t, int64(9<<20), *a.ResidentBytes)
	assert.Nil(t, b.HeapBytes, "b did not report its memory")
	assert.Equal(t, []string{"a", "b"}, b.Sees)
	assert.Nil(t, c.ActivePots, "c did not answer")
	assert.Nil(t, c.Sees)
	assert.NotEmpty(t, c.StatsError)

	assert.False(t, got.ViewsAgree)
	assert.Equal(t, []string{"member b (127.0.0.1:2) sees 2 members: a, b; the gateway sees 3 members: a, b, c"}, got.Disagreements)
}

// recordedLogs keeps the messages logged through it.
type recordedLogs struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recordedLogs) Enabled(context.Context, slog.Level) bool { return true }
func (r *recordedLogs) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *recordedLogs) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recordedLogs) WithGroup(string) slog.Handler      { return r }

// A readiness probe that keeps failing for the same reason is logged once,
// not at every probe; a new reason is logged again, and so is the return to
// ready.
func TestReadinessLoggedOncePerChange(t *testing.T) {
	logs := &recordedLogs{}
	var mu sync.Mutex
	var notReady error
	s, err := New(Config{Pots: nopPots{}, Cluster: nopCluster{}, Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret,
		Logger: slog.New(logs), Ready: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return notReady
		}})
	require.NoError(t, err)
	probe := func(reason error, want int) {
		t.Helper()
		mu.Lock()
		notReady = reason
		mu.Unlock()
		for range 3 {
			require.Equal(t, want, serve(s, http.MethodGet, "/readyz", "").Code)
		}
	}
	probe(nil, http.StatusOK)
	probe(errors.New("journal: no leader"), http.StatusServiceUnavailable)
	probe(errors.New("nats: disconnected"), http.StatusServiceUnavailable)
	probe(nil, http.StatusOK)

	var readiness []string
	for _, m := range logs.msgs {
		if strings.Contains(m, "ready") {
			readiness = append(readiness, m)
		}
	}
	assert.Equal(t, []string{
		"WARN not ready (logged again when the reason changes)",
		"WARN not ready (logged again when the reason changes)",
		"INFO ready again",
	}, readiness)
}

// A process that serves no API (a node) answers /healthz and /readyz as a
// gateway does: the same JSON bodies, and the same problem while not ready.
func TestHandleHealthAnswersAsTheGatewayDoes(t *testing.T) {
	var mu sync.Mutex
	var notReady error
	mux := http.NewServeMux()
	HandleHealth(mux, func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return notReady
	}, time.Second, slog.New(&recordedLogs{}))
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	w := get("/healthz")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"status":"ok"}`, w.Body.String())
	w = get("/readyz")
	require.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"status":"ready"}`, w.Body.String())

	mu.Lock()
	notReady = errors.New("journal: no leader")
	mu.Unlock()
	w = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	assert.NotEmpty(t, w.Header().Get("Retry-After"), "Retry-After")
	var p Problem
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
	assert.Equal(t, problem.Unavailable, p.Code)
	assert.NotContains(t, w.Body.String(), "no leader", "the reason is logged, not shown")
}
