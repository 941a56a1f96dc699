package natsembed_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/pki"
	"github.com/acme/mastertrust/internal/testkit"
)

// memberSubject is the subject of the test members' certificates, as
// natsauth issues the server's.
const memberSubject = "CN=nats,O=mastertrust"

// routeTLS is a route TLS configuration with a certificate for commonName
// on loopback, issued by ca.
func routeTLS(t *testing.T, ca *pki.Authority, commonName string) *tls.Config {
	t.Helper()
	dir := t.TempDir()
	leaf, err := ca.Issue(commonName, []string{"127.0.0.1", "localhost"}, time.Hour)
	require.NoError(t, err)
	cert, key, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.crt")
	require.NoError(t, leaf.Write(cert, key))
	require.NoError(t, ca.Write(caFile, filepath.Join(dir, "ca.key")))
	cfg, err := pki.PeerConfig(cert, key, caFile)
	require.NoError(t, err)
	return cfg
}

// freeRoutes chooses n free loopback ports and returns them with their
// route URLs (a clustered JetStream refuses to start without routes, so
// the ports are chosen first).
func freeRoutes(t *testing.T, n int) ([]int, []string) {
	t.Helper()
	var ports []int
	var routes []string
	for range n {
		port := testkit.FreePort(t)
		ports = append(ports, port)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", port))
	}
	return ports, routes
}

// peers are the names of the servers s has a route with.
func peers(t *testing.T, s *natsembed.Server) []string {
	t.Helper()
	rz, err := s.NATS().Routez(&server.RoutezOptions{})
	require.NoError(t, err)
	var names []string
	for _, r := range rz.Routes {
		if !slices.Contains(names, r.RemoteName) {
			names = append(names, r.RemoteName)
		}
	}
	slices.Sort(names)
	return names
}

