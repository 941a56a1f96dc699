package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/internal/pause"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// Server is a gateway: an http.Handler serving docs/api.md over the pots of a
// cluster. It holds no state between requests; it is safe for concurrent
// use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
	routes  []route
	// handler serves every request: the mux, behind the path check.
	handler http.Handler
	// uncanonical answers a path ServeMux would redirect (handler).
	uncanonical http.Handler
	// inFlight is the semaphore of Config.InFlightMax, for members' and
	// the catalogue's routes; opsInFlight that of operatorsInFlightMax,
	// for the operators'.
	inFlight, opsInFlight chan struct{}
	// assets and riskProfiles are the catalogue's responses, encoded once:
	// the catalogue is immutable.
	assets, riskProfiles []byte
	// readiness is the last /readyz outcome, so that it is logged when it
	// changes rather than at every probe.
	readiness readinessLog
}

// New returns a gateway serving cfg. It fails if cfg is invalid or its
// metrics cannot be registered (two gateways on one registry).
func New(cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: m, inFlight: make(chan struct{}, cfg.InFlightMax),
		opsInFlight: make(chan struct{}, operatorsInFlightMax)}
	if s.assets, s.riskProfiles, err = catalogueResponses(cfg.Catalogue); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	s.mux = s.buildMux()
	s.handler = http.HandlerFunc(s.serve)
	return s, nil
}

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// serve answers a path that is not in canonical form (a "." or ".."
// segment, an empty one as in "//", or none at all as in CONNECT's) with
// the 404 problem of an unknown path, and passes every other request to
// the mux. ServeMux would redirect such a path to its cleaned form (307,
// text/html): not an answer a client of this API can read, and a redirect
// that takes a request somewhere its client did not name.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !canonicalPath(r.URL.EscapedPath()) {
		s.uncanonical.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// canonicalPath reports whether ServeMux would serve p as it is, rather
// than redirect: p is absolute and path.Clean leaves it alone, but for a
// trailing slash, which Clean drops and ServeMux puts back (its cleanPath).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// Routes lists the routes the gateway serves, as "METHOD /path/{param}"
// (the ServeMux patterns), in the order of the route table.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.label()
	}
	return out
}

// buildMux registers every route of the table, a 405 for each path's other
// methods, and a 404 for everything else, all answering problem details
// (ServeMux's own 404 and 405 are plain text).
func (s *Server) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path pattern → its methods
	var paths []string
	for _, rt := range s.routes {
		mux.Handle(rt.label(), s.instrument(rt))
		if _, seen := methods[rt.pattern]; !seen {
			paths = append(paths, rt.pattern)
		}
		methods[rt.pattern] = append(methods[rt.pattern], rt.method)
	}
	for _, p := range paths {
		allow := methods[p]
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		allowed := strings.Join(allow, ", ")
		mux.Handle(p, s.instrument(route{pattern: p, access: accessPublic, handle: func(w http.ResponseWriter, r *http.Request, _ Claims) {
			w.Header().Set("Allow", allowed)
			s.writeProblem(w, r, newProblem(problem.MethodNotAllowed, fmt.Sprintf("%s is not served at this path; allowed: %s", r.Method, allowed)))
		}}))
	}
	mux.Handle("/", s.instrument(route{pattern: "unmatched", access: accessPublic, handle: func(w http.ResponseWriter, r *http.Request, _ Claims) {
		s.writeProblem(w, r, newProblem(problem.NotFound, "no such endpoint: see docs/openapi.yaml"))
	}}))
	s.uncanonical = s.instrument(route{pattern: "unmatched", access: accessPublic, handle: func(w http.ResponseWriter, r *http.Request, _ Claims) {
		s.writeProblem(w, r, newProblem(problem.NotFound,
			`no such endpoint: a path has no ".", ".." or empty segments; see docs/openapi.yaml`))
	}})
	return mux
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument wraps a route's handler with what every request gets: a
// request id, a recovered panic, metrics and a log line, the in-flight
// limit and the route's access rule.
func (s *Server) instrument(rt route) http.Handler {
	label := rt.label()
	if rt.method == "" {
		label = rt.pattern // 405 and 404 handlers
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		id := requestID(r)
		rec.Header().Set("X-Request-Id", id)
		var claims Claims
		defer func() {
			abort := false
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// Logged once, with the stack, and counted; the client
				// learns only that it failed, and the request id to quote.
				recovered.Report(s.log, "gateway", v, "request_id", id, "route", label, "method", r.Method, "path", r.URL.Path)
				if rec.status == 0 {
					s.writeProblem(rec, r, newProblem(problem.Internal, ""))
				} else {
					// Part of an answer is out: too late for a problem.
					// Abort the connection, so the client cannot take the
					// part for the whole answer.
					abort = true
					rec.status = http.StatusInternalServerError
				}
			}
			if abort {
				defer panic(http.ErrAbortHandler)
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(label, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(label).Observe(elapsed.Seconds())
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("http request", "request_id", id, "method", r.Method, "route", label,
					"path", r.URL.Path, "status", status, "duration", elapsed, "subject", claims.Subject, "role", claims.Role)
			}
		}()
		if rt.access != accessPublic {
			slots := s.inFlight
			if rt.access == accessOperator {
				slots = s.opsInFlight
			}
			if !s.takeSlot(r.Context(), slots) {
				s.metrics.shed.Inc()
				s.writeProblem(rec, r, newProblem(problem.Unavailable, shedDetail))
				return
			}
			defer func() { <-slots }()
			s.metrics.inFlight.Inc()
			defer s.metrics.inFlight.Dec()
			var p *Problem
			if claims, p = s.authorize(r, rt.access); p != nil {
				s.writeProblem(rec, r, p)
				return
			}
		}
		if rt.raw != nil {
			rt.raw.ServeHTTP(rec, r)
			return
		}
		rt.handle(rec, r, claims)
	})
}

