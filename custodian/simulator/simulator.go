package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // Europe/London for the default calendar on any machine

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/internal/consume"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// Defaults and limits of Config.
const (
	// ConsumerDefault is the durable consumer of the orders stream
	// the simulator reads with.
	ConsumerDefault = "custodian-simulator"
	// orderAckWaitDefault: an order is handled in milliseconds (a journal
	// sync and a publish, each bounded by PublishTimeout); 30s leaves a
	// wide margin before JetStream redelivers one in progress (which would
	// be harmless: it would be a repeat).
	orderAckWaitDefault = 30 * time.Second
	// retryIntervalDefault and retryIntervalMaxDefault pace the
	// redeliveries of an order that cannot execute yet (no price, an
	// outage, an error): 1s, 2s, 4s … up to 30s, so that an order sent an
	// hour before its prices costs about 120 deliveries, and one whose
	// prices arrive executes at most 30s later.
	retryIntervalDefault    = time.Second
	retryIntervalMaxDefault = 30 * time.Second
	// publishTimeoutDefault bounds one publish to JetStream (an fsync on
	// the server, or a quorum).
	publishTimeoutDefault = 5 * time.Second
	// orderPullMsgsMax is how many orders nats.go pulls ahead of the one
	// being handled. Orders come a handful a day; a small number keeps what
	// a stopping simulator must put back small.
	orderPullMsgsMax = 16
	// durationMax bounds the simulator's timing settings: beyond an hour
	// a setting is a typo.
	durationMax = time.Hour
)

// Config configures the simulated custodian. Zero values take the
// defaults documented on each field (EnsureDefaults); Validate reports every
// field out of range.
type Config struct {
	// Dir is the simulator's data directory: its own journal (Pebble, in
	// Dir/journal) of every execution. Required. A restart on the same Dir
	// keeps every execution and repeats none.
	Dir string
	// Catalogue gives the assets the custodian deals in, with their unit
	// and price decimals and settlement days. Default
	// domain.DefaultCatalogue(); it must be ACME's.
	Catalogue *domain.Catalogue
	// Calendar gives the dealing days and T+N settlement dates. Default:
	// Europe/London with the default cut-off and holidays (as
	// platform.NewCalendar).
	Calendar *domain.Calendar
	// ConsumerName is the durable consumer of the orders stream. Default
	// ConsumerDefault. Two simulators must not share one.
	ConsumerName string
	// Replicas of the protocol's streams when the simulator creates them
	// (EnsureStreams); ACME must use the same. Default 1.
	Replicas int
	// OrderAckWait is how long JetStream waits for the simulator to
	// acknowledge an order before redelivering it. Default 30s.
	OrderAckWait time.Duration
	// RetryInterval is the first delay before an order that could not
	// execute (no price yet, an outage refusal, an error) is delivered
	// again; it doubles with each delivery up to RetryIntervalMax. Default
	// 1s; RetryIntervalMax default 30s, at least RetryInterval.
	RetryInterval    time.Duration
	RetryIntervalMax time.Duration
	// PublishTimeout bounds one publish of a report. Default 5s.
	PublishTimeout time.Duration
	// Faults configures fault injection; the zero value injects none.
	Faults Faults
	// Logger receives the simulator's log lines. Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *Config) EnsureDefaults() *Config {
	if c.Catalogue == nil {
		c.Catalogue = domain.DefaultCatalogue()
	}
	if c.Calendar == nil {
		c.Calendar = defaultCalendar()
	}
	if c.ConsumerName == "" {
		c.ConsumerName = ConsumerDefault
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.OrderAckWait == 0 {
		c.OrderAckWait = orderAckWaitDefault
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = retryIntervalDefault
	}
	if c.RetryIntervalMax == 0 {
		c.RetryIntervalMax = max(retryIntervalMaxDefault, c.RetryInterval)
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = publishTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Faults.ensureDefaults()
	return c
}

// Validate reports every field out of range, with its value, in one error
// wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Dir == "" {
		add("Dir is empty: the simulator needs a directory for its journal")
	}
	if c.Catalogue == nil {
		add("Catalogue is nil")
	}
	if c.Calendar == nil {
		add("Calendar is nil")
	}
	if !consume.ValidConsumerName(c.ConsumerName) {
		add("ConsumerName %q: want a non-empty name without '.', '*', '>' or spaces", c.ConsumerName)
	}
	if c.Replicas < 1 || c.Replicas > custodian.ReplicasMax {
		add("Replicas %d: want [1, %d]", c.Replicas, custodian.ReplicasMax)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"OrderAckWait", c.OrderAckWait}, {"RetryInterval", c.RetryInterval},
		{"RetryIntervalMax", c.RetryIntervalMax}, {"PublishTimeout", c.PublishTimeout},
	} {
		if d.value <= 0 || d.value > durationMax {
			add("%s %s: want (0, %s]", d.name, d.value, durationMax)
		}
	}
	if c.RetryIntervalMax < c.RetryInterval {
		add("RetryIntervalMax %s is less than RetryInterval %s", c.RetryIntervalMax, c.RetryInterval)
	}
	problems = c.Faults.validate(problems)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", custodian.ErrInvalidConfig, strings.Join(problems, "; "))
}

