package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// MarketService is the member service that keeps every member's market in
// step with the cycle at once (without waiting for its follower to read
// the journal): a DayCutOff closes dealing days and waits until every pot
// decision made while they were open is durable (MarketState.CutOff);
// PricesPublished sets a day's prices. Every member runs it.
const MarketService = "market"

// The cycle: one grain per dealing day. A run is accepted only for a
// dealing day with prices, inside the operators' window, once every earlier
// dealing day with open trades is complete (or forced past them with a
// reason); then it goes on in the background and the caller polls Get (a
// cycle outlives any one call's timeout). It runs the day, in order: settle
// the trades due; cut off the day on every member and close every group's
// batch; take the day's prices (from then on they are never corrected) and
// put them on the custodian's feed and every member's market; net each
// group's batch into the asset books; send the custodian orders and wait
// for their reports; allocate to every pot; and, if asked, sweep every pot
// for drift. Every step is idempotent, so a run after a failure or a crash
// runs the steps again and nothing is traded twice; once the cycle
// completed, a run reports the recorded summary. Stream "cycle/<date>"
// records each run's start, steps, failure or completion; the dealing
// stream records the start, the cut-off and the completion (register.go).
type cycle struct {
	deps   *DealingDeps
	date   domain.Date
	stream systemStream // the runner's; activate loads it before any runner starts

	mu       sync.Mutex
	summary  *pb.CycleSummary // mu guards; nil until a run started
	running  bool             // mu guards
	complete bool             // mu guards
}

// Cycle statuses (the API's).
const (
	CycleRunning  = "running"
	CycleComplete = "complete"
	CycleFailed   = "failed"
)

// CycleRunOptions are an operator's run of a cycle.
type CycleRunOptions struct {
	// Rebalance: after allocating, check every pot with a profile.
	Rebalance bool
	// Force passes earlier dealing days with open trades (their orders roll
	// to the next open day); Reason is required with it and recorded.
	Force  bool
	Reason string
	// By is the operator (a token's subject), recorded with a forced run.
	By string
}

// stepError is a failed step: the problem shown to operators and the
// error behind it, logged.
type stepError struct {
	problem *pb.CycleProblem
	err     error
}

func (e *stepError) Error() string { return e.problem.Detail + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func failedStep(code string, resumable bool, err error, format string, args ...any) error {
	return &stepError{problem: &pb.CycleProblem{Code: code, Detail: fmt.Sprintf(format, args...), Resumable: resumable}, err: err}
}

// problemOf is the problem of a step's failure: its own, or, for an error
// nothing classified (a grain or the journal did not answer), an
// interruption that a run again resumes.
func problemOf(step string, err error) *pb.CycleProblem {
	var se *stepError
	if errors.As(err, &se) {
		return se.problem
	}
	return &pb.CycleProblem{Code: problem.CycleInterrupted, Resumable: true,
		Detail: fmt.Sprintf("the %s step could not finish: a node, a grain or the journal did not answer in time (the log has the cause); run the cycle again to resume", step)}
}

func (c *cycle) failure(err error) proto.Message { return c.failed(err) }

func (c *cycle) failed(err error) *pb.CycleResponse {
	return &pb.CycleResponse{Problem: failureProblem(err)}
}

// busy keeps the grain active while a run goes on.
func (c *cycle) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func (c *cycle) activate(identity string, f *fence) error {
	d, err := domain.ParseDate(identity)
	if err != nil {
		return err
	}
	c.date = d
	c.stream = systemStream{j: c.deps.Journal, name: cycleStream(d), fence: f}
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Config.StepTimeout)
	defer cancel()
	if err := c.stream.load(ctx, c.apply); err != nil {
		return err
	}
	if s := c.summary; s != nil && s.Status == CycleRunning {
		// The run's process stopped before it finished.
		step := s.Step
		s.Status, s.Step = CycleFailed, ""
		s.Problem = &pb.CycleProblem{Code: problem.CycleInterrupted, Resumable: true,
			Detail: fmt.Sprintf("the run stopped at the %s step when its node stopped; run the cycle again to resume", step)}
	}
	return nil
}

