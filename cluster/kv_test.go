package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/internal/testgrain"
	"github.com/acme/mastertrust/cluster/natskv"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/testkit"
)

// kvCluster is nodes of one cluster whose membership is a NATS JetStream KV
// bucket on an embedded server; each node has its own NATS connection, as
// separate processes would.
type kvCluster struct {
	t         *testing.T
	url       string
	heartbeat time.Duration
	ttl       time.Duration
	lifecycle *testgrain.Lifecycle
	// gossipInterval, if set, is every node's GossipInterval.
	gossipInterval time.Duration
}

func newKVCluster(t *testing.T, heartbeat, ttl time.Duration) *kvCluster {
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return &kvCluster{t: t, url: srv.ClientURL(), heartbeat: heartbeat, ttl: ttl, lifecycle: testgrain.NewLifecycle()}
}

// connect returns a new NATS connection to the cluster's server, closed at
// cleanup.
func (kc *kvCluster) connect() *nats.Conn {
	nc, err := nats.Connect(kc.url)
	require.NoError(kc.t, err)
	kc.t.Cleanup(nc.Close)
	return nc
}

// config returns a node's config over its own connection nc.
func (kc *kvCluster) config(nc *nats.Conn, member bool) cluster.Config {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := natskv.Open(ctx, nc, natskv.Options{TTL: kc.ttl})
	require.NoError(kc.t, err)
	cfg := testConfig(kc.t, nil)
	cfg.Provider = cluster.ProviderKV
	cfg.InProcess = nil
	cfg.KV = cluster.KVConfig{Store: store, Heartbeat: kc.heartbeat, TTL: kc.ttl}
	if kc.gossipInterval > 0 {
		cfg.GossipInterval, cfg.HeartbeatExpiration = kc.gossipInterval, 2*kc.gossipInterval
	}
	if member {
		cfg.Kinds = []cluster.Kind{{Name: testgrain.KindName, New: testgrain.NewKind(kc.lifecycle)}}
	}
	return cfg
}

// startMembers starts count members in parallel (protoactor makes each
// start take a second), each on its own connection, returned beside them;
// they stop gracefully at cleanup unless the test stopped them.
func (kc *kvCluster) startMembers(count int) ([]*cluster.Node, []*nats.Conn) {
	kc.t.Helper()
	nodes := make([]*cluster.Node, count)
	conns := make([]*nats.Conn, count)
	cfgs := make([]cluster.Config, count)
	for i := range count {
		conns[i] = kc.connect()
		cfgs[i] = kc.config(conns[i], true)
	}
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() { nodes[i], errs[i] = cluster.Start(cfgs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(kc.t, err, "start member %d", i)
		stopAtCleanup(kc.t, nodes[i])
	}
	return nodes, conns
}

func (kc *kvCluster) startClient() *cluster.Node {
	kc.t.Helper()
	c, err := cluster.StartClient(kc.config(kc.connect(), false))
	require.NoError(kc.t, err, "start client")
	stopAtCleanup(kc.t, c)
	return c
}

func stopAtCleanup(t *testing.T, n *cluster.Node) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, n.Stop(ctx), "stop node %s", n.Address())
	})
}

// memberAddresses is the sorted addresses of the members n lists.
func memberAddresses(n *cluster.Node) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	infos, err := n.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(infos))
	for i, m := range infos {
		out[i] = m.Address
	}
	slices.Sort(out)
	return out, nil
}

func addresses(nodes ...*cluster.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Address()
	}
	slices.Sort(out)
	return out
}

// waitForMembers waits until each of nodes has count members in its
// topology. Unlike listing it makes no remote call: in race builds a node
// must not start while others make gRPC connections (see race.go: gRPC's
// logger is written by every start and read by connection goroutines).
func waitForMembers(t *testing.T, nodes []*cluster.Node, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		require.NoError(t, n.WaitForMembers(ctx, count))
	}
}

// listing returns a check that each of nodes lists exactly want's members.
func listing(nodes []*cluster.Node, want ...*cluster.Node) func() error {
	return func() error {
		for _, n := range nodes {
			got, err := memberAddresses(n)
			if err != nil {
				return err
			}
			if !slices.Equal(got, addresses(want...)) {
				return fmt.Errorf("%s lists %v, want %v", n.Address(), got, addresses(want...))
			}
		}
		return nil
	}
}

