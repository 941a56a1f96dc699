package platform_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// jsCluster is three members sharing one JetStream journal (each through
// its own connection, as separate processes would) and a client node.
type jsCluster struct {
	t       *testing.T
	members []*platform.Node
	client  *cluster.Node
	journal *jetstream.Store // the client's view of the journal, for checks
}

func startJSCluster(t *testing.T, members int) *jsCluster {
	t.Helper()
	logger, level := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	openJournal := func() *jetstream.Store {
		nc, err := nats.Connect(srv.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		j, err := jetstream.Open(ctx, nc, jetstream.Options{Groups: 8})
		require.NoError(t, err)
		t.Cleanup(func() { j.Close() })
		return j
	}
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	registry := cluster.NewInProcess(2 * time.Second)
	base := cluster.Config{ClusterName: "js", Provider: cluster.ProviderInProcess, InProcess: registry,
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		base.GossipInterval, base.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	c := &jsCluster{t: t, journal: openJournal()}
	c.members = make([]*platform.Node, members)
	errs := make([]error, members)
	var wg sync.WaitGroup
	for i := range members {
		j := openJournal()
		wg.Go(func() {
			c.members[i], errs[i] = platform.StartNode(platform.NodeConfig{Cluster: base, Journal: j, HistoryDir: t.TempDir(),
				Catalogue: domain.DefaultCatalogue(), Calendar: cal, Logger: logger})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "member %d", i)
		t.Cleanup(c.members[i].Kill)
	}
	c.client, err = cluster.StartClient(base)
	require.NoError(t, err)
	t.Cleanup(c.client.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.client.WaitForMembers(ctx, members))
	return c
}

func (c *jsCluster) call(member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := actors.PotClient{Node: c.client}.Handle(ctx, member, req)
	if err == nil && resp.GetProblem() != nil {
		err = fmt.Errorf("problem %s: %s", resp.GetProblem().Code, resp.GetProblem().Detail)
	}
	return resp, err
}

func (c *jsCluster) must(member string, req *pb.PotRequest) *pb.PotResponse {
	c.t.Helper()
	resp, err := c.call(member, req)
	require.NoError(c.t, err, "%s %T", member, req.Command)
	return resp
}

// hosts maps each member node's address to the pots it hosts now.
func (c *jsCluster) activePots() map[string]int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.client.Members(ctx)
	require.NoError(c.t, err)
	out := map[string]int64{}
	for _, m := range ms {
		out[m.Address] = m.ActiveGrains[actors.PotKind]
	}
	return out
}

func contribution(key, amount string) *pb.PotRequest {
	return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: amount}}}
}

// TestJetStreamClusterFailover proves pots on a three-member cluster with
// the shared JetStream journal: they spread over the members; when one
// member leaves gracefully and another is killed, every pot answers from
// the member left with its state intact, and keeps taking requests.
func TestJetStreamClusterFailover(t *testing.T) {
	c := startJSCluster(t, 3)
	const pots = 30
	member := func(i int) string { return fmt.Sprintf("J%04d", i) }
	views := map[string]*pb.PotView{}
	for i := range pots {
		c.must(member(i), &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: "balanced"}}})
		c.must(member(i), contribution("c1", fmt.Sprintf("%d.00", 100+i)))
		views[member(i)] = c.must(member(i), &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}).GetPot()
	}
	hosting := 0
	for _, n := range c.activePots() {
		if n > 0 {
			hosting++
		}
	}
	require.GreaterOrEqual(t, hosting, 2, "members hosting pots (want them spread): %v", c.activePots())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.members[0].Stop(ctx), "graceful stop")
	c.members[1].Kill()
	survivor := c.members[2].Cluster.Address()
	testkit.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		for i := range pots {
			if _, err := c.call(member(i), &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}); err != nil {
				return fmt.Errorf("%s: %v", member(i), err)
			}
		}
		return nil
	})
	for i := range pots {
		m := member(i)
		got := c.must(m, &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}).GetPot()
		if !proto.Equal(got, views[m]) {
			t.Fatalf("pot %s after failover:\n%v\nwant\n%v", m, got, views[m])
		}
		c.must(m, contribution("c2", "1.00")) // and it still takes requests
	}
	active := c.activePots()
	require.GreaterOrEqual(t, active[survivor], int64(pots), "pots the survivor %s hosts (want all): %v", survivor, active)
}

