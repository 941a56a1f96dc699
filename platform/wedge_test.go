package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// TestLargestPotsDealADay: members at the largest amounts a request and a
// pot allow can never wedge a dealing day. A pot refuses a contribution
// that would take it past what a pot may hold (422 pot-limit); three pots
// at that limit make a day whose sums pass every single input's bound (once
// refused when the asset book read them, failing the day's cycle on every
// run), and the day deals, allocates and reconciles exactly.
func TestLargestPotsDealADay(t *testing.T) {
	w := startDealingWorldWith(t, simulator.Faults{}, actors.DealingConfig{ResendInterval: 200 * time.Millisecond, ExecutionWait: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range []string{"BIG01", "BIG02", "BIG03"} {
		w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: "balanced"}}})
		w.pot(m, &pb.PotRequest{IdempotencyKey: "max", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "1000000000000.00"}}})
		resp, err := w.node.Pots.Handle(ctx, m, &pb.PotRequest{IdempotencyKey: "more",
			Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "0.01"}}})
		require.NoError(t, err, "%s: a contribution past the pot's limit", m)
		require.Equal(t, problem.PotLimit, resp.GetProblem().GetCode(), "%s: a contribution past the pot's limit: problem code; %v", m, resp)
	}
	mon := domain.MustDate("2026-11-23")
	w.publishPrices(mon, func(a domain.Asset) string { return map[int32]string{4: "0.0100", 6: "0.010000"}[a.PriceDecimals] })
	s := w.runCycle(mon, true)
	require.Equal(t, int64(3), s.PotsAllocated, "the day of the largest pots: pots allocated; %v", s)
	require.NotEmpty(t, s.Orders, "the day of the largest pots: orders")
	r := w.reconcile("largest", true)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
}
