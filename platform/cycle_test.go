package platform_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/history"
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
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	w := &dealingWorld{t: t, nc: nc, cal: cal, cat: domain.DefaultCatalogue(), clock: domain.MustDate("2026-11-23").At(9, 0, cal.Location())}
	client, err := custodian.NewClient(nc, custodian.ClientConfig{Catalogue: w.cat, Logger: logger})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, client.EnsureStreams(ctx))
	w.simCfg = simulator.Config{Dir: t.TempDir(), Catalogue: w.cat, Calendar: cal,
		Faults: faults, RetryInterval: 100 * time.Millisecond, RetryIntervalMax: 500 * time.Millisecond, Logger: logger}
	w.sim, err = simulator.Start(ctx, nc, w.simCfg)
	require.NoError(t, err)
	t.Cleanup(func() { w.sim.Stop() })
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 9})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	cc := cluster.Config{ClusterName: "dealing", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		cc.GossipInterval, cc.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	notifier, err := platform.NewNotifier(ctx, nc, 1, actors.PotGroups(j))
	require.NoError(t, err)
	w.nodeCfg = platform.NodeConfig{Cluster: cc, Journal: j, HistoryDir: t.TempDir(), Catalogue: w.cat, Calendar: cal,
		Custodian: client, Notifier: notifier, Now: w.now, Logger: logger, Dealing: dealing}
	w.startNode()
	t.Cleanup(func() { w.node.Kill() })
	return w
}

func (w *dealingWorld) startNode() {
	w.t.Helper()
	var err error
	w.node, err = platform.StartNode(w.nodeCfg)
	require.NoError(w.t, err)
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
	require.NoError(w.t, err, "pot %s %T", member, req.Command)
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
		require.NoError(w.t, err, "price of %s", a.ISIN)
		prices[a.ISIN] = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.operator.PublishPrices(ctx, actors.PricesPublication{Date: date, Prices: prices})
	require.NoError(w.t, err, "prices of %s", date)
}

