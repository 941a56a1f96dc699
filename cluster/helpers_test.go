package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/internal/testgrain"
	"github.com/acme/mastertrust/internal/testkit"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// testMemberTTL is the in-process registry's member TTL in tests: a killed
// member leaves the topology within about this long.
const testMemberTTL = 2 * time.Second

// testCluster is a cluster of real nodes in this process on 127.0.0.1.
type testCluster struct {
	registry  *cluster.InProcess
	lifecycle *testgrain.Lifecycle
	members   []*cluster.Node
	clients   []*cluster.Node
	// memberConfig starts a member (addMember).
	memberConfig cluster.Config
}

// clusterOptions shape a test cluster.
type clusterOptions struct {
	members, clients int
	// counterIdleTimeout is the Counter kind's idle timeout; 0 means the
	// config default (10 min: no passivation during a test).
	counterIdleTimeout time.Duration
	// configure edits every node's config before start.
	configure func(*cluster.Config)
	// services run on every member.
	services map[string]cluster.MemberService
	// kinds are hosted by every member besides the Counter.
	kinds []cluster.Kind
}

// testConfig returns the base config of test nodes.
func testConfig(t testing.TB, registry *cluster.InProcess) cluster.Config {
	logger, level := testkit.Logger(t)
	cfg := cluster.Config{
		ClusterName:     "test",
		Host:            "127.0.0.1",
		Port:            0,
		Provider:        cluster.ProviderInProcess,
		InProcess:       registry,
		RequestTimeout:  3 * time.Second,
		Logger:          logger,
		LibraryLogLevel: level,
	}
	if testkit.Race {
		// protoactor's gossip has data races of its own when several nodes
		// share a process (one unsynchronized math/rand.Rand for every
		// node's gossip actor) and reads its block list without a lock. In
		// race builds the tests keep gossip rounds from ticking, so that
		// the race detector checks this package instead; membership and
		// failover come from the provider either way.
		cfg.GossipInterval = time.Hour
		cfg.HeartbeatExpiration = 2 * time.Hour
	}
	return cfg
}

// startCluster starts opts.members members (in parallel: protoactor makes
// each start take a second) and then opts.clients clients, waits until every
// node sees every member, and stops them all at cleanup.
func startCluster(t testing.TB, opts clusterOptions) *testCluster {
	t.Helper()
	tc := &testCluster{
		registry:  cluster.NewInProcess(testMemberTTL),
		lifecycle: testgrain.NewLifecycle(),
	}
	base := testConfig(t, tc.registry)
	if opts.configure != nil {
		opts.configure(&base)
	}
	memberConfig := base
	memberConfig.Services = opts.services
	memberConfig.Kinds = []cluster.Kind{{
		Name:        testgrain.KindName,
		New:         testgrain.NewKind(tc.lifecycle),
		IdleTimeout: opts.counterIdleTimeout,
	}}
	memberConfig.Kinds = append(memberConfig.Kinds, opts.kinds...)
	tc.memberConfig = memberConfig

	tc.members = make([]*cluster.Node, opts.members)
	errs := make([]error, opts.members)
	var wg sync.WaitGroup
	for i := range opts.members {
		wg.Go(func() { tc.members[i], errs[i] = cluster.Start(memberConfig) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "start member %d", i)
		tc.stopAtCleanup(t, tc.members[i])
	}
	for i := range opts.clients {
		c, err := cluster.StartClient(base)
		require.NoError(t, err, "start client %d", i)
		tc.stopAtCleanup(t, c)
		tc.clients = append(tc.clients, c)
	}
	tc.awaitMembers(t)
	return tc
}

// stopAtCleanup stops n gracefully when the test ends (a no-op if the test
// stopped or killed it). Cleanups run in reverse, so clients stop first,
// then members one by one; each leaves the topology before its grains stop,
// so nothing is sent to a node that is gone (a send to a dead address stalls
// an endpoint for 2 s).
func (tc *testCluster) stopAtCleanup(t testing.TB, n *cluster.Node) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, n.Stop(ctx), "stop node %s", n.Address())
	})
}

// addMember starts one more member, like the first ones, and waits until
// every node sees it.
func (tc *testCluster) addMember(t testing.TB) *cluster.Node {
	t.Helper()
	return tc.addMemberWith(t, tc.memberConfig)
}

// addMemberWith is addMember with a member config of the caller's (the
// cluster's, edited).
func (tc *testCluster) addMemberWith(t testing.TB, cfg cluster.Config) *cluster.Node {
	t.Helper()
	n, err := cluster.Start(cfg)
	require.NoError(t, err, "start a member")
	tc.stopAtCleanup(t, n)
	tc.members = append(tc.members, n)
	tc.awaitMembers(t)
	return n
}

// awaitMembers waits until every node sees every member.
func (tc *testCluster) awaitMembers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range tc.nodes() {
		require.NoError(t, n.WaitForMembers(ctx, len(tc.members)))
	}
}

func (tc *testCluster) nodes() []*cluster.Node {
	return append(append([]*cluster.Node{}, tc.members...), tc.clients...)
}

// memberAt returns the member with the given address.
func (tc *testCluster) memberAt(address string) *cluster.Node {
	for _, m := range tc.members {
		if m.Address() == address {
			return m
		}
	}
	return nil
}

// add calls Counter.Add(delta) on identity from node.
func add(ctx context.Context, node *cluster.Node, identity string, delta int64) (*testgrain.CounterState, error) {
	return cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*testgrain.CounterState, error) {
		return testgrain.GetCounterGrainClient(node.Cluster(), identity).Add(&testgrain.AddRequest{Delta: delta}, opts...)
	})
}

// get calls Counter.Get on identity from node.
func get(ctx context.Context, node *cluster.Node, identity string) (*testgrain.CounterState, error) {
	return cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*testgrain.CounterState, error) {
		return testgrain.GetCounterGrainClient(node.Cluster(), identity).Get(&testgrain.GetRequest{}, opts...)
	})
}

// identities returns count distinct identities with the given prefix.
func identities(prefix string, count int) []string {
	ids := make([]string, count)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return ids
}
