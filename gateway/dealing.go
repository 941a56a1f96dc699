package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// The dealing cycle's operator endpoints: prices, cycles and
// reconciliations (docs/api.md "Operator endpoints").

// Operations runs the operators' requests of the dealing cycle.
// actors.Operator implements it.
type Operations interface {
	PublishPrices(ctx context.Context, p actors.PricesPublication) (*pb.PricesResponse, error)
	Prices(ctx context.Context, date domain.Date) (*pb.PricesResponse, error)
	StartCycle(ctx context.Context, date domain.Date, opt actors.CycleRunOptions) (*pb.CycleSummary, error)
	Cycle(ctx context.Context, date domain.Date) (*pb.CycleSummary, error)
	StartReconciliation(ctx context.Context, id string, deep bool, asOf domain.Date) (*pb.ReconciliationResponse, error)
	Reconciliation(ctx context.Context, id string) (*pb.ReconciliationResponse, error)
}

// Bounds of the operations.
const (
	// operationStartMax bounds the synchronous part of starting a cycle or
	// a reconciliation: the checks (the dealing register, the prices, every
	// group's open days) and the recorded start. The run itself goes on in
	// the background and answers nothing here.
	operationStartMax = time.Minute
	// pricesMax bounds the prices of one publication (the catalogue's
	// assets number a few hundred at most).
	pricesMax = 1000
	// reasonRunesMax bounds a correction's or a forced cycle's reason: a
	// sentence or two for the audit trail.
	reasonRunesMax = 500
)

type pricesJSON struct {
	Date   string            `json:"date"`
	Prices map[string]string `json:"prices"`
	// Reason makes other prices than those recorded a correction.
	Reason string `json:"reason,omitempty"`
}

// pricesViewJSON is a date's prices as GET /v1/prices/{date} shows them:
// those in force, whether a cycle used them, and every version.
type pricesViewJSON struct {
	Date    string             `json:"date"`
	Prices  map[string]string  `json:"prices"`
	Used    bool               `json:"used"`
	History []priceVersionJSON `json:"history"`
}

type priceVersionJSON struct {
	At     string            `json:"at"`
	By     string            `json:"by,omitempty"`
	Reason string            `json:"reason,omitempty"`
	Prices map[string]string `json:"prices"`
}

func pricesView(r *pb.PricesResponse) pricesViewJSON {
	out := pricesViewJSON{Date: r.GetPrices().GetDate(), Prices: r.GetPrices().GetPrices(), Used: r.Used, History: []priceVersionJSON{}}
	for _, v := range r.History {
		out.History = append(out.History, priceVersionJSON{At: rfc3339(v.AtUnixNano), By: v.By, Reason: v.Reason, Prices: v.Prices})
	}
	return out
}

