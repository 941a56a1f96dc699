package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// The assets the tests deal in (domain/catalogue.json): unit decimals,
// price decimals, settlement days.
const (
	globalEquity = domain.ISIN("GB00BN7Q2L69") // 4, 6, T+3
	ukEquity     = domain.ISIN("GB00BD8R3K42") // 4, 6, T+3
	globalBond   = domain.ISIN("IE00BF4W7M71") // 3, 6, T+4
	gilts        = domain.ISIN("GB00BH2T9J51") // 4, 6, T+3
	property     = domain.ISIN("GB00BK5V8P82") // 4, 4, T+4
)

// Timings of the tests: short retries so that a waiting order or a failed
// report comes back within tens of milliseconds.
const (
	testRetryInterval    = 20 * time.Millisecond
	testRetryIntervalMax = 200 * time.Millisecond
	testAckWait          = 2 * time.Second
	waitMax              = 15 * time.Second
	pollInterval         = 10 * time.Millisecond
)

// harness is an embedded NATS server, a connection, its JetStream context
// and ACME's client.
type harness struct {
	t      *testing.T
	ctx    context.Context
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	client *custodian.Client
	cat    *domain.Catalogue
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	log, _ := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	client, err := custodian.NewClient(nc, custodian.ClientConfig{
		Logger: log, ReportAckWait: testAckWait,
		ReportRetryInterval: testRetryInterval, ReportRetryIntervalMax: testRetryIntervalMax,
	})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, client.EnsureStreams(ctx))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return &harness{t: t, ctx: ctx, log: log, nc: nc, js: js, client: client, cat: domain.DefaultCatalogue()}
}

// startSim starts a simulator on dir with faults; it is stopped at the end
// of the test (a second Stop is harmless).
func (h *harness) startSim(dir string, f Faults) *Simulator {
	h.t.Helper()
	s, err := Start(h.ctx, h.nc, Config{
		Dir: dir, Faults: f, Logger: h.log, OrderAckWait: testAckWait,
		RetryInterval: testRetryInterval, RetryIntervalMax: testRetryIntervalMax,
	})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { require.NoError(h.t, s.Stop()) })
	return s
}

// publishPrices publishes prices given as strings.
func (h *harness) publishPrices(day string, prices map[domain.ISIN]string) {
	h.t.Helper()
	m := make(map[domain.ISIN]domain.Price, len(prices))
	for isin, p := range prices {
		m[isin] = domain.MustPrice(p)
	}
	require.NoError(h.t, h.client.PublishPrices(h.ctx, domain.MustDate(day), m))
}

// order is the order of side and units ("1.5000") of asset on day.
func order(day string, asset domain.ISIN, side pb.Side, units string) *pb.CustodianOrder {
	d := domain.MustDate(day)
	return &pb.CustodianOrder{ClOrdId: domain.BatchID(d, asset), DealingDate: d.String(), Asset: string(asset),
		Side: side, Units: units}
}

// reportLog records the reports a Reports consumer handled.
type reportLog struct {
	mu         sync.Mutex
	deliveries []*pb.ExecutionReport          // every successful delivery, in order
	byClOrdID  map[string]*pb.ExecutionReport // the first report of each order
	failures   int
	// failNext, when set, makes the handler fail for the execution ids in
	// it (once each).
	failNext map[string]bool
}

// collect consumes reports with durable until the end of the test.
func (h *harness) collect(durable string) *reportLog {
	h.t.Helper()
	l := &reportLog{byClOrdID: make(map[string]*pb.ExecutionReport), failNext: make(map[string]bool)}
	stop, err := h.client.Reports(h.ctx, durable, l.handle)
	require.NoError(h.t, err)
	h.t.Cleanup(stop)
	return l
}

func (l *reportLog) handle(_ context.Context, r *pb.ExecutionReport) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failNext[r.GetExecutionId()] {
		delete(l.failNext, r.GetExecutionId())
		l.failures++
		return fmt.Errorf("test: failing %s once", r.GetExecutionId())
	}
	l.deliveries = append(l.deliveries, r)
	if _, ok := l.byClOrdID[r.GetClOrdId()]; !ok {
		l.byClOrdID[r.GetClOrdId()] = r
	}
	return nil
}

