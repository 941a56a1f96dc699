package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// child is a mastertrust child process whose whole output is kept.
type child struct{ *process }

// startChild starts the test binary as mastertrust with env and args.
func startChild(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	p, err := startProcess(args[0], cmd, "")
	require.NoError(t, err)
	t.Cleanup(func() { p.stop(os.Kill, time.Minute) })
	return &child{p}
}

// waitLine waits for a line of the output starting with prefix and
// returns the rest of it.
func (c *child) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	rest, err := c.process.waitLine(context.Background(), prefix, 90*time.Second)
	require.NoError(t, err)
	return rest
}

// stop ends the process gracefully (SIGINT) and waits for it.
func (c *child) stop(t *testing.T) {
	t.Helper()
	assert.NoError(t, c.process.stop(os.Interrupt, 40*time.Second))
}

// secretsOf are the secrets of a secrets directory as they could appear
// in a log: every seed, and each line of every private key's PEM body.
func secretsOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range natsauth.Roles() {
		b, err := os.ReadFile(natsauth.SeedFile(dir, r))
		require.NoError(t, err)
		out[string(r)+" seed"] = strings.TrimSpace(string(b))
	}
	keys := []string{filepath.Join(dir, natsauth.CAKeyFile), filepath.Join(dir, natsauth.ServerKeyFile)}
	for _, r := range natsauth.Roles() {
		keys = append(keys, natsauth.KeyFile(dir, r))
	}
	return keyLines(t, out, keys...)
}

// keyLines adds each line of the PEM body of every key file to out.
func keyLines(t *testing.T, out map[string]string, keys ...string) map[string]string {
	t.Helper()
	for _, f := range keys {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, line := range strings.Split(string(b), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out[f+" line "+strconv.Itoa(i)] = line
			}
		}
	}
	return out
}

func assertNoSecret(t *testing.T, secrets map[string]string, outputs map[string]string) {
	t.Helper()
	for what, s := range secrets {
		for name, out := range outputs {
			assert.NotContains(t, out, s, "%s printed %s", name, what)
		}
	}
}