// apply applies one event of the cycle's stream to the summary.
func (c *cycle) apply(m proto.Message) error {
	switch m := m.(type) {
	case *pb.CycleStarted:
		c.summary = &pb.CycleSummary{Date: m.Date, Status: CycleRunning, StartedAtUnixNano: m.AtUnixNano, Rebalance: m.Rebalance,
			ForcedReason: m.ForcedReason, ForcedBy: m.By, Passed: m.Passed}
	case *pb.CycleStepDone:
		if c.summary == nil { // a run of a release before CycleStarted
			c.summary = &pb.CycleSummary{Date: c.date.String(), Status: CycleRunning}
		}
		c.summary.Steps = append(c.summary.Steps, &pb.CycleStep{Name: m.Step, StartedAtUnixNano: m.StartedAtUnixNano, FinishedAtUnixNano: m.AtUnixNano})
		c.summary.Step = m.Step
	case *pb.CycleFailed:
		if c.summary == nil {
			c.summary = &pb.CycleSummary{Date: c.date.String()}
		}
		c.summary.Status, c.summary.Step, c.summary.Problem = CycleFailed, m.Step, m.Problem
		c.summary.FinishedAtUnixNano = m.AtUnixNano
	case *pb.CycleCompleted:
		c.summary, c.complete = m.Summary, true
		c.summary.Status = CycleComplete // "completed" in the releases before the API named it
	default:
		return fmt.Errorf("unexpected %T in a cycle stream", m)
	}
	return nil
}

func (c *cycle) handle(data []byte) proto.Message {
	req := &pb.CycleRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return c.failure(fmt.Errorf("unreadable request: %w", err))
	}
	switch r := req.Command.(type) {
	case *pb.CycleRequest_Get:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.summary == nil {
			return &pb.CycleResponse{Problem: &pb.Problem{Code: problem.NotFound, Detail: "no cycle has run for " + c.date.String()}}
		}
		return &pb.CycleResponse{Summary: proto.Clone(c.summary).(*pb.CycleSummary)}
	case *pb.CycleRequest_Run:
		return c.start(r.Run)
	}
	return c.failure(errors.New("unknown cycle command"))
}

// start starts a run, after checking it may, unless the cycle is complete
// or already running: then it answers how it stands.
func (c *cycle) start(run *pb.CycleRun) *pb.CycleResponse {
	c.mu.Lock()
	busy := c.complete || c.running
	c.mu.Unlock()
	if busy {
		return c.standing()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Config.StepTimeout)
	defer cancel()
	passed, rolled, resp := c.check(ctx, run)
	if resp != nil {
		return resp
	}
	started := &pb.CycleStarted{Date: c.date.String(), Rebalance: run.Rebalance, AtUnixNano: nanosNow(c.deps.Now)}
	if len(passed) > 0 {
		started.ForcedReason, started.By = run.Reason, run.By
		for _, d := range passed {
			started.Passed = append(started.Passed, d.String())
		}
	}
	if err := c.stream.append(ctx, started); err != nil {
		return c.failed(err)
	}
	if err := recordDealing(ctx, c.deps.Journal, &pb.CycleStarted{Date: started.Date, AtUnixNano: started.AtUnixNano},
		func(r *domain.DealingRegister) bool { return r.Latest().Compare(c.date) >= 0 }); err != nil {
		return c.failed(err)
	}
	if len(passed) > 0 {
		c.deps.Logger.Warn("cycle forced past earlier dealing days with open trades", "date", c.date,
			"passed", started.Passed, "by", run.By, "reason", run.Reason)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = true
	if err := c.apply(started); err != nil {
		panic(err) // unreachable: a CycleStarted applies
	}
	c.summary.OrdersRolled = rolled // the aggregators roll late orders at every call
	recovered.Go(c.deps.Logger, "cycle", func() { c.run(run.Rebalance) }, func(err error) {
		// A bug in the run (logged and counted): the run stops; its record
		// shows it interrupted, and a run again resumes it.
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = false
		c.summary.Status, c.summary.FinishedAtUnixNano = CycleFailed, nanosNow(c.deps.Now)
		c.summary.Problem = &pb.CycleProblem{Code: problem.CycleInterrupted, Resumable: true,
			Detail: fmt.Sprintf("the run stopped at the %s step on an internal error (the log has it); run the cycle again to resume", c.summary.Step)}
	}, "date", c.date)
	return &pb.CycleResponse{Summary: proto.Clone(c.summary).(*pb.CycleSummary)}
}

// standing answers how the cycle stands.
func (c *cycle) standing() *pb.CycleResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &pb.CycleResponse{Summary: proto.Clone(c.summary).(*pb.CycleSummary)}
}

