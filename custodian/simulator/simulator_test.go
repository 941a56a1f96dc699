package simulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// An order executes at its dealing day's published price, with cash
// rounded half-even to pennies and the settlement date T+N dealing days
// later by the calendar (holidays skipped); the report and the holdings
// statement say so.
func TestOrderExecutesAtPublishedPrice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")

	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.125000"})
	h.publishPrices("2026-12-22", map[domain.ISIN]string{globalBond: "2.125000"})
	buy := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")
	sell := order("2026-12-22", globalBond, pb.Side_SIDE_SELL, "3.000")
	require.NoError(t, h.client.SendOrder(h.ctx, buy))
	require.NoError(t, h.client.SendOrder(h.ctx, sell))

	r := h.waitReport(reports, buy)
	want := &pb.ExecutionReport{
		ClOrdId: "2026-11-23-GB00BN7Q2L69", OrderId: "CUST-00000001", ExecutionId: "X-2026-11-23-GB00BN7Q2L69",
		Asset: string(globalEquity), Side: pb.Side_SIDE_BUY, Units: "1.0000", Price: "2.125000",
		// 1 × 2.125 = 2.125: half-even gives 2.12 (half-up would give 2.13).
		Cash: "2.12",
		// Monday + 3 dealing days.
		SettlementDate: "2026-11-26", DealingDate: "2026-11-23",
	}
	require.True(t, proto.Equal(want, r), "report: got %v, want %v", r, want)

	r = h.waitReport(reports, sell)
	want = &pb.ExecutionReport{
		ClOrdId: "2026-12-22-IE00BF4W7M71", OrderId: "CUST-00000002", ExecutionId: "X-2026-12-22-IE00BF4W7M71",
		Asset: string(globalBond), Side: pb.Side_SIDE_SELL, Units: "3.000", Price: "2.125000",
		// 3 × 2.125 = 6.375: half-even gives 6.38.
		Cash: "6.38",
		// Tuesday 22 December + 4 dealing days: 23, 24, (25 Christmas,
		// weekend, 28 the Boxing Day substitute) 29, 30.
		SettlementDate: "2026-12-30", DealingDate: "2026-12-22",
	}
	require.True(t, proto.Equal(want, r), "report: got %v, want %v", r, want)
	x, err := custodian.ParseExecutionReport(h.cat, r)
	require.NoError(t, err)
	require.Equal(t, "6.38", x.Cash.String())

	st, err := h.client.Holdings(h.ctx, domain.MustDate("2026-12-31"))
	require.NoError(t, err)
	lines := statementLines(st)
	require.Equal(t, [4]string{"1.0000", "0.0000", "-2.12", "0.00"}, lines[globalEquity])
	require.Equal(t, [4]string{"-3.000", "0.000", "6.38", "0.00"}, lines[globalBond])
	require.Equal(t, len(h.cat.Assets()), len(lines), "a line per catalogue asset")
	require.Equal(t, int64(2), sim.Stats().Executions)
}

// An order sent before its day's prices waits in the stream (put back, not
// executed) and executes once the price arrives, also when the day's feed
// first comes without the order's asset.
func TestOrderWaitsForItsPrice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")

	o := order("2026-11-24", ukEquity, pb.Side_SIDE_BUY, "10.0000")
	require.NoError(t, h.client.SendOrder(h.ctx, o))
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if n := sim.Stats().PriceWaits; n < 2 {
			return fmt.Errorf("price waits %d, want ≥ 2", n)
		}
		return nil
	})
	// The day's feed without the order's asset: still waiting.
	h.publishPrices("2026-11-24", map[domain.ISIN]string{globalEquity: "1.000000"})
	waits := sim.Stats().PriceWaits
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if n := sim.Stats().PriceWaits; n < waits+2 {
			return fmt.Errorf("price waits %d, want ≥ %d", n, waits+2)
		}
		return nil
	})
	require.Equal(t, int64(0), sim.Stats().Executions)
	_, ok := reports.report(o.ClOrdId)
	require.True(t, !ok)

	// The asset's price is added to the day's feed.
	h.publishPrices("2026-11-24", map[domain.ISIN]string{ukEquity: "1.234567"})
	r := h.waitReport(reports, o)
	require.Equal(t, "1.234567", r.Price)
	require.Equal(t, "12.35", r.Cash) // 12.34567 → 12.35
	require.Equal(t, int64(1), sim.Stats().Executions)
}