// report is the report of clOrdID, if one arrived.
func (l *reportLog) report(clOrdID string) (*pb.ExecutionReport, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byClOrdID[clOrdID]
	return r, ok
}

// deliveriesOf counts the deliveries of each execution id.
func (l *reportLog) deliveriesOf() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := make(map[string]int)
	for _, r := range l.deliveries {
		n[r.GetExecutionId()]++
	}
	return n
}

// waitReport waits for the report of o.
func (h *harness) waitReport(l *reportLog, o *pb.CustodianOrder) *pb.ExecutionReport {
	h.t.Helper()
	var r *pb.ExecutionReport
	testkit.CheckFor(h.t, waitMax, pollInterval, func() error {
		var ok bool
		if r, ok = l.report(o.GetClOrdId()); !ok {
			return fmt.Errorf("no report of %s", o.GetClOrdId())
		}
		return nil
	})
	return r
}

// sendUntilReported does what ACME's cycle does: it sends every order, then
// resends, every resendEvery with a new attempt number, those whose report
// has not arrived, until all have. It returns the number of rounds.
func (h *harness) sendUntilReported(l *reportLog, orders []*pb.CustodianOrder, resendEvery time.Duration) int {
	h.t.Helper()
	for _, o := range orders {
		require.NoError(h.t, h.client.SendOrder(h.ctx, o))
	}
	deadline := time.Now().Add(waitMax)
	for attempt := 2; ; attempt++ {
		time.Sleep(resendEvery)
		var missing []*pb.CustodianOrder
		for _, o := range orders {
			if _, ok := l.report(o.GetClOrdId()); !ok {
				missing = append(missing, o)
			}
		}
		if len(missing) == 0 {
			return attempt - 1
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("after %d attempts, %d orders still have no report (first %s)", attempt-1, len(missing), missing[0].GetClOrdId())
		}
		for _, o := range missing {
			require.NoError(h.t, h.client.ResendOrder(h.ctx, o, attempt))
		}
	}
}

// expectedHoldings computes a statement from orders and prices with
// decimal arithmetic written out here (not the package's ledger): units
// signed by side, cash = roundHalfEven(units × price, 2) paid for buys and
// received for sells; settled when the settlement date is on or before
// asOf.
func expectedHoldings(t *testing.T, cat *domain.Catalogue, cal *domain.Calendar, orders []*pb.CustodianOrder,
	prices map[string]map[domain.ISIN]string, asOf domain.Date) map[domain.ISIN][4]string {
	t.Helper()
	type sums struct{ su, pu, sc, pc decimal.Decimal }
	acc := make(map[domain.ISIN]*sums)
	for _, a := range cat.Assets() {
		acc[a.ISIN] = &sums{}
	}
	for _, o := range orders {
		a, _ := cat.Asset(domain.ISIN(o.Asset))
		u := decimal.RequireFromString(o.Units)
		cash := u.Mul(decimal.RequireFromString(prices[o.DealingDate][a.ISIN])).RoundBank(2)
		if o.Side == pb.Side_SIDE_SELL {
			u = u.Neg()
		} else {
			cash = cash.Neg()
		}
		s := acc[a.ISIN]
		if settle := cal.SettlementDate(domain.MustDate(o.DealingDate), a.SettlementDays); settle.After(asOf) {
			s.pu, s.pc = s.pu.Add(u), s.pc.Add(cash)
		} else {
			s.su, s.sc = s.su.Add(u), s.sc.Add(cash)
		}
	}
	out := make(map[domain.ISIN][4]string)
	for isin, s := range acc {
		a, _ := cat.Asset(isin)
		out[isin] = [4]string{s.su.StringFixed(a.UnitDecimals), s.pu.StringFixed(a.UnitDecimals),
			s.sc.StringFixed(2), s.pc.StringFixed(2)}
	}
	return out
}

// statementLines is a statement as asset → [settled units, pending units,
// settled cash, pending cash].
func statementLines(st *pb.HoldingsStatement) map[domain.ISIN][4]string {
	out := make(map[domain.ISIN][4]string)
	for _, l := range st.GetHoldings() {
		out[domain.ISIN(l.Asset)] = [4]string{l.SettledUnits, l.PendingUnits, l.SettledCash, l.PendingCash}
	}
	return out
}

