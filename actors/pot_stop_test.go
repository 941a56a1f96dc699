package actors_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// A pot that stops for any reason while a batch waits for its append must
// answer every caller of the batch (success once written, or "unavailable"
// and not written), release the batch's market holds, and lose nothing it
// acknowledged. These tests hold a pot's append at the journal, queue
// commands behind it, and stop the pot while they wait.

// stopWorld is a one-member world whose journal can hold a pot's appends.
type stopWorld struct {
	*world
	gate *gatedJournal
}

func newStopWorld(t *testing.T, opt worldOptions) stopWorld {
	gate := &gatedJournal{Journal: memJournal(t), blocked: map[string]chan struct{}{}, waiting: make(chan string, 8)}
	opt.journal = gate
	w := newWorld(t, opt)
	// Registered after the world's, so it runs first: a stopping pot must
	// not wait on a held append.
	t.Cleanup(gate.releaseAll)
	return stopWorld{world: w, gate: gate}
}

// placed is the PID of member's activation, as the cluster's placement
// holds it (the pot must be active).
func (w stopWorld) placed(member string) *actor.PID {
	w.t.Helper()
	pid := w.members[0].Cluster().Get(member, actors.PotKind)
	require.NotNil(w.t, pid, "no activation of %s", member)
	return pid
}

// send queues a contribution in the mailbox of pid at once (a local send:
// it is in the mailbox when send returns), so the test orders it against
// the poison pill.
func (w stopWorld) send(pid *actor.PID, key string) actor.Future {
	call := &pb.PotCall{CallId: stopCalls.Add(1), Request: contribute(key, "1.00")}
	return w.members[0].Cluster().ActorSystem.Root.RequestFuture(pid, call, potStopCallTimeout)
}

var stopCalls atomic.Uint64

// potStopCallTimeout is the callers' timeout: an answer must come well
// before it (within potStopAnswerWithin of the append's release).
const (
	potStopCallTimeout  = 5 * time.Second
	potStopAnswerWithin = 2 * time.Second
)