// A repeated order, by any path, is answered with the same report and
// executes once: a second SendOrder is dropped by JetStream's
// deduplication; a numbered resend reaches the custodian, which answers with
// the stored report (itself deduplicated by the reports stream); a resend
// with other terms gets the original execution too.
func TestRepeatedOrderSameReportNoSecondExecution(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")
	prices := map[string]map[domain.ISIN]string{"2026-11-23": {gilts: "3.333333"}}
	h.publishAll(prices)

	o := order("2026-11-23", gilts, pb.Side_SIDE_BUY, "7.5000")
	require.NoError(t, h.client.SendOrder(h.ctx, o))
	first := h.waitReport(reports, o)

	require.NoError(t, h.client.SendOrder(h.ctx, o)) // deduplicated by JetStream
	require.NoError(t, h.client.ResendOrder(h.ctx, o, 2))
	other := proto.CloneOf(o)
	other.Units = "8.0000"
	require.NoError(t, h.client.ResendOrder(h.ctx, other, 3))
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if st := sim.Stats(); st.Repeats != 2 || st.ReportsDeduped != 2 {
			return fmt.Errorf("repeats %d, reports deduplicated %d; want 2 and 2", st.Repeats, st.ReportsDeduped)
		}
		return nil
	})
	st := sim.Stats()
	require.Equal(t, int64(3), st.OrdersReceived, "the order and two resends; the second SendOrder never reached the custodian")
	require.Equal(t, int64(1), st.ConflictingRepeats)
	require.Equal(t, int64(1), st.Executions)
	require.Equal(t, 1, len(sim.Executions()))
	require.True(t, proto.Equal(first, sim.Executions()[0]), "stored %v, reported %v", sim.Executions()[0], first)
	require.Equal(t, map[string]int{first.ExecutionId: 1}, reports.deliveriesOf())
	h.checkHoldings([]*pb.CustodianOrder{o}, prices, "2026-11-30")
}

// The holdings statement splits each asset into settled (settlement date on
// or before as_of) and pending, in units and cash; a malformed request is
// refused, and no custodian is ErrUnavailable.
func TestHoldingsSettledAndPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.client.Holdings(h.ctx, domain.MustDate("2026-11-23"))
	require.ErrorIs(t, err, custodian.ErrUnavailable)

	h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")
	prices := map[string]map[domain.ISIN]string{
		"2026-11-23": {globalEquity: "2.000000", property: "10.0000"},
		"2026-11-24": {globalEquity: "2.500000"},
	}
	h.publishAll(prices)
	orders := []*pb.CustodianOrder{
		order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "100.0000"), // settles 26th
		order("2026-11-23", property, pb.Side_SIDE_BUY, "3.0000"),       // T+4: settles 27th
		order("2026-11-24", globalEquity, pb.Side_SIDE_SELL, "40.0000"), // settles 27th
	}
	for _, o := range orders {
		require.NoError(t, h.client.SendOrder(h.ctx, o))
		h.waitReport(reports, o)
	}
	for _, asOf := range []string{"2026-11-20", "2026-11-23", "2026-11-25", "2026-11-26", "2026-11-27", "2027-01-01"} {
		h.checkHoldings(orders, prices, asOf)
	}
	// Spelt out for one date, so that the test does not only agree with
	// its own helper: on the 26th the buy has settled, the sell has not.
	st, err := h.client.Holdings(h.ctx, domain.MustDate("2026-11-26"))
	require.NoError(t, err)
	require.Equal(t, [4]string{"100.0000", "-40.0000", "-200.00", "100.00"}, statementLines(st)[globalEquity])
	require.Equal(t, [4]string{"0.0000", "3.0000", "0.00", "-30.00"}, statementLines(st)[property])
	_, holdings, err := custodian.ParseHoldingsStatement(h.cat, st)
	require.NoError(t, err)
	require.Equal(t, "-40", holdings[globalEquity].PendingUnits.String())

	resp, err := h.nc.Request(custodian.HoldingsSubject, []byte("\xff\xff"), waitMax)
	require.NoError(t, err)
	require.True(t, resp.Header.Get(custodian.ErrorHeader) != "")
	data, err := proto.Marshal(&pb.HoldingsRequest{AsOf: "26/11/2026"})
	require.NoError(t, err)
	resp, err = h.nc.Request(custodian.HoldingsSubject, data, waitMax)
	require.NoError(t, err)
	require.True(t, strings.Contains(resp.Header.Get(custodian.ErrorHeader), "as_of"))
}