// postPrices: POST /v1/prices (operator) → 200 the date's prices.
func (s *Server) postPrices(w http.ResponseWriter, r *http.Request, claims Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	idempotencyKey(r, &fe) // checked for form; prices are idempotent by content
	var body pricesJSON
	if decodeBody(w, r, &body, &fe) {
		if body.Date == "" {
			fe.add("date", "is required")
		}
		if body.Prices == nil {
			fe.add("prices", "is required: an object of ISIN to price")
		}
	}
	date, _ := checkDate(&fe, "date", body.Date)
	checkReason(&fe, body.Reason)
	prices := map[domain.ISIN]domain.Price{}
	if len(body.Prices) > pricesMax {
		fe.add("prices", "more than %d prices", pricesMax)
	}
	for _, a := range s.cfg.Catalogue.Assets() {
		v, ok := body.Prices[string(a.ISIN)]
		if !ok {
			if body.Prices != nil {
				fe.add("prices."+string(a.ISIN), "is required: every catalogue asset needs its price")
			}
			continue
		}
		p, err := domain.ParsePrice(v, a.PriceDecimals)
		if err != nil {
			fe.add("prices."+string(a.ISIN), "%s", valueMessage(err))
			continue
		}
		prices[a.ISIN] = p
	}
	for _, isin := range slices.Sorted(maps.Keys(body.Prices)) {
		if _, ok := s.cfg.Catalogue.Asset(domain.ISIN(isin)); !ok {
			fe.add("prices."+isin, "is not a catalogue asset")
		}
	}
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := ops.PublishPrices(ctx, actors.PricesPublication{Date: date, Prices: prices, Reason: body.Reason, By: operatorName(claims)})
	if err != nil {
		s.writeOperationError(w, r, "publish prices", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pricesView(resp))
}

// getPrices: GET /v1/prices/{date} (operator) → 200 the date's prices and
// their history.
func (s *Server) getPrices(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	date := pathDate(r, &fe)
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := ops.Prices(ctx, date)
	if err != nil {
		s.writeOperationError(w, r, "read prices", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pricesView(resp))
}

// runCycleJSON is POST /v1/cycles/{date}/run's body.
type runCycleJSON struct {
	Rebalance *bool  `json:"rebalance"`
	Force     bool   `json:"force"`
	Reason    string `json:"reason"`
}

// runCycle: POST /v1/cycles/{date}/run (operator) → 202 with Location and
// the summary as it stands while the cycle runs in the background, or 200
// with the summary of a completed cycle (a repeat trades nothing).
func (s *Server) runCycle(w http.ResponseWriter, r *http.Request, claims Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	idempotencyKey(r, &fe) // checked for form; a cycle is idempotent by date
	date := pathDate(r, &fe)
	var body runCycleJSON
	if r.ContentLength != 0 {
		decodeBody(w, r, &body, &fe)
	}
	checkReason(&fe, body.Reason)
	switch {
	case body.Force && strings.TrimSpace(body.Reason) == "":
		fe.add("reason", "is required with force: it is recorded with the run")
	case !body.Force && body.Reason != "":
		fe.add("reason", "is only for a forced run (force: true)")
	}
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), operationStartMax)
	defer cancel()
	summary, err := ops.StartCycle(ctx, date, actors.CycleRunOptions{Rebalance: body.Rebalance == nil || *body.Rebalance,
		Force: body.Force, Reason: body.Reason, By: operatorName(claims)})
	if err != nil {
		s.writeOperationError(w, r, "start the cycle", err)
		return
	}
	status := http.StatusOK
	if summary.Status != actors.CycleComplete {
		status = http.StatusAccepted
		w.Header().Set("Location", "/v1/cycles/"+date.String())
	}
	s.writeJSON(w, r, status, cycleSummaryJSON(summary))
}

