package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/testkit"
)

// TestUnavailable proves the gateway's answer when a pot cannot answer: a
// pot whose journal hangs makes the call time out (503 with Retry-After,
// within RequestTimeout), a retry with the same Idempotency-Key once it
// recovers replays the command instead of doing it twice, and a gateway
// whose cluster node has stopped answers 503 at once.
func TestUnavailable(t *testing.T) {
	const requestTimeout = 300 * time.Millisecond
	e := newEnv(t, envOptions{requestTimeout: requestTimeout})
	c := e.on(t)
	const m = "M200001"
	tok := c.memberToken(m)
	base := "/v1/pots/" + m
	// The pot's first activation may take longer than the short timeout on
	// a busy machine: the open is retried with its key until it answers.
	testkit.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if r := c.call("POST", "/v1/pots", tok, `{"memberId":"`+m+`"}`, key("open")...); r.status != http.StatusCreated {
			return fmt.Errorf("open: %d %s", r.status, r.body)
		}
		return nil
	})

	// The pot's appends hang: the contribution times out.
	c.journal.block(actors.PotStream(m))
	start := time.Now()
	slow := key("slow-1")
	r := c.call("POST", base+"/contributions", tok, `{"amount":"25.00"}`, slow...)
	elapsed := time.Since(start)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "contribution to a hung pot: status; body %s", r.body)
	require.Equal(t, "1", r.header.Get("Retry-After"), "contribution to a hung pot: Retry-After")
	require.Equal(t, "unavailable", c.problem(r).Code, "contribution to a hung pot: problem code")
	require.LessOrEqual(t, elapsed, requestTimeout+time.Second, "time to the 503, want about %s", requestTimeout)
	// Reads queue behind the hung append and time out too.
	r = c.call("GET", base, tok, "")
	require.Equal(t, http.StatusServiceUnavailable, r.status, "read of a hung pot: status; body %s", r.body)

	// The journal recovers; the command was applied once, and its retry
	// with the same key says so.
	c.journal.release(actors.PotStream(m))
	var mv movementView
	testkit.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		r := c.call("POST", base+"/contributions", tok, `{"amount":"25.00"}`, slow...)
		if r.status != http.StatusAccepted || r.header.Get("Idempotent-Replayed") != "true" {
			return fmt.Errorf("retry answered %d %s (replayed %q), want a replayed 202", r.status, r.body, r.header.Get("Idempotent-Replayed"))
		}
		return json.Unmarshal(r.body, &mv)
	})
	var pot potView
	c.must(http.StatusOK, &pot, "GET", base, tok, "")
	// One contribution of 25.00.
	require.Equal(t, "25.00", mv.Amount, "after the retry: movement amount")
	require.Equal(t, "25.00", pot.Cash.Available, "after the retry: cash available")

	// The metrics saw the timeout.
	r = c.must(http.StatusOK, nil, "GET", "/metrics", "", "")
	if !strings.Contains(string(r.body), `mastertrust_gateway_pot_call_seconds_count{command="contribute",outcome="timeout"}`) {
		t.Errorf("metrics lack the timed-out call")
	}

	// The member hosting the pots dies: calls are 503 within the timeout.
	e.node.Cluster.Kill()
	for _, req := range [][3]string{
		{"GET", base, ""},
		{"POST", base + "/withdrawals", `{"amount":"1.00"}`},
	} {
		start := time.Now()
		r := c.call(req[0], req[1], tok, req[2], key("dead-member")...)
		if assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s %s with the member dead: status; body %s", req[0], req[1], r.body) {
			assert.NotEmpty(t, r.header.Get("Retry-After"), "%s %s with the member dead: Retry-After", req[0], req[1])
			assert.Equal(t, "unavailable", c.problem(r).Code, "%s %s with the member dead: problem code", req[0], req[1])
		}
		assert.LessOrEqual(t, time.Since(start), requestTimeout+time.Second, "%s %s with the member dead: time to answer", req[0], req[1])
	}

	// The gateway's own cluster node stops: every pot call and the cluster
	// listing are 503 at once.
	stopping := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.client.Stop(ctx))
	t.Logf("client node stopped in %s", time.Since(stopping))
	for _, req := range [][3]string{
		{"GET", base, ""},
		{"POST", base + "/contributions", `{"amount":"1.00"}`},
		{"GET", "/v1/cluster", ""},
	} {
		token := tok
		if req[1] == "/v1/cluster" {
			token = c.operator
		}
		start := time.Now()
		r := c.call(req[0], req[1], token, req[2], key("stopped-node")...)
		if assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s %s with the node stopped: status; body %s", req[0], req[1], r.body) {
			assert.NotEmpty(t, r.header.Get("Retry-After"), "%s %s with the node stopped: Retry-After", req[0], req[1])
			assert.Equal(t, "unavailable", c.problem(r).Code, "%s %s with the node stopped: problem code", req[0], req[1])
		}
		assert.LessOrEqual(t, time.Since(start), requestTimeout+time.Second, "%s %s with the node stopped: time to answer", req[0], req[1])
	}
	// Health does not depend on the cluster.
	c.must(http.StatusOK, nil, "GET", "/healthz", "", "")
}