// placeEverywhere calls Add on ids from every node and requires every
// member to host some, and every node to reach each grain on the same host.
func placeEverywhere(t *testing.T, nodes []*cluster.Node, members []*cluster.Node, ids []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := map[string]string{}
	for _, n := range nodes {
		for _, id := range ids {
			var state *testgrain.CounterState
			// A node may learn of a member a moment after another one:
			// retry until placement agrees.
			testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				var err error
				if state, err = add(ctx, n, id, 1); err != nil {
					return err
				}
				if h, ok := hosts[id]; ok && h != state.GetHostAddress() {
					return fmt.Errorf("%s from %s answers on %s, before on %s", id, n.Address(), state.GetHostAddress(), h)
				}
				return nil
			})
			hosts[id] = state.GetHostAddress()
		}
	}
	used := map[string]bool{}
	for _, h := range hosts {
		used[h] = true
	}
	for _, m := range members {
		require.True(t, used[m.Address()], "member %s hosts none of %d grains", m.Address(), len(ids))
	}
}

// Two members run; a third joins by starting with the same bucket, no
// restart of the others: within a few seconds every node lists all three,
// and grains are placed on all three and reached from any of them.
func TestKVMemberJoins(t *testing.T) {
	kc := newKVCluster(t, 200*time.Millisecond, 2*time.Second)
	nodes, _ := kc.startMembers(2)
	waitForMembers(t, nodes, 2)

	third, _ := kc.startMembers(1)
	nodes = append(nodes, third...)
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing(nodes, nodes...))
	placeEverywhere(t, nodes, nodes, identities("kv-join", 30))
}

// A member that stops gracefully deletes its record: the others list it no
// more within a second, long before its record could have expired.
func TestKVMemberStopLeavesAtOnce(t *testing.T) {
	// A TTL far longer than the test's bound: only the deletion can pass.
	kc := newKVCluster(t, time.Second, 30*time.Second)
	nodes, _ := kc.startMembers(3)
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing(nodes, nodes...))

	leaver, rest := nodes[0], nodes[1:]
	stopped := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- leaver.Stop(ctx)
	}()
	// Five seconds, not one: a busy machine (the race detector, another
	// process's fsyncs) has taken more than a second to run the watchers,
	// and the bound still tells a deletion from the TTL's expiry.
	testkit.CheckFor(t, 5*time.Second, 10*time.Millisecond, listing(rest, rest...))
	t.Logf("the others list 2 members %v after the stop began", time.Since(start).Round(time.Millisecond))
	require.NoError(t, <-stopped)
	placeEverywhere(t, rest, rest, identities("kv-stop", 20))
}

// A member cut off from NATS (its connection closed: no heartbeat, no
// deletion) stays listed for a while and leaves after the TTL, whether the
// server tells the watchers (a marker for the expired record) or they find
// out on their own clock (a bucket without markers, as an older server
// makes it).
func TestKVMemberLeavesAfterTTL(t *testing.T) {
	for _, markers := range []bool{true, false} {
		t.Run(fmt.Sprintf("markers=%v", markers), func(t *testing.T) {
			const ttl = 2 * time.Second
			kc := newKVCluster(t, 250*time.Millisecond, ttl)
			if !markers {
				// Created before any node: natskv.Open uses the bucket as
				// it is.
				js, err := jetstream.New(kc.connect())
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natskv.DefaultBucket, History: 1, TTL: ttl})
				require.NoError(t, err)
			}
			nodes, conns := kc.startMembers(3)
			testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing(nodes, nodes...))

			victim, rest := nodes[0], nodes[1:]
			// Its node is dropped by the others for good: kill it at the
			// end rather than stop it (its deletion would fail anyway).
			t.Cleanup(victim.Kill)
			conns[0].Close()
			cut := time.Now()

			time.Sleep(ttl / 2)
			require.NoError(t, listing(rest, nodes...)(), "half the TTL after the cut, the victim is still listed")
			testkit.CheckFor(t, ttl+3*time.Second, 20*time.Millisecond, listing(rest, rest...))
			t.Logf("the others dropped the cut-off member %v after the cut (TTL %v)", time.Since(cut).Round(time.Millisecond), ttl)
			placeEverywhere(t, rest, rest, identities("kv-ttl", 20))
		})
	}
}