// getCycle: GET /v1/cycles/{date} (operator) → 200 the cycle summary.
func (s *Server) getCycle(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	date := pathDate(r, &fe)
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	summary, err := ops.Cycle(ctx, date)
	if err != nil {
		s.writeOperationError(w, r, "read the cycle", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, cycleSummaryJSON(summary))
}

type reconcileJSON struct {
	Deep bool   `json:"deep"`
	AsOf string `json:"asOf"`
}

// postReconciliation: POST /v1/reconciliations (operator) → 202 with
// Location while the run goes on in the background, or 200 with the report
// of a run that is done (the same Idempotency-Key again).
func (s *Server) postReconciliation(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	key := idempotencyKey(r, &fe)
	var body reconcileJSON
	decodeBody(w, r, &body, &fe)
	asOf, _ := checkDate(&fe, "asOf", body.AsOf)
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	// A run's id is the client's Idempotency-Key (so a retried request
	// answers the same run), or a new one.
	id := key
	if r.Header.Get("Idempotency-Key") == "" || !validReconciliationID(id) {
		id = newReconciliationID(s.cfg.Now())
	}
	ctx, cancel := context.WithTimeout(r.Context(), operationStartMax)
	defer cancel()
	resp, err := ops.StartReconciliation(ctx, id, body.Deep, asOf)
	if err != nil {
		s.writeOperationError(w, r, "start the reconciliation", err)
		return
	}
	status := http.StatusOK
	if resp.Running || resp.RunProblem != nil {
		status = http.StatusAccepted
		w.Header().Set("Location", "/v1/reconciliations/"+id)
	}
	s.writeJSON(w, r, status, reconciliationJSON(id, resp))
}

// getReconciliation: GET /v1/reconciliations/{id} (operator) → 200 the
// report, or how the run stands.
func (s *Server) getReconciliation(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	id := r.PathValue("id")
	if !validReconciliationID(id) {
		fe.add("id", "is not a reconciliation id")
	}
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	resp, err := ops.Reconciliation(ctx, id)
	if err != nil {
		s.writeOperationError(w, r, "read the reconciliation", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, reconciliationJSON(id, resp))
}

// checkReason checks the form of a reason for the audit trail.
func checkReason(fe *fieldErrors, reason string) {
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > reasonRunesMax || strings.ContainsFunc(reason, unicode.IsControl) {
		fe.add("reason", "must be at most %d characters of text without control characters", reasonRunesMax)
	}
}

// operatorName is who an operator token names, for the audit trail.
func operatorName(c Claims) string {
	if c.Subject == "" {
		return "operator"
	}
	return c.Subject
}

// rfc3339 is an instant of Unix nanoseconds in the API's form ("" for 0).
func rfc3339(nanos int64) string {
	if nanos == 0 {
		return ""
	}
	return time.Unix(0, nanos).UTC().Format(time.RFC3339Nano)
}

// validReconciliationID: ids travel in URLs and stream names.
func validReconciliationID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// newReconciliationID is "R<UTC time>-<random>": sortable by time, unique.
func newReconciliationID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand does not fail on a supported platform
	return "R" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// pathDate is the request's {date}, or a problem in fe.
func pathDate(r *http.Request, fe *fieldErrors) domain.Date {
	d, err := domain.ParseDate(r.PathValue("date"))
	if err != nil {
		fe.add("date", "%s", dateMessage)
	}
	return d
}

// operations returns the gateway's Operations for a request whose fields
// were checked into fe, or answers the request: 400 with fe's problems,
// 503 if this gateway runs no operations.
func (s *Server) operations(w http.ResponseWriter, r *http.Request, fe fieldErrors) (Operations, bool) {
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return nil, false
	}
	if s.cfg.Operations == nil {
		s.writeProblem(w, r, newProblem(problem.Unavailable, "this gateway runs no dealing operations"))
		return nil, false
	}
	return s.cfg.Operations, true
}

// writeOperationError answers an operation's failure: a refusal's code
// through the problem table (internal/problem), anything else as 503. What
// went wrong inside (a Go error, the detail of an operation-failed) is
// logged, never shown.
func (s *Server) writeOperationError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var oe *actors.OperatorError
	if errors.As(err, &oe) {
		if _, known := problem.HTTP(oe.Code); known {
			s.writeProblem(w, r, newProblem(oe.Code, oe.Message))
			return
		}
	}
	var panicked *recovered.Panic
	if errors.As(err, &panicked) {
		// A bug (logged and counted where it was recovered), not a grain
		// that is away.
		s.log.Error("gateway: operation panicked", "op", op, "request_id", w.Header().Get("X-Request-Id"), "err", err)
		s.writeProblem(w, r, newProblem(problem.Internal, ""))
		return
	}
	s.log.Warn("gateway: operation failed", "op", op, "request_id", w.Header().Get("X-Request-Id"), "err", err)
	s.writeProblem(w, r, newProblem(problem.Unavailable, fmt.Sprintf("could not %s now; asking again is safe", op)))
}

// cycleJSON is the cycle summary of docs/api.md.
type cycleJSON struct {
	Date   string `json:"date"`
	Status string `json:"status"`
	// Step is the step under way (running) or that failed (failed).
	Step          string           `json:"step,omitempty"`
	Progress      *progressJSON    `json:"progress,omitempty"`
	StartedAt     string           `json:"startedAt,omitempty"`
	FinishedAt    string           `json:"finishedAt,omitempty"`
	Steps         []cycleStepJSON  `json:"steps"`
	Problem       *runProblemJSON  `json:"problem,omitempty"`
	Forced        *forcedJSON      `json:"forced,omitempty"`
	Orders        []cycleOrderJSON `json:"orders"`
	Trades        int64            `json:"trades"`
	PotsAllocated int64            `json:"potsAllocated"`
	TradesSettled int64            `json:"tradesSettled"`
	OrdersRolled  int64            `json:"ordersRolled"`
	Rebalance     rebalanceJSON    `json:"rebalance"`
	Batches       []batchJSON      `json:"batches"`
}

// progressJSON is what the step under way has done, of how much.
type progressJSON struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Unit  string `json:"unit"`
}

type cycleStepJSON struct {
	Name       string  `json:"name"`
	StartedAt  string  `json:"startedAt,omitempty"`
	FinishedAt string  `json:"finishedAt"`
	Ms         float64 `json:"ms"`
}

// runProblemJSON is why a run failed: a stable code, a sentence, and
// whether running it again resumes it.
type runProblemJSON struct {
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	Resumable bool   `json:"resumable"`
}

type forcedJSON struct {
	Reason string   `json:"reason"`
	By     string   `json:"by"`
	Passed []string `json:"passed"`
}

