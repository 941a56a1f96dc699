package actors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

func nopLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestPotGrainServesAMember proves the vertical slice below the gateway: a
// pot grain on a cluster member, called from a client node, opens, takes a
// contribution invested by its profile and a buy, answers a repeat with the
// original result and nothing new, and everything it acknowledged is in the
// journal.
func TestPotGrainServesAMember(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M000001"
	opened := w.must(m, openPot("k-open", "balanced"))
	if opened.GetPot().GetRiskProfile() != "balanced" {
		t.Fatalf("open answered %v", opened)
	}
	mv := w.must(m, contribute("k-c1", "1000.00")).GetMovement()
	if mv == nil || len(mv.Orders) != 3 || mv.Amount != "1000.00" {
		t.Fatalf("contribution answered %v, want a movement with 3 investing buys", mv)
	}
	order := w.must(m, buy("k-b1", "GB00BD8R3K42", "20.00")).GetOrder()
	if order.GetStatus() != "accepted" || order.GetDealingDate() != "2026-11-23" {
		t.Fatalf("buy answered %v", order)
	}
	pot := w.must(m, getPot()).GetPot()
	if pot.Cash.Available != "0.00" || pot.Cash.Reserved != "1000.00" {
		t.Fatalf("pot cash %v, want 0.00 available and 1000.00 reserved", pot.Cash)
	}

	// A repeat: the same answer, nothing appended.
	before := pot.Version
	again := w.must(m, contribute("k-c1", "1000.00"))
	if !again.Replayed || again.GetMovement().GetId() != mv.Id {
		t.Fatalf("repeat answered %v, want a replay of %s", again, mv.Id)
	}
	// The same key with another body is refused.
	if p := w.mustProblem(m, contribute("k-c1", "999.00")); p.Code != actors.CodeIdempotencyConflict {
		t.Fatalf("same key, other body: %v", p)
	}
	if p := w.mustProblem(m, buy("k-b2", "GB00BD8R3K42", "0.01")); p.Code != actors.CodeInsufficientFunds {
		t.Fatalf("buy without cash: %v", p)
	}
	if v := w.must(m, getPot()).GetPot().Version; v != before {
		t.Fatalf("version moved from %d to %d without an accepted command", before, v)
	}

	// The journal alone gives the same pot.
	replayed := w.journalPot(m)
	if replayed.Version != before || !replayed.Cash.Reserved.Equal(domain.MustMoney("1000.00")) {
		t.Fatalf("journal replays to version %d with %+v", replayed.Version, replayed.Cash)
	}
	if p := w.mustProblem("M-nobody", getPot()); p.Code != actors.CodePotNotFound {
		t.Fatalf("pot of a stranger: %v", p)
	}
}

func (w *world) mustProblem(member string, req *pb.PotRequest) *pb.Problem {
	w.t.Helper()
	resp, err := w.call(member, req)
	if err != nil {
		w.t.Fatalf("%s %T: %v", member, req.Command, err)
	}
	if resp.GetProblem() == nil {
		w.t.Fatalf("%s %T: answered %v, want a problem", member, req.Command, resp)
	}
	return resp.GetProblem()
}

