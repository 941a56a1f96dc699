package simulator

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// Each fault test runs a few days of orders through a faulty custodian the
// way ACME's cycle would (send, then resend what has no report), and checks
// the end state: exactly one execution per order, one distinct report per
// order at ACME equal to the custodian's record, and holdings as computed
// from the orders and prices.

// faultRun is the outcome of runWithFaults.
type faultRun struct {
	h      *harness
	sim    *Simulator
	log    *reportLog
	orders []*pb.CustodianOrder
	rounds int
}

// runWithFaults sends n orders through a simulator with faults f, resending
// every resendEvery, and checks the end state.
func runWithFaults(t *testing.T, n int, f Faults, resendEvery time.Duration) faultRun {
	t.Helper()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), f)
	t.Logf("seed %d", sim.Seed())
	l := h.collect("acme")
	orders, prices := dayOfOrders(n)
	h.publishAll(prices)
	rounds := h.sendUntilReported(l, orders, resendEvery)
	h.checkExactlyOnce(sim, l, orders)
	h.checkHoldings(orders, prices, "2026-11-24")
	h.checkHoldings(orders, prices, "2026-12-31")
	return faultRun{h: h, sim: sim, log: l, orders: orders, rounds: rounds}
}

// Dropped reports are recovered by resends: the custodian answers a
// resent order with the same report, and the drop fault decides again.
func TestFaultDropRecoveredByResend(t *testing.T) {
	t.Parallel()
	r := runWithFaults(t, 12, Faults{Seed: 42, DropProbability: 0.5}, 150*time.Millisecond)
	st := r.sim.Stats()
	require.True(t, st.ReportsDropped > 0)
	require.True(t, st.Repeats > 0, "resends reached the custodian")
	require.True(t, r.rounds > 1)
	t.Logf("dropped %d, repeats %d, rounds %d", st.ReportsDropped, st.Repeats, r.rounds)
}

// Duplicated reports reach ACME twice, with the same execution id, and
// change nothing.
func TestFaultDuplicateReports(t *testing.T) {
	t.Parallel()
	r := runWithFaults(t, 8, Faults{Seed: 7, DuplicateProbability: 1}, 300*time.Millisecond)
	require.Equal(t, int64(8), r.sim.Stats().ReportsDuplicated)
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		for id, n := range r.log.deliveriesOf() {
			if n != 2 {
				return fmt.Errorf("%s delivered %d times, want 2", id, n)
			}
		}
		return nil
	})
}

// Delayed reports arrive late, some after ACME has resent their order (the
// repeat's report is deduplicated by the reports stream).
func TestFaultDelayedReports(t *testing.T) {
	t.Parallel()
	r := runWithFaults(t, 10, Faults{Seed: 3, DelayMax: 400 * time.Millisecond}, 200*time.Millisecond)
	require.True(t, r.sim.Stats().ReportsDelayed > 0)
}

// Reordered reports arrive in another order than the orders executed, and
// the end state is the same.
func TestFaultReorderedReports(t *testing.T) {
	t.Parallel()
	r := runWithFaults(t, 10, Faults{Seed: 11, ReorderWindow: 5, ReorderHoldMax: 200 * time.Millisecond}, 500*time.Millisecond)
	require.True(t, r.sim.Stats().ReportsReordered >= int64(10))
	order := make(map[string]int) // execution order of each client order id
	for i, x := range r.sim.Executions() {
		order[x.ClOrdId] = i
	}
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	inversions := 0
	for i := 1; i < len(r.log.deliveries); i++ {
		if order[r.log.deliveries[i].ClOrdId] < order[r.log.deliveries[i-1].ClOrdId] {
			inversions++
		}
	}
	require.True(t, inversions > 0, "reports arrived in execution order")
}

// During an outage orders wait in the stream; when it ends they execute.
func TestFaultOutageForADuration(t *testing.T) {
	t.Parallel()
	const outage = 700 * time.Millisecond
	h := newHarness(t)
	start := time.Now()
	sim := h.startSim(t.TempDir(), Faults{OutageDuration: outage})
	l := h.collect("acme")
	orders, prices := dayOfOrders(5)
	h.publishAll(prices)
	for _, o := range orders {
		require.NoError(t, h.client.SendOrder(h.ctx, o))
	}
	time.Sleep(outage / 2)
	if time.Since(start) < outage {
		require.Equal(t, int64(0), sim.Stats().OrdersReceived, "orders taken during the outage")
	}
	for _, o := range orders {
		h.waitReport(l, o)
	}
	require.True(t, time.Since(start) >= outage)
	h.checkExactlyOnce(sim, l, orders)
	h.checkHoldings(orders, prices, "2026-12-31")
}

// An outage of the first N order deliveries: each is put back and
// executes on a later delivery.
func TestFaultOutageOfFirstOrders(t *testing.T) {
	t.Parallel()
	r := runWithFaults(t, 6, Faults{OutageOrders: 4}, 300*time.Millisecond)
	st := r.sim.Stats()
	require.Equal(t, int64(4), st.OutageRefusals)
	require.True(t, st.OrdersReceived >= int64(6+4))
}

// Every fault at once, over five days of every test asset, twice with the
// same seed: the same end state, and the same fault decisions.
func TestFaultsAllTogether(t *testing.T) {
	t.Parallel()
	f := Faults{Seed: 2026, DropProbability: 0.3, DuplicateProbability: 0.3, DelayMax: 150 * time.Millisecond,
		ReorderWindow: 3, ReorderHoldMax: 100 * time.Millisecond, OutageOrders: 3}
	r := runWithFaults(t, 25, f, 250*time.Millisecond)
	st := r.sim.Stats()
	t.Logf("stats %+v, rounds %d", st, r.rounds)
	require.True(t, st.ReportsDropped > 0)
	require.True(t, st.ReportsDuplicated > 0)
	require.True(t, st.ReportsDelayed > 0)
	require.Equal(t, int64(3), st.OutageRefusals)
}

// The same seed gives the same fault decisions for the same orders.
func TestFaultsReproducible(t *testing.T) {
	t.Parallel()
	decisions := func() []string {
		h := newHarness(t)
		sim := h.startSim(t.TempDir(), Faults{Seed: 99, DropProbability: 0.5, DuplicateProbability: 0.5})
		orders, prices := dayOfOrders(10)
		h.publishAll(prices)
		var out []string
		for _, o := range orders {
			before := sim.Stats()
			require.NoError(t, h.client.SendOrder(h.ctx, o))
			testkit.CheckFor(t, waitMax, pollInterval, func() error {
				if st := sim.Stats(); st.Executions != before.Executions+1 || st.OrdersAcked != before.OrdersAcked+1 {
					return fmt.Errorf("%s not executed", o.ClOrdId)
				}
				return nil
			})
			after := sim.Stats()
			out = append(out, fmt.Sprintf("%s dropped=%d duplicated=%d", o.ClOrdId,
				after.ReportsDropped-before.ReportsDropped, after.ReportsDuplicated-before.ReportsDuplicated))
		}
		return out
	}
	first, second := decisions(), decisions()
	require.Equal(t, first, second)
}