// startTLSCluster starts three servers routed to each other over mutual
// TLS with certificates of ca, and waits until each routes to the other
// two and JetStream's meta group has a leader.
func startTLSCluster(t *testing.T, ca *pki.Authority) []*natsembed.Server {
	t.Helper()
	ports, routes := freeRoutes(t, 3)
	var servers []*natsembed.Server
	for i := range 3 {
		s, err := natsembed.Start(natsembed.Options{
			Dir:  t.TempDir(),
			Name: fmt.Sprintf("n%d", i),
			Cluster: &natsembed.ClusterOptions{Name: "routes-test", Port: ports[i], Routes: routes,
				TLS: routeTLS(t, ca, "nats"), PeerSubject: memberSubject},
		})
		require.NoError(t, err)
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	require.Eventually(t, func() bool {
		leader := false
		for i, s := range servers {
			want := []string{"n0", "n1", "n2"}
			if !slices.Equal(peers(t, s), slices.Delete(want, i, i+1)) || !s.NATS().JetStreamIsCurrent() {
				return false
			}
			leader = leader || s.NATS().JetStreamIsLeader()
		}
		return leader
	}, 30*time.Second, 20*time.Millisecond, "the cluster's routes and JetStream meta leader")
	return servers
}

// TestRoutesMutualTLS proves that three servers whose routes are mutual
// TLS form a cluster (each routes to the other two over TLS) and keep an
// R3 stream with a replica on each.
func TestRoutesMutualTLS(t *testing.T) {
	ca, err := pki.NewAuthority("routes test CA", time.Hour)
	require.NoError(t, err)
	servers := startTLSCluster(t, ca)
	for i, s := range servers {
		v, err := s.NATS().Varz(nil)
		require.NoError(t, err)
		assert.True(t, v.Cluster.TLSRequired, "n%d's routes: TLS required", i)
		assert.True(t, v.Cluster.TLSVerify, "n%d's routes: peers verified", i)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(servers[1].ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	for i := range 5 {
		_, err := js.Publish(ctx, "r3.x", []byte{byte(i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 || info.State.Msgs != 5 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the R3 stream: 5 messages, two current replicas beside the leader")
}

// TestRoutesRefuseStrangers proves that a cluster with route TLS refuses
// a server whose route certificate comes from another CA, one whose
// certificate comes from the cluster's CA with another subject (a client's
// certificate), and a plaintext one: none becomes a peer of the cluster's
// servers, and each is left without routes.
func TestRoutesRefuseStrangers(t *testing.T) {
	ca, err := pki.NewAuthority("routes test CA", time.Hour)
	require.NoError(t, err)
	servers := startTLSCluster(t, ca)
	other, err := pki.NewAuthority("another CA", time.Hour)
	require.NoError(t, err)

	cases := []struct {
		name string
		tls  *tls.Config
	}{
		{"another-ca", routeTLS(t, other, "nats")},
		{"client-cert", routeTLS(t, ca, "node")},
		{"plaintext", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			subject := memberSubject
			if c.tls == nil {
				subject = ""
			}
			stranger, err := natsembed.Start(natsembed.Options{
				Dir:  t.TempDir(),
				Name: c.name,
				Cluster: &natsembed.ClusterOptions{Name: "routes-test", Port: -1,
					Routes: []string{servers[0].ClusterURL(), servers[1].ClusterURL()}, TLS: c.tls, PeerSubject: subject},
			})
			require.NoError(t, err)
			t.Cleanup(stranger.Shutdown)
			// The stranger redials every second; a few attempts each way.
			time.Sleep(3 * time.Second)
			assert.Empty(t, peers(t, stranger), "%s's routes", c.name)
			for i, s := range servers {
				want := []string{"n0", "n1", "n2"}
				assert.Equal(t, slices.Delete(want, i, i+1), peers(t, s), "n%d's peers", i)
			}
		})
	}
}

// TestRoutesDialOnlyMembers proves that a member does not route to a
// server it dials whose certificate comes from the cluster's CA with
// another subject (a client's certificate naming the host), although that
// server, which does not check, would let it in.
func TestRoutesDialOnlyMembers(t *testing.T) {
	ca, err := pki.NewAuthority("routes test CA", time.Hour)
	require.NoError(t, err)
	_, dead := freeRoutes(t, 1)
	// The stranger checks nothing beyond the CA (no PeerSubject).
	stranger, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Name: "stranger",
		Cluster: &natsembed.ClusterOptions{Name: "routes-test", Port: -1, Routes: dead, TLS: routeTLS(t, ca, "node")}})
	require.NoError(t, err)
	t.Cleanup(stranger.Shutdown)
	member, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Name: "member",
		Cluster: &natsembed.ClusterOptions{Name: "routes-test", Port: -1, Routes: []string{stranger.ClusterURL()},
			TLS: routeTLS(t, ca, "nats"), PeerSubject: memberSubject}})
	require.NoError(t, err)
	t.Cleanup(member.Shutdown)
	time.Sleep(3 * time.Second) // the member redials every second
	assert.Empty(t, peers(t, member), "the member's routes")
	assert.Empty(t, peers(t, stranger), "the stranger's routes")
}

// TestRouteTLSMustVerify proves that Start refuses a route TLS
// configuration that would leave a side unverified.
func TestRouteTLSMustVerify(t *testing.T) {
	ca, err := pki.NewAuthority("routes test CA", time.Hour)
	require.NoError(t, err)
	for name, spoil := range map[string]func(*tls.Config){
		"no client auth":  func(c *tls.Config) { c.ClientAuth = tls.RequestClientCert },
		"no client CAs":   func(c *tls.Config) { c.ClientCAs = nil },
		"no root CAs":     func(c *tls.Config) { c.RootCAs = nil },
		"skip verify":     func(c *tls.Config) { c.InsecureSkipVerify = true },
		"no certificates": func(c *tls.Config) { c.Certificates = nil },
	} {
		cfg := routeTLS(t, ca, "nats")
		spoil(cfg)
		_, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(),
			Cluster: &natsembed.ClusterOptions{Name: "c", Port: -1, Routes: []string{"nats-route://127.0.0.1:1"}, TLS: cfg}})
		assert.ErrorContains(t, err, "route TLS", name)
	}
	_, err = natsembed.Start(natsembed.Options{Dir: t.TempDir(),
		Cluster: &natsembed.ClusterOptions{Name: "c", Port: -1, Routes: []string{"nats-route://127.0.0.1:1"}, PeerSubject: memberSubject}})
	assert.ErrorContains(t, err, "PeerSubject", "a peer subject without TLS")
}
