package actors_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// advance moves the world's clock on by d.
func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clock = w.clock.Add(d)
}

func cancelOrder(key, orderID string) *pb.PotRequest {
	return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_CancelOrder{CancelOrder: &pb.CancelOrder{OrderId: orderID}}}
}

// TestExpiredKeyIsRefusedNotApplied: a key used more than a week ago is
// refused as too old, both while the pot still remembers it and once it
// has forgotten it (the history read model knows it), and nothing is
// applied twice.
func TestExpiredKeyIsRefusedNotApplied(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M-keys"
	w.must(m, openPot("k-open", ""))
	w.must(m, contribute("k1", "100.00"))
	w.advance(domain.RequestRetention + time.Hour)
	p := w.mustProblem(m, contribute("k1", "100.00"))
	assert.Equal(t, problem.IdempotencyKeyExpired, p.Code, "a key the pot remembers, past its window")
	w.must(m, contribute("k2", "1.00")) // the pot forgets k-open and k1
	require.NotZero(t, w.journalPot(m).ForgottenThrough, "keys forgotten")
	p = w.mustProblem(m, contribute("k1", "100.00"))
	assert.Equal(t, problem.IdempotencyKeyExpired, p.Code, "a key the pot forgot")
	p = w.mustProblem(m, openPot("k-open", ""))
	assert.Equal(t, problem.IdempotencyKeyExpired, p.Code, "the opening key the pot forgot")
	assert.Equal(t, "101.00", w.journalPot(m).Cash.Available.String(), "cash: each contribution once")
}

// TestCommandsQueuedBehindTheOneThatForgetsKeys: the commands queued in a
// pot's mailbox behind the one whose decision forgets keys are answered at
// once. They wait for the history to know the keys forgotten, which were
// recorded (durably) a week before, not for the forgetting event itself,
// which is not durable until the mailbox run that decides them appends it.
func TestCommandsQueuedBehindTheOneThatForgetsKeys(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M-queued"
	w.must(m, openPot("k-open", ""))
	w.must(m, contribute("k1", "1.00"))
	w.advance(domain.RequestRetention + time.Hour)
	const calls = 32
	errs := make([]error, calls)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			resp, err := w.call(m, contribute(fmt.Sprintf("q-%d", i), "1.00"))
			if p := resp.GetProblem(); err == nil && p != nil {
				err = fmt.Errorf("problem %s: %s", p.Code, p.Detail)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		assert.NoError(t, err, "contribution %d of %d sent at once", i, calls)
	}
	assert.Less(t, took, 2*time.Second, "time for %d contributions sent at once, the first forgetting keys", calls)
	assert.Equal(t, "33.00", w.journalPot(m).Cash.Available.String(), "cash: the first contribution and the %d", calls)
}

// TestRetiredOrderIsReadFromTheHistory: an order the pot has retired (a
// cancelled buy, once the key that cancelled it is past its window) is
// still read, listed and cancelled again, from the history read model, and
// the pot that retired it recovers from the journal to the same state.
func TestRetiredOrderIsReadFromTheHistory(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M-retired"
	w.must(m, openPot("k-open", ""))
	w.must(m, contribute("k-c", "100.00"))
	placed := w.must(m, buy("k-buy", "GB00BD8R3K42", "10.00")).GetOrder()
	require.NotNil(t, placed)
	w.must(m, cancelOrder("k-cancel", placed.Id))
	w.advance(domain.RequestRetention + time.Hour)
	w.must(m, contribute("k-c2", "1.00"))
	recovered := w.journalPot(m)
	require.NotContains(t, recovered.Orders, placed.Id, "the cancelled order is retired")

	got := w.must(m, &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: placed.Id}}}).GetOrder()
	require.NotNil(t, got)
	assert.Equal(t, "cancelled", got.Status)
	assert.Equal(t, placed.Trades[0].Id, got.Trades[0].Id)
	list := w.must(m, &pb.PotRequest{Command: &pb.PotRequest_ListOrders{ListOrders: &pb.ListOrders{}}}).GetOrders()
	require.Len(t, list.Orders, 1)
	assert.Equal(t, placed.Id, list.Orders[0].Id)
	// A page serves the view the history rendered when the order closed:
	// the same JSON as the order's view made now.
	assert.Equal(t, "cancelled", list.Orders[0].Status)
	assert.Equal(t, string(gateway.AppendOrderJSON(nil, got)), string(list.Orders[0].Rendered))
	for status, n := range map[string]int{"cancelled": 1, "CANCELLED": 1, "settled": 0} {
		page := w.must(m, &pb.PotRequest{Command: &pb.PotRequest_ListOrders{ListOrders: &pb.ListOrders{Status: status}}}).GetOrders()
		assert.Len(t, page.Orders, n, "orders of status %s", status)
	}
	againResp := w.must(m, cancelOrder("k-cancel-2", placed.Id))
	again := againResp.GetOrder()
	require.NotNil(t, again, "cancelling a cancelled, retired order answers it again")
	assert.Equal(t, "cancelled", again.Status)
	assert.False(t, againResp.Replayed, "a new key's first answer")
	repeat := w.must(m, cancelOrder("k-cancel-2", placed.Id))
	require.NotNil(t, repeat.GetOrder())
	assert.Equal(t, placed.Id, repeat.GetOrder().Id)
	assert.True(t, repeat.Replayed, "the same key again is a replay, though the order is retired")
	p := w.mustProblem(m, &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: m + "-999"}}})
	assert.Equal(t, problem.OrderNotFound, p.Code, "an id never handed out")

	st := w.must(m, &pb.PotRequest{Command: &pb.PotRequest_GetStatement{GetStatement: &pb.GetStatement{Limit: 1}}}).GetStatement()
	require.Len(t, st.Entries, 1)
	assert.NotEmpty(t, st.NextAfter, "a page of one of two contributions")
	st = w.must(m, &pb.PotRequest{Command: &pb.PotRequest_GetStatement{GetStatement: &pb.GetStatement{After: st.NextAfter}}}).GetStatement()
	require.Len(t, st.Entries, 1)
	assert.Equal(t, "101.00", st.Entries[0].BalanceAfter)
	assert.Empty(t, st.NextAfter)

	// The pot as it stands (via GetPot's version) equals its replay.
	view := w.must(m, getPot()).GetPot()
	recovered = w.journalPot(m)
	assert.Equal(t, recovered.Version, view.Version)
	assert.Equal(t, recovered.Cash.Available.String(), view.Cash.Available)
}
