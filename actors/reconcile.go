package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// ReconciliationKind is the grain kind of reconciliation runs: identity is
// the run's id.
const ReconciliationKind = "Reconciliation"

func reconciliationStream(id string) string { return "recon/" + id }

// The reconciliation: one grain per run. It proves, exactly, that the pots
// plus ACME's house account equal what the custodian holds, and records the
// run (its date, scope and every break) in stream "recon/<id>" as an audit
// trail. It asks every group's aggregator (their replicas of the pots
// answer without calling a single pot), reads the asset books' batches and
// reports from the journal, and asks the custodian for its holdings.
//
// Internal checks: every pot's invariants and ledger (and with deep, that
// the pot recovered as its grain recovers it equals its replay from zero);
// per dealing day and asset, what the pots were allocated (and the house
// absorbed) adds up to the batch, whose net order is what the custodian
// executed, and the cash difference is the batch's house residual.
//
// External checks, per asset: the pots' settled units plus the house's
// equal the custodian's settled holding, and likewise for units still
// settling.
//
// A run goes on in the background (a deep one over many pots takes longer
// than any one call should wait); Run starts it and Get asks for the report.
type reconciliation struct {
	deps   *DealingDeps
	id     string
	stream systemStream

	mu      sync.Mutex
	report  *pb.ReconciliationReport // mu guards
	running *pb.ReconciliationReport // mu guards: the run under way (id, date, scope), or nil
	done    int64                    // mu guards: groups done of the run under way
	failed  error                    // mu guards: the last run's failure
}

func (r *reconciliation) failure(err error) proto.Message {
	return &pb.ReconciliationResponse{Problem: failureProblem(err)}
}

// busy keeps the grain active while a run goes on.
func (r *reconciliation) busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running != nil
}

func (r *reconciliation) activate(identity string, f *fence) error {
	r.id = identity
	r.stream = systemStream{j: r.deps.Journal, name: reconciliationStream(identity), fence: f}
	ctx, cancel := context.WithTimeout(context.Background(), r.deps.Config.StepTimeout)
	defer cancel()
	return r.stream.load(ctx, func(m proto.Message) error {
		e, ok := m.(*pb.ReconciliationRecorded)
		if !ok {
			return fmt.Errorf("unexpected %T in a reconciliation stream", m)
		}
		r.report = e.Report
		return nil
	})
}

func (r *reconciliation) handle(data []byte) proto.Message {
	req := &pb.ReconciliationRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return r.failure(fmt.Errorf("unreadable request: %w", err))
	}
	switch c := req.Command.(type) {
	case *pb.ReconciliationRequest_Get:
	case *pb.ReconciliationRequest_Run:
		r.mu.Lock()
		idle := r.report == nil && r.running == nil
		r.mu.Unlock()
		if idle {
			if resp := r.start(c.Run); resp != nil {
				return resp
			}
		}
	default:
		return r.failure(errors.New("unknown reconciliation command"))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.report != nil:
		return &pb.ReconciliationResponse{Report: r.report}
	case r.running != nil:
		return &pb.ReconciliationResponse{Running: true, Report: r.running, ProgressDone: r.done, ProgressTotal: int64(PotGroups(r.deps.Journal))}
	case r.failed != nil:
		return &pb.ReconciliationResponse{RunProblem: &pb.CycleProblem{Code: problem.ReconciliationInterrupted, Resumable: true,
			Detail: "the reconciliation could not finish: a node, a grain, the journal or the custodian did not answer in time (the log has the cause); run it again with the same id"}}
	}
	return &pb.ReconciliationResponse{Problem: &pb.Problem{Code: problem.NotFound, Detail: "no reconciliation " + r.id}}
}