// TestJetStreamDoubleActivationAcrossMembers starts a second activation of
// a pot on a member the placement did not choose, and races requests
// through both over the shared JetStream journal: every acknowledged
// request is in the journal exactly once, no failed one is, and the
// history is one line.
func TestJetStreamDoubleActivationAcrossMembers(t *testing.T) {
	c := startJSCluster(t, 2)
	const m = "J-double"
	c.must(m, &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{}})
	// The member that does not host the pot runs a rogue activation.
	active := c.activePots()
	var other *platform.Node
	for _, n := range c.members {
		if active[n.Cluster.Address()] == 0 {
			other = n
		}
	}
	require.NotNil(t, other, "a member without the pot: %v", active)
	system := other.Cluster.Cluster().ActorSystem
	kind := other.Cluster.Cluster().GetClusterKind(actors.PotKind)
	require.NotNil(t, kind, "the other member's Pot kind")
	rogueCall := func(req *pb.PotRequest) bool {
		props := protocluster.WithClusterIdentity(kind.Props, &protocluster.ClusterIdentity{Identity: m, Kind: actors.PotKind})
		pid := system.Root.Spawn(props)
		res, err := system.Root.RequestFuture(pid, &pb.PotCall{Request: req}, 10*time.Second).Result()
		resp, ok := res.(*pb.PotResponse)
		return err == nil && ok && resp.GetProblem() == nil
	}
	acked, failed := map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 40 {
		key := fmt.Sprintf("k-%d", i)
		wg.Go(func() {
			var ok bool
			if i%2 == 0 {
				_, err := c.call(m, contribution(key, "1.00"))
				ok = err == nil
			} else {
				ok = rogueCall(contribution(key, "1.00"))
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				acked[key] = true
			} else {
				failed[key] = true
			}
		})
	}
	wg.Wait()
	events, err := c.journal.Read(context.Background(), actors.PotStream(m), 1, 0)
	require.NoError(t, err)
	seen := map[string]int{}
	for i, e := range events {
		if e.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d: the history forked", i, e.Version)
		}
		de, err := codec.DecodePotEvent(e.Type, e.Data)
		require.NoError(t, err, "event %d", i)
		if r, ok := de.(domain.RequestRecorded); ok {
			seen[r.Record.Key]++
		}
	}
	for k := range acked {
		require.Equal(t, 1, seen[k], "acknowledged %s: times in the journal", k)
	}
	for k := range failed {
		require.Zero(t, seen[k], "failed %s: times in the journal", k)
	}
	rogueAcked := 0
	for i := 1; i < 40; i += 2 {
		if acked[fmt.Sprintf("k-%d", i)] {
			rogueAcked++
		}
	}
	t.Logf("%d acknowledged (%d by rogue activations), %d failed", len(acked), rogueAcked, len(failed))
	if len(failed) == 0 {
		t.Fatalf("no request failed: the activations did not race")
	}
	if rogueAcked == 0 {
		t.Fatalf("no rogue activation wrote: the test did not force a second activation")
	}
}

