package actors_test

import (
	"context"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/history"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// world is a small platform for grain tests: a journal, members hosting pot
// grains and a client node that calls them, all real, in this process.
type world struct {
	t        testing.TB
	journal  persistence.Journal
	registry *cluster.InProcess
	members  []*cluster.Node
	client   *cluster.Node
	market   *actors.MarketState
	cal      *domain.Calendar
	cat      *domain.Catalogue
	deps     *actors.PotDeps
	now      func() time.Time
	// clock is the time the pots read; tests move it.
	mu    sync.Mutex
	clock time.Time
}

type worldOptions struct {
	members   int
	journal   persistence.Journal // default: Pebble in memory
	potConfig actors.PotConfig
	idle      time.Duration
	// market, when set, is the pots' market instead of world.market.
	market actors.Market
}

func newWorld(t testing.TB, opt worldOptions) *world {
	t.Helper()
	if opt.members == 0 {
		opt.members = 1
	}
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, registry: cluster.NewInProcess(2 * time.Second), market: actors.NewMarketState(),
		cal: cal, cat: domain.DefaultCatalogue(), clock: domain.MustDate("2026-11-23").At(9, 0, loc)}
	w.now = func() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.clock }
	w.journal = opt.journal
	if w.journal == nil {
		j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		w.journal = j
	}
	// The history renders closed orders as the platform's does
	// (platform.HistoryOptions), so that pages of old orders are served
	// from their rendered views here too.
	hist, err := history.Open(t.TempDir(), history.Options{Catalogue: w.cat,
		RenderClosedOrder: func(b []byte, o *domain.Order) []byte {
			return gateway.AppendOrderJSON(b, actors.ClosedOrderView(w.cat, o))
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hist.Close() })
	deps := &actors.PotDeps{Journal: w.journal, Catalogue: w.cat, Calendar: cal, Market: w.market, Now: w.now,
		Config: opt.potConfig, History: hist}
	if opt.market != nil {
		deps.Market = opt.market
	}
	logger, level := testkit.Logger(t)
	deps.Logger = logger
	w.deps = deps
	base := cluster.Config{ClusterName: "actors-test", Provider: cluster.ProviderInProcess, InProcess: w.registry,
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level, IdleTimeout: opt.idle}
	if testkit.Race {
		// protoactor's gossip races with itself when several nodes share a
		// process (see cluster's tests); membership comes from the provider.
		base.GossipInterval = time.Hour
		base.HeartbeatExpiration = 2 * time.Hour
	}
	member := base
	member.Kinds = []cluster.Kind{{Name: actors.PotKind, New: actors.NewPotKind(deps)}}
	w.members = make([]*cluster.Node, opt.members)
	errs := make([]error, opt.members)
	var wg sync.WaitGroup
	for i := range opt.members {
		wg.Go(func() { w.members[i], errs[i] = cluster.Start(member) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start member %d: %v", i, err)
		}
		t.Cleanup(w.members[i].Kill)
	}
	w.client, err = cluster.StartClient(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.client.WaitForMembers(ctx, opt.members); err != nil {
		t.Fatal(err)
	}
	return w
}

// call sends req to member's pot from the client node.
func (w *world) call(member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return actors.PotClient{Node: w.client}.Handle(ctx, member, req)
}

// must sends req and fails the test on a transport error or a problem.
func (w *world) must(member string, req *pb.PotRequest) *pb.PotResponse {
	w.t.Helper()
	resp, err := w.call(member, req)
	if err != nil {
		w.t.Fatalf("%s %T: %v", member, req.Command, err)
	}
	if p := resp.GetProblem(); p != nil {
		w.t.Fatalf("%s %T: problem %s: %s", member, req.Command, p.Code, p.Detail)
	}
	return resp
}

func openPot(key, profile string) *pb.PotRequest {
	return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: profile}}}
}

func contribute(key, amount string) *pb.PotRequest {
	return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: amount}}}
}

func buy(key, asset, amount string) *pb.PotRequest {
	return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{
		Type: pb.OrderType_ORDER_TYPE_BUY, Asset: asset, Amount: amount}}}
}

func getPot() *pb.PotRequest {
	return &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}
}

// journalPot replays a member's pot from the journal alone.
func (w *world) journalPot(member string) *domain.Pot {
	w.t.Helper()
	p, _, err := actors.RecoverPot(context.Background(), w.journal, member, nopLogger())
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// setMetrics makes the pots record into m (before any pot is activated).
func (w *world) setMetrics(m *actors.Metrics) { w.deps.Metrics = m }

// potDeps is a copy of the pots' dependencies, for activations started by
// hand.
func (w *world) potDeps() *actors.PotDeps {
	d := *w.deps
	return &d
}
