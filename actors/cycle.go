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
	"github.com/acme/mastertrust/proto/pb"
)

// MarketService is the member service that keeps every member's market in
// step with the cycle at once (without waiting for its follower to read
// the journal): a DayCutOff closes dealing days and waits until every pot
// decision made while they were open is durable (MarketState.CutOff);
// PricesPublished sets a day's prices. Every member runs it.
const MarketService = "market"

// The cycle: one grain per dealing day. It runs the day, in order: settle
// the trades due; cut off the day on every member and close every group's
// batch; net each group's batch at the day's prices into the asset books;
// send the custodian orders and wait for their reports; allocate to every
// pot; and, if asked, sweep every pot for drift. Every step is idempotent,
// so a run after a failure or a crash simply runs the steps again, and
// nothing is traded twice; once the cycle completed, a run reports the
// recorded summary. Stream "cycle/<date>".
//
// A run goes on in the background; Run answers at once with the summary so
// far, and the caller polls Get (a cycle outlives any one call's timeout).
type cycle struct {
	deps   *DealingDeps
	date   domain.Date
	stream systemStream // the runner's; activate loads it before any runner starts

	mu       sync.Mutex
	summary  *pb.CycleSummary // mu guards
	running  bool             // mu guards
	complete bool             // mu guards
	errCode  string           // mu guards: the failed run's error code
}

// errNoPrices: the cycle's date has no prices (API: 409).
var errNoPrices = errors.New("no prices")

// Cycle statuses.
const (
	CycleRunning   = "running"
	CycleCompleted = "completed"
	CycleFailed    = "failed"
)

func (c *cycle) failure(err error) proto.Message { return &pb.CycleResponse{Error: err.Error()} }

// busy keeps the grain active while a run goes on.
func (c *cycle) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func (c *cycle) activate(identity string) error {
	d, err := domain.ParseDate(identity)
	if err != nil {
		return err
	}
	c.date = d
	c.stream = systemStream{j: c.deps.Journal, name: cycleStream(d)}
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Config.StepTimeout)
	defer cancel()
	return c.stream.load(ctx, func(m proto.Message) error {
		switch m := m.(type) {
		case *pb.CycleStepDone:
		case *pb.CycleCompleted:
			c.summary, c.complete = m.Summary, true
		default:
			return fmt.Errorf("unexpected %T in a cycle stream", m)
		}
		return nil
	})
}

func (c *cycle) handle(data []byte) proto.Message {
	req := &pb.CycleRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return c.failure(fmt.Errorf("unreadable request: %w", err))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r := req.Command.(type) {
	case *pb.CycleRequest_Get:
		if c.summary == nil {
			return &pb.CycleResponse{Error: "no cycle has run for " + c.date.String(), ErrorCode: CodeNotFound}
		}
	case *pb.CycleRequest_Run:
		if !c.complete && !c.running {
			c.running, c.errCode = true, ""
			c.summary = &pb.CycleSummary{Date: c.date.String(), Status: CycleRunning}
			go c.run(r.Run.Rebalance)
		}
	default:
		return c.failure(errors.New("unknown cycle command"))
	}
	s := proto.Clone(c.summary).(*pb.CycleSummary)
	if s.Status == CycleFailed && c.errCode != "" {
		return &pb.CycleResponse{Summary: s, Error: s.Error, ErrorCode: c.errCode}
	}
	return &pb.CycleResponse{Summary: s}
}

// update changes the summary under the lock.
func (c *cycle) update(f func(s *pb.CycleSummary)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.summary)
}

// run runs the cycle's steps, recording each, then the summary.
func (c *cycle) run(rebalance bool) {
	ctx := context.Background()
	err := c.steps(ctx, rebalance)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	if err != nil {
		c.summary.Status, c.summary.Error = CycleFailed, err.Error()
		level := slog.LevelError
		if errors.Is(err, errNoPrices) {
			c.errCode, level = CodeNoPrices, slog.LevelWarn // an operator's slip, not a failure
		}
		c.deps.Logger.Log(ctx, level, "cycle stopped; run it again to resume", "date", c.date, "step", c.summary.Step, "err", err)
		return
	}
	c.summary.Status, c.summary.Step = CycleCompleted, ""
	final := proto.Clone(c.summary).(*pb.CycleSummary)
	if err := c.stream.append(ctx, &pb.CycleCompleted{Summary: final, AtUnixNano: nanosNow(c.deps.Now)}); err != nil {
		c.summary.Status, c.summary.Error = CycleFailed, err.Error()
		return
	}
	c.complete = true
	c.deps.Logger.Info("cycle completed", "date", c.date, "trades", final.Trades, "pots_allocated", final.PotsAllocated)
}

