package platform_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/pki"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/platform"
)

// httpsClient trusts the CA in caFile only.
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	cfg, err := pki.ClientConfig(caFile, "", "")
	require.NoError(t, err)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get does a GET with a bearer token and returns the status.
func get(c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A member and a gateway as the node and gateway commands run them: the
// cluster under mutual TLS with certificates from the cluster's CA, the
// gateway serving HTTPS with one from its own CA. A client trusting that
// CA gets a pot's answer from the member through the gateway over HTTPS; a
// gateway without cluster certificates does not start.
func TestMemberAndGatewayOverTLS(t *testing.T) {
	dir := t.TempDir()
	logger, _ := testkit.Logger(t)
	nodeCerts, err := platform.IssueCertificate(platform.ClusterSecretsDir(dir), "n1", []string{"127.0.0.1"})
	require.NoError(t, err)
	gwCerts, err := platform.IssueCertificate(platform.ClusterSecretsDir(dir), "gw", []string{"127.0.0.1"})
	require.NoError(t, err)
	httpsCerts, err := platform.IssueCertificate(platform.GatewaySecretsDir(dir), "gateway", []string{"127.0.0.1"})
	require.NoError(t, err)
	info, err := os.Stat(nodeCerts.Key)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "key file mode")
	info, err = os.Stat(filepath.Join(platform.ClusterSecretsDir(dir), "ca.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "CA key file mode")

	port := testkit.FreePort(t)
	peers := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	secret := strings.Repeat("s", 32)
	member, err := platform.StartMember(platform.Config{DataDir: filepath.Join(dir, "n1"), Journal: "pebble", Groups: 8,
		Membership: platform.MembershipAutomanaged, AutomanagedPort: port, Peers: peers, Logger: logger,
		ClusterCA: nodeCerts.CA, ClusterCert: nodeCerts.Cert, ClusterKey: nodeCerts.Key})
	require.NoError(t, err)
	t.Cleanup(func() { member.Stop(context.Background()) })

	gwConfig := platform.Config{DataDir: filepath.Join(dir, "gw"), HTTPAddr: "127.0.0.1:0", TokenSecret: secret,
		Membership: platform.MembershipAutomanaged, Peers: peers, Logger: logger}
	_, err = platform.StartGateway(gwConfig)
	require.ErrorContains(t, err, "the cluster needs TLS")

	gwConfig.ClusterCA, gwConfig.ClusterCert, gwConfig.ClusterKey = gwCerts.CA, gwCerts.Cert, gwCerts.Key
	gwConfig.TLSCert, gwConfig.TLSKey = httpsCerts.Cert, httpsCerts.Key
	gw, err := platform.StartGateway(gwConfig)
	require.NoError(t, err)
	t.Cleanup(func() { gw.Stop(context.Background()) })
	require.True(t, strings.HasPrefix(gw.URL, "https://"), gw.URL)

	client := httpsClient(t, httpsCerts.CA)
	token, err := gateway.SignToken([]byte(secret), gateway.Claims{Role: gateway.RoleMember, Subject: "M000001",
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	testkit.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		status, err := get(client, gw.URL+"/readyz", "")
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("readyz: %d", status)
		}
		return err
	})
	// The pot answers (200, or 404 for a pot never opened): the gateway
	// reached the member over the remote.
	status, err := get(client, gw.URL+"/v1/pots/M000001", token)
	require.NoError(t, err)
	assert.Contains(t, []int{http.StatusOK, http.StatusNotFound}, status)

	// A client that does not trust the gateway's CA refuses it; plain HTTP
	// gets no API.
	_, err = get(&http.Client{Timeout: 5 * time.Second}, gw.URL+"/healthz", "")
	assert.Error(t, err, "a client trusting only the system's CAs")
	status, err = get(&http.Client{Timeout: 5 * time.Second}, "http://"+strings.TrimPrefix(gw.URL, "https://")+"/healthz", "")
	if err == nil {
		assert.Equal(t, http.StatusBadRequest, status, "plain HTTP to the HTTPS gateway")
	}
}

// dev is secure by default: its node's remote runs under mutual TLS with a
// CA it makes in its data dir, kept across restarts; with --tls-cert and
// --tls-key its gateway serves HTTPS.
func TestDevTLS(t *testing.T) {
	dir := t.TempDir()
	logger, _ := testkit.Logger(t)
	httpsCerts, err := platform.IssueCertificate(platform.GatewaySecretsDir(dir), "gateway", []string{"127.0.0.1"})
	require.NoError(t, err)
	start := func(cfg platform.Config) *platform.Dev {
		cfg.DataDir, cfg.HTTPAddr, cfg.Logger = dir, "127.0.0.1:0", logger
		d, err := platform.StartDev(cfg)
		require.NoError(t, err)
		return d
	}
	d := start(platform.Config{})
	assert.True(t, d.Node.Cluster.Config().TLS.Enabled(), "dev's cluster TLS")
	caFile := filepath.Join(platform.ClusterSecretsDir(dir), "ca.crt")
	ca, err := os.ReadFile(caFile)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(d.URL, "http://"), d.URL)
	require.NoError(t, d.Stop(context.Background()))

	d = start(platform.Config{TLSCert: httpsCerts.Cert, TLSKey: httpsCerts.Key})
	t.Cleanup(func() { d.Stop(context.Background()) })
	again, err := os.ReadFile(caFile)
	require.NoError(t, err)
	assert.Equal(t, ca, again, "dev's cluster CA is kept across restarts")
	require.True(t, strings.HasPrefix(d.URL, "https://"), d.URL)
	token, err := d.Token("M000001", time.Hour)
	require.NoError(t, err)
	status, err := get(httpsClient(t, httpsCerts.CA), d.URL+"/v1/assets", token)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	// The remote's port refuses a client without the dev CA's certificate.
	conf := &tls.Config{RootCAs: mustPool(t, caFile), NextProtos: []string{"h2"}}
	conn, err := tls.Dial("tcp", d.Node.Cluster.Address(), conf)
	if err == nil {
		// TLS 1.3: the server's refusal arrives with the first read.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	assert.Error(t, err, "a TLS client without a certificate")
}

func mustPool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	p, err := pki.Pool(caFile)
	require.NoError(t, err)
	return p
}
