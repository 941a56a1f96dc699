package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
)

// Operator, health and metrics endpoints.

type clusterJSON struct {
	Members []clusterMemberJSON `json:"members"`
	// ViewsAgree says whether every member that answered sees the same
	// members as the gateway; Disagreements say how they differ.
	ViewsAgree    bool     `json:"viewsAgree"`
	Disagreements []string `json:"disagreements"`
}

// clusterMemberJSON is one member as it reports itself. The readings are
// null when the member did not report (statsError says so).
type clusterMemberJSON struct {
	ID      string   `json:"id"`
	Address string   `json:"address"`
	Kinds   []string `json:"kinds"`
	// ActivePots is the member's pot activations now.
	ActivePots *int64 `json:"activePots"`
	// ActiveGrains are its activations of every kind (the dealing grains).
	ActiveGrains map[string]int64 `json:"activeGrains"`
	// Sees are the member IDs in the member's own view of the cluster.
	Sees                   []string `json:"sees"`
	RecoveriesInProgress   *int64   `json:"recoveriesInProgress"`
	CutOffHoldsOutstanding *int64   `json:"cutOffHoldsOutstanding"`
	// HeapBytes and ResidentBytes are the member process's Go heap
	// (objects, live and not yet collected) and resident set.
	HeapBytes     *int64 `json:"heapBytes"`
	ResidentBytes *int64 `json:"residentBytes"`
	StatsError    string `json:"statsError,omitempty"`
}

type statusJSON struct {
	Status string `json:"status"`
}

// getCluster: GET /v1/cluster (operator) → 200 {"members"}.
func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	infos, err := s.cfg.Cluster.Members(ctx)
	if err != nil {
		s.log.Warn("gateway: list cluster members", "request_id", w.Header().Get("X-Request-Id"), "err", err)
		s.writeProblem(w, r, newProblem(problem.Unavailable, "the cluster's members could not be listed in time"))
		return
	}
	s.writeJSON(w, r, http.StatusOK, s.clusterView(infos))
}

// clusterView is the members' own reports, and whether their views of the
// cluster agree with the gateway's.
func (s *Server) clusterView(infos []cluster.MemberInfo) clusterJSON {
	out := clusterJSON{Members: make([]clusterMemberJSON, 0, len(infos)), ViewsAgree: true, Disagreements: []string{}}
	ids := make([]string, 0, len(infos))
	for _, m := range infos {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	for _, m := range infos {
		cm := clusterMemberJSON{ID: m.ID, Address: m.Address, Kinds: m.Kinds, Sees: m.Sees}
		if cm.Kinds == nil {
			cm.Kinds = []string{}
		}
		if m.ActiveGrains == nil {
			// The reason is a Go error: logged, not shown.
			s.log.Warn("gateway: a member did not report its stats", "member", m.Address, "err", m.StatsError)
			cm.StatsError = "the member did not report its activations in time"
			out.Members = append(out.Members, cm)
			continue
		}
		n := m.ActiveGrains[actors.PotKind]
		cm.ActivePots, cm.ActiveGrains = &n, m.ActiveGrains
		if v, ok := m.Gauges[actors.GaugeRecoveries]; ok {
			cm.RecoveriesInProgress = &v
		}
		if v, ok := m.Gauges[actors.GaugeCutOffHolds]; ok {
			cm.CutOffHoldsOutstanding = &v
		}
		if v, ok := m.Gauges[actors.GaugeHeapBytes]; ok {
			cm.HeapBytes = &v
		}
		if v, ok := m.Gauges[actors.GaugeResidentBytes]; ok {
			cm.ResidentBytes = &v
		}
		if cm.Sees == nil {
			cm.Sees = []string{}
		}
		if !slices.Equal(cm.Sees, ids) {
			out.ViewsAgree = false
			out.Disagreements = append(out.Disagreements, fmt.Sprintf("member %s (%s) sees %s; the gateway sees %s",
				m.ID, m.Address, membersText(cm.Sees), membersText(ids)))
		}
		out.Members = append(out.Members, cm)
	}
	return out
}

// membersText is a view of the cluster for people: "2 members: a, b".
func membersText(ids []string) string {
	if len(ids) == 1 {
		return "1 member: " + ids[0]
	}
	return fmt.Sprintf("%d members: %s", len(ids), strings.Join(ids, ", "))
}

// healthz: GET /healthz → 200 while the process serves HTTP at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ Claims) {
	s.writeJSON(w, r, http.StatusOK, statusJSON{Status: "ok"})
}

// HandleHealth serves GET /healthz and GET /readyz on mux with a gateway's
// answers, for a process that serves no API (a node): ready is its
// readiness check, bounded by readyTimeout; a change of its outcome is
// logged (readinessLog).
func HandleHealth(mux *http.ServeMux, ready func(context.Context) error, readyTimeout time.Duration, log *slog.Logger) {
	s := &Server{cfg: Config{Ready: ready, ReadyTimeout: readyTimeout}, log: log}
	for path, route := range map[string]func(http.ResponseWriter, *http.Request, Claims){"/healthz": s.healthz, "/readyz": s.readyz} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { route(w, r, Claims{}) })
	}
}

// readyz: GET /readyz → 200 when Config.Ready says so, else 503 (the
// reason is logged; /readyz needs no token, so it is not shown).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ Claims) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	start := time.Now()
	// Ready runs on its own goroutine so that a check that ignores ctx
	// cannot hold the probe (or a graceful shutdown) past ReadyTimeout.
	result := make(chan error, 1) // buffered: the check may outlive us
	recovered.Go(s.log, "readiness-check", func() { result <- s.cfg.Ready(ctx) }, func(err error) { result <- err })
	var err error
	select {
	case err = <-result:
	case <-ctx.Done():
		err = fmt.Errorf("readiness check did not answer in %s: %w", s.cfg.ReadyTimeout, ctx.Err())
	}
	s.readiness.Note(s.log, err, time.Since(start))
	if err != nil {
		s.writeProblem(w, r, newProblem(problem.Unavailable, "not ready"))
		return
	}
	s.writeJSON(w, r, http.StatusOK, statusJSON{Status: "ready"})
}

// readinessLog logs a readiness check's outcome when it changes: a load
// balancer probes every few seconds, and a node down for a minute would
// otherwise log the same warning at each probe. The gateway's /readyz and a
// node's (HandleHealth) use it. The zero value is ready to use.
type readinessLog struct {
	mu sync.Mutex
	// last is the last failure's text; "" while ready (and before the
	// first probe).
	last string
}

// Note logs err if it differs from the last probe's outcome: a warning for
// a new failure, and a line when the process is ready again.
func (r *readinessLog) Note(log *slog.Logger, err error, took time.Duration) {
	text := ""
	if err != nil {
		text = err.Error()
	}
	r.mu.Lock()
	last := r.last
	r.last = text
	r.mu.Unlock()
	switch {
	case text == last:
	case err != nil:
		log.Warn("not ready (logged again when the reason changes)", "err", err, "check_duration", took)
	default:
		log.Info("ready again", "was", last)
	}
}

// metricsScrapesMax bounds concurrent scrapes: a scrape walks every
// collector of the registry, and more than a few at once only means
// something is scraping in a loop.
const metricsScrapesMax = 4

// metricsHandler serves Config.Registry in the Prometheus text format.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:            promLogger{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsScrapesMax,
		Timeout:             s.cfg.RequestTimeout,
	})
}

// promLogger routes promhttp's errors to the gateway's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Error("gateway: metrics", "err", v) }