// A client (a gateway) registers nothing and sees members join and leave:
// one that starts, one that stops gracefully and one that is killed.
func TestKVClientSeesMembersJoinAndLeave(t *testing.T) {
	const ttl = 2 * time.Second
	kc := newKVCluster(t, 250*time.Millisecond, ttl)
	members, _ := kc.startMembers(2)
	client := kc.startClient()
	everyone := []*cluster.Node{members[0], members[1], client}
	waitForMembers(t, everyone, 2)

	joiner, _ := kc.startMembers(1)
	members = append(members, joiner...)
	everyone = append(everyone, joiner...)
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing(everyone, members...))
	placeEverywhere(t, []*cluster.Node{client}, members, identities("kv-client", 30))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, members[0].Stop(ctx))
	testkit.CheckFor(t, time.Second, 10*time.Millisecond, listing([]*cluster.Node{client}, members[1:]...))

	members[1].Kill()
	testkit.CheckFor(t, ttl+3*time.Second, 20*time.Millisecond, listing([]*cluster.Node{client}, members[2:]...))
	placeEverywhere(t, []*cluster.Node{client}, members[2:], identities("kv-client-after", 10))
}

// A member killed (its process gone: nothing listens at its address any
// more) is dropped by every node and client within a few seconds, long
// before its record could expire: the nodes whose connection to it broke
// find its address refusing connections and delete its record.
func TestKVKilledMemberLeavesAtOnce(t *testing.T) {
	// A TTL far longer than the test's bound: only the eviction can pass.
	kc := newKVCluster(t, 250*time.Millisecond, time.Minute)
	members, _ := kc.startMembers(3)
	client := kc.startClient()
	everyone := []*cluster.Node{members[0], members[1], members[2], client}
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing(everyone, members...))
	// Calls from everywhere open connections to every member.
	placeEverywhere(t, everyone, members, identities("kv-kill", 30))

	victim, rest := members[0], members[1:]
	killed := time.Now()
	victim.Kill()
	testkit.CheckFor(t, 5*time.Second, 20*time.Millisecond, listing([]*cluster.Node{rest[0], rest[1], client}, rest...))
	// The listing itself asks every member, and waits a while on the
	// killed one until the others have dropped it.
	t.Logf("every node lists the others only, %v after the kill (TTL 1m)", time.Since(killed).Round(time.Millisecond))
	placeEverywhere(t, []*cluster.Node{rest[0], rest[1], client}, rest, identities("kv-kill-after", 20))
}

// A record whose address refuses connections, and to which no node holds a
// connection (a member killed while its peers' connections to it were
// idle or closed), is dropped by every node and deleted from the store as
// soon as a call to it fails to connect: long before the record expires,
// and before protoactor's own notice of the failure, which comes after a
// 2 s pause.
func TestKVMemberThatNeverAnsweredIsDroppedAtOnce(t *testing.T) {
	kc := newKVCluster(t, 250*time.Millisecond, time.Minute)
	kc.gossipInterval = time.Hour // no gossip: only the call below connects
	members, conns := kc.startMembers(2)
	waitForMembers(t, members, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := natskv.Open(ctx, conns[0], natskv.Options{TTL: kc.ttl})
	require.NoError(t, err)
	events, err := store.Watch(ctx)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close()) // nothing listens there now
	ghost := fmt.Sprintf("127.0.0.1:%d", port)
	record, err := json.Marshal(map[string]any{"id": "ghost", "address": "127.0.0.1", "port": port,
		"kinds": []string{testgrain.KindName}, "cluster_name": "test"})
	require.NoError(t, err)
	require.NoError(t, store.Put(ctx, "ghost", record))
	testkit.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, n := range members {
			if !slices.Contains(n.MemberAddresses(), ghost) {
				return fmt.Errorf("%s does not list the ghost yet: %v", n.Address(), n.MemberAddresses())
			}
		}
		return nil
	})

	called := time.Now()
	go func() {
		// The member list asks every member for its stats, the ghost too.
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, _ = members[0].Members(c)
	}()
	var deleted time.Duration
	for deleted == 0 {
		select {
		case ev := <-events:
			if ev.Key == "ghost" && ev.Value == nil {
				deleted = time.Since(called)
			}
		case <-ctx.Done():
			t.Fatal("the ghost's record was never deleted")
		}
	}
	t.Logf("the ghost's record deleted %v after the call", deleted.Round(time.Millisecond))
	assert.Less(t, deleted, 1500*time.Millisecond, "deleted before protoactor's own notice, 2 s after the failure")
	testkit.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, n := range members {
			if slices.Contains(n.MemberAddresses(), ghost) {
				return fmt.Errorf("%s still lists the ghost", n.Address())
			}
		}
		return nil
	})
}