// defaultCalendar is the calendar of platform.NewCalendar, built here
// because platform embeds the simulator (and so cannot be imported by it).
// time/tzdata is linked in, so loading Europe/London cannot fail, and the
// default calendar configuration is valid: a failure is a build defect.
func defaultCalendar() *domain.Calendar {
	loc, err := time.LoadLocation(domain.DefaultLocationName)
	if err != nil {
		panic(fmt.Sprintf("custodian: load %s: %v", domain.DefaultLocationName, err))
	}
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: loc})
	if err != nil {
		panic(fmt.Sprintf("custodian: default calendar: %v", err))
	}
	return cal
}

// Stats counts what a simulator has done since it started (except
// ExecutionsTotal, which counts its ledger, restarts included).
type Stats struct {
	OrdersReceived     int64 // order deliveries, redeliveries included
	OrdersAcked        int64 // deliveries acknowledged after their report was sent (or dropped, or scheduled)
	Executions         int64 // orders executed since start
	ExecutionsTotal    int64 // executions in the ledger
	Repeats            int64 // deliveries of an executed order, answered with its report
	ConflictingRepeats int64 // of the repeats, those whose terms differ from the executed order's
	Rejected           int64 // invalid orders, terminated (never executed)
	PriceWaits         int64 // deliveries put back because the day's price was missing
	OutageRefusals     int64 // deliveries put back by the OutageOrders fault
	Retries            int64 // deliveries put back after an error (journal, publish)
	ShortPositions     int64 // executions that left an asset's units below zero
	ReportsPublished   int64 // reports stored in the stream (first copies)
	ReportsDeduped     int64 // report publishes the stream already held (a repeat within the window)
	ReportsDropped     int64 // reports not sent, by the drop fault
	ReportsDuplicated  int64 // extra copies stored, by the duplicate fault
	ReportsDelayed     int64 // copies delayed by the delay fault
	ReportsReordered   int64 // copies that went through the reorder window
	ReportsLost        int64 // delayed or held copies never published (publish failed, or stopped first)
	PublishErrors      int64 // failed publishes of report copies
	HoldingsRequests   int64 // holdings requests answered or refused
}

// counters are Stats, updated concurrently.
type counters struct {
	ordersReceived, ordersAcked, executions, repeats, conflictingRepeats, rejected, priceWaits, outageRefusals, retries,
	shortPositions, reportsPublished, reportsDeduped, reportsDropped, reportsDuplicated, reportsDelayed,
	reportsReordered, reportsLost, publishErrors, holdingsRequests atomic.Int64
}

// Simulator is a running simulated custodian: an actor of the outside world
// that talks to ACME only through NATS JetStream (docs/custodian.md).
type Simulator struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	prices  jetstream.Stream
	ledger  *ledger
	sender  *reportSender
	stats   counters
	holders *nats.Subscription
	seed    uint64

	cancel context.CancelFunc // stops the order loop and the sender
	done   chan struct{}      // closed when the order loop has returned

	// outageRefused counts OutageOrders refusals; only the order loop
	// touches it.
	outageRefused int

	stopOnce sync.Once
	stopErr  error
}