type cycleOrderJSON struct {
	ClOrdID string `json:"clOrdId"`
	Asset   string `json:"asset"`
	Side    string `json:"side"`
	Units   string `json:"units"`
	Price   string `json:"price"`
	Cash    string `json:"cash"`
	Status  string `json:"status"`
}

type rebalanceJSON struct {
	PotsChecked int64 `json:"potsChecked"`
	PotsTraded  int64 `json:"potsTraded"`
}

type batchJSON struct {
	ID             string `json:"id"`
	Asset          string `json:"asset"`
	Trades         int64  `json:"trades"`
	ManifestSHA256 string `json:"manifestSha256"`
	HouseResidual  string `json:"houseResidual"`
}

func runProblem(p *pb.CycleProblem) *runProblemJSON {
	if p == nil {
		return nil
	}
	return &runProblemJSON{Code: p.Code, Detail: p.Detail, Resumable: p.Resumable}
}

func cycleSummaryJSON(s *pb.CycleSummary) cycleJSON {
	out := cycleJSON{Date: s.Date, Status: s.Status, Step: s.Step, Trades: s.Trades,
		StartedAt: rfc3339(s.StartedAtUnixNano), FinishedAt: rfc3339(s.FinishedAtUnixNano), Problem: runProblem(s.Problem),
		PotsAllocated: s.PotsAllocated, TradesSettled: s.TradesSettled, OrdersRolled: s.OrdersRolled,
		Rebalance: rebalanceJSON{PotsChecked: s.PotsChecked, PotsTraded: s.PotsTraded},
		Steps:     []cycleStepJSON{}, Orders: []cycleOrderJSON{}, Batches: []batchJSON{}}
	if s.Status == actors.CycleRunning && s.ProgressTotal > 0 {
		out.Progress = &progressJSON{Done: s.ProgressDone, Total: s.ProgressTotal, Unit: s.ProgressUnit}
	}
	if s.ForcedReason != "" {
		out.Forced = &forcedJSON{Reason: s.ForcedReason, By: s.ForcedBy, Passed: append([]string{}, s.Passed...)}
	}
	for _, st := range s.Steps {
		ms := float64(s.StepMicros[st.Name]) / 1000
		if ms == 0 && st.StartedAtUnixNano != 0 {
			ms = float64(st.FinishedAtUnixNano-st.StartedAtUnixNano) / 1e6
		}
		out.Steps = append(out.Steps, cycleStepJSON{Name: st.Name, StartedAt: rfc3339(st.StartedAtUnixNano),
			FinishedAt: rfc3339(st.FinishedAtUnixNano), Ms: ms})
	}
	for _, o := range s.Orders {
		out.Orders = append(out.Orders, cycleOrderJSON{ClOrdID: o.ClOrdId, Asset: o.Asset, Side: o.Side, Units: o.Units,
			Price: o.Price, Cash: o.Cash, Status: o.Status})
	}
	for _, b := range s.Batches {
		out.Batches = append(out.Batches, batchJSON{ID: b.Id, Asset: b.Asset, Trades: b.Trades, ManifestSHA256: b.ManifestSha256,
			HouseResidual: b.HouseResidual})
	}
	return out
}

// reportJSON is the reconciliation report of docs/api.md, with its status and a
// readable summary; the figures once it is complete, the progress while it
// runs, the problem if it failed.
type reportJSON struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	AsOf     string          `json:"asOf"`
	At       string          `json:"at"`
	Scope    string          `json:"scope"`
	Summary  string          `json:"summary"`
	Progress *progressJSON   `json:"progress,omitempty"`
	Problem  *runProblemJSON `json:"problem,omitempty"`
	*reportFigures
}

// Reconciliation statuses.
const (
	reconciliationRunning  = "running"
	reconciliationComplete = "complete"
	reconciliationFailed   = "failed"
)

// reportFigures are a complete report's figures.
type reportFigures struct {
	Pots       int64           `json:"pots"`
	DurationMs float64         `json:"durationMs"`
	Internal   breaksJSON      `json:"internal"`
	External   breaksJSON      `json:"external"`
	Assets     []reportAsset   `json:"assets"`
	Cash       json.RawMessage `json:"cash"`
}

type breaksJSON struct {
	Breaks []breakJSON `json:"breaks"`
}

