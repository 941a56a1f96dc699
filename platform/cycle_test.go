package platform_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// dealingWorld is one node with the whole dealing machinery: a Pebble
// journal, an embedded NATS server, the custodian simulator, and a clock
// the test moves.
type dealingWorld struct {
	t        *testing.T
	nc       *nats.Conn
	node     *platform.Node
	operator actors.Operator
	sim      *simulator.Simulator
	cal      *domain.Calendar
	cat      *domain.Catalogue

	// nodeCfg started node; restartNode starts it again.
	nodeCfg platform.NodeConfig
	// simCfg started sim; restartCustodian starts it again.
	simCfg simulator.Config

	mu    sync.Mutex
	clock time.Time
}

func startDealingWorld(t *testing.T, faults simulator.Faults) *dealingWorld {
	t.Helper()
	return startDealingWorldWith(t, faults, actors.DealingConfig{ResendInterval: 300 * time.Millisecond, ExecutionWait: 30 * time.Second})
}

// startDealingWorldWith starts a world whose dealing grains run with
// dealing.
func startDealingWorldWith(t *testing.T, faults simulator.Faults, dealing actors.DealingConfig) *dealingWorld {
	t.Helper()
	logger, level := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cal, err := platform.NewCalendar()
	if err != nil {
		t.Fatal(err)
	}
	w := &dealingWorld{t: t, nc: nc, cal: cal, cat: domain.DefaultCatalogue(), clock: domain.MustDate("2026-11-23").At(9, 0, cal.Location())}
	client, err := custodian.NewClient(nc, custodian.ClientConfig{Catalogue: w.cat, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := client.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	w.simCfg = simulator.Config{Dir: t.TempDir(), Catalogue: w.cat, Calendar: cal,
		Faults: faults, RetryInterval: 100 * time.Millisecond, RetryIntervalMax: 500 * time.Millisecond, Logger: logger}
	w.sim, err = simulator.Start(ctx, nc, w.simCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.sim.Stop() })
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 9})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	cc := cluster.Config{ClusterName: "dealing", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		cc.GossipInterval, cc.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	notifier, err := platform.NewNotifier(ctx, nc, 1, actors.PotGroups(j))
	if err != nil {
		t.Fatal(err)
	}
	w.nodeCfg = platform.NodeConfig{Cluster: cc, Journal: j, Catalogue: w.cat, Calendar: cal,
		Custodian: client, Notifier: notifier, Now: w.now, Logger: logger, Dealing: dealing}
	w.startNode()
	t.Cleanup(func() { w.node.Kill() })
	return w
}

func (w *dealingWorld) startNode() {
	w.t.Helper()
	var err error
	if w.node, err = platform.StartNode(w.nodeCfg); err != nil {
		w.t.Fatal(err)
	}
	w.operator = actors.Operator{Node: w.node.Cluster, PollInterval: 20 * time.Millisecond}
}

// restartNode kills the node and starts another on the same journal, as a
// process restart would: every grain recovers from the journal.
func (w *dealingWorld) restartNode() {
	w.t.Helper()
	w.node.Kill()
	w.startNode()
}

// restartCustodian stops the simulated custodian and starts it again on
// its ledger, with faults.
func (w *dealingWorld) restartCustodian(faults simulator.Faults) {
	w.t.Helper()
	w.sim.Stop()
	w.simCfg.Faults = faults
	var err error
	if w.sim, err = simulator.Start(context.Background(), w.nc, w.simCfg); err != nil {
		w.t.Fatal(err)
	}
}

func (w *dealingWorld) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.clock
}

func (w *dealingWorld) setTime(d domain.Date, hour, minute int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clock = d.At(hour, minute, w.cal.Location())
}

func (w *dealingWorld) pot(member string, req *pb.PotRequest) *pb.PotResponse {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.node.Pots.Handle(ctx, member, req)
	if err != nil {
		w.t.Fatalf("%s: %v", member, err)
	}
	if p := resp.GetProblem(); p != nil {
		w.t.Fatalf("%s %T: %s: %s", member, req.Command, p.Code, p.Detail)
	}
	return resp
}