// Start starts a simulated custodian on nc: it creates the
// protocol's streams if needed, replays its journal, creates its durable
// consumer of orders and its holdings responder, and starts taking orders
// (after Faults.OutageDuration). ctx bounds the start only; the simulator
// runs until Stop.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Simulator, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "custodian-simulator")
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("custodian: simulator: %w", err)
	}
	if err := custodian.EnsureStreams(ctx, js, cfg.Replicas); err != nil {
		return nil, err
	}
	prices, err := js.Stream(ctx, custodian.PricesStream)
	if err != nil {
		return nil, fmt.Errorf("custodian: simulator: prices stream: %w", err)
	}
	consCfg := jetstream.ConsumerConfig{
		Durable:       cfg.ConsumerName,
		Description:   "the simulated custodian's order book",
		FilterSubject: custodian.OrdersSubjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.OrderAckWait,
		// An order waiting for its price is redelivered until the price
		// comes, however long that takes.
		MaxDeliver: -1,
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, custodian.OrdersStream, consCfg)
	if err != nil {
		return nil, fmt.Errorf("custodian: simulator: orders consumer: %w", err)
	}
	led, err := openLedger(ctx, cfg.Dir, cfg.Catalogue, log)
	if err != nil {
		return nil, err
	}
	seed := cfg.Faults.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Simulator{
		cfg: cfg, log: log, js: js, prices: prices, ledger: led, seed: seed,
		cancel: cancel, done: make(chan struct{}),
	}
	s.sender = newReportSender(runCtx, js, log, cfg.Faults, seed, cfg.PublishTimeout, &s.stats)
	s.holders, err = nc.QueueSubscribe(custodian.HoldingsSubject, custodian.HoldingsQueue, s.answerHoldingsSafely)
	if err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("custodian: simulator: holdings responder: %w", err), led.close())
	}
	// The responder must be registered on the server before the simulator
	// reports itself started.
	flush := func() error { return nc.FlushTimeout(cfg.PublishTimeout) }
	if _, ok := ctx.Deadline(); ok {
		flush = func() error { return nc.FlushWithContext(ctx) }
	}
	if err := flush(); err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("custodian: simulator: holdings responder: %w", err),
			s.holders.Unsubscribe(), led.close())
	}
	log.Info("custodian simulator started", append([]any{"dir", cfg.Dir, "executions", led.len(),
		"consumer", cfg.ConsumerName}, cfg.Faults.logAttrs(seed)...)...)
	go s.run(runCtx, cons, consCfg)
	return s, nil
}

// Seed is the seed of the fault injection's generator (Faults.Seed, or the
// one drawn at start).
func (s *Simulator) Seed() uint64 { return s.seed }

// Stats are the simulator's counters.
func (s *Simulator) Stats() Stats {
	c := &s.stats
	return Stats{
		OrdersReceived: c.ordersReceived.Load(), OrdersAcked: c.ordersAcked.Load(), Executions: c.executions.Load(),
		ExecutionsTotal: int64(s.ledger.len()), Repeats: c.repeats.Load(),
		ConflictingRepeats: c.conflictingRepeats.Load(), Rejected: c.rejected.Load(),
		PriceWaits: c.priceWaits.Load(), OutageRefusals: c.outageRefusals.Load(), Retries: c.retries.Load(),
		ShortPositions: c.shortPositions.Load(), ReportsPublished: c.reportsPublished.Load(),
		ReportsDeduped: c.reportsDeduped.Load(), ReportsDropped: c.reportsDropped.Load(),
		ReportsDuplicated: c.reportsDuplicated.Load(), ReportsDelayed: c.reportsDelayed.Load(),
		ReportsReordered: c.reportsReordered.Load(), ReportsLost: c.reportsLost.Load(),
		PublishErrors: c.publishErrors.Load(), HoldingsRequests: c.holdingsRequests.Load(),
	}
}

// Executions are copies of every execution report in the simulator's
// ledger, in execution order.
func (s *Simulator) Executions() []*pb.ExecutionReport { return s.ledger.reports() }

// Statement is the holdings statement the simulator would answer for asOf.
func (s *Simulator) Statement(asOf domain.Date) *pb.HoldingsStatement {
	return s.ledger.statement(asOf)
}

