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
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// The dealing cycle's operator endpoints: prices, cycles and
// reconciliations (API.md "Operator endpoints").

// Operations runs the operators' requests of the dealing cycle.
// actors.Operator implements it.
type Operations interface {
	PublishPrices(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) (*pb.PricesPublished, error)
	Prices(ctx context.Context, date domain.Date) (*pb.PricesPublished, error)
	RunCycle(ctx context.Context, date domain.Date, rebalance bool, progress func(*pb.CycleSummary)) (*pb.CycleSummary, error)
	Cycle(ctx context.Context, date domain.Date) (*pb.CycleSummary, error)
	Reconcile(ctx context.Context, id string, deep bool, asOf domain.Date) (*pb.ReconciliationReport, error)
	Reconciliation(ctx context.Context, id string) (*pb.ReconciliationReport, error)
}

// operationCodes are the codes the operations answer with (actors/prices.go);
// the problem table maps each.
var operationCodes = []string{actors.CodePricesInvalid, actors.CodePricesConflict, actors.CodeNoPrices,
	actors.CodeCycleFailed, actors.CodeNotFound, actors.CodeRunning}

// Bounds of the operations.
const (
	// cycleWaitMax bounds how long POST /v1/cycles/{date}/run waits for the
	// cycle; past it the answer is 503, the cycle goes on, and a repeat (or
	// GET /v1/cycles/{date}) reports it. A cycle of 100K pots takes well
	// under a minute on two cores.
	cycleWaitMax = 10 * time.Minute
	// reconciliationWaitMax bounds a reconciliation.
	reconciliationWaitMax = 5 * time.Minute
	// pricesMax bounds the prices of one publication (the catalogue's
	// assets number a few hundred at most).
	pricesMax = 1000
)

type pricesJSON struct {
	Date   string            `json:"date"`
	Prices map[string]string `json:"prices"`
}

// postPrices: POST /v1/prices (operator) → 200 the date's prices.
func (s *Server) postPrices(w http.ResponseWriter, r *http.Request, _ Claims) {
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
	published, err := ops.PublishPrices(ctx, date, prices)
	if err != nil {
		s.writeOperationError(w, r, "publish prices", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pricesJSON{Date: published.Date, Prices: published.Prices})
}

// getPrices: GET /v1/prices/{date} (operator) → 200 the date's prices.
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
	p, err := ops.Prices(ctx, date)
	if err != nil {
		s.writeOperationError(w, r, "read prices", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, pricesJSON{Date: p.Date, Prices: p.Prices})
}

// runCycleJSON is POST /v1/cycles/{date}/run's body.
type runCycleJSON struct {
	Rebalance *bool `json:"rebalance"`
}

// runCycle: POST /v1/cycles/{date}/run (operator) → 200 the cycle summary,
// once the cycle completed (a repeat reports the same and trades nothing).
func (s *Server) runCycle(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	queryParams(r, &fe)
	idempotencyKey(r, &fe) // checked for form; a cycle is idempotent by date
	date := pathDate(r, &fe)
	var body runCycleJSON
	if r.ContentLength != 0 {
		decodeBody(w, r, &body, &fe)
	}
	ops, ok := s.operations(w, r, fe)
	if !ok {
		return
	}
	rebalance := body.Rebalance == nil || *body.Rebalance
	s.extendWriteDeadline(w, cycleWaitMax)
	ctx, cancel := context.WithTimeout(r.Context(), cycleWaitMax)
	defer cancel()
	summary, err := ops.RunCycle(ctx, date, rebalance, nil)
	if err != nil {
		s.writeOperationError(w, r, "run cycle", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, cycleSummaryJSON(summary))
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
		s.writeOperationError(w, r, "read cycle", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, cycleSummaryJSON(summary))
}

type reconcileJSON struct {
	Deep bool   `json:"deep"`
	AsOf string `json:"asOf"`
}

// postReconciliation: POST /v1/reconciliations (operator) → 200 the report.
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
	s.extendWriteDeadline(w, reconciliationWaitMax)
	ctx, cancel := context.WithTimeout(r.Context(), reconciliationWaitMax)
	defer cancel()
	report, err := ops.Reconcile(ctx, id, body.Deep, asOf)
	if errors.Is(err, context.DeadlineExceeded) {
		// The run goes on: say where its report will be.
		w.Header().Set("Location", "/v1/reconciliations/"+id)
		s.writeProblem(w, r, newProblem(codeUnavailable, fmt.Sprintf(
			"reconciliation %s is still running; its report will be at GET /v1/reconciliations/%s", id, id)))
		return
	}
	if err != nil {
		s.writeOperationError(w, r, "reconcile", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, reconciliationJSON(report))
}

// getReconciliation: GET /v1/reconciliations/{id} (operator) → 200 the report.
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
	report, err := ops.Reconciliation(ctx, id)
	if err != nil {
		s.writeOperationError(w, r, "read reconciliation", err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, reconciliationJSON(report))
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

// extendWriteDeadline lets a long operation answer after the server's
// write timeout (which protects member requests), within wait and a margin.
func (s *Server) extendWriteDeadline(w http.ResponseWriter, wait time.Duration) {
	err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + time.Minute))
	if err != nil && !errors.Is(err, http.ErrNotSupported) { // a test recorder has no deadline
		s.log.Warn("gateway: extend the write deadline", "err", err)
	}
}

// pathDate is the request's {date}, or a problem in fe.
func pathDate(r *http.Request, fe *fieldErrors) domain.Date {
	d, err := domain.ParseDate(r.PathValue("date"))
	if err != nil {
		fe.add("date", "must be a date YYYY-MM-DD")
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
		s.writeProblem(w, r, newProblem(codeUnavailable, "this gateway runs no dealing operations"))
		return nil, false
	}
	return s.cfg.Operations, true
}

// writeOperationError answers an operation's failure: its refusal code
// through the problem table, anything else as 503.
func (s *Server) writeOperationError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var oe *actors.OperatorError
	if errors.As(err, &oe) {
		code := oe.Code
		if code == "" {
			code = actors.CodeCycleFailed
		}
		s.writeProblem(w, r, newProblem(code, oe.Message))
		return
	}
	s.log.Warn("gateway: operation failed", "op", op, "request_id", w.Header().Get("X-Request-Id"), "err", err)
	s.writeProblem(w, r, newProblem(codeUnavailable, fmt.Sprintf("%s did not complete in time; it may still be under way: ask again", op)))
}