func (c *cycle) steps(ctx context.Context, rebalance bool) error {
	node := c.deps.clusterNode()
	if node == nil {
		return errNoNode
	}
	if c.deps.Custodian == nil {
		return errors.New("this node has no custodian connection: cycles need NATS")
	}
	date := c.date.String()
	step := func(name string, f func() error) error {
		c.update(func(s *pb.CycleSummary) { s.Step = name })
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		took := time.Since(start)
		c.update(func(s *pb.CycleSummary) {
			if s.StepMicros == nil {
				s.StepMicros = map[string]int64{}
			}
			s.StepMicros[name] = took.Microseconds()
		})
		c.deps.Logger.Info("cycle step done", "date", date, "step", name, "took", took)
		return c.stream.append(ctx, &pb.CycleStepDone{Step: name, AtUnixNano: nanosNow(c.deps.Now)})
	}

	var prices *pb.PricesPublished
	if err := step("prices", func() (err error) {
		prices, err = c.prices(ctx, node)
		return err
	}); err != nil {
		return err
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

// prices reads the day's prices and makes sure the custodian's feed has them.
func (c *cycle) prices(ctx context.Context, node *cluster.Node) (*pb.PricesPublished, error) {
	r, err := cluster.CallWithin(ctx, node, c.deps.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
		return pb.GetPricesGrainClient(node.Cluster(), c.date.String()).Handle(&pb.PricesRequest{Command: &pb.PricesRequest_Get{Get: &pb.PricesGet{}}}, opts...)
	})
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		if r.ErrorCode == CodeNoPrices {
			return nil, fmt.Errorf("%w for %s", errNoPrices, c.date)
		}
		return nil, errors.New(r.Error)
	}
	_, parsed, err := decodePrices(r.Prices.Date, r.Prices.Prices)
	if err != nil {
		return nil, err
	}
	if err := c.deps.Custodian.PublishPrices(ctx, c.date, parsed); err != nil {
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
	// The dealing stream is shared by every day's cycle: read its end, append,
	// and read again if another cycle appended in between.
	for attempt := 0; ; attempt++ {
		s := systemStream{j: c.deps.Journal, name: dealingStream}
		done := false
		if err := s.load(ctx, func(m proto.Message) error {
			if cut, ok := m.(*pb.DayCutOff); ok && cut.Date == e.Date {
				done = true
			}
			return nil
		}); err != nil {
			return err
		}
		if done {
			break
		}
		err := s.append(ctx, e)
		if err == nil {
			break
		}
		if attempt == 5 {
			return err
		}
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
// failures.
func (c *cycle) eachGroup(ctx context.Context, node *cluster.Node, req *pb.AggregatorRequest) ([]*pb.AggregatorResponse, error) {
	res, err := callAggregators(ctx, node, c.deps, req)
	// Aggregators roll late orders at every step.
	c.update(func(s *pb.CycleSummary) { s.OrdersRolled += sum(res, (*pb.AggregatorResponse).GetOrdersRolled) })
	return res, err
}

func callAggregators(ctx context.Context, node *cluster.Node, deps *DealingDeps, req *pb.AggregatorRequest) ([]*pb.AggregatorResponse, error) {
	groups := PotGroups(deps.Journal)
	out := make([]*pb.AggregatorResponse, groups)
	errs := make([]error, groups)
	sem := make(chan struct{}, aggregatorCallsInFlight)
	var wg sync.WaitGroup
	for g := range groups {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r, err := cluster.CallWithin(ctx, node, deps.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.AggregatorResponse, error) {
				return pb.GetAggregatorGrainClient(node.Cluster(), fmt.Sprint(g)).Handle(req, opts...)
			})
			if err == nil && r.Error != "" {
				err = errors.New(r.Error)
			}
			if err != nil {
				errs[g] = fmt.Errorf("group %d: %w", g, err)
				return
			}
			out[g] = r
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
	if err == nil && r.Error != "" {
		err = errors.New(r.Error)
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
		c.update(func(s *pb.CycleSummary) { c.summarizeBooks(s, books) })
		if waiting == 0 {
			for asset, b := range books {
				if b.Execution.Mismatch != "" {
					return fmt.Errorf("the custodian's report of %s differs from the batch: %s", asset, b.Execution.Mismatch)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the custodian has not reported %d orders; run the cycle again to keep waiting", waiting)
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