// check refuses a run the operators' safeguards forbid: a day with no
// prices, not a dealing day or outside the window, or with an earlier
// dealing day not complete (unless forced: it returns the days passed). It
// also returns the late orders the aggregators rolled while answering.
func (c *cycle) check(ctx context.Context, run *pb.CycleRun) (passed []domain.Date, rolled int64, refusal *pb.CycleResponse) {
	if c.deps.Custodian == nil {
		return nil, 0, c.failed(errors.New("this node has no custodian connection: cycles need NATS"))
	}
	node := c.deps.clusterNode()
	if node == nil {
		return nil, 0, c.failed(errNoNode)
	}
	register, _, err := loadRegister(ctx, c.deps.Journal)
	if err != nil {
		return nil, 0, c.failed(err)
	}
	if err := domain.CheckOperatorDate(c.deps.Calendar, c.deps.window(register), "a cycle", c.date); err != nil {
		return nil, 0, refusedRun(err)
	}
	p, err := c.pricesCall(ctx, node, &pb.PricesRequest{Command: &pb.PricesRequest_Get{Get: &pb.PricesGet{}}})
	if err != nil {
		return nil, 0, c.failed(err)
	}
	switch p.GetProblem().GetCode() {
	case "":
	case problem.NotFound:
		return nil, 0, &pb.CycleResponse{Problem: &pb.Problem{Code: problem.NoPrices,
			Detail: fmt.Sprintf("no prices are recorded for %s: publish the day's closing prices (POST /v1/prices) first", c.date)}}
	default:
		return nil, 0, &pb.CycleResponse{Problem: p.Problem}
	}
	res, err := callAggregators(ctx, node, c.deps, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_OpenDays{
		OpenDays: &pb.AggOpenDays{Date: c.date.String()}}}, nil)
	if err != nil {
		return nil, 0, c.failed(err)
	}
	rolled = sum(res, (*pb.AggregatorResponse).GetOrdersRolled)
	var open []domain.Date
	for _, r := range res {
		for _, s := range r.OpenDays {
			d, err := domain.ParseDate(s)
			if err != nil {
				return nil, 0, c.failed(err)
			}
			open = append(open, d)
		}
	}
	err = register.CheckEarlierDaysComplete(c.date, open)
	if err == nil {
		return nil, rolled, nil
	}
	if !run.Force {
		return nil, 0, refusedRun(err)
	}
	for _, d := range append(register.Incomplete(), open...) {
		if d.Before(c.date) && !slices.ContainsFunc(passed, d.Equal) {
			passed = append(passed, d)
		}
	}
	slices.SortFunc(passed, domain.Date.Compare)
	return passed, rolled, nil
}

func refusedRun(err error) *pb.CycleResponse {
	if r := refused(err); r != nil {
		return &pb.CycleResponse{Problem: r}
	}
	return &pb.CycleResponse{Problem: failureProblem(err)}
}

// update changes the summary under the lock.
func (c *cycle) update(f func(s *pb.CycleSummary)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.summary)
}