// A simulator stopped and started on the same directory keeps its ledger:
// the same holdings, no execution repeated (a resend is a repeat), order
// ids continue; a report dropped before the restart is recovered by a
// resend after it.
func TestRestartKeepsLedgerAndExecutesNothingTwice(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := t.TempDir()
	reports := h.collect("acme")
	prices := map[string]map[domain.ISIN]string{"2026-11-23": {globalEquity: "2.125000", ukEquity: "1.234567"}}
	h.publishAll(prices)
	orders := []*pb.CustodianOrder{
		order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1234.5678"),
		order("2026-11-23", ukEquity, pb.Side_SIDE_SELL, "17.2500"),
	}

	// First life: every report is dropped.
	sim := h.startSim(dir, Faults{DropProbability: 1, Seed: 1})
	for _, o := range orders {
		require.NoError(t, h.client.SendOrder(h.ctx, o))
	}
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if st := sim.Stats(); st.Executions != 2 || st.ReportsDropped != 2 {
			return fmt.Errorf("executions %d, dropped %d; want 2 and 2", st.Executions, st.ReportsDropped)
		}
		return nil
	})
	before := sim.Executions()
	require.NoError(t, sim.Stop())
	require.NoError(t, sim.Stop(), "a second Stop")

	// Second life, no faults: the ledger is back, resends get the reports.
	sim = h.startSim(dir, Faults{})
	require.Equal(t, int64(2), sim.Stats().ExecutionsTotal)
	for i, x := range sim.Executions() {
		require.True(t, proto.Equal(before[i], x), "execution %d after restart: got %v, want %v", i, x, before[i])
	}
	h.checkHoldings(orders, prices, "2026-11-23")
	for _, o := range orders {
		require.NoError(t, h.client.ResendOrder(h.ctx, o, 2))
	}
	for i, o := range orders {
		r := h.waitReport(reports, o)
		require.True(t, proto.Equal(before[i], r), "report after restart: got %v, want %v", r, before[i])
	}
	st := sim.Stats()
	require.Equal(t, int64(0), st.Executions, "executions after restart")
	require.Equal(t, int64(2), st.Repeats)

	// A new order continues the order ids.
	h.publishPrices("2026-11-24", map[domain.ISIN]string{gilts: "3.333333"})
	o := order("2026-11-24", gilts, pb.Side_SIDE_BUY, "1.0000")
	require.NoError(t, h.client.SendOrder(h.ctx, o))
	require.Equal(t, "CUST-00000003", h.waitReport(reports, o).OrderId)
	h.checkHoldings(append(orders, o), map[string]map[domain.ISIN]string{
		"2026-11-23": prices["2026-11-23"], "2026-11-24": {gilts: "3.333333"}}, "2026-11-30")
}

// A report whose handler fails is not acknowledged and is delivered again
// until the handler succeeds; an acknowledged report is not delivered again
// to a consumer re-created with the same durable name.
func TestReportsRedeliveredAfterHandlerError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startSim(t.TempDir(), Faults{})
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000"})
	o := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")

	l := &reportLog{byClOrdID: map[string]*pb.ExecutionReport{}, failNext: map[string]bool{"X-" + o.ClOrdId: true}}
	stop, err := h.client.Reports(h.ctx, "acme", l.handle)
	require.NoError(t, err)
	require.NoError(t, h.client.SendOrder(h.ctx, o))
	h.waitReport(l, o)
	require.Equal(t, 1, l.failures)
	stop()
	stop() // idempotent

	again := h.collect("acme")
	o2 := order("2026-11-23", ukEquity, pb.Side_SIDE_BUY, "1.0000")
	h.publishPrices("2026-11-23", map[domain.ISIN]string{ukEquity: "1.000000"})
	require.NoError(t, h.client.SendOrder(h.ctx, o2))
	h.waitReport(again, o2)
	require.Equal(t, map[string]int{"X-" + o2.ClOrdId: 1}, again.deliveriesOf(), "the acknowledged report came back")
}