func (w *dealingWorld) publishPrices(date domain.Date, price func(domain.Asset) string) {
	w.t.Helper()
	prices := map[domain.ISIN]domain.Price{}
	for _, a := range w.cat.Assets() {
		p, err := domain.ParsePrice(price(a), a.PriceDecimals)
		if err != nil {
			w.t.Fatal(err)
		}
		prices[a.ISIN] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.operator.PublishPrices(ctx, actors.PricesPublication{Date: date, Prices: prices}); err != nil {
		w.t.Fatalf("prices of %s: %v", date, err)
	}
}

func (w *dealingWorld) runCycle(date domain.Date, rebalance bool) *pb.CycleSummary {
	w.t.Helper()
	w.setTime(date, 12, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := w.operator.RunCycle(ctx, date, actors.CycleRunOptions{Rebalance: rebalance}, nil)
	if err != nil {
		w.t.Fatalf("cycle %s: %v (summary %v)", date, err, s)
	}
	return s
}

func (w *dealingWorld) reconcile(id string, deep bool) *pb.ReconciliationReport {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := w.operator.Reconcile(ctx, id, deep, domain.Date{})
	if err != nil {
		w.t.Fatalf("reconcile: %v", err)
	}
	return r
}

// TestDealingCycleOneNode runs a week of dealing days for a few pots on one
// node with the custodian simulator: contributions are netted, executed and
// allocated exactly, settle, drift triggers rebalances, a cycle run twice
// trades nothing twice, and reconciliation finds no break.
func TestDealingCycleOneNode(t *testing.T) {
	w := startDealingWorld(t, simulator.Faults{})
	profiles := []string{"cautious", "balanced", "adventurous", ""}
	const pots = 12
	for i := range pots {
		m := fmt.Sprintf("D%04d", i)
		w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: profiles[i%len(profiles)]}}})
		w.pot(m, &pb.PotRequest{IdempotencyKey: "pay", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: fmt.Sprintf("%d.37", 1000+i*13)}}})
	}
	day := domain.MustDate("2026-11-23")
	// A self-directed pot buys one asset with its cash.
	w.pot("D0003", &pb.PotRequest{IdempotencyKey: "buy", Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{
		Type: pb.OrderType_ORDER_TYPE_BUY, Asset: "GB00BD8R3K42", Amount: "500.00"}}})

	price := func(step int) func(domain.Asset) string {
		return func(a domain.Asset) string {
			base := map[int32]string{4: "1.2345", 6: "1.234567"}[a.PriceDecimals]
			if a.ISIN == "GB00BN7Q2L69" { // global equity climbs, to make pots drift
				return []string{"2.000000", "2.100000", "2.900000", "3.100000", "3.100000", "3.100000", "3.100000"}[step]
			}
			return base
		}
	}
	var first *pb.CycleSummary
	for step := range 7 {
		w.publishPrices(day, price(step))
		s := w.runCycle(day, true)
		if step == 0 {
			first = s
			// Every pot with a profile invests its contribution; of the
			// self-directed ones (every fourth) only D0003 bought.
			const trading = pots - pots/4 + 1
			if s.Trades == 0 || s.PotsAllocated != trading || len(s.Orders) == 0 {
				t.Fatalf("first cycle: %v", s)
			}
			for _, o := range s.Orders {
				if o.Status != "executed" && o.Status != "netted" {
					t.Fatalf("order %s is %s", o.ClOrdId, o.Status)
				}
			}
			// At once, the pots are valued at the day's prices (every
			// member learns them from the cycle, not a second later).
			view := w.pot("D0001", &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}).GetPot()
			if len(view.Holdings) == 0 {
				t.Fatalf("pot without holdings after the cycle: %v", view)
			}
			for _, h := range view.Holdings {
				if h.Price == "" || h.Value == "" || h.PriceDate != day.String() {
					t.Fatalf("holding without the day's price right after the cycle: %v", h)
				}
			}
		}
		t.Logf("%s: trades %d, pots allocated %d, settled %d, checked %d, traded %d", day, s.Trades, s.PotsAllocated,
			s.TradesSettled, s.PotsChecked, s.PotsTraded)
		day = w.cal.NextDealingDay(day)
		w.setTime(day, 9, 0)
	}
	// Every executed trade's contract note is on NATS, once.
	notes := w.contractNotes()
	executed := int64(0)
	for d := domain.MustDate("2026-11-23"); !d.After(domain.MustDate("2026-12-01")); d = w.cal.NextDealingDay(d) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := w.operator.Cycle(ctx, d)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		executed += s.Trades
	}
	if int64(len(notes)) != executed {
		t.Fatalf("%d contract notes on NATS for %d executed trades", len(notes), executed)
	}
	// Running a completed cycle again answers the same and trades nothing.
	again := w.runCycle(domain.MustDate("2026-11-23"), true)
	if again.Trades != first.Trades || len(again.Orders) != len(first.Orders) || again.PotsAllocated != first.PotsAllocated {
		t.Fatalf("re-run answered %v, first %v", again, first)
	}
	r := w.reconcile("week-1", true)
	if len(r.InternalBreaks) > 0 || len(r.ExternalBreaks) > 0 {
		t.Fatalf("reconciliation breaks:\ninternal %v\nexternal %v", r.InternalBreaks, r.ExternalBreaks)
	}
	if r.Pots != pots {
		t.Fatalf("reconciled %d pots, want %d", r.Pots, pots)
	}
	t.Logf("reconciliation as of %s: %d pots, assets %v", r.AsOf, r.Pots, r.Assets)
}