// start checks the run's date and starts it in the background; it answers
// a refusal, or nil once the run is under way.
func (r *reconciliation) start(c *pb.ReconRun) *pb.ReconciliationResponse {
	ctx, cancel := context.WithTimeout(context.Background(), r.deps.Config.StepTimeout)
	defer cancel()
	asOf, err := r.asOf(ctx, c.AsOf)
	if p := refused(err); p != nil {
		return &pb.ReconciliationResponse{Problem: p}
	}
	if err != nil {
		return r.failure(err).(*pb.ReconciliationResponse)
	}
	run := &pb.ReconciliationReport{Id: r.id, AsOf: asOf.String(), AtUnixNano: nanosNow(r.deps.Now), Scope: "all pots"}
	if c.Deep {
		run.Scope = "all pots, deep (each pot recovered from its snapshot and journal)"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running, r.done, r.failed = run, 0, nil
	report := proto.Clone(run).(*pb.ReconciliationReport)
	recovered.Go(r.deps.Logger, "reconciliation", func() { r.runInBackground(c.Deep, report) }, func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.running, r.failed = nil, err
	}, "id", r.id)
	return nil
}

// runInBackground runs the reconciliation and records its report.
func (r *reconciliation) runInBackground(deep bool, report *pb.ReconciliationReport) {
	ctx, cancel := context.WithTimeout(context.Background(), r.deps.Config.StepTimeout)
	defer cancel()
	report, err := r.run(ctx, deep, report)
	if err == nil {
		err = r.stream.append(ctx, &pb.ReconciliationRecorded{Report: report})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = nil
	if err != nil {
		r.failed = err
		r.deps.Logger.Error("reconciliation failed; run it again", "id", r.id, "err", err)
		return
	}
	r.report = report
}

func (r *reconciliation) run(ctx context.Context, deep bool, report *pb.ReconciliationReport) (*pb.ReconciliationReport, error) {
	start := time.Now()
	node := r.deps.clusterNode()
	if node == nil {
		return nil, errNoNode
	}
	if r.deps.Custodian == nil {
		return nil, errors.New("this node has no custodian connection: reconciliation needs NATS")
	}
	asOf := domain.MustDate(report.AsOf)

	// The groups' parts, in parallel.
	responses, err := callAggregators(ctx, node, r.deps, &pb.AggregatorRequest{
		Command: &pb.AggregatorRequest_Reconcile{Reconcile: &pb.AggReconcile{Deep: deep, AsOf: report.AsOf}}},
		func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.done++
		})
	if err != nil {
		return nil, err
	}
	parts := make([]*pb.GroupReconciliation, len(responses))
	for i, resp := range responses {
		parts[i] = resp.Reconciliation
	}

	statement, err := r.deps.Custodian.Holdings(ctx, asOf)
	if err != nil {
		return nil, fmt.Errorf("custodian holdings: %w", err)
	}
	if err := r.check(ctx, report, parts, statement); err != nil {
		return nil, err
	}
	report.DurationMicros = time.Since(start).Microseconds()
	return report, nil
}

// asOf is the date the pots' state is as of: the latest dealing day a cycle
// ran for, or today before any cycle. A date given must be that one: the
// pots are reconciled as they are, against the custodian as of the same day
// (an earlier day's report is the run recorded then).
func (r *reconciliation) asOf(ctx context.Context, given string) (domain.Date, error) {
	register, _, err := loadRegister(ctx, r.deps.Journal)
	if err != nil {
		return domain.Date{}, err
	}
	latest := register.Latest()
	if latest.IsZero() {
		latest = r.deps.dealingToday()
	}
	if given == "" {
		return latest, nil
	}
	d, err := domain.ParseDate(given)
	if err != nil {
		return domain.Date{}, err
	}
	return d, domain.CheckReconciliationDate(d, latest)
}