// TestClusterCommandsWithCredentials runs README's cluster as processes,
// with the credentials steps: cert (the cluster's) and secrets init, nats,
// the custodian, a node and a gateway (membership through NATS, each with
// its role's credential), each taking the secrets directory
// from MASTERTRUST_NATS_SECRETS and the cluster's files from
// MASTERTRUST_CLUSTER_*.
// The operator's prices go through the gateway to the node and onto NATS;
// an auditor's credential cannot publish a price feed; nats refuses to run
// without its users. No process prints a seed, a private key or the token
// secret, at debug level.
func TestClusterCommandsWithCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	tokenSecret := hex.EncodeToString(raw)
	clusterDir := filepath.Join(dir, "cluster")
	env := []string{"MASTERTRUST_NATS_SECRETS=" + secrets, "MASTERTRUST_TOKEN_SECRET=" + tokenSecret, "MASTERTRUST_LOG_LEVEL=debug",
		"MASTERTRUST_CLUSTER_CA=" + filepath.Join(clusterDir, "ca.crt"), "MASTERTRUST_CLUSTER_CERT=" + filepath.Join(clusterDir, "local.crt"),
		"MASTERTRUST_CLUSTER_KEY=" + filepath.Join(clusterDir, "local.key")}
	out, code := runBinary(t, nil, "cert", "--dir", clusterDir, "--name", "local", "--hosts", "127.0.0.1")
	require.Equal(t, 0, code, out)

	out, code = runBinary(t, nil, "nats", "--data-dir", filepath.Join(dir, "open"), "--nats-port", "-1")
	require.Equal(t, 2, code, out)
	assert.Contains(t, out, "--nats-secrets")

	initOut, code := runBinary(t, env, "secrets", "init")
	require.Equal(t, 0, code, initOut)
	assert.Contains(t, initOut, natsauth.SeedFile(secrets, natsauth.RoleNode))

	natsProc := startChild(t, env, "nats", "--data-dir", filepath.Join(dir, "nats"), "--nats-port", "-1")
	natsURL, _, _ := strings.Cut(natsProc.waitLine(t, "nats listening on "), " ")
	cust := startChild(t, env, "custodian", "--data-dir", filepath.Join(dir, "custodian"), "--nats-url", natsURL)
	cust.waitLine(t, "simulated custodian running against ")
	// The default membership: the node registers in NATS's members'
	// bucket with its credential, the gateway watches it with its own.
	node := startChild(t, env, "node", "--data-dir", filepath.Join(dir, "n1"), "--http", "127.0.0.1:0", "--nats-url", natsURL)
	node.waitLine(t, "node started")
	gw := startChild(t, env, "gateway", "--http", "127.0.0.1:0", "--nats-url", natsURL)
	gwURL := gw.waitLine(t, "gateway listening on ")

	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	date := cal.NextDealingDay(domain.DateOf(time.Now(), cal.Location())).String()
	now := time.Now()
	op, err := gateway.SignToken([]byte(tokenSecret), gateway.Claims{Role: gateway.RoleOperator, Subject: "test",
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()})
	require.NoError(t, err)

	// The intruder, with the auditor's credential, tries first.
	opts, err := natsauth.ClientFromDir(secrets, natsauth.RoleAudit).Options()
	require.NoError(t, err)
	nc, err := nats.Connect(natsURL, append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	fake := &pb.PriceFeed{Date: date, Prices: map[string]string{}}
	for _, a := range domain.DefaultCatalogue().Assets() {
		fake.Prices[string(a.ISIN)] = "0.010000"
	}
	msg, err := natsmsg.New(custodian.PriceSubject(domain.MustDate(date)), fake)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = js.PublishMsg(ctx, msg)
	cancel()
	require.Error(t, err)
	require.NoError(t, nc.Flush())
	assert.ErrorIs(t, nc.LastError(), nats.ErrPermissionViolation)
	nc.Close()

	prices := map[string]string{}
	for _, a := range domain.DefaultCatalogue().Assets() {
		prices[string(a.ISIN)] = "1.5"
	}
	body, err := json.Marshal(map[string]any{"date": date, "prices": prices})
	require.NoError(t, err)
	deadline := time.Now().Add(90 * time.Second)
	for {
		status := call(t, http.MethodPost, gwURL+"/v1/prices", op, "", string(body), nil)
		if status/100 == 2 {
			break
		}
		require.True(t, status == 0 || status >= 500, "POST /v1/prices: %d", status)
		require.True(t, time.Now().Before(deadline), "POST /v1/prices: %d\ngateway:\n%s\nnode:\n%s", status, gw.output(), node.output())
		time.Sleep(500 * time.Millisecond)
	}
	var view struct{ Prices map[string]string }
	require.Equal(t, http.StatusOK, call(t, http.MethodGet, gwURL+"/v1/prices/"+date, op, "", "", &view))
	require.Len(t, view.Prices, len(prices))
	for isin, p := range view.Prices {
		assert.True(t, strings.HasPrefix(p, "1.5"), "%s: %s", isin, p)
	}

	for _, c := range []*child{gw, node, cust, natsProc} {
		c.stop(t)
	}
	outputs := map[string]string{"secrets init": initOut}
	for _, c := range []*child{gw, node, cust, natsProc} {
		outputs[c.name] = c.output()
	}
	s := secretsOf(t, secrets)
	keyLines(t, s, filepath.Join(clusterDir, "ca.key"), filepath.Join(clusterDir, "local.key"))
	s["token secret"] = tokenSecret
	assertNoSecret(t, s, outputs)
}

// dev, started twice on one data dir (making its secrets, then reusing
// them), prints no seed, no private key and not the token secret, at
// debug level.
func TestDevPrintsNoSecret(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	outputs := map[string]string{}
	for i := range 2 {
		d := startChild(t, []string{"MASTERTRUST_LOG_LEVEL=debug"}, "dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--nats-port", "0")
		d.waitLine(t, "operator token: ")
		d.stop(t)
		outputs["dev "+strconv.Itoa(i)] = d.output()
	}
	s := secretsOf(t, platform.NATSSecretsDir(dataDir))
	b, err := os.ReadFile(filepath.Join(dataDir, "token-secret"))
	require.NoError(t, err)
	s["token secret"] = strings.TrimSpace(string(b))
	assertNoSecret(t, s, outputs)
	assert.Contains(t, outputs["dev 0"], "nats credentials in "+platform.NATSSecretsDir(dataDir))
}
