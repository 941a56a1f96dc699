package jetstream_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/pki"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/persistence/persistencetest"
)

// startCluster starts three servers routed to each other over mutual TLS
// (as production's are), each with its own store, and waits until
// JetStream's meta group has a leader. A clustered JetStream refuses to
// start without routes, so the route ports are chosen first.
func startCluster(t testing.TB) []*natsembed.Server {
	t.Helper()
	ca, err := pki.NewAuthority("journal test CA", time.Hour)
	require.NoError(t, err)
	leaf, err := ca.Issue("nats", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	cert, key, caFile := filepath.Join(dir, "nats.crt"), filepath.Join(dir, "nats.key"), filepath.Join(dir, "ca.crt")
	require.NoError(t, leaf.Write(cert, key))
	require.NoError(t, ca.Write(caFile, filepath.Join(dir, "ca.key")))
	routeTLS, err := pki.PeerConfig(cert, key, caFile)
	require.NoError(t, err)
	var ports []int
	var routes []string
	for range 3 {
		port := testkit.FreePort(t)
		ports = append(ports, port)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", port))
	}
	var servers []*natsembed.Server
	for i := range 3 {
		s, err := natsembed.Start(natsembed.Options{
			Dir:    t.TempDir(),
			Name:   fmt.Sprintf("n%d", i),
			Logger: testLogger(t),
			Cluster: &natsembed.ClusterOptions{Name: "journal-test", Port: ports[i], Routes: routes,
				TLS: routeTLS, PeerSubject: "CN=nats,O=mastertrust"},
		})
		require.NoError(t, err)
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !clusterReady(servers) {
		if time.Now().After(deadline) {
			t.Fatal("the cluster's JetStream meta group is not ready after 30s")
		}
		time.Sleep(10 * time.Millisecond) // polling the cluster's state
	}
	return servers
}

// clusterReady reports whether the meta group has a leader that every
// server follows.
func clusterReady(servers []*natsembed.Server) bool {
	for _, s := range servers {
		if !s.NATS().JetStreamIsCurrent() {
			return false
		}
	}
	return hasMetaLeader(servers)
}

func hasMetaLeader(servers []*natsembed.Server) bool {
	for _, s := range servers {
		if s.NATS().JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// TestContractReplicated runs the acceptance suite on a three-server
// cluster with every stream replicated three times, each Journal connected
// to another server, as nodes of a cluster would be. Every append goes through
// the batcher, as a busy node's do. Concurrent appends to
// one stream on a replicated stream can fail with JetStream's error 10164
// (an append to the subject is still in the Raft pipeline) as well as
// 10071; the suite's conflict cases fail unless both are reported as
// ErrVersionConflict.
func TestContractReplicated(t *testing.T) {
	servers := startCluster(t)
	var next atomic.Int64
	persistencetest.Run(t, persistencetest.Backend{
		Features: persistencetest.Features{Shared: true},
		NewStorage: func(t *testing.T, groups uint32) persistencetest.OpenFunc {
			prefix := fmt.Sprintf("r%d", prefixSeq.Add(1))
			return func(t *testing.T) (persistence.Journal, error) {
				srv := servers[next.Add(1)%int64(len(servers))]
				nc := connect(t, srv.ClientURL())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return jetstream.Open(ctx, nc, jetstream.Options{Prefix: prefix, Groups: groups, Streams: min(int(groups), 2), Replicas: 3,
					BatchAppendsMin: 1, Logger: testLogger(t)})
			}
		},
	})
}

// Check says whether the journal can write: on a replicated journal whose
// streams lost their quorum (two of three servers down) it fails within
// seconds, naming a stream, though the connection to the third server is
// up and a stream led by that server still answers. Nodes report it on
// /readyz.
func TestCheckNeedsLeaders(t *testing.T) {
	servers := startCluster(t)
	nc := connect(t, servers[0].ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := jetstream.Open(ctx, nc, jetstream.Options{Prefix: "chk", Groups: 4, Streams: 2, Replicas: 3, Logger: testLogger(t)})
	require.NoError(t, err)
	defer j.Close()
	require.NoError(t, j.Check(ctx))

	servers[1].Shutdown()
	servers[2].Shutdown()
	require.True(t, nc.IsConnected())
	deadline := time.Now().Add(5 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = j.Check(cctx)
		cancel()
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the servers' state
	}
	t.Logf("Check: %v", err)
	require.Error(t, err, "Check with two of three servers down")
	require.ErrorContains(t, err, "stream chk_")
	require.NoError(t, j.Close())
	require.ErrorIs(t, j.Check(ctx), persistence.ErrClosed)
}

// Three nodes opening a new replicated journal at once, each through
// another server, all open it, with one configuration: the streams'
// creation tolerates its twins (natsstream.Ensure), and a node whose
// configuration write lost waits for the winner's to show (on a
// replicated stream it may be refused before it is visible). Several
// journals, since the race goes either way.
func TestOpenConcurrently(t *testing.T) {
	servers := startCluster(t)
	for round := range 2 {
		prefix := fmt.Sprintf("conc%d", round)
		stores := make([]*jetstream.Store, len(servers))
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for i, srv := range servers {
			nc := connect(t, srv.ClientURL())
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				stores[i], errs[i] = jetstream.Open(ctx, nc, jetstream.Options{Prefix: prefix, Groups: 8, Replicas: 3, Logger: testLogger(t)})
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d, node %d", round, i)
			require.Equal(t, uint32(8), stores[i].Groups())
			require.NoError(t, stores[i].Close())
		}
	}
}
