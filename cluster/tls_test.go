package cluster_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/internal/testgrain"
	"github.com/acme/mastertrust/internal/pki"
)

// testCA is a cluster CA in a temporary directory.
type testCA struct {
	authority *pki.Authority
	dir       string
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	a, err := pki.NewAuthority(name, time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, a.Write(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")))
	return &testCA{authority: a, dir: dir}
}

// issue writes a certificate for a node on loopback and returns the
// node's TLS settings.
func (ca *testCA) issue(t testing.TB, name string) cluster.TLSConfig {
	t.Helper()
	leaf, err := ca.authority.Issue(name, []string{"127.0.0.1", "localhost"}, time.Hour)
	require.NoError(t, err)
	cert, key := filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	require.NoError(t, leaf.Write(cert, key))
	return cluster.TLSConfig{CAFile: filepath.Join(ca.dir, "ca.crt"), CertFile: cert, KeyFile: key}
}

// withTLS sets a node config's TLS.
func withTLS(tc cluster.TLSConfig) func(*cluster.Config) {
	return func(c *cluster.Config) { c.TLS = tc }
}

// The cluster tests that exercise the remote most, over mutual TLS.
func TestGrainsSpreadOverMembersTLS(t *testing.T) {
	grainsSpreadOverMembers(t, withTLS(newTestCA(t, "cluster").issue(t, "node")))
}

func TestAutomanagedTLS(t *testing.T) {
	automanagedCluster(t, withTLS(newTestCA(t, "cluster").issue(t, "node")))
}

// TLS is all or nothing: the three files, or both configurations that
// require and present certificates.
func TestTLSConfigValidate(t *testing.T) {
	ca := newTestCA(t, "cluster")
	files := ca.issue(t, "node")
	server, err := pki.ServerConfig(files.CertFile, files.KeyFile, files.CAFile)
	require.NoError(t, err)
	client, err := pki.ClientConfig(files.CAFile, files.CertFile, files.KeyFile)
	require.NoError(t, err)
	oneWay, err := pki.ServerConfig(files.CertFile, files.KeyFile, "")
	require.NoError(t, err)
	anonymous, err := pki.ClientConfig(files.CAFile, "", "")
	require.NoError(t, err)

	for _, tt := range []struct {
		name string
		tls  cluster.TLSConfig
		want string // "" for valid
	}{
		{"none", cluster.TLSConfig{}, ""},
		{"files", files, ""},
		{"configs", cluster.TLSConfig{Server: server, Client: client}, ""},
		{"no key", cluster.TLSConfig{CAFile: files.CAFile, CertFile: files.CertFile}, "go together"},
		{"only a CA", cluster.TLSConfig{CAFile: files.CAFile}, "go together"},
		{"files and configs", cluster.TLSConfig{CAFile: files.CAFile, CertFile: files.CertFile, KeyFile: files.KeyFile,
			Server: server, Client: client}, "not both"},
		{"server only", cluster.TLSConfig{Server: server}, "go together"},
		{"server without client certificates", cluster.TLSConfig{Server: oneWay, Client: client}, "require and verify client certificates"},
		{"client without a certificate", cluster.TLSConfig{Server: server, Client: anonymous}, "no certificate to present"},
		{"client trusting the system", cluster.TLSConfig{Server: server, Client: &tls.Config{Certificates: client.Certificates}}, "RootCAs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, cluster.NewInProcess(testMemberTTL))
			cfg.Kinds = []cluster.Kind{{Name: testgrain.KindName, New: testgrain.NewKind(testgrain.NewLifecycle())}}
			cfg.TLS = tt.tls
			err := cfg.EnsureDefaults().Validate(false)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Members with certificates from the cluster's CA form the cluster over
// automanaged membership; a node presenting a certificate from another CA,
// and one without TLS, listed among the peers all the same, never enter
// their topology, nor do the members enter theirs. The members'
// membership endpoints answer only a client presenting a cluster
// certificate.
func TestTLSClusterAdmitsOnlyItsMembers(t *testing.T) {
	ca, foreignCA := newTestCA(t, "cluster"), newTestCA(t, "foreign")
	const members = 2
	// Members 0 and 1, then the foreign node and the plaintext one.
	tlsOf := []cluster.TLSConfig{ca.issue(t, "m0"), ca.issue(t, "m1"), foreignCA.issue(t, "intruder"), {}}
	listeners := make([]net.Listener, len(tlsOf))
	peers := make([]string, len(tlsOf))
	for i := range listeners {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners[i], peers[i] = lis, lis.Addr().String()
	}
	base := testConfig(t, nil)
	base.Provider, base.InProcess = cluster.ProviderAutomanaged, nil
	base.Automanaged = cluster.AutomanagedConfig{Peers: peers, RefreshInterval: 100 * time.Millisecond}
	lifecycle := testgrain.NewLifecycle()

	nodes := make([]*cluster.Node, len(tlsOf))
	errs := make([]error, len(tlsOf))
	var wg sync.WaitGroup
	for i := range tlsOf {
		wg.Go(func() {
			cfg := base
			cfg.TLS = tlsOf[i]
			cfg.Automanaged.Listener = listeners[i]
			cfg.Kinds = []cluster.Kind{{Name: testgrain.KindName, New: testgrain.NewKind(lifecycle)}}
			nodes[i], errs[i] = cluster.Start(cfg)
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "start node %d", i)
		t.Cleanup(nodes[i].Kill)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range nodes[:members] {
		require.NoError(t, m.WaitForMembers(ctx, members))
	}

	// Many refresh intervals and gossip rounds.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			got := topology(n)
			if i < members {
				assert.ElementsMatch(t, []string{nodes[0].Address(), nodes[1].Address()}, got, "member %d's topology", i)
			} else {
				assert.Equal(t, []string{n.Address()}, got, "intruder %d's topology", i)
			}
		}
		if t.Failed() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A member's record: only for a client presenting a cluster certificate.
	endpoint := nodes[0].HealthAddress()
	resp, err := http.Get("http://" + endpoint + "/_health")
	if err == nil { // Go's TLS server answers plain HTTP with a 400
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP to the membership endpoint")
	}
	for name, tc := range map[string]cluster.TLSConfig{"no certificate": {CAFile: tlsOf[0].CAFile}, "foreign certificate": tlsOf[2]} {
		cfg, err := pki.ClientConfig(tc.CAFile, tc.CertFile, tc.KeyFile)
		require.NoError(t, err)
		if name == "foreign certificate" {
			cfg.RootCAs, err = pki.Pool(tlsOf[0].CAFile) // trusts the member, presents its own
			require.NoError(t, err)
		}
		_, err = httpsGet(cfg, "https://"+endpoint+"/_health")
		assert.Error(t, err, "membership endpoint with %s", name)
	}
	cfg, err := pki.ClientConfig(tlsOf[1].CAFile, tlsOf[1].CertFile, tlsOf[1].KeyFile)
	require.NoError(t, err)
	body, err := httpsGet(cfg, "https://"+endpoint+"/_health")
	require.NoError(t, err)
	var record struct {
		ID          string `json:"id"`
		ClusterName string `json:"cluster_name"`
	}
	require.NoError(t, json.Unmarshal(body, &record))
	assert.Equal(t, nodes[0].ID(), record.ID)
	assert.Equal(t, "test", record.ClusterName)
}

// topology is the addresses of the members in n's current topology.
func topology(n *cluster.Node) []string {
	var out []string
	for _, m := range n.Cluster().MemberList.Members().Members() {
		out = append(out, m.Address())
	}
	return out
}

func httpsGet(cfg *tls.Config, url string) ([]byte, error) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// A client that knows the members' addresses (here: from the in-process
// registry, the strongest case) but presents a certificate from another CA,
// or none, cannot call a grain: its calls fail and the grain receives
// nothing. A client with a cluster certificate then finds it untouched.
func TestTLSGrainUnreachableWithoutClusterCertificate(t *testing.T) {
	ca := newTestCA(t, "cluster")
	tc := startCluster(t, clusterOptions{members: 2, clients: 1, configure: withTLS(ca.issue(t, "node"))})

	for name, intruderTLS := range map[string]cluster.TLSConfig{
		"foreign CA": newTestCA(t, "foreign").issue(t, "intruder"),
		"plaintext":  {},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, tc.registry)
			cfg.TLS = intruderTLS
			cfg.RequestTimeout = 2 * time.Second
			intruder, err := cluster.StartClient(cfg)
			require.NoError(t, err)
			tc.stopAtCleanup(t, intruder)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// It learns the topology: membership here is in-process.
			require.NoError(t, intruder.WaitForMembers(ctx, 2))

			id := "intruded-" + name
			_, err = add(ctx, intruder, id, 1000)
			require.Error(t, err, "a grain call over the remote without a cluster certificate")
			t.Logf("%s: %v", name, err)
			infos, err := intruder.Members(ctx)
			require.NoError(t, err)
			for _, info := range infos {
				assert.Nil(t, info.ActiveGrains, "member %s's stats without a cluster certificate", info.Address)
				assert.NotEmpty(t, info.StatsError)
			}

			assert.Zero(t, tc.lifecycle.Activations(id), "the grain was activated")
			state, err := get(ctx, tc.clients[0], id)
			require.NoError(t, err)
			assert.Zero(t, state.GetValue())
			assert.EqualValues(t, 1, state.GetActivation())
		})
	}
}