// answers waits for every caller's answer and checks the promise: each got
// one soon, success or "unavailable", and the journal holds exactly the
// successes; the market's holds are all released, so a cut-off completes.
// It returns the keys answered "unavailable".
func (w stopWorld) answers(member string, futures map[string]actor.Future) (failed []string) {
	t := w.t.(*testing.T)
	t.Helper()
	start := time.Now()
	ok := map[string]bool{}
	for key, f := range futures {
		res, err := f.Result()
		require.NoError(t, err, "the caller of %s got no answer", key)
		resp, isResp := res.(*pb.PotResponse)
		require.True(t, isResp, "%s answered %T", key, res)
		switch p := resp.GetProblem(); {
		case p == nil:
			ok[key] = true
		case p.Code == problem.Unavailable:
			failed = append(failed, key)
		default:
			t.Fatalf("%s answered %s: %s; want success or unavailable", key, p.Code, p.Detail)
		}
	}
	require.Less(t, time.Since(start), potStopAnswerWithin, "the answers came late")

	events, err := w.journal.Read(context.Background(), actors.PotStream(member), 1, 0)
	require.NoError(t, err)
	inJournal := map[string]int{}
	for _, e := range events {
		de, err := codec.DecodePotEvent(e.Type, e.Data)
		require.NoError(t, err)
		if r, isRecord := de.(domain.RequestRecorded); isRecord {
			inJournal[r.Record.Key]++
		}
	}
	for key := range futures {
		want := 0
		if ok[key] {
			want = 1
		}
		require.Equal(t, want, inJournal[key], "%s (answered success: %v) in the journal", key, ok[key])
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.NoError(t, w.market.CutOff(ctx, domain.MustDate("2026-11-24")), "a market hold was never released")
	return failed
}

// TestPotPoisonedWithABatchWaiting stops a pot from outside, as the
// cluster's placement does when the pot's owner moves, while its mailbox
// run waits for an append and two more commands wait behind it: the pill
// comes before the pot's own flushWaiting, so their batch is never
// appended by this activation. Every caller is answered, the batch's holds
// are released, and the retries (the same keys) succeed once each.
func TestPotPoisonedWithABatchWaiting(t *testing.T) {
	w := newStopWorld(t, worldOptions{})
	const m = "M500001"
	w.must(m, openPot("open", ""))
	pid := w.placed(m)

	w.gate.block(actors.PotStream(m))
	futures := map[string]actor.Future{"first": w.send(pid, "first")}
	<-w.gate.waiting // the pot's run waits in the first append
	futures["second"] = w.send(pid, "second")
	futures["third"] = w.send(pid, "third")
	w.members[0].Cluster().ActorSystem.Root.Poison(pid)
	w.gate.release(actors.PotStream(m))

	failed := w.answers(m, futures)
	require.NotEmpty(t, failed, "the test did not stop the pot with a batch waiting")
	for _, key := range failed {
		require.False(t, w.must(m, contribute(key, "1.00")).GetReplayed(), "the retry of %s was a replay", key)
	}
	require.Equal(t, "3.00", w.must(m, getPot()).GetPot().GetCash().GetAvailable())
}

// countdownMarket panics at the armed-th question about prices.
type countdownMarket struct {
	*actors.MarketState
	left atomic.Int32
}

func (m *countdownMarket) Prices() map[domain.ISIN]domain.PricePoint {
	if m.left.Add(-1) == 0 {
		panic("test: the market panics")
	}
	return m.MarketState.Prices()
}

// TestPotPanicsWithABatchWaiting: a pot panics deciding a command while
// the batch decided before it waits for its append. Every caller is
// answered and every hold released.
func TestPotPanicsWithABatchWaiting(t *testing.T) {
	market := &countdownMarket{MarketState: actors.NewMarketState()}
	w := newStopWorld(t, worldOptions{market: market})
	w.market = market.MarketState
	const m = "M500002"
	w.must(m, openPot("open", ""))
	pid := w.placed(m)

	w.gate.block(actors.PotStream(m))
	futures := map[string]actor.Future{"first": w.send(pid, "first")}
	<-w.gate.waiting
	futures["second"] = w.send(pid, "second")
	futures["third"] = w.send(pid, "third") // its decision panics, with second's batch waiting
	market.left.Store(2)
	w.gate.release(actors.PotStream(m))

	failed := w.answers(m, futures)
	require.Contains(t, failed, "third")
	require.Equal(t, fmt.Sprint(3-len(failed))+".00", w.must(m, getPot()).GetPot().GetCash().GetAvailable())
}

// TestPotPassivationWaitsForItsBatches: a pot whose idle timer fires while
// its batches wait for a slow append does not passivate until they are
// written and answered.
func TestPotPassivationWaitsForItsBatches(t *testing.T) {
	w := newStopWorld(t, worldOptions{idle: 50 * time.Millisecond})
	const m = "M500003"
	w.must(m, openPot("open", ""))
	pid := w.placed(m)

	w.gate.block(actors.PotStream(m))
	futures := map[string]actor.Future{"first": w.send(pid, "first")}
	<-w.gate.waiting
	futures["second"] = w.send(pid, "second")
	time.Sleep(200 * time.Millisecond) // the idle timer fires while the append waits
	w.gate.release(actors.PotStream(m))

	require.Empty(t, w.answers(m, futures))
}

// TestPotAnswersRequestsBehindItsPill: protoactor drops the messages still
// in a stopped actor's mailbox. A request queued behind the pill that stops
// a pot is answered "unavailable" and not written, instead of leaving its
// caller to wait for its timeout.
func TestPotAnswersRequestsBehindItsPill(t *testing.T) {
	w := newStopWorld(t, worldOptions{})
	const m = "M500004"
	w.must(m, openPot("open", ""))
	pid := w.placed(m)

	w.gate.block(actors.PotStream(m))
	futures := map[string]actor.Future{"first": w.send(pid, "first")}
	<-w.gate.waiting
	w.members[0].Cluster().ActorSystem.Root.Poison(pid)
	futures["behind"] = w.send(pid, "behind")
	w.gate.release(actors.PotStream(m))

	require.Equal(t, []string{"behind"}, w.answers(m, futures))
	require.False(t, w.must(m, contribute("behind", "1.00")).GetReplayed(), "the retry was a replay")
}