type breakJSON struct {
	Kind       string `json:"kind"`
	Asset      string `json:"asset,omitempty"`
	MemberID   string `json:"memberId,omitempty"`
	Date       string `json:"date,omitempty"`
	Expected   string `json:"expected,omitempty"`
	Actual     string `json:"actual,omitempty"`
	Difference string `json:"difference,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

type reportAsset struct {
	Asset                 string `json:"asset"`
	PotSettledUnits       string `json:"potSettledUnits"`
	PotPendingUnits       string `json:"potPendingUnits"`
	HouseUnits            string `json:"houseUnits"`
	HousePendingUnits     string `json:"housePendingUnits"`
	CustodianSettledUnits string `json:"custodianSettledUnits"`
	CustodianPendingUnits string `json:"custodianPendingUnits"`
	Difference            string `json:"difference"`
}

type reportCash struct {
	PotsAvailable        string `json:"potsAvailable"`
	PotsReserved         string `json:"potsReserved"`
	PotsPending          string `json:"potsPending"`
	HouseResidual        string `json:"houseResidual"`
	CustodianSettledCash string `json:"custodianSettledCash"`
	CustodianPendingCash string `json:"custodianPendingCash"`
}

// reconciliationJSON is how run id stands.
func reconciliationJSON(id string, resp *pb.ReconciliationResponse) reportJSON {
	r := resp.GetReport()
	out := reportJSON{ID: id, AsOf: r.GetAsOf(), Scope: r.GetScope(), At: rfc3339(r.GetAtUnixNano())}
	switch {
	case resp.Running:
		out.Status = reconciliationRunning
		out.Progress = &progressJSON{Done: resp.ProgressDone, Total: resp.ProgressTotal, Unit: "groups"}
		out.Summary = fmt.Sprintf("Reconciliation %s as of %s: running, %d of %d groups done.", id, out.AsOf, resp.ProgressDone, resp.ProgressTotal)
	case r == nil:
		out.Status, out.Problem = reconciliationFailed, runProblem(resp.RunProblem)
		out.Summary = fmt.Sprintf("Reconciliation %s failed: %s", id, resp.GetRunProblem().GetDetail())
	default:
		out.Status, out.Summary, out.reportFigures = reconciliationComplete, ReconciliationSummary(r), figures(r)
	}
	return out
}

func figures(r *pb.ReconciliationReport) *reportFigures {
	out := &reportFigures{Pots: r.Pots, DurationMs: float64(r.DurationMicros) / 1000,
		Internal: breaksJSON{Breaks: breaks(r.InternalBreaks)}, External: breaksJSON{Breaks: breaks(r.ExternalBreaks)},
		Assets: []reportAsset{}}
	for _, a := range r.Assets {
		out.Assets = append(out.Assets, reportAsset{Asset: a.Asset, PotSettledUnits: a.PotSettledUnits,
			PotPendingUnits: a.PotPendingUnits, HouseUnits: a.HouseUnits, HousePendingUnits: a.HousePendingUnits,
			CustodianSettledUnits: a.CustodianSettledUnits, CustodianPendingUnits: a.CustodianPendingUnits, Difference: a.Difference})
	}
	if c := r.Cash; c != nil {
		out.Cash, _ = json.Marshal(reportCash{PotsAvailable: c.PotsAvailable, PotsReserved: c.PotsReserved, PotsPending: c.PotsPending,
			HouseResidual: c.HouseResidual, CustodianSettledCash: c.CustodianSettledCash, CustodianPendingCash: c.CustodianPendingCash})
	} else {
		out.Cash = json.RawMessage("{}")
	}
	return out
}

// ReconciliationSummary is a report in one readable paragraph.
func ReconciliationSummary(r *pb.ReconciliationReport) string {
	n := len(r.InternalBreaks) + len(r.ExternalBreaks)
	if n == 0 {
		return fmt.Sprintf("Reconciliation %s as of %s: %d pots and %d assets reconciled exactly; no breaks.",
			r.Id, r.AsOf, r.Pots, len(r.Assets))
	}
	return fmt.Sprintf("Reconciliation %s as of %s: %d pots and %d assets; %d internal and %d external breaks, listed below.",
		r.Id, r.AsOf, r.Pots, len(r.Assets), len(r.InternalBreaks), len(r.ExternalBreaks))
}

func breaks(bs []*pb.ReconciliationBreak) []breakJSON {
	out := []breakJSON{}
	for _, b := range bs {
		out = append(out, breakJSON{Kind: b.Kind, Asset: b.Asset, MemberID: b.MemberId, Date: b.Date, Expected: b.Expected,
			Actual: b.Actual, Difference: b.Difference, Detail: b.Detail})
	}
	return out
}