// check fills the report's figures and breaks.
func (r *reconciliation) check(ctx context.Context, report *pb.ReconciliationReport, parts []*pb.GroupReconciliation, statement *pb.HoldingsStatement) error {
	type assetSums struct{ settled, pending, houseSettled, housePending decimal.Decimal }
	assets := map[string]*assetSums{}
	for _, a := range r.deps.Catalogue.Assets() {
		assets[string(a.ISIN)] = &assetSums{}
	}
	type dayAsset struct{ date, asset string }
	allocated := map[dayAsset][]domain.AssetDay{}
	var available, reserved, pending decimal.Decimal
	for _, p := range parts {
		report.Pots += p.Pots
		report.InternalBreaks = append(report.InternalBreaks, p.Breaks...)
		for _, a := range p.Assets {
			s := assets[a.Asset]
			if s == nil {
				s = &assetSums{}
				assets[a.Asset] = s
			}
			s.settled = s.settled.Add(dec(a.PotSettledUnits))
			s.pending = s.pending.Add(dec(a.PotPendingUnits))
			s.houseSettled = s.houseSettled.Add(dec(a.HouseUnits))
			s.housePending = s.housePending.Add(dec(a.HousePendingUnits))
		}
		for _, d := range p.Allocated {
			ad, err := decodeAssetDay(d)
			if err != nil {
				return err
			}
			k := dayAsset{d.DealingDate, d.Asset}
			allocated[k] = append(allocated[k], ad)
		}
		available, reserved, pending = available.Add(dec(p.PotsAvailable)), reserved.Add(dec(p.PotsReserved)), pending.Add(dec(p.PotsPending))
	}
	brk := func(list *[]*pb.ReconciliationBreak, b *pb.ReconciliationBreak) { *list = append(*list, b) }

	// Per dealing day and asset: the allocations against the batch and the
	// custodian's execution.
	var houseResidual decimal.Decimal
	keys := slices.SortedFunc(maps.Keys(allocated), func(x, y dayAsset) int {
		return strings.Compare(x.date+x.asset, y.date+y.asset)
	})
	for _, k := range keys {
		date, err := domain.ParseDate(k.date)
		if err != nil {
			return err
		}
		batch, execution, err := r.readBook(ctx, date, domain.ISIN(k.asset))
		if err != nil {
			return err
		}
		sum, err := domain.SumAssetDays(allocated[k])
		if err != nil {
			return err
		}
		day := &pb.ReconciliationBreak{Kind: "allocation", Asset: k.asset, Date: k.date}
		switch {
		case batch == nil:
			day.Detail = "pots were allocated trades of a batch that was never recorded"
			brk(&report.InternalBreaks, day)
			continue
		case execution == nil:
			day.Detail = "pots were allocated trades of an order the custodian has not reported"
			brk(&report.InternalBreaks, day)
			continue
		}
		want, err := sumParts(batch.Parts)
		if err != nil {
			return err
		}
		compare := func(what string, expected, actual decimal.Decimal) {
			if !expected.Equal(actual) {
				brk(&report.InternalBreaks, &pb.ReconciliationBreak{Kind: "allocation", Asset: k.asset, Date: k.date,
					Expected: expected.String(), Actual: actual.String(), Difference: actual.Sub(expected).String(),
					Detail: what})
			}
		}
		compare("units bought by pots", want.BuyUnits.Decimal(), sum.BuyUnits.Decimal())
		compare("units sold by pots", want.SellUnits.Decimal(), sum.SellUnits.Decimal())
		compare("cash paid by pots", want.PotBuyCost.Decimal(), sum.PotBuyCost.Decimal())
		compare("cash received by pots", want.PotSellCash.Decimal(), sum.PotSellCash.Decimal())
		compare("net units executed by the custodian", sum.NetUnits().Abs().Decimal(), dec(execution.Report.Units))
		compare("house rounding residual", dec(batch.HouseResidual), sum.HouseResidual().Decimal())
		if execution.Mismatch != "" {
			brk(&report.InternalBreaks, &pb.ReconciliationBreak{Kind: "execution", Asset: k.asset, Date: k.date, Detail: execution.Mismatch})
		}
		houseResidual = houseResidual.Add(dec(batch.HouseResidual))
	}

	// Refused execution reports: each is a break until its book has a
	// matching execution (then the pots' positions are right, and the
	// refused report stays kept in the book and the alarms stream).
	if err := r.checkAlarms(ctx, report); err != nil {
		return err
	}

	// External: per asset against the custodian's statement.
	custodian := map[string]*pb.HoldingLine{}
	var custodianSettledCash, custodianPendingCash decimal.Decimal
	for _, h := range statement.Holdings {
		custodian[h.Asset] = h
		custodianSettledCash = custodianSettledCash.Add(dec(h.SettledCash))
		custodianPendingCash = custodianPendingCash.Add(dec(h.PendingCash))
	}
	for _, asset := range slices.Sorted(maps.Keys(assets)) {
		s := assets[asset]
		h := custodian[asset]
		if h == nil {
			h = &pb.HoldingLine{Asset: asset, SettledUnits: "0", PendingUnits: "0"}
		}
		custSettled, custPending := dec(h.SettledUnits), dec(h.PendingUnits)
		settled, pending := s.settled.Add(s.houseSettled), s.pending.Add(s.housePending)
		report.Assets = append(report.Assets, &pb.ReconciliationAsset{Asset: asset,
			PotSettledUnits: s.settled.String(), PotPendingUnits: s.pending.String(),
			HouseUnits: s.houseSettled.String(), HousePendingUnits: s.housePending.String(),
			CustodianSettledUnits: custSettled.String(), CustodianPendingUnits: custPending.String(),
			Difference: settled.Add(pending).Sub(custSettled.Add(custPending)).String()})
		for _, c := range []struct {
			what             string
			ours, custodians decimal.Decimal
		}{{"settled units", settled, custSettled}, {"units still settling", pending, custPending}} {
			if !c.ours.Equal(c.custodians) {
				brk(&report.ExternalBreaks, &pb.ReconciliationBreak{Kind: "holding", Asset: asset,
					Expected: c.custodians.String(), Actual: c.ours.String(), Difference: c.ours.Sub(c.custodians).String(),
					Detail: c.what + ": pots and house against the custodian"})
			}
		}
	}
	report.Cash = &pb.ReconciliationCash{PotsAvailable: available.StringFixed(2), PotsReserved: reserved.StringFixed(2),
		PotsPending: pending.StringFixed(2), HouseResidual: houseResidual.StringFixed(2),
		CustodianSettledCash: custodianSettledCash.StringFixed(2), CustodianPendingCash: custodianPendingCash.StringFixed(2)}
	return nil
}

