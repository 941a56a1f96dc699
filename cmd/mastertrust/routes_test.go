package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/testkit"
)

// TestNATSRoutesCommand runs three `mastertrust nats` servers as a cluster
// (one configured by MASTERTRUST_* variables, two by flags) with routes
// over mutual TLS from the secrets directory, and proves that a node's
// R3 stream gets a replica on each; that a plaintext server (--no-auth)
// cannot join; and that routes are refused without the cluster's name or
// without the secrets directory.
func TestNATSRoutesCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	env := []string{"MASTERTRUST_NATS_SECRETS=" + secrets}
	out, code := runBinary(t, env, "secrets", "init")
	require.Equal(t, 0, code, out)

	var ports []string
	var routes []string
	for range 3 {
		p := strconv.Itoa(testkit.FreePort(t))
		ports = append(ports, p)
		routes = append(routes, "nats-route://127.0.0.1:"+p)
	}
	all := strings.Join(routes, ",")

	out, code = runBinary(t, env, "nats", "--data-dir", filepath.Join(dir, "x"), "--nats-port", "-1", "--routes", all)
	require.NotEqual(t, 0, code, out)
	assert.Contains(t, out, "--routes-name", "routes without the cluster's name")
	out, code = runBinary(t, nil, "nats", "--data-dir", filepath.Join(dir, "x"), "--nats-port", "-1", "--routes-name", "mt", "--routes", all)
	require.NotEqual(t, 0, code, out)
	assert.Contains(t, out, "--nats-secrets", "routes without the secrets directory")

	var servers []*child
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		args := []string{"nats", "--data-dir", filepath.Join(dir, name), "--nats-port", "-1", "--nats-monitor-port", "-1"}
		childEnv := env
		if i == 1 {
			childEnv = append(childEnv, "MASTERTRUST_NATS_NAME="+name, "MASTERTRUST_ROUTES_NAME=mt", "MASTERTRUST_ROUTES_PORT="+ports[i],
				"MASTERTRUST_ROUTES="+all)
		} else {
			args = append(args, "--nats-name", name, "--routes-name", "mt", "--routes-port", ports[i], "--routes", all)
		}
		servers = append(servers, startChild(t, childEnv, args...))
	}
	var clientURLs, monitorURLs []string
	for i, s := range servers {
		u, _, _ := strings.Cut(s.waitLine(t, "nats listening on "), " ")
		clientURLs = append(clientURLs, u)
		monitorURLs = append(monitorURLs, s.waitLine(t, "nats monitoring on "))
		how := s.waitLine(t, "nats routes of cluster mt on ")
		assert.Contains(t, how, "nats-route://127.0.0.1:"+ports[i], "n%d's routes", i)
		assert.Contains(t, how, "mutual TLS", "n%d's routes", i)
	}

	opts, err := natsauth.ClientFromDir(secrets, natsauth.RoleNode).Options()
	require.NoError(t, err)
	nc, err := nats.Connect(clientURLs[0], opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	var st jetstream.Stream
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "mt_routes", Subjects: []string{"mt.routes.>"}, Replicas: 3, Storage: jetstream.FileStorage})
		cancel()
		if err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "an R3 stream on the cluster: %v\nn0:\n%s", err, servers[0].output())
		time.Sleep(200 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = js.Publish(ctx, "mt.routes.x", []byte("x"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the R3 stream's two replicas beside the leader")

	plain := startChild(t, nil, "nats", "--data-dir", filepath.Join(dir, "plain"), "--nats-port", "-1", "--no-auth", "--nats-name", "plain",
		"--routes-name", "mt", "--routes-port", "-1", "--routes", routes[0])
	assert.Contains(t, plain.waitLine(t, "nats routes of cluster mt on "), "plaintext")
	time.Sleep(3 * time.Second) // it redials every second
	for i, u := range monitorURLs {
		assert.ElementsMatch(t, without([]string{"n0", "n1", "n2"}, i), routezPeers(t, u), "n%d's peers", i)
	}
	for _, c := range append(servers, plain) {
		c.stop(t)
	}
}

func without(names []string, i int) []string {
	return append(names[:i:i], names[i+1:]...)
}

// routezPeers are the names of the servers that the server with monitoring
// at base routes to, from its /routez.
func routezPeers(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/routez")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rz struct {
		Routes []struct {
			RemoteName string `json:"remote_name"`
		} `json:"routes"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rz))
	var names []string
	for _, r := range rz.Routes {
		if !slices.Contains(names, r.RemoteName) {
			names = append(names, r.RemoteName)
		}
	}
	return names
}