// checkHoldings asks the custodian for its statement as of asOf over NATS
// and compares it with expectedHoldings.
func (h *harness) checkHoldings(orders []*pb.CustodianOrder, prices map[string]map[domain.ISIN]string, asOf string) {
	h.t.Helper()
	day := domain.MustDate(asOf)
	st, err := h.client.Holdings(h.ctx, day)
	require.NoError(h.t, err)
	_, _, err = custodian.ParseHoldingsStatement(h.cat, st)
	require.NoError(h.t, err)
	want := expectedHoldings(h.t, h.cat, defaultCalendar(), orders, prices, day)
	require.Equal(h.t, want, statementLines(st), "holdings as of %s", asOf)
}

// checkExactlyOnce checks the end state after faults: one execution per
// order in the custodian's ledger, one distinct report per order at ACME,
// each report as recorded by the custodian.
func (h *harness) checkExactlyOnce(s *Simulator, l *reportLog, orders []*pb.CustodianOrder) {
	h.t.Helper()
	execs := s.Executions()
	require.Equal(h.t, len(orders), len(execs), "executions in the custodian's ledger")
	byClOrdID := make(map[string]*pb.ExecutionReport)
	for _, x := range execs {
		_, dup := byClOrdID[x.ClOrdId]
		require.True(h.t, !dup, "%s executed twice", x.ClOrdId)
		byClOrdID[x.ClOrdId] = x
	}
	for _, o := range orders {
		x, ok := byClOrdID[o.ClOrdId]
		require.True(h.t, ok, "%s not executed", o.ClOrdId)
		got, ok := l.report(o.ClOrdId)
		require.True(h.t, ok, "%s not reported", o.ClOrdId)
		require.True(h.t, proto.Equal(x, got), "report of %s: got %v, custodian has %v", o.ClOrdId, got, x)
	}
	require.Equal(h.t, len(orders), len(l.deliveriesOf()), "distinct execution ids delivered")
	require.Equal(h.t, int64(len(orders)), s.Stats().Executions)
}

// dayOfOrders is n orders over the test assets and days 2026-11-23.., with
// their prices: a mix of buys and sells with awkward units.
func dayOfOrders(n int) ([]*pb.CustodianOrder, map[string]map[domain.ISIN]string) {
	assets := []domain.ISIN{globalEquity, ukEquity, globalBond, gilts, property}
	days := []string{"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"}
	unitsOf := map[domain.ISIN][]string{
		globalEquity: {"1234.5678", "0.0001", "98765.4321"},
		ukEquity:     {"17.2500", "3.3333", "100.0000"},
		globalBond:   {"1.125", "999.999", "42.000"},
		gilts:        {"0.5000", "12.3457", "7777.7777"},
		property:     {"250.0000", "0.1234", "5.5000"},
	}
	priceOf := map[domain.ISIN]string{
		globalEquity: "2.125000", ukEquity: "1.234567", globalBond: "0.998877", gilts: "3.333333", property: "12.3450",
	}
	var orders []*pb.CustodianOrder
	prices := make(map[string]map[domain.ISIN]string)
	for i := range n {
		day, asset := days[i/len(assets)%len(days)], assets[i%len(assets)]
		side := pb.Side_SIDE_BUY
		if i%3 == 2 {
			side = pb.Side_SIDE_SELL
		}
		orders = append(orders, order(day, asset, side, unitsOf[asset][i%3]))
		if prices[day] == nil {
			prices[day] = make(map[domain.ISIN]string)
		}
		prices[day][asset] = priceOf[asset]
	}
	if len(orders) > len(assets)*len(days) {
		panic("dayOfOrders: more orders than days × assets")
	}
	return orders, prices
}

// publishAll publishes the prices of every day.
func (h *harness) publishAll(prices map[string]map[domain.ISIN]string) {
	for _, day := range slices.Sorted(maps.Keys(prices)) {
		h.publishPrices(day, prices[day])
	}
}