func (w *dealingWorld) runCycle(date domain.Date, rebalance bool) *pb.CycleSummary {
	w.t.Helper()
	w.setTime(date, 12, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := w.operator.RunCycle(ctx, date, actors.CycleRunOptions{Rebalance: rebalance}, nil)
	require.NoError(w.t, err, "cycle %s (summary %v)", date, s)
	return s
}

func (w *dealingWorld) reconcile(id string, deep bool) *pb.ReconciliationReport {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := w.operator.Reconcile(ctx, id, deep, domain.Date{})
	require.NoError(w.t, err, "reconcile %s", id)
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
			require.NotZero(t, s.Trades, "first cycle: trades; summary %v", s)
			require.Equal(t, int64(trading), s.PotsAllocated, "first cycle: pots allocated")
			require.NotEmpty(t, s.Orders, "first cycle: orders")
			for _, o := range s.Orders {
				require.Contains(t, []string{"executed", "netted"}, o.Status, "first cycle: order %s's status", o.ClOrdId)
			}
			// At once, the pots are valued at the day's prices (every
			// member learns them from the cycle, not a second later).
			view := w.pot("D0001", &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}).GetPot()
			require.NotEmpty(t, view.Holdings, "D0001's holdings after the cycle")
			for _, h := range view.Holdings {
				require.NotEmpty(t, h.Price, "holding %s right after the cycle: price", h.Asset)
				require.NotEmpty(t, h.Value, "holding %s right after the cycle: value", h.Asset)
				require.Equal(t, day.String(), h.PriceDate, "holding %s right after the cycle: price date", h.Asset)
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
		require.NoError(t, err, "cycle %s", d)
		executed += s.Trades
	}
	require.Equal(t, executed, int64(len(notes)), "contract notes on NATS, one per executed trade")
	// Running a completed cycle again answers the same and trades nothing.
	again := w.runCycle(domain.MustDate("2026-11-23"), true)
	require.Equal(t, first.Trades, again.Trades, "re-run: trades")
	require.Len(t, again.Orders, len(first.Orders), "re-run: orders")
	require.Equal(t, first.PotsAllocated, again.PotsAllocated, "re-run: pots allocated")
	r := w.reconcile("week-1", true)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
	require.Equal(t, int64(pots), r.Pots, "pots reconciled")
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
	require.ErrorAs(t, err, &oe, "cycle with the custodian out (summary %v)", s)
	require.Equal(t, problem.CustodianSilent, oe.Code, "cycle with the custodian out: error code")
	p := s.GetProblem()
	require.Equal(t, actors.CycleFailed, s.Status, "failed summary: status; %v", s)
	require.Equal(t, "executions", s.Step, "failed summary: step")
	require.True(t, p.GetResumable(), "failed summary: problem resumable")
	require.Contains(t, p.GetDetail(), "run the cycle again to keep waiting", "failed summary: problem detail")
	for _, goism := range []string{"actors:", "cluster:", "domain:", "persistence:", "rpc error", "context deadline", "%!"} {
		assert.NotContains(t, p.GetDetail(), goism, "the problem's detail")
	}

	w.restartNode()
	got, err := w.operator.Cycle(ctx, mon)
	require.NoError(t, err, "the failed cycle after a restart")
	require.Equal(t, actors.CycleFailed, got.Status, "the failed cycle after a restart: status; %v", got)
	require.Equal(t, problem.CustodianSilent, got.GetProblem().GetCode(), "the failed cycle after a restart: problem code")
	require.Equal(t, "executions", got.Step, "the failed cycle after a restart: step")

	testkit.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		s, err = w.operator.RunCycle(ctx, mon, actors.CycleRunOptions{Rebalance: true}, nil)
		return err
	})
	require.Equal(t, actors.CycleComplete, s.Status, "the cycle run again: status; %v", s)
	require.Equal(t, int64(1), s.PotsAllocated, "the cycle run again: pots allocated")
	require.Nil(t, s.Problem, "the cycle run again: problem")
	r := w.reconcile("after-failure", true)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
	require.Len(t, w.sim.Executions(), len(s.Orders), "orders the custodian executed, against the batch's")
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
	hist, err := history.Open(t.TempDir(), history.Options{Catalogue: w.cat})
	require.NoError(t, err)
	defer hist.Close()
	deps := &actors.PotDeps{Journal: w.node.Journal, Catalogue: w.cat, Calendar: w.cal, Market: actors.NewMarketState(), Now: w.now, History: hist}
	system := w.node.Cluster.Cluster().ActorSystem
	props := protocluster.WithClusterIdentity(actors.NewPotKind(deps)(0).Props, &protocluster.ClusterIdentity{Identity: m, Kind: actors.PotKind})
	pid := system.Root.Spawn(props)
	defer system.Root.Stop(pid)
	req := &pb.PotRequest{IdempotencyKey: "late", Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{
		Type: pb.OrderType_ORDER_TYPE_BUY, Asset: "GB00BD8R3K42", Amount: "10.00"}}}
	res, err := system.Root.RequestFuture(pid, &pb.PotCall{Request: req}, 10*time.Second).Result()
	require.NoError(t, err)
	late := res.(*pb.PotResponse).GetOrder()
	require.NotNil(t, late, "the stale activation's answer %v", res)
	require.Equal(t, mon.String(), late.DealingDate, "the stale activation's order: dealing date")

	w.publishPrices(tue, func(a domain.Asset) string { return map[int32]string{4: "1.0000", 6: "1.000000"}[a.PriceDecimals] })
	s := w.runCycle(tue, false)
	require.GreaterOrEqual(t, s.OrdersRolled, int64(1), "cycle of %s: orders rolled; %v", tue, s)
	o := w.pot(m, &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: late.Id}}}).GetOrder()
	require.Equal(t, tue.String(), o.DealingDate, "late order after the next cycle: dealing date")
	require.Equal(t, mon.String(), o.OriginalDealingDate, "late order after the next cycle: original dealing date")
	require.Equal(t, "executed", o.Status, "late order after the next cycle: status")
	r := w.reconcile("late", true)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
}

