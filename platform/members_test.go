package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/platform"
)

// clusterMembers is GET /v1/cluster's member addresses, sorted.
func clusterMembers(url, token string) ([]string, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/v1/cluster", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	var body struct {
		Members []struct {
			Address string `json:"address"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []string
	for _, m := range body.Members {
		out = append(out, m.Address)
	}
	slices.Sort(out)
	return out, nil
}

// Node and gateway processes as the commands run them, with the default
// membership (a NATS JetStream KV bucket): a node added later joins by
// starting, the gateway lists it and reaches pots through it, and a node
// that stops leaves the gateway's list at once; nobody restarts.
func TestProcessesJoinAndLeaveWithoutRestarts(t *testing.T) {
	if testkit.Race {
		// Processes start here while others' gRPC connections are live, and
		// protoactor's remote.Start writes gRPC's process-wide logger that
		// those read (docs/protoactor.md, pitfall 13): a race of the
		// libraries, not of this code. .ci/run runs this test without the
		// race detector.
		t.Skip("starts cluster processes beside live gRPC connections: see .ci/run's run without -race")
	}
	logger, _ := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	dir := t.TempDir()
	secret := strings.Repeat("s", 32)
	base := platform.Config{Journal: "jetstream", NATSURL: srv.ClientURL(), Groups: 8, ClusterPlaintext: true,
		MembershipHeartbeat: 200 * time.Millisecond, MembershipTTL: 2 * time.Second, Logger: logger}
	if testkit.Race {
		// protoactor's gossip races with itself when members share a
		// process (docs/protoactor.md); membership comes from NATS.
		base.GossipInterval = time.Hour
	}
	startNode := func(name string) *platform.Process {
		cfg := base
		cfg.DataDir = filepath.Join(dir, name)
		p, err := platform.StartMember(cfg)
		require.NoError(t, err, "start %s", name)
		t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
		return p
	}
	var wg sync.WaitGroup
	for _, name := range []string{"n1", "n2"} {
		wg.Go(func() { startNode(name) })
	}
	wg.Wait()

	gwConfig := base
	gwConfig.DataDir, gwConfig.HTTPAddr, gwConfig.TokenSecret = filepath.Join(dir, "gw"), "127.0.0.1:0", secret
	gw, err := platform.StartGateway(gwConfig)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, gw.Stop(context.Background())) })
	token, err := gateway.SignToken([]byte(secret), gateway.Claims{Role: gateway.RoleOperator, Subject: "ops",
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	require.NoError(t, err)
	listed := func(count int) func() error {
		return func() error {
			got, err := clusterMembers(gw.URL, token)
			if err == nil && len(got) != count {
				err = fmt.Errorf("the gateway lists %v, want %d members", got, count)
			}
			return err
		}
	}
	testkit.CheckFor(t, 10*time.Second, 50*time.Millisecond, listed(2))

	third := startNode("n3")
	testkit.CheckFor(t, 5*time.Second, 50*time.Millisecond, listed(3))
	status, err := get(&http.Client{Timeout: 5 * time.Second}, gw.URL+"/readyz", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "readyz")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, third.Stop(ctx))
	testkit.CheckFor(t, time.Second, 20*time.Millisecond, listed(2))
}