// Stop stops taking orders and answering requests, cancels reports still
// delayed or held (ACME's resends recover them), waits for the order in
// hand and closes the journal. Orders not acknowledged stay in the stream
// for the next start. Stop is idempotent.
func (s *Simulator) Stop() error {
	s.stopOnce.Do(func() {
		unsubErr := s.holders.Unsubscribe()
		if errors.Is(unsubErr, nats.ErrConnectionClosed) || errors.Is(unsubErr, nats.ErrBadSubscription) {
			unsubErr = nil // nothing left to answer on
		}
		s.cancel()
		<-s.done
		s.sender.stop()
		s.stopErr = errors.Join(unsubErr, s.ledger.close())
		s.log.Info("custodian simulator stopped", "executions", s.ledger.len())
	})
	return s.stopErr
}

// run is the order loop: one order at a time, in the consumer's order.
func (s *Simulator) run(ctx context.Context, cons jetstream.Consumer, consCfg jetstream.ConsumerConfig) {
	defer close(s.done)
	if d := s.cfg.Faults.OutageDuration; d > 0 {
		s.log.Info("fault: outage, orders wait in the stream", "duration", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		s.log.Info("fault: outage over, taking orders")
	}
	consume.PullLoop(ctx, s.js, custodian.OrdersStream, consCfg, cons, orderPullMsgsMax, s.cfg.RetryInterval, s.log, s.handleOrderSafely)
}

// handleOrderSafely is handleOrder, with a panic recovered (logged and
// counted) and the order put back for a later delivery, as after an error:
// a bug must not stop the order book, nor end the process.
func (s *Simulator) handleOrderSafely(ctx context.Context, msg jetstream.Msg) {
	if perr := recovered.Run(s.log, "custodian-simulator", func() { s.handleOrder(ctx, msg) }, "subject", msg.Subject()); perr != nil {
		s.stats.retries.Add(1)
		d := consume.RetryDelay(consume.NumDelivered(msg), s.cfg.RetryInterval, s.cfg.RetryIntervalMax)
		if err := msg.NakWithDelay(d); err != nil {
			s.log.Warn("nak order", "err", err) // redelivered after AckWait instead
		}
	}
}

// handleOrder handles one delivery of an order message.
func (s *Simulator) handleOrder(ctx context.Context, msg jetstream.Msg) {
	s.stats.ordersReceived.Add(1)
	n := consume.NumDelivered(msg)
	putBack := func(reason string, args ...any) {
		d := consume.RetryDelay(n, s.cfg.RetryInterval, s.cfg.RetryIntervalMax)
		s.log.Debug("order put back: "+reason, append(args, "delivery", n, "redeliver_in", d)...)
		if err := msg.NakWithDelay(d); err != nil {
			s.log.Warn("nak order", "err", err) // redelivered after AckWait instead
		}
	}
	var o pb.CustodianOrder
	if err := natsmsg.Decode(msg.Headers(), msg.Data(), &o); err != nil {
		s.reject(msg, &o, fmt.Sprintf("not a readable order: %v", err))
		return
	}
	if id := msg.Headers().Get(jetstream.MsgIDHeader); !custodian.OrderMsgIDMatches(id, o.GetClOrdId()) {
		s.log.Warn("order's Nats-Msg-Id does not follow the protocol", "msg_id", id, "cl_ord_id", o.GetClOrdId())
	}
	if s.outageRefused < s.cfg.Faults.OutageOrders {
		s.outageRefused++
		s.stats.outageRefusals.Add(1)
		putBack("fault: outage", "cl_ord_id", o.GetClOrdId(), "refusal", s.outageRefused)
		return
	}
	if err := s.ledger.resolvePending(ctx); err != nil {
		s.stats.retries.Add(1)
		s.log.Error("journal", "err", err)
		putBack("journal error", "cl_ord_id", o.GetClOrdId())
		return
	}
	if x, ok := s.ledger.lookup(o.GetClOrdId()); ok {
		s.answerRepeat(ctx, msg, &o, x, putBack)
		return
	}
	order, err := s.validate(msg.Subject(), &o)
	if err != nil {
		s.reject(msg, &o, err.Error())
		return
	}
	price, ok, err := s.price(ctx, order)
	if err != nil {
		s.stats.priceWaits.Add(1)
		s.log.Error("cannot read the day's price; the order waits", "cl_ord_id", order.ClOrdID, "err", err)
		putBack("price unreadable", "cl_ord_id", order.ClOrdID)
		return
	}
	if !ok {
		s.stats.priceWaits.Add(1)
		putBack("no price yet", "cl_ord_id", order.ClOrdID, "dealing_date", order.DealingDate)
		return
	}
	rep := &pb.ExecutionReport{
		ClOrdId:        order.ClOrdID,
		OrderId:        s.ledger.nextOrderID(),
		ExecutionId:    executionID(order.ClOrdID),
		Asset:          string(order.Asset.ISIN),
		Side:           pb.Side(order.Side),
		Units:          order.Units.StringFixed(order.Asset.UnitDecimals),
		Price:          price.StringFixed(order.Asset.PriceDecimals),
		Cash:           domain.NetOrderCash(order.Units, price).String(),
		SettlementDate: s.cfg.Calendar.SettlementDate(order.DealingDate, order.Asset.SettlementDays).String(),
		DealingDate:    order.DealingDate.String(),
	}
	if _, err := custodian.ParseExecutionReport(s.cfg.Catalogue, rep); err != nil {
		// Units and price each in range can still make cash beyond
		// domain.CashMax; no custodian settles that.
		s.reject(msg, &o, err.Error())
		return
	}
	x, err := s.ledger.record(ctx, rep)
	switch {
	case errors.Is(err, errAlreadyExecuted):
		s.log.Warn("journal already held the execution; answering as a repeat", "cl_ord_id", order.ClOrdID)
		s.answerRepeat(ctx, msg, &o, x, putBack)
		return
	case err != nil:
		s.stats.retries.Add(1)
		s.log.Error("record execution", "cl_ord_id", order.ClOrdID, "err", err)
		putBack("journal error", "cl_ord_id", order.ClOrdID)
		return
	}
	s.stats.executions.Add(1)
	s.log.Info("order executed", "cl_ord_id", x.ClOrdID, "order_id", x.OrderID, "side", x.Side,
		"units", rep.Units, "price", rep.Price, "cash", rep.Cash, "settlement_date", rep.SettlementDate)
	if h := s.ledger.holding(x.Asset); h.Sign() < 0 {
		s.stats.shortPositions.Add(1)
		s.log.Warn("execution leaves a short position: ACME sold units it does not hold here",
			"asset", x.Asset, "units", h, "cl_ord_id", x.ClOrdID)
	}
	s.reportAndAck(ctx, msg, x, putBack)
}

// answerRepeat answers a repeated order with its execution's report.
func (s *Simulator) answerRepeat(ctx context.Context, msg jetstream.Msg, o *pb.CustodianOrder, x *executed,
	putBack func(string, ...any)) {
	s.stats.repeats.Add(1)
	order := custodian.Order{ClOrdID: x.ClOrdID, DealingDate: x.DealingDate, Side: x.Side, Units: x.Units}
	order.Asset, _ = s.cfg.Catalogue.Asset(x.Asset)
	if !order.SameTerms(o) {
		s.stats.conflictingRepeats.Add(1)
		s.log.Warn("repeated client order id with other terms; answering with the original execution",
			"cl_ord_id", x.ClOrdID, "side", o.GetSide(), "units", o.GetUnits(),
			"executed_side", x.Side, "executed_units", x.Units)
	}
	s.log.Debug("repeated order answered with its report", "cl_ord_id", x.ClOrdID)
	s.reportAndAck(ctx, msg, x, putBack)
}

// reportAndAck sends x's report and acknowledges the order; if the report
// may not have reached the stream, it puts the order back instead, and the
// redelivery (a repeat) sends it again.
func (s *Simulator) reportAndAck(ctx context.Context, msg jetstream.Msg, x *executed, putBack func(string, ...any)) {
	if err := s.sender.send(ctx, x.report); err != nil {
		s.stats.retries.Add(1)
		putBack("report not sent", "cl_ord_id", x.ClOrdID, "err", err)
		return
	}
	s.stats.ordersAcked.Add(1)
	if err := msg.Ack(); err != nil {
		// Redelivered after AckWait: a repeat, answered the same way.
		s.log.Warn("ack order", "cl_ord_id", x.ClOrdID, "err", err)
	}
}

// validate checks an order that is not a repeat: the protocol and the
// catalogue (ParseOrder), the subject's asset, and a dealing day.
func (s *Simulator) validate(subject string, o *pb.CustodianOrder) (custodian.Order, error) {
	order, err := custodian.ParseOrder(s.cfg.Catalogue, o)
	if err != nil {
		return custodian.Order{}, err
	}
	if want := custodian.OrderSubject(order.Asset.ISIN); subject != want {
		return custodian.Order{}, fmt.Errorf("%w %q: sent on %s, want %s", custodian.ErrInvalidOrder, o.GetClOrdId(), subject, want)
	}
	if !s.cfg.Calendar.IsDealingDay(order.DealingDate) {
		return custodian.Order{}, fmt.Errorf("%w %q: %s is not a dealing day", custodian.ErrInvalidOrder, o.GetClOrdId(), order.DealingDate)
	}
	return order, nil
}

// reject terminates an invalid order: it is never executed, and JetStream
// does not deliver it again. The protocol has no rejection report yet
// (docs/custodian.md); ACME sees no report and its resends are rejected too.
func (s *Simulator) reject(msg jetstream.Msg, o *pb.CustodianOrder, reason string) {
	s.stats.rejected.Add(1)
	s.log.Warn("order rejected", "cl_ord_id", o.GetClOrdId(), "subject", msg.Subject(), "reason", reason)
	if err := msg.TermWithReason(reason); err != nil {
		s.log.Warn("terminate order", "cl_ord_id", o.GetClOrdId(), "err", err)
	}
}

// price is the closing price of the order's asset on its dealing day: the
// latest feed message of the date, read now (a republished feed counts from
// the moment it is published). ok is false when there is no feed for the
// date or it lacks the asset.
func (s *Simulator) price(ctx context.Context, o custodian.Order) (domain.Price, bool, error) {
	raw, err := s.prices.GetLastMsgForSubject(ctx, custodian.PriceSubject(o.DealingDate))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return domain.Price{}, false, nil
	}
	if err != nil {
		return domain.Price{}, false, fmt.Errorf("custodian: read prices of %s: %w", o.DealingDate, err)
	}
	var f pb.PriceFeed
	if err := natsmsg.Decode(raw.Header, raw.Data, &f); err != nil {
		return domain.Price{}, false, fmt.Errorf("%w %s: %w", custodian.ErrInvalidPrices, o.DealingDate, err)
	}
	prices, _, err := custodian.ParsePriceFeed(s.cfg.Catalogue, o.DealingDate, &f)
	if err != nil {
		return domain.Price{}, false, err
	}
	p, ok := prices[o.Asset.ISIN]
	return p, ok, nil
}