// Invalid orders are refused by the client before sending, and terminated
// (never executed) by the custodian when sent anyway; the custodian goes on
// with the next order.
func TestInvalidOrdersRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000", globalBond: "1.000000"})
	h.publishPrices("2026-11-28", map[domain.ISIN]string{globalEquity: "2.000000"})

	good := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")
	cases := []struct {
		name    string
		o       *pb.CustodianOrder
		subject string // default: the order's asset's
	}{
		{"client order id", func() *pb.CustodianOrder { o := proto.CloneOf(good); o.ClOrdId = "2026-11-24-GB00BN7Q2L69"; return o }(), ""},
		{"unknown asset", order("2026-11-23", "GB0002634946", pb.Side_SIDE_BUY, "1.0000"), custodian.OrderSubject(globalEquity)},
		{"too many places", order("2026-11-23", globalBond, pb.Side_SIDE_BUY, "1.0001"), ""},
		{"zero units", order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "0"), ""},
		{"negative units", order("2026-11-23", globalEquity, pb.Side_SIDE_SELL, "-1.0000"), ""},
		{"no side", order("2026-11-23", globalEquity, pb.Side_SIDE_UNSPECIFIED, "1.0000"), ""},
		{"a Saturday", order("2026-11-28", globalEquity, pb.Side_SIDE_BUY, "1.0000"), ""},
		{"wrong subject", good, custodian.OrderSubject(globalBond)},
	}
	rejected := 0
	for _, c := range cases {
		if c.name != "a Saturday" && c.name != "wrong subject" {
			require.ErrorIs(t, h.client.SendOrder(h.ctx, c.o), custodian.ErrInvalidOrder, c.name)
		}
		data, err := proto.Marshal(c.o)
		require.NoError(t, err)
		subject := c.subject
		if subject == "" {
			subject = custodian.OrderSubject(domain.ISIN(c.o.Asset))
		}
		_, err = h.js.PublishMsg(h.ctx, &nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID("bad-"+c.name))
		require.NoError(t, err, c.name)
		rejected++
	}
	_, err := h.js.Publish(h.ctx, custodian.OrderSubject(globalEquity), []byte("\xff\xff not an order"))
	require.NoError(t, err)
	rejected++

	require.NoError(t, h.client.SendOrder(h.ctx, good))
	h.waitReport(reports, good)
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if n := sim.Stats().Rejected; n != int64(rejected) {
			return fmt.Errorf("rejected %d, want %d", n, rejected)
		}
		return nil
	})
	require.Equal(t, int64(1), sim.Stats().Executions)
}

// Validate reports every field out of range at once.
func TestConfigValidate(t *testing.T) {
	c := Config{
		ConsumerName: "a.b", Replicas: 7, OrderAckWait: -time.Second, RetryInterval: time.Second,
		RetryIntervalMax: time.Millisecond,
		Faults: Faults{DropProbability: 1.5, DuplicateProbability: -0.1, DelayMax: time.Hour,
			ReorderWindow: 5000, OutageDuration: -1, OutageOrders: -1},
	}
	c.EnsureDefaults()
	err := c.Validate()
	require.ErrorIs(t, err, custodian.ErrInvalidConfig)
	for _, field := range []string{"Dir", "ConsumerName", "Replicas", "OrderAckWait", "RetryIntervalMax",
		"DropProbability", "DuplicateProbability", "DelayMax", "ReorderWindow", "OutageDuration", "OutageOrders"} {
		require.True(t, strings.Contains(err.Error(), field))
	}
	ok := Config{Dir: t.TempDir()}
	require.NoError(t, ok.EnsureDefaults().Validate())
	require.Equal(t, ConsumerDefault, ok.ConsumerName)
}