// checkAlarms adds a break for every refused execution report whose book
// has no matching execution.
func (r *reconciliation) checkAlarms(ctx context.Context, report *pb.ReconciliationReport) error {
	alarms, err := loadAlarms(ctx, r.deps.Journal)
	if err != nil {
		return err
	}
	for _, a := range alarms {
		rep := a.GetReport()
		b := &pb.ReconciliationBreak{Kind: "refused-execution",
			Detail: fmt.Sprintf("execution report %s (order %s) refused: %s; kept for investigation", clip(rep.GetExecutionId()), clip(rep.GetClOrdId()), a.GetReason())}
		date, dateErr := domain.ParseDate(rep.GetDealingDate())
		if _, known := r.deps.Catalogue.Asset(domain.ISIN(rep.GetAsset())); dateErr == nil && known {
			_, execution, err := r.readBook(ctx, date, domain.ISIN(rep.GetAsset()))
			if err != nil {
				return err
			}
			if execution != nil && execution.Mismatch == "" {
				continue // resolved: the order's matching report is recorded
			}
			// Only a date and asset that name a book: the rest is the
			// sender's text, quoted in the detail.
			b.Asset, b.Date = rep.GetAsset(), rep.GetDealingDate()
		}
		report.InternalBreaks = append(report.InternalBreaks, b)
	}
	return nil
}

// readBook reads an asset book's batch and execution from the journal.
func (r *reconciliation) readBook(ctx context.Context, date domain.Date, asset domain.ISIN) (*pb.BatchRecorded, *pb.ExecutionRecorded, error) {
	var batch *pb.BatchRecorded
	var execution *pb.ExecutionRecorded
	s := systemStream{j: r.deps.Journal, name: assetBookStream(date, asset)}
	err := s.load(ctx, func(m proto.Message) error {
		switch m := m.(type) {
		case *pb.BatchRecorded:
			batch = m
		case *pb.ExecutionRecorded:
			execution = m
		}
		return nil
	})
	return batch, execution, err
}

func sumParts(parts []*pb.AssetDayPart) (domain.AssetDay, error) {
	days := make([]domain.AssetDay, 0, len(parts))
	for _, p := range parts {
		d, err := decodeAssetDay(p)
		if err != nil {
			return domain.AssetDay{}, err
		}
		days = append(days, d)
	}
	return domain.SumAssetDays(days)
}

// dec reads a decimal written by this system (an empty string is zero).
func dec(s string) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		panic(fmt.Sprintf("actors: unreadable decimal %q written by the system", s))
	}
	return d
}