// TestPotGrainBatchesConcurrentRequests proves a busy pot appends what its
// mailbox holds in few synced writes, and still answers every request only
// with what is durable: after 200 concurrent contributions the journal holds
// each exactly once and the pot adds them up.
func TestPotGrainBatchesConcurrentRequests(t *testing.T) {
	w, metrics := newMeteredWorld(t, worldOptions{})
	const m = "M000002"
	w.must(m, openPot("open", ""))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := w.call(m, contribute(fmt.Sprintf("c-%d", i), "1.00"))
			if err == nil && resp.GetProblem() != nil {
				err = fmt.Errorf("problem %v", resp.GetProblem())
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pot := w.must(m, getPot()).GetPot()
	if pot.Cash.Available != "200.00" {
		t.Fatalf("available %s after %d contributions of 1.00", pot.Cash.Available, n)
	}
	events, err := w.journal.Read(context.Background(), actors.PotStream(m), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2+2*n { // open + key, and contribution + key each
		t.Fatalf("journal has %d events, want %d", len(events), 2+2*n)
	}
	appends := histogramCount(t, metrics.BatchEvents)
	t.Logf("%d contributions in %d appends", n, appends)
	if appends >= n {
		t.Fatalf("%d appends for %d concurrent requests: the pot did not batch", appends, n)
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestPotGrainDoubleActivationNeverForks forces a second activation of one
// pot beside the one the cluster placed, and sends requests to both at
// once. The journal's expected version lets only one writer through at a
// time; the loser answers "unavailable" and stops. Every acknowledged
// request is in the journal exactly once, none that failed is, and the
// history is one line.
func TestPotGrainDoubleActivationNeverForks(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M000003"
	w.must(m, openPot("open", ""))

	rogue := w.spawnRogue(m)
	// The rogue activation recovers the same state (a query waits for its
	// recovery: it must not read the journal after the next contribution);
	// a contribution through the placed one moves the journal on, so the
	// rogue's next append must conflict.
	if v := rogue.call(t, getPot()).GetVersion(); v != 2 {
		t.Fatalf("rogue recovered version %d, want 2", v)
	}
	w.must(m, contribute("first", "5.00"))
	resp := rogue.call(t, contribute("stale", "7.00"))
	if p := resp.GetProblem(); p == nil || p.Code != actors.CodeUnavailable {
		t.Fatalf("stale activation answered %v, want unavailable", resp)
	}

	// Now many at once through both (the rogue restarts once dead).
	acked, failed := map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 60 {
		key := fmt.Sprintf("k-%d", i)
		wg.Go(func() {
			var resp *pb.PotResponse
			var err error
			if i%2 == 0 {
				resp, err = w.call(m, contribute(key, "1.00"))
			} else {
				resp = w.spawnRogue(m).call(t, contribute(key, "1.00"))
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil && resp.GetProblem() == nil {
				acked[key] = true
			} else {
				failed[key] = true
			}
		})
	}
	wg.Wait()
	inJournal := map[string]int{}
	events, err := w.journal.Read(context.Background(), actors.PotStream(m), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if e.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d: the history is not one line", i, e.Version)
		}
		de, err := codec.DecodePotEvent(e.Type, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := de.(domain.RequestRecorded); ok {
			inJournal[r.Record.Key]++
		}
	}
	for key := range acked {
		if inJournal[key] != 1 {
			t.Fatalf("acknowledged %s is in the journal %d times", key, inJournal[key])
		}
	}
	for key := range failed {
		if inJournal[key] != 0 {
			t.Fatalf("failed %s is in the journal", key)
		}
	}
	if inJournal["stale"] != 0 {
		t.Fatalf("the stale activation's request reached the journal")
	}
	t.Logf("%d acknowledged, %d failed (the loser's)", len(acked), len(failed))
	if len(acked) == 0 || len(failed) == 0 {
		t.Fatalf("acknowledged %d, failed %d: the test did not make the activations race", len(acked), len(failed))
	}
	// The pot, recovered from the journal, has exactly the acknowledged money.
	want := domain.MustMoney("5.00")
	for range acked {
		want = want.Add(domain.MustMoney("1.00"))
	}
	if got := w.journalPot(m).Cash.Available; !got.Equal(want) {
		t.Fatalf("journal pot has %s available, acknowledged %s", got, want)
	}
}

// rogue is an activation of a pot started by hand on the first member,
// outside the cluster's placement.
type rogue struct {
	system *actor.ActorSystem
	pid    *actor.PID
}

func (w *world) spawnRogue(member string) rogue {
	w.t.Helper()
	node := w.members[0]
	system := node.Cluster().ActorSystem
	kind := actors.NewPotKind(w.potDeps())(0)
	// As protoactor's placement does: the identity goes into the actor's
	// context, and the kind's middleware sends ClusterInit on start.
	props := protocluster.WithClusterIdentity(kind.Props, &protocluster.ClusterIdentity{Identity: member, Kind: actors.PotKind})
	return rogue{system: system, pid: system.Root.Spawn(props)}
}

func (r rogue) call(t *testing.T, req *pb.PotRequest) *pb.PotResponse {
	t.Helper()
	res, err := r.system.Root.RequestFuture(r.pid, &pb.PotCall{CallId: 7, Request: req}, 5*time.Second).Result()
	if err != nil {
		// A rogue that stopped before answering (it lost a race): treated
		// as a failure, which is what a caller would see.
		return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: actors.CodeUnavailable, Detail: err.Error()}}}
	}
	resp, ok := res.(*pb.PotResponse)
	if !ok {
		t.Fatalf("rogue answered %T", res)
	}
	if resp.CallId != 7 {
		t.Fatalf("rogue answered call %d, want the call's id 7", resp.CallId)
	}
	return resp
}

// TestPotGrainRecoversFromSnapshotAfterPassivation proves an idle pot
// passivates, and its next request recovers it from its snapshot plus the
// events after it, to the same state.
func TestPotGrainRecoversFromSnapshotAfterPassivation(t *testing.T) {
	w, metrics := newMeteredWorld(t, worldOptions{idle: 200 * time.Millisecond, potConfig: actors.PotConfig{SnapshotEvery: 5}})
	const m = "M000004"
	w.must(m, openPot("open", "cautious"))
	for i := range 6 {
		w.must(m, contribute(fmt.Sprintf("c-%d", i), "10.00"))
	}
	before := w.must(m, getPot()).GetPot()
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, found, err := w.journal.LoadSnapshot(context.Background(), actors.PotStream(m)); err != nil || !found {
			return fmt.Errorf("no snapshot yet (err %v)", err)
		}
		return nil
	})
	activations := counterValue(t, metrics.Activations)
	waitPassivated(t, metrics)
	after := w.must(m, getPot()).GetPot()
	if got := counterValue(t, metrics.Activations); got != activations+1 {
		t.Fatalf("activations went from %v to %v, want one more", activations, got)
	}
	if !proto.Equal(before, after) {
		t.Fatalf("recovered pot differs:\n%v\nvs\n%v", before, after)
	}
}