// run runs the cycle's steps, recording each, then the summary or the
// failure.
func (c *cycle) run(rebalance bool) {
	ctx := context.Background()
	err := c.steps(ctx, rebalance)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	s := c.summary
	if err == nil {
		s.Status, s.Step, s.FinishedAtUnixNano = CycleComplete, "", nanosNow(c.deps.Now)
		s.ProgressDone, s.ProgressTotal, s.ProgressUnit = 0, 0, ""
		final := proto.Clone(s).(*pb.CycleSummary)
		if err = c.stream.append(ctx, &pb.CycleCompleted{Summary: final, AtUnixNano: s.FinishedAtUnixNano}); err == nil {
			c.complete = true
			// The register learns it too; should this fail, it reads the
			// cycle's own stream instead (loadRegister).
			if rerr := recordDealing(ctx, c.deps.Journal, &pb.DayCompleted{Date: s.Date, AtUnixNano: s.FinishedAtUnixNano},
				func(r *domain.DealingRegister) bool { return r.IsCompleted(c.date) }); rerr != nil {
				c.deps.Logger.Warn("cycle completion not in the dealing stream; its own stream has it", "date", c.date, "err", rerr)
			}
			c.deps.Logger.Info("cycle completed", "date", c.date, "trades", final.Trades, "pots_allocated", final.PotsAllocated)
			return
		}
		err = fmt.Errorf("record completion: %w", err)
	}
	step := s.Step
	why := problemOf(step, err)
	s.Status, s.Problem, s.FinishedAtUnixNano = CycleFailed, why, nanosNow(c.deps.Now)
	level := slog.LevelError
	if why.Resumable {
		level = slog.LevelWarn // the operator runs it again
	}
	c.deps.Logger.Log(ctx, level, "cycle stopped", "date", c.date, "step", step, "code", why.Code,
		"resumable", why.Resumable, "err", err)
	if aerr := c.stream.append(ctx, &pb.CycleFailed{Step: step, Problem: why, AtUnixNano: s.FinishedAtUnixNano}); aerr != nil {
		c.deps.Logger.Warn("cycle failure not recorded; a restart shows the run as interrupted", "date", c.date, "err", aerr)
	}
}