// contractNotes reads every contract note published on NATS, by trade id,
// failing on a trade with two, or on a message without the headers that
// name it, or a note off its member's group's subject.
func (w *dealingWorld) contractNotes() map[string]*pb.ContractNote {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(w.nc)
	require.NoError(w.t, err)
	stream, err := js.Stream(ctx, platform.NotificationsStream)
	require.NoError(w.t, err)
	info, err := stream.Info(ctx)
	require.NoError(w.t, err)
	notes := map[string]*pb.ContractNote{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		require.NoError(w.t, err, "message %d", seq)
		require.Equal(w.t, "mastertrust.v1.ContractNotes", msg.Header.Get(natsmsg.TypeHeader), "message %d: type header", seq)
		require.Equal(w.t, "application/protobuf", msg.Header.Get(natsmsg.ContentTypeHeader), "message %d: content type header", seq)
		var batch pb.ContractNotes
		require.NoError(w.t, proto.Unmarshal(msg.Data, &batch), "message %d", seq)
		require.NotEmpty(w.t, batch.Notes, "message %d", seq)
		for _, n := range batch.Notes {
			if _, dup := notes[n.TradeId]; dup {
				w.t.Fatalf("two contract notes for trade %s", n.TradeId)
			}
			require.Equal(w.t, platform.ContractNoteSubject(actors.PotGroup(n.MemberId, 8)), msg.Subject, "message %d, note for trade %s: subject", seq, n.TradeId)
			require.NotEmpty(w.t, n.Units, "message %d, note for trade %s: units", seq, n.TradeId)
			require.NotEmpty(w.t, n.UnitPrice, "message %d, note for trade %s: unit price", seq, n.TradeId)
			notes[n.TradeId] = n
		}
	}
	return notes
}

// TestAggregatorsRecoverFromTheirSnapshots: with an aggregator snapshot
// after every step, a node restarted after each dealing day recovers its
// aggregators from their snapshots and the feed after them, deals the
// following days, and reconciles with no break (the deep reconciliation
// compares every replica with its pot recovered from the journal).
func TestAggregatorsRecoverFromTheirSnapshots(t *testing.T) {
	w := startDealingWorldWith(t, simulator.Faults{}, actors.DealingConfig{ResendInterval: 300 * time.Millisecond,
		ExecutionWait: 30 * time.Second, AggregatorSnapshotEvery: 1})
	profiles := []string{"cautious", "balanced", "adventurous", ""}
	const pots = 12
	for i := range pots {
		m := fmt.Sprintf("S%04d", i)
		w.pot(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: profiles[i%len(profiles)]}}})
		w.pot(m, &pb.PotRequest{IdempotencyKey: "pay", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: fmt.Sprintf("%d.11", 900+i*7)}}})
	}
	day := domain.MustDate("2026-11-23")
	price := func(step int) func(domain.Asset) string {
		return func(a domain.Asset) string {
			if a.ISIN == "GB00BN7Q2L69" {
				return []string{"2.000000", "2.600000", "3.000000", "3.000000", "3.000000"}[step]
			}
			return map[int32]string{4: "1.2345", 6: "1.234567"}[a.PriceDecimals]
		}
	}
	var trades int64
	for step := range 5 {
		w.publishPrices(day, price(step))
		s := w.runCycle(day, true)
		trades += s.Trades
		// New work for the next day, then a restart: the aggregators come
		// back from their snapshots.
		w.pot(fmt.Sprintf("S%04d", step), &pb.PotRequest{IdempotencyKey: fmt.Sprintf("more-%d", step),
			Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "250.00"}}})
		w.restartNode()
		day = w.cal.NextDealingDay(day)
		w.setTime(day, 9, 0)
	}
	require.NotZero(t, trades, "trades dealt")
	for g := range actors.PotGroups(w.node.Journal) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, found, err := w.node.Journal.LoadSnapshot(ctx, fmt.Sprintf("agg/%d/snap/0", g))
		cancel()
		require.NoError(t, err)
		require.True(t, found, "group %d's aggregator snapshot", g)
	}
	r := w.reconcile("snapshots", true)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
	require.Equal(t, int64(pots), r.Pots, "pots reconciled")
}