// shedDetail is the problem detail of a request refused at the in-flight
// limit: it did nothing, before its token was even checked.
const shedDetail = "the gateway is at its limit of requests in flight; nothing was done: retry with the same Idempotency-Key"

// operatorsInFlightMax bounds the operators' requests served at once, in
// slots of their own: operators are few (the CLI, a scheduler) and some of
// their calls wait minutes (a cycle's run, a reconciliation), so sharing
// InFlightMax would let a members' overload lock them out of the dealing
// day, and their long calls take members' slots.
const operatorsInFlightMax = 16

// takeSlot takes one of the slots (a semaphore: InFlightMax or
// operatorsInFlightMax), waiting up to Config.SlotWaitMax for one to free
// (waiters are served in turn), and reports whether it got one; the caller
// gives it back by receiving from slots. It gives up early if ctx ends
// (the client went away).
func (s *Server) takeSlot(ctx context.Context, slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	if s.cfg.SlotWaitMax <= 0 {
		return false
	}
	start := time.Now()
	t := time.NewTimer(s.cfg.SlotWaitMax)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		s.metrics.slotWait.WithLabelValues("admitted").Observe(time.Since(start).Seconds())
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	s.metrics.slotWait.WithLabelValues("shed").Observe(time.Since(start).Seconds())
	return false
}

// requestID is the request's X-Request-Id when a client or proxy sent a
// sensible one, else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= requestIDBytesMax && printableASCII(id) {
		return id
	}
	return rand.Text()
}

// writeJSON answers status with v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("gateway: encode response", "request_id", w.Header().Get("X-Request-Id"), "err", err)
		s.writeProblem(w, r, newProblem(problem.Internal, ""))
		return
	}
	s.writeBody(w, status, "application/json", append(data, '\n'))
}

// answerBuffers hold the answers written by hand (appendOrderListJSON):
// a page of 50 orders is ~40 KB, which would otherwise be allocated, and
// grown by copying, for every page.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// answerBufferKeptMax: a buffer grown past this (a page of 200 orders with
// many trades) goes to the garbage rather than back to the pool, so that a
// few long answers do not pin memory.
const answerBufferKeptMax = 256 << 10