// TestFailedCycleIsRecordedAndResumes: a cycle whose custodian does not
// report in time stops with a stable problem code and a sentence without Go
// error chains; the failure is recorded, so a restarted node shows it (not
// 404); running the cycle again resumes it and it completes once.
func TestFailedCycleIsRecordedAndResumes(t *testing.T) {
	w := startDealingWorldWith(t, simulator.Faults{OutageDuration: 4 * time.Second},
		actors.DealingConfig{ResendInterval: 200 * time.Millisecond, ExecutionWait: 500 * time.Millisecond})
	const m = "F0001"
	w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: "balanced"}}})
	w.pot(m, &pb.PotRequest{IdempotencyKey: "pay", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "100.00"}}})
	mon := domain.MustDate("2026-11-23")
	w.publishPrices(mon, func(a domain.Asset) string { return map[int32]string{4: "1.0000", 6: "1.000000"}[a.PriceDecimals] })
	w.setTime(mon, 12, 30)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{Rebalance: true}, nil)
	var oe *actors.OperatorError
	if !errors.As(err, &oe) || oe.Code != problem.CustodianSilent {
		t.Fatalf("cycle with the custodian out: %v (summary %v), want %s", err, s, problem.CustodianSilent)
	}
	p := s.GetProblem()
	if s.Status != actors.CycleFailed || s.Step != "executions" || !p.GetResumable() ||
		!strings.Contains(p.GetDetail(), "run the cycle again to keep waiting") {
		t.Fatalf("failed summary: %v", s)
	}
	for _, goism := range []string{"actors:", "cluster:", "domain:", "persistence:", "rpc error", "context deadline", "%!"} {
		if strings.Contains(p.GetDetail(), goism) {
			t.Errorf("the problem's detail holds %q: %s", goism, p.GetDetail())
		}
	}

	w.restartNode()
	got, err := w.operator.Cycle(ctx, mon)
	if err != nil || got.Status != actors.CycleFailed || got.GetProblem().GetCode() != problem.CustodianSilent || got.Step != "executions" {
		t.Fatalf("the failed cycle after a restart: %v %v", got, err)
	}

	testkit.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		s, err = w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{Rebalance: true}, nil)
		return err
	})
	if s.Status != actors.CycleComplete || s.PotsAllocated != 1 || s.Problem != nil {
		t.Fatalf("the cycle run again: %v", s)
	}
	if r := w.reconcile("after-failure", true); len(r.InternalBreaks)+len(r.ExternalBreaks) > 0 {
		t.Fatalf("reconciliation: internal %v external %v", r.InternalBreaks, r.ExternalBreaks)
	}
	if n := len(w.sim.Executions()); n != len(s.Orders) {
		t.Fatalf("the custodian executed %d orders for %d in the batch", n, len(s.Orders))
	}
}