// TestPotSnapshotsWeighNoMoreThanTheirEvents proves the pot's snapshot
// policy is wired through appends and recoveries: with a snapshot allowed
// after every event, after every command the events after the latest
// snapshot weigh less than it plus one command's (snapshots wait for their
// weight in events, and come once it is there), across a passivation; and
// far fewer snapshots are taken than commands.
func TestPotSnapshotsWeighNoMoreThanTheirEvents(t *testing.T) {
	w, metrics := newMeteredWorld(t, worldOptions{idle: 200 * time.Millisecond, potConfig: actors.PotConfig{SnapshotEvery: 1}})
	const m = "M000005"
	stream := actors.PotStream(m)
	// bounded waits until the latest snapshot is past minVersion and the
	// events after it weigh less than it plus one command's events (the
	// snapshot is saved in the background, after the reply), and returns
	// its version and the number of events after it.
	bounded := func(minVersion uint64) (at uint64, eventsAfter int) {
		t.Helper()
		testkit.CheckFor(t, 3*time.Second, 5*time.Millisecond, func() error {
			ctx := context.Background()
			snap, found, err := w.journal.LoadSnapshot(ctx, stream)
			if err != nil || !found {
				return fmt.Errorf("no snapshot (err %v)", err)
			}
			if snap.Version <= minVersion {
				return fmt.Errorf("snapshot at %d, want past %d", snap.Version, minVersion)
			}
			events, err := w.journal.Read(ctx, stream, snap.Version+1, 100_000)
			if err != nil {
				return err
			}
			after, last := 0, 0
			for _, e := range events {
				after += len(e.Data)
				last = len(e.Data)
			}
			if after >= len(snap.Data)+2*last {
				return fmt.Errorf("%d bytes of %d events after the snapshot at %d, which weighs %d", after, len(events), snap.Version, len(snap.Data))
			}
			at, eventsAfter = snap.Version, len(events)
			return nil
		})
		return at, eventsAfter
	}
	contributeN := func(from, n int) (at uint64, eventsAfter int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			w.must(m, contribute(fmt.Sprintf("c-%d", i), "10.00"))
			at, eventsAfter = bounded(0)
		}
		return at, eventsAfter
	}
	w.must(m, openPot("open", "cautious"))
	first, _ := contributeN(0, 40)
	waitPassivated(t, metrics)
	// The recovered pot counts the events it replayed after its snapshot.
	const commands = 100
	contributeN(40, commands-40)
	bounded(first)
	var hist dto.Metric
	if err := metrics.SnapshotBytes.Write(&hist); err != nil {
		t.Fatal(err)
	}
	if n := hist.GetHistogram().GetSampleCount(); n == 0 || n > commands/5 {
		t.Fatalf("%d snapshots for %d commands, want 1 to %d", n, commands, commands/5)
	}
	t.Logf("%d snapshots for %d commands", hist.GetHistogram().GetSampleCount(), commands)
}