// answerHoldingsSafely is answerHoldings, with a panic recovered (logged
// and counted: it runs on the NATS connection's goroutine, where it would
// end the process) and answered as a refusal.
func (s *Simulator) answerHoldingsSafely(msg *nats.Msg) {
	if perr := recovered.Run(s.log, "custodian-holdings", func() { s.answerHoldings(msg) }); perr != nil && msg.Reply != "" {
		if err := msg.RespondMsg(&nats.Msg{Header: nats.Header{custodian.ErrorHeader: []string{"internal error"}}}); err != nil {
			s.log.Warn("answer holdings request", "err", err)
		}
	}
}

// answerHoldings answers a holdings request with the statement as of its
// date, or with ErrorHeader when the request is malformed or, by its
// headers, another message.
func (s *Simulator) answerHoldings(msg *nats.Msg) {
	s.stats.holdingsRequests.Add(1)
	if msg.Reply == "" {
		return
	}
	reply := &nats.Msg{}
	refuse := func(reason string) { reply.Header = nats.Header{custodian.ErrorHeader: []string{reason}} }
	var req pb.HoldingsRequest
	if err := natsmsg.Decode(msg.Header, msg.Data, &req); err != nil {
		s.log.Warn("holdings request refused", "err", err)
		refuse("not a readable holdings request: " + err.Error())
	} else if asOf, err := domain.ParseDate(req.GetAsOf()); err != nil {
		refuse("as_of: " + err.Error())
	} else if data, h, err := natsmsg.Encode(s.ledger.statement(asOf)); err != nil {
		s.log.Error("encode holdings statement", "err", err)
		refuse("internal error")
	} else {
		reply.Data, reply.Header = data, h
	}
	if err := msg.RespondMsg(reply); err != nil {
		s.log.Warn("answer holdings request", "err", err)
	}
}