// writeAppended answers status with the JSON appendJSON appends to a
// pooled buffer. The buffer is reused once writeBody returns: the
// ResponseWriter has copied or sent the bytes by then.
func (s *Server) writeAppended(w http.ResponseWriter, status int, appendJSON func([]byte) []byte) {
	bp := answerBuffers.Get().(*[]byte)
	b := append(appendJSON((*bp)[:0]), '\n')
	s.writeBody(w, status, "application/json", b)
	if cap(b) <= answerBufferKeptMax {
		*bp = b[:0]
		answerBuffers.Put(bp)
	}
}

// writeBody answers status with data, which the caller must not change
// afterwards (it may be shared by concurrent requests).
func (s *Server) writeBody(w http.ResponseWriter, status int, contentType string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	// Pots change with every request and belong to one member: no cache
	// may keep a copy.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The length, so that a long answer (a page of orders) goes out whole
	// rather than in chunks.
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	// An error here means the client went away: there is no one to tell.
	w.Write(data)
}

// writeProblem answers with p as application/problem+json, with the
// headers its status calls for.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	p.RequestID = w.Header().Get("X-Request-Id")
	switch p.Status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds)
	case http.StatusUnauthorized:
		challenge := `Bearer realm="mastertrust"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"` // RFC 6750 §3.1
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	data, err := json.Marshal(p)
	if err != nil {
		// Unreachable: a Problem holds strings and ints only.
		panic(fmt.Sprintf("gateway: encode problem: %v", err))
	}
	s.writeBody(w, p.Status, "application/problem+json", append(data, '\n'))
}

// Outcomes of pot calls, for metrics and logs.
const (
	outcomeOK          = "ok"
	outcomeRefused     = "refused"
	outcomeTimeout     = "timeout"
	outcomeUnavailable = "unavailable"
	outcomeCancelled   = "cancelled"
	outcomeError       = "error"
)