// TestDealingCycleOnThreeMembers runs dealing days on three members sharing
// the JetStream journal, each with its own connection to NATS and its own
// custodian client: the cut-off fence and the day's prices reach every
// member, the aggregators and asset books live wherever the cluster places
// them, and reconciliation finds no break.
func TestDealingCycleOnThreeMembers(t *testing.T) {
	logger, level := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	cat := domain.DefaultCatalogue()
	var mu sync.Mutex
	clock := domain.MustDate("2026-11-23").At(9, 0, cal.Location())
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	setTime := func(d domain.Date, h int) { mu.Lock(); defer mu.Unlock(); clock = d.At(h, 0, cal.Location()) }
	connect := func() *nats.Conn {
		nc, err := nats.Connect(srv.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	ctx := context.Background()
	simNC := connect()
	simClient, err := custodian.NewClient(simNC, custodian.ClientConfig{Catalogue: cat})
	require.NoError(t, err)
	require.NoError(t, simClient.EnsureStreams(ctx))
	sim, err := simulator.Start(ctx, simNC, simulator.Config{Dir: t.TempDir(), Catalogue: cat, Calendar: cal,
		RetryInterval: 100 * time.Millisecond, RetryIntervalMax: 500 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { sim.Stop() })

	registry := cluster.NewInProcess(2 * time.Second)
	base := cluster.Config{ClusterName: "dealing3", Provider: cluster.ProviderInProcess, InProcess: registry,
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		base.GossipInterval, base.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	members := make([]*platform.Node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range members {
		nc := connect()
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		j, err := jetstream.Open(jctx, nc, jetstream.Options{Groups: 9})
		cancel()
		require.NoError(t, err)
		t.Cleanup(func() { j.Close() })
		client, err := custodian.NewClient(nc, custodian.ClientConfig{Catalogue: cat})
		require.NoError(t, err)
		wg.Go(func() {
			members[i], errs[i] = platform.StartNode(platform.NodeConfig{Cluster: base, Journal: j, HistoryDir: t.TempDir(), Catalogue: cat, Calendar: cal,
				Custodian: client, Now: now, Logger: logger,
				Dealing: actors.DealingConfig{ResendInterval: 300 * time.Millisecond, ExecutionWait: 30 * time.Second}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "member %d", i)
		t.Cleanup(members[i].Kill)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, members[0].Cluster.WaitForMembers(wctx, 3))
	op := actors.Operator{Node: members[1].Cluster, PollInterval: 20 * time.Millisecond}
	call := func(m string, req *pb.PotRequest) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := members[2].Pots.Handle(cctx, m, req)
		if err == nil && resp.GetProblem() != nil {
			err = fmt.Errorf("%s: %s", resp.GetProblem().Code, resp.GetProblem().Detail)
		}
		require.NoError(t, err, "pot %s %T", m, req.Command)
	}
	const pots = 24
	for i := range pots {
		m := fmt.Sprintf("T%03d", i)
		call(m, &pb.PotRequest{IdempotencyKey: "o", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: []string{"cautious", "balanced", "adventurous"}[i%3]}}})
		call(m, &pb.PotRequest{IdempotencyKey: "c", Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: fmt.Sprintf("%d.00", 500+i)}}})
	}
	day := domain.MustDate("2026-11-23")
	for step := range 5 {
		prices := map[domain.ISIN]domain.Price{}
		for _, a := range cat.Assets() {
			prices[a.ISIN] = domain.MustPrice(fmt.Sprintf("1.%d", 2+step))
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := op.PublishPrices(pctx, actors.PricesPublication{Date: day, Prices: prices})
		require.NoError(t, err, "prices of %s", day)
		cancel()
		setTime(day, 13)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		s, err := op.RunCycle(rctx, day, actors.CycleRunOptions{Rebalance: true}, nil)
		cancel()
		require.NoError(t, err, "cycle %s", day)
		if step == 0 {
			require.Equal(t, int64(pots), s.PotsAllocated, "first cycle: pots allocated; %v", s)
		}
		// Every member knows the cut-off and the prices now.
		for i, m := range members {
			require.True(t, m.Market.OpenFrom().After(day), "member %d after the cycle of %s: open from %s", i, day, m.Market.OpenFrom())
			require.Equal(t, day.String(), m.Market.Prices()[cat.Assets()[0].ISIN].Date.String(),
				"member %d after the cycle of %s: date of the prices %v", i, day, m.Market.Prices())
		}
		day = cal.NextDealingDay(day)
		setTime(day, 9)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := op.Reconcile(rctx, "three", true, domain.Date{})
	require.NoError(t, err)
	require.Empty(t, r.InternalBreaks, "reconciliation: internal breaks")
	require.Empty(t, r.ExternalBreaks, "reconciliation: external breaks")
	require.Equal(t, int64(pots), r.Pots, "reconciliation: pots")
}