// TestLateOrderIsRolledToTheNextDay forces what the cut-off fence prevents:
// an order for a dealing day that reaches the journal after the day's batch
// closed (placed by an activation of the pot whose market never heard of the
// cut-off). The next cycle's aggregator rolls it to the next open day, the
// member sees both dates, and it executes there.
func TestLateOrderIsRolledToTheNextDay(t *testing.T) {
	w := startDealingWorld(t, simulator.Faults{})
	const m = "L0001"
	w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{}}})
	w.pot(m, &pb.PotRequest{IdempotencyKey: "pay", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "100.00"}}})
	mon := domain.MustDate("2026-11-23")
	tue := w.cal.NextDealingDay(mon)
	w.publishPrices(mon, func(a domain.Asset) string { return map[int32]string{4: "1.0000", 6: "1.000000"}[a.PriceDecimals] })
	w.runCycle(mon, false)

	// A stale activation, as on a member that missed the fence.
	w.setTime(mon, 10, 0)
	deps := &actors.PotDeps{Journal: w.node.Journal, Catalogue: w.cat, Calendar: w.cal, Market: actors.NewMarketState(), Now: w.now}
	system := w.node.Cluster.Cluster().ActorSystem
	props := protocluster.WithClusterIdentity(actors.NewPotKind(deps)(0).Props, &protocluster.ClusterIdentity{Identity: m, Kind: actors.PotKind})
	pid := system.Root.Spawn(props)
	defer system.Root.Stop(pid)
	req := &pb.PotRequest{IdempotencyKey: "late", Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{
		Type: pb.OrderType_ORDER_TYPE_BUY, Asset: "GB00BD8R3K42", Amount: "10.00"}}}
	res, err := system.Root.RequestFuture(pid, &pb.PotCall{Request: req}, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	late := res.(*pb.PotResponse).GetOrder()
	if late == nil || late.DealingDate != mon.String() {
		t.Fatalf("the stale activation answered %v, want an order for %s", res, mon)
	}

	w.publishPrices(tue, func(a domain.Asset) string { return map[int32]string{4: "1.0000", 6: "1.000000"}[a.PriceDecimals] })
	s := w.runCycle(tue, false)
	if s.OrdersRolled < 1 {
		t.Fatalf("cycle of %s rolled %d orders: %v", tue, s.OrdersRolled, s)
	}
	o := w.pot(m, &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: late.Id}}}).GetOrder()
	if o.DealingDate != tue.String() || o.OriginalDealingDate != mon.String() || o.Status != "executed" {
		t.Fatalf("late order after the next cycle: %v", o)
	}
	r := w.reconcile("late", true)
	if len(r.InternalBreaks)+len(r.ExternalBreaks) > 0 {
		t.Fatalf("reconciliation: internal %v external %v", r.InternalBreaks, r.ExternalBreaks)
	}
}

// contractNotes reads every contract note published on NATS, by trade id,
// failing on a trade with two, or on a note without the headers that name
// it or off its member's group's subject.
func (w *dealingWorld) contractNotes() map[string]*pb.ContractNote {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(w.nc)
	if err != nil {
		w.t.Fatal(err)
	}
	stream, err := js.Stream(ctx, platform.NotificationsStream)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	notes := map[string]*pb.ContractNote{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			w.t.Fatalf("note %d: %v", seq, err)
		}
		if typ, ct := msg.Header.Get(natsmsg.TypeHeader), msg.Header.Get(natsmsg.ContentTypeHeader); typ != "mastertrust.v1.ContractNote" || ct != "application/protobuf" {
			w.t.Fatalf("note %d: headers %v", seq, msg.Header)
		}
		var n pb.ContractNote
		if err := proto.Unmarshal(msg.Data, &n); err != nil {
			w.t.Fatal(err)
		}
		if _, dup := notes[n.TradeId]; dup {
			w.t.Fatalf("two contract notes for trade %s", n.TradeId)
		}
		if msg.Subject != platform.ContractNoteSubject(actors.PotGroup(n.MemberId, 8)) || n.Units == "" || n.UnitPrice == "" {
			w.t.Fatalf("note %d on %s: %v", seq, msg.Subject, &n)
		}
		notes[n.TradeId] = &n
	}
	return notes
}
