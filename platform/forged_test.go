package platform_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// An execution report that does not match the order ACME sent is refused:
// never allocated, kept for investigation, counted and shown as a break
// by reconciliation. The order goes on waiting for its matching report,
// and once that is recorded the day completes exactly and the refused
// report no longer breaks reconciliation; a report naming no order of
// ACME's stays a break.
func TestForgedExecutionReportIsRefused(t *testing.T) {
	// A custodian that executes but never answers, so that the forged
	// report is the only one until it is started again without faults.
	w := startDealingWorldWith(t, simulator.Faults{DropProbability: 1},
		actors.DealingConfig{ResendInterval: 100 * time.Millisecond, ExecutionWait: 400 * time.Millisecond})
	const m = "X0001"
	w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: "balanced"}}})
	w.pot(m, &pb.PotRequest{IdempotencyKey: "pay", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "100.00"}}})
	mon := domain.MustDate("2026-11-23")
	w.publishPrices(mon, func(a domain.Asset) string { return map[int32]string{4: "1.0000", 6: "1.000000"}[a.PriceDecimals] })
	w.setTime(mon, 12, 30)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{}, nil)
	requireCycleProblem(t, err, actors.CodeCustodianSilent)
	require.NotEmpty(t, s.Orders)
	order := s.Orders[0]

	// The forger knows the order (ClOrdID, asset, side, units) and reports
	// it executed at a penny; another report names no order at all.
	js, err := jetstream.New(w.nc)
	require.NoError(t, err)
	side := map[string]pb.Side{"buy": pb.Side_SIDE_BUY, "sell": pb.Side_SIDE_SELL}[order.Side]
	forged := &pb.ExecutionReport{ClOrdId: order.ClOrdId, OrderId: "forged-1", ExecutionId: "forged-1", Asset: order.Asset, Side: side,
		Units: order.Units, Price: "0.01", Cash: "0.01", DealingDate: mon.String(), SettlementDate: "2026-11-25"}
	stray := &pb.ExecutionReport{ClOrdId: "nothing", ExecutionId: "forged-2", Asset: "XX0000000000", Side: pb.Side_SIDE_BUY,
		Units: "1", Price: "1", Cash: "1.00", DealingDate: mon.String()}
	for _, r := range []*pb.ExecutionReport{forged, stray, forged} { // the first one twice
		msg, err := natsmsg.New(custodian.ReportSubject(domain.ISIN(r.Asset)), r)
		require.NoError(t, err)
		_, err = js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	refused := w.node.Metrics.ExecutionsRefused
	testkit.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := testutil.ToFloat64(refused); n != 2 {
			return fmt.Errorf("%v reports refused, want 2", n)
		}
		return nil
	})

	s, err = w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{}, nil)
	requireCycleProblem(t, err, actors.CodeCustodianMismatch)
	assert.True(t, s.GetProblem().GetResumable(), "a refused report leaves the order waiting")
	assert.Contains(t, s.GetProblem().GetDetail(), `"forged-1"`)
	assert.Contains(t, s.GetProblem().GetDetail(), `price "0.01", order 1`)
	assert.Zero(t, s.PotsAllocated, "nothing allocated from a refused report")

	r := w.reconcile("forged", true)
	kinds := map[string]int{}
	for _, b := range r.InternalBreaks {
		kinds[b.Kind]++
	}
	assert.Equal(t, map[string]int{"refused-execution": 2}, kinds, "breaks %v", r.InternalBreaks)

	// The custodian answers again: the matching report is recorded and the
	// day completes; the forged report is resolved, the stray one is not.
	w.restartCustodian(simulator.Faults{})
	testkit.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		s, err = w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{}, nil)
		return err
	})
	assert.Equal(t, actors.CycleComplete, s.Status)
	assert.EqualValues(t, 1, s.PotsAllocated)
	for _, o := range s.Orders {
		assert.NotEqual(t, "0.01", o.Price, "executed at the day's price")
	}
	r = w.reconcile("after", true)
	require.Len(t, r.InternalBreaks, 1, "breaks %v", r.InternalBreaks)
	assert.Equal(t, "refused-execution", r.InternalBreaks[0].Kind)
	assert.Contains(t, r.InternalBreaks[0].Detail, `"forged-2"`)
	assert.Empty(t, r.InternalBreaks[0].Asset, "an asset outside the catalogue is only quoted")
	assert.Empty(t, r.ExternalBreaks)
	assert.EqualValues(t, 2, testutil.ToFloat64(refused), "each report refused once")
}

func requireCycleProblem(t *testing.T, err error, code string) {
	t.Helper()
	var oe *actors.OperatorError
	require.True(t, errors.As(err, &oe), "cycle: %v, want %s", err, code)
	require.Equal(t, code, oe.Code, "cycle: %v", err)
}