// cycleJSON is the cycle summary of API.md.
type cycleJSON struct {
	Date          string           `json:"date"`
	Status        string           `json:"status"`
	Step          string           `json:"step,omitempty"`
	Error         string           `json:"error,omitempty"`
	Orders        []cycleOrderJSON `json:"orders"`
	Trades        int64            `json:"trades"`
	PotsAllocated int64            `json:"potsAllocated"`
	TradesSettled int64            `json:"tradesSettled"`
	OrdersRolled  int64            `json:"ordersRolled"`
	Rebalance     rebalanceJSON    `json:"rebalance"`
	Batches       []batchJSON      `json:"batches"`
	// StepMs is how long each step took, in milliseconds.
	StepMs map[string]float64 `json:"stepMs,omitempty"`
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

func cycleSummaryJSON(s *pb.CycleSummary) cycleJSON {
	out := cycleJSON{Date: s.Date, Status: s.Status, Step: s.Step, Error: s.Error, Trades: s.Trades,
		PotsAllocated: s.PotsAllocated, TradesSettled: s.TradesSettled, OrdersRolled: s.OrdersRolled,
		Rebalance: rebalanceJSON{PotsChecked: s.PotsChecked, PotsTraded: s.PotsTraded},
		Orders:    []cycleOrderJSON{}, Batches: []batchJSON{}}
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

// reportJSON is the reconciliation report of API.md, with a readable
// summary.
type reportJSON struct {
	ID         string          `json:"id"`
	AsOf       string          `json:"asOf"`
	At         string          `json:"at"`
	Scope      string          `json:"scope"`
	Pots       int64           `json:"pots"`
	DurationMs float64         `json:"durationMs"`
	Summary    string          `json:"summary"`
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

func reconciliationJSON(r *pb.ReconciliationReport) reportJSON {
	out := reportJSON{ID: r.Id, AsOf: r.AsOf, Scope: r.Scope, Pots: r.Pots,
		At:         time.Unix(0, r.AtUnixNano).UTC().Format(time.RFC3339Nano),
		DurationMs: float64(r.DurationMicros) / 1000,
		Internal:   breaksJSON{Breaks: breaks(r.InternalBreaks)}, External: breaksJSON{Breaks: breaks(r.ExternalBreaks)},
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
	out.Summary = ReconciliationSummary(r)
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