// callPot sends req to member's pot, bounded by RequestTimeout and the
// request's context. It returns the pot's answer, or nil after answering
// the request with the problem: the pot's refusal mapped through the
// problem table, or a 503 when the pot could not be reached in time.
func (s *Server) callPot(w http.ResponseWriter, r *http.Request, command, member string, req *pb.PotRequest) *pb.PotResponse {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := s.handleRetrying(ctx, command, member, req)
	outcome := outcomeOK
	defer func() { s.metrics.potCalls.WithLabelValues(command, outcome).Observe(time.Since(start).Seconds()) }()
	id := w.Header().Get("X-Request-Id")
	var panicked *recovered.Panic
	switch {
	case errors.As(err, &panicked):
		// The call panicked on its way (logged and counted where it was
		// recovered): a bug, not a pot that is away.
		outcome = outcomeError
		s.log.Error("gateway: pot call panicked", "request_id", id, "command", command, "member", member, "err", err)
		s.writeProblem(w, r, newProblem(problem.Internal, ""))
		return nil
	case err != nil:
		outcome = s.logCallError(r.Context(), id, command, member, err)
		s.writeProblem(w, r, newProblem(problem.Unavailable,
			"the pot did not answer in time; retry with the same Idempotency-Key, which makes the retry safe"))
		return nil
	case resp == nil:
		outcome = outcomeError
		s.log.Error("gateway: pot answered nothing", "request_id", id, "command", command, "member", member)
		s.writeProblem(w, r, newProblem(problem.Internal, ""))
		return nil
	}
	if p := resp.GetProblem(); p != nil {
		outcome = outcomeRefused
		s.writeProblem(w, r, s.potProblem(id, command, member, p))
		return nil
	}
	if resp.GetReplayed() {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	return resp
}

// Pauses before a call to a moving pot is sent again: doubled from the
// first to the last, as long as the request's deadline leaves room.
const (
	potRetryPauseFirst = 20 * time.Millisecond
	potRetryPauseMax   = 320 * time.Millisecond
)

// handleRetrying calls the pot and, while the answer says the pot is moving,
// calls again within ctx: no member could take the call (its owner left
// and the topology is catching up, or its activation was stopping), or
// the activation answered "unavailable" without deciding anything (it was
// stopping, or its journal was failing over) and did not shed the call to
// protect its node (a retry would add load: the client gets the 503 and
// backs off). Every member request is safe to send again: a command carries
// its idempotency key, and a read changes nothing. So a pot handed from a
// leaving node to another answers its callers late, not with an error.
func (s *Server) handleRetrying(ctx context.Context, command, member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	wait := potRetryPauseFirst
	for {
		resp, err := s.cfg.Pots.Handle(ctx, member, req)
		moving := errors.Is(err, cluster.ErrUnavailable) ||
			(err == nil && resp.GetProblem().GetCode() == problem.Unavailable && !resp.GetProblem().GetShed())
		deadline, bounded := ctx.Deadline()
		if !moving || ctx.Err() != nil || (bounded && time.Until(deadline) < 2*wait) {
			return resp, err
		}
		s.metrics.potRetries.WithLabelValues(command).Inc()
		if pause.For(ctx, wait) != nil {
			return resp, err
		}
		wait = min(2*wait, potRetryPauseMax)
	}
}

// logCallError logs a failed pot call at the level it deserves and returns
// its outcome.
func (s *Server) logCallError(ctx context.Context, id, command, member string, err error) string {
	attrs := []any{"request_id", id, "command", command, "member", member, "err", err}
	switch {
	case ctx.Err() != nil:
		// The client went away (or the server is shutting down hard):
		// nobody reads the 503.
		s.log.Debug("gateway: pot call abandoned by the client", attrs...)
		return outcomeCancelled
	case errors.Is(err, cluster.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("gateway: pot call timed out", attrs...)
		return outcomeTimeout
	case errors.Is(err, cluster.ErrUnavailable), errors.Is(err, cluster.ErrStopped):
		s.log.Warn("gateway: pot unavailable", attrs...)
		return outcomeUnavailable
	default:
		s.log.Error("gateway: pot call failed", attrs...)
		return outcomeError
	}
}

// potProblem maps a pot's refusal through the problem table
// (internal/problem).
func (s *Server) potProblem(id, command, member string, p *pb.Problem) *Problem {
	if _, ok := problem.HTTP(p.GetCode()); !ok {
		s.log.Error("gateway: pot answered an unknown problem code", "request_id", id, "command", command,
			"member", member, "code", p.GetCode(), "detail", p.GetDetail())
		return newProblem(problem.Internal, "")
	}
	prob := newProblem(p.GetCode(), potDetail(p.GetDetail()))
	switch prob.Status {
	case http.StatusBadRequest:
		// The edge validation missed something the pot caught.
		s.log.Warn("gateway: pot refused a request as invalid", "request_id", id, "command", command,
			"member", member, "detail", p.GetDetail())
		prob.Errors = []FieldError{{Field: "body", Message: prob.Detail}}
	case http.StatusServiceUnavailable:
		prob.Detail = "the pot could not make the request durable; retry with the same Idempotency-Key"
	}
	return prob
}

// unexpected answers a pot response of the wrong kind: a broken contract
// between gateway and pot, logged, answered with a generic 500.
// potResult makes one pot call and returns the result its reply must
// hold, which result picks (nil: the reply holds another kind). When it
// returns false the request is answered: a problem, or a 500 for an
// unexpected kind of reply.
func potResult[T any](s *Server, w http.ResponseWriter, r *http.Request, command, member string, req *pb.PotRequest,
	result func(*pb.PotResponse) *T) (*T, bool) {
	resp := s.callPot(w, r, command, member, req)
	if resp == nil {
		return nil, false
	}
	v := result(resp)
	if v == nil {
		s.unexpected(w, r, command, resp)
		return nil, false
	}
	return v, true
}

func (s *Server) unexpected(w http.ResponseWriter, r *http.Request, command string, resp *pb.PotResponse) {
	s.log.Error("gateway: pot answered with an unexpected result", "request_id", w.Header().Get("X-Request-Id"),
		"command", command, "result", fmt.Sprintf("%T", resp.GetResult()))
	s.writeProblem(w, r, newProblem(problem.Internal, ""))
}