// newMeteredWorld is newWorld with the pots' metrics on a registry of
// their own.
func newMeteredWorld(t *testing.T, opt worldOptions) (*world, *actors.Metrics) {
	t.Helper()
	metrics := actors.NewMetrics(prometheus.NewRegistry())
	w := newWorld(t, opt)
	w.setMetrics(metrics)
	return w, metrics
}

// waitPassivated waits until no pot is active (they passivate once idle).
func waitPassivated(t *testing.T, metrics *actors.Metrics) {
	t.Helper()
	testkit.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if g := gaugeValue(t, metrics.ActivePots); g != 0 {
			return fmt.Errorf("%v pots still active", g)
		}
		return nil
	})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// panickyMarket panics when a pot asks it anything.
type panickyMarket struct{}

func (panickyMarket) Prices() map[domain.ISIN]domain.PricePoint { panic("market on fire") }
func (panickyMarket) OpenFrom() domain.Date                     { panic("market on fire") }
func (panickyMarket) Hold() (domain.Date, func())               { return domain.Date{}, func() {} }

// TestPotGrainStopsWhenItPanics proves a pot that panics (a bug, a broken
// assertion) answers "unavailable" and stops, instead of being restarted by
// protoactor as a fresh actor that never sees its ClusterInit again (which
// would panic on every message, for ever).
func TestPotGrainStopsWhenItPanics(t *testing.T) {
	w := newWorld(t, worldOptions{})
	const m = "M000005"
	w.must(m, openPot("open", ""))
	deps := w.potDeps()
	deps.Market = panickyMarket{}
	node := w.members[0]
	system := node.Cluster().ActorSystem
	props := protocluster.WithClusterIdentity(actors.NewPotKind(deps)(0).Props,
		&protocluster.ClusterIdentity{Identity: m, Kind: actors.PotKind})
	r := rogue{system: system, pid: system.Root.Spawn(props)}
	stopped := make(chan struct{})
	watcher := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *actor.Started:
			c.Watch(r.pid)
		case *actor.Terminated:
			close(stopped)
		}
	}))
	defer system.Root.Stop(watcher)
	resp := r.call(t, contribute("c", "1.00"))
	if p := resp.GetProblem(); p == nil || p.Code != actors.CodeUnavailable || p.Detail == "future: timeout" {
		t.Fatalf("panicking pot answered %v, want an immediate unavailable", resp)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the panicking activation did not stop")
	}
	// The placed activation was never touched and still serves.
	w.must(m, contribute("c2", "1.00"))
}