func (c *cycle) steps(ctx context.Context, rebalance bool) error {
	node := c.deps.clusterNode()
	if node == nil {
		return errNoNode
	}
	if c.deps.Custodian == nil {
		return failedStep(problem.CycleUnavailable, false, errors.New("no custodian"), "this node has no custodian connection: cycles need NATS")
	}
	date := c.date.String()
	step := func(name string, f func() error) error {
		start := c.deps.Now()
		c.update(func(s *pb.CycleSummary) {
			s.Step, s.ProgressDone, s.ProgressTotal, s.ProgressUnit = name, 0, 0, ""
		})
		began := time.Now()
		if err := f(); err != nil {
			return err
		}
		took := time.Since(began)
		done := &pb.CycleStepDone{Step: name, StartedAtUnixNano: start.UnixNano(), AtUnixNano: nanosNow(c.deps.Now)}
		c.update(func(s *pb.CycleSummary) {
			if s.StepMicros == nil {
				s.StepMicros = map[string]int64{}
			}
			s.StepMicros[name] = took.Microseconds()
			s.Steps = append(s.Steps, &pb.CycleStep{Name: name, StartedAtUnixNano: done.StartedAtUnixNano, FinishedAtUnixNano: done.AtUnixNano})
		})
		c.deps.Logger.Info("cycle step done", "date", date, "step", name, "took", took)
		return c.stream.append(ctx, done)
	}

	if err := step("settle", func() error {
		res, err := c.eachGroup(ctx, node, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_Settle{Settle: &pb.AggSettle{Date: date}}})
		c.update(func(s *pb.CycleSummary) { s.TradesSettled = sum(res, (*pb.AggregatorResponse).GetTradesSettled) })
		return err
	}); err != nil {
		return err
	}
	if err := step("cut-off", func() error {
		if err := c.cutOff(ctx, node); err != nil {
			return err
		}
		res, err := c.eachGroup(ctx, node, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_Close{Close: &pb.AggClose{Date: date}}})
		c.update(func(s *pb.CycleSummary) { s.Trades = sum(res, (*pb.AggregatorResponse).GetTrades) })
		return err
	}); err != nil {
		return err
	}
	var prices *pb.PricesPublished
	if err := step("prices", func() (err error) {
		prices, err = c.prices(ctx, node)
		return err
	}); err != nil {
		return err
	}
	parts := map[string][]*pb.AssetDayPart{}
	if err := step("net", func() error {
		res, err := c.eachGroup(ctx, node, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_Price{Price: &pb.AggPrice{Date: date, Prices: prices.Prices}}})
		for _, r := range res {
			for _, p := range r.Parts {
				parts[p.Asset] = append(parts[p.Asset], p)
			}
		}
		return err
	}); err != nil {
		return err
	}
	books := map[string]*pb.AssetBookResponse{}
	if err := step("orders", func() error {
		for _, asset := range slices.Sorted(maps.Keys(parts)) {
			r, err := c.book(ctx, node, asset, &pb.AssetBookRequest{Command: &pb.AssetBookRequest_Send{Send: &pb.BookSend{Parts: parts[asset]}}})
			if err != nil {
				return err
			}
			books[asset] = r
			c.update(func(s *pb.CycleSummary) {
				s.ProgressDone, s.ProgressTotal, s.ProgressUnit = int64(len(books)), int64(len(parts)), "orders"
			})
		}
		c.update(func(s *pb.CycleSummary) { c.summarizeBooks(s, books) })
		return nil
	}); err != nil {
		return err
	}
	if err := step("executions", func() error { return c.awaitExecutions(ctx, node, parts, books) }); err != nil {
		return err
	}
	if err := step("allocate", func() error {
		ids := map[string]string{}
		for asset, b := range books {
			ids[asset] = b.Execution.Report.ExecutionId
		}
		res, err := c.eachGroup(ctx, node, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_Allocate{Allocate: &pb.AggAllocate{
			Date: date, Prices: prices.Prices, ExecutionIds: ids}}})
		c.update(func(s *pb.CycleSummary) { s.PotsAllocated = sum(res, (*pb.AggregatorResponse).GetPotsAllocated) })
		return err
	}); err != nil {
		return err
	}
	if rebalance {
		if err := step("rebalance", func() error {
			res, err := c.eachGroup(ctx, node, &pb.AggregatorRequest{Command: &pb.AggregatorRequest_Sweep{Sweep: &pb.AggSweep{Date: date, Prices: prices.Prices}}})
			c.update(func(s *pb.CycleSummary) {
				s.PotsChecked = sum(res, (*pb.AggregatorResponse).GetPotsChecked)
				s.PotsTraded = sum(res, (*pb.AggregatorResponse).GetPotsTraded)
			})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// pricesCall makes one call to the day's prices grain.
func (c *cycle) pricesCall(ctx context.Context, node *cluster.Node, req *pb.PricesRequest) (*pb.PricesResponse, error) {
	return cluster.CallWithin(ctx, node, c.deps.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
		return pb.GetPricesGrainClient(node.Cluster(), c.date.String()).Handle(req, opts...)
	})
}

// prices takes the day's prices to deal at (after the cut-off: from now on
// they are never corrected), puts them on the custodian's feed and tells
// every member.
func (c *cycle) prices(ctx context.Context, node *cluster.Node) (*pb.PricesPublished, error) {
	r, err := c.pricesCall(ctx, node, &pb.PricesRequest{Command: &pb.PricesRequest_Use{Use: &pb.PricesUse{}}})
	if err != nil {
		return nil, err
	}
	if p := r.GetProblem(); p != nil {
		return nil, fmt.Errorf("prices of %s: %s (%s)", c.date, p.Detail, p.Code)
	}
	_, parsed, err := decodePrices(r.Prices.Date, r.Prices.Prices)
	if err != nil {
		return nil, err
	}
	if err := c.deps.Custodian.PublishPrices(ctx, c.date, parsed); err != nil {
		if errors.Is(err, ErrPriceFeedConflict) {
			return nil, failedStep(problem.PricesFeedConflict, false, err,
				"the custodian's price feed holds other prices for %s than ACME recorded, and the custodian would execute at them: settle the prices with the price provider before running the cycle again", c.date)
		}
		return nil, fmt.Errorf("price feed: %w", err)
	}
	// Every member values its pots at these prices from now on, and the
	// rebalance sweep needs them everywhere.
	if _, err := node.CallMembers(ctx, MarketService, r.Prices); err != nil {
		return nil, fmt.Errorf("prices to every member: %w", err)
	}
	return r.Prices, nil
}

// cutOff records that the day is closed and waits until every member has
// closed it and finished the decisions made while it was open.
func (c *cycle) cutOff(ctx context.Context, node *cluster.Node) error {
	next := c.deps.Calendar.NextDealingDay(c.date)
	e := &pb.DayCutOff{Date: c.date.String(), OpenFrom: next.String(), AtUnixNano: nanosNow(c.deps.Now)}
	if err := recordDealing(ctx, c.deps.Journal, e, func(r *domain.DealingRegister) bool { return r.IsCutOff(c.date) }); err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, c.deps.Config.StepTimeout)
	defer cancel()
	if _, err := node.CallMembers(fctx, MarketService, e); err != nil {
		return fmt.Errorf("cut-off fence: %w", err)
	}
	return nil
}

// eachGroup sends req to every group's aggregator, a few at a time, and
// returns their answers (in group order; nil where a call failed) and the
// failures; the summary's progress counts the groups done.
func (c *cycle) eachGroup(ctx context.Context, node *cluster.Node, req *pb.AggregatorRequest) ([]*pb.AggregatorResponse, error) {
	total := int64(PotGroups(c.deps.Journal))
	c.update(func(s *pb.CycleSummary) { s.ProgressDone, s.ProgressTotal, s.ProgressUnit = 0, total, "groups" })
	res, err := callAggregators(ctx, node, c.deps, req, func() { c.update(func(s *pb.CycleSummary) { s.ProgressDone++ }) })
	// Aggregators roll late orders at every step.
	c.update(func(s *pb.CycleSummary) { s.OrdersRolled += sum(res, (*pb.AggregatorResponse).GetOrdersRolled) })
	return res, err
}

// callAggregators sends req to every group's aggregator, a few at a time,
// and returns their answers (in group order; nil where a call failed) and
// the failures. done, if not nil, is called as each group answers.
func callAggregators(ctx context.Context, node *cluster.Node, deps *DealingDeps, req *pb.AggregatorRequest, done func()) ([]*pb.AggregatorResponse, error) {
	groups := PotGroups(deps.Journal)
	out := make([]*pb.AggregatorResponse, groups)
	errs := make([]error, groups)
	sem := make(chan struct{}, aggregatorCallsInFlight)
	var wg sync.WaitGroup
	for g := range groups {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var r *pb.AggregatorResponse
			var err error
			if perr := recovered.Run(deps.Logger, "cycle/aggregator-call", func() {
				r, err = cluster.CallWithin(ctx, node, deps.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.AggregatorResponse, error) {
					return pb.GetAggregatorGrainClient(node.Cluster(), fmt.Sprint(g)).Handle(req, opts...)
				})
			}, "group", g); perr != nil {
				err = perr
			}
			if p := r.GetProblem(); err == nil && p != nil {
				err = errors.New(p.Detail)
			}
			if err != nil {
				errs[g] = fmt.Errorf("group %d: %w", g, err)
				return
			}
			out[g] = r
			if done != nil {
				done()
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// aggregatorCallsInFlight bounds the groups a cycle works on at once: each
// aggregator keeps PotCallsInFlight pot calls going, so a few groups keep
// both cores busy.
const aggregatorCallsInFlight = 4

func (c *cycle) book(ctx context.Context, node *cluster.Node, asset string, req *pb.AssetBookRequest) (*pb.AssetBookResponse, error) {
	r, err := cluster.CallWithin(ctx, node, c.deps.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.AssetBookResponse, error) {
		return pb.GetAssetBookGrainClient(node.Cluster(), c.date.String()+"/"+asset).Handle(req, opts...)
	})
	if p := r.GetProblem(); err == nil && p != nil {
		err = errors.New(p.Detail)
	}
	if err != nil {
		return nil, fmt.Errorf("asset book %s: %w", asset, err)
	}
	return r, nil
}

// awaitExecutions resends each book's order (the book resends only once its
// resend interval has passed) until every book has its report.
func (c *cycle) awaitExecutions(ctx context.Context, node *cluster.Node, parts map[string][]*pb.AssetDayPart, books map[string]*pb.AssetBookResponse) error {
	deadline := time.Now().Add(c.deps.Config.ExecutionWait)
	poll := c.deps.Config.ResendInterval / 4
	for {
		waiting := 0
		for _, asset := range slices.Sorted(maps.Keys(books)) {
			if books[asset].Execution != nil {
				continue
			}
			r, err := c.book(ctx, node, asset, &pb.AssetBookRequest{Command: &pb.AssetBookRequest_Send{Send: &pb.BookSend{Parts: parts[asset]}}})
			if err != nil {
				return err
			}
			books[asset] = r
			if r.Execution == nil {
				waiting++
			}
		}
		c.update(func(s *pb.CycleSummary) {
			c.summarizeBooks(s, books)
			s.ProgressDone, s.ProgressTotal, s.ProgressUnit = int64(len(books)-waiting), int64(len(books)), "orders"
		})
		if waiting == 0 {
			for _, asset := range slices.Sorted(maps.Keys(books)) {
				if m := books[asset].Execution.Mismatch; m != "" {
					return failedStep(problem.CustodianMismatch, false, errors.New(m),
						"the custodian's execution of %s differs from the batch (%s): nothing was allocated; compare the custodian's report with the batch before anything else", asset, m)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			for _, asset := range slices.Sorted(maps.Keys(books)) {
				if b := books[asset]; b.Execution == nil && len(b.Refused) > 0 {
					last := b.Refused[len(b.Refused)-1]
					return failedStep(problem.CustodianMismatch, true, errors.New(last.Reason),
						"the custodian's report %s for %s was refused: it does not match the order sent (%s); nothing was allocated and the report is kept for investigation (reconciliation shows it); run the cycle again to keep waiting for a matching report",
						clip(last.GetReport().GetExecutionId()), asset, last.Reason)
				}
			}
			return failedStep(problem.CustodianSilent, true, errors.New("no execution report"),
				"the custodian has not reported %d of %d orders within %s; run the cycle again to keep waiting (orders are resent)",
				waiting, len(books), c.deps.Config.ExecutionWait)
		}
		time.Sleep(poll)
	}
}

// summarizeBooks fills the summary's orders and batches.
func (c *cycle) summarizeBooks(s *pb.CycleSummary, books map[string]*pb.AssetBookResponse) {
	s.Orders, s.Batches = nil, nil
	for _, asset := range slices.Sorted(maps.Keys(books)) {
		b := books[asset].Batch
		if b == nil {
			continue
		}
		side := map[pb.Side]string{pb.Side_SIDE_BUY: "buy", pb.Side_SIDE_SELL: "sell"}[b.Side]
		info, _ := c.deps.Catalogue.Asset(domain.ISIN(asset))
		o := &pb.CycleOrder{ClOrdId: domain.BatchID(c.date, domain.ISIN(asset)), Asset: asset, Side: side,
			Units: dec(b.Units).StringFixed(info.UnitDecimals), Price: dec(b.Price).StringFixed(info.PriceDecimals), Cash: b.Cash, Status: "sent"}
		switch {
		case b.Side == pb.Side_SIDE_UNSPECIFIED:
			o.Side, o.Status = "none", "netted"
		case books[asset].Execution != nil:
			o.Status = "executed"
		}
		s.Orders = append(s.Orders, o)
		s.Batches = append(s.Batches, &pb.CycleBatch{Id: o.ClOrdId, Asset: asset, Trades: b.Trades,
			ManifestSha256: b.ManifestSha256, HouseResidual: b.HouseResidual})
	}
}

func sum(rs []*pb.AggregatorResponse, f func(*pb.AggregatorResponse) int64) int64 {
	var n int64
	for _, r := range rs {
		if r != nil {
			n += f(r)
		}
	}
	return n
}
