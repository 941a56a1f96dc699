package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/testkit"
)

// TestShedAtTheLimit proves that a gateway at its limit of requests in
// flight refuses the next request quickly (503, the unavailable problem,
// Retry-After) having done nothing: the pot's journal is unchanged, and
// the retry with the same Idempotency-Key, once a slot is free, does the
// command for the first time rather than replaying it.
func TestShedAtTheLimit(t *testing.T) {
	const slotWait = 20 * time.Millisecond
	e := newEnv(t, envOptions{inFlightMax: 2, slotWaitMax: slotWait})
	c := e.on(t)
	members := []string{"M300001", "M300002", "M300003"}
	tokens := map[string]string{}
	for _, m := range members {
		tokens[m] = c.memberToken(m)
		c.must(http.StatusCreated, nil, "POST", "/v1/pots", tokens[m], `{"memberId":"`+m+`"}`)
	}
	hung, shed := members[:2], members[2]

	// Two contributions hang at their pots' journal: they hold both slots.
	type result struct {
		status int
		err    error
	}
	results := make(chan result, len(hung))
	for _, m := range hung {
		c.journal.block(actors.PotStream(m))
		go func() {
			status, _, err := e.post("/v1/pots/"+m+"/contributions", tokens[m], `{"amount":"5.00"}`, "hung-"+m)
			results <- result{status, err}
		}()
	}
	testkit.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if v := c.metric("mastertrust_http_requests_in_flight"); v != 2 {
			return fmt.Errorf("%v requests in flight, want the 2 hung ones", v)
		}
		return nil
	})

	// The next request is refused at once and does nothing.
	before := c.potVersion(shed)
	path := "/v1/pots/" + shed + "/contributions"
	start := time.Now()
	r := c.call("POST", path, tokens[shed], `{"amount":"7.00"}`, "Idempotency-Key", "pay-1")
	took := time.Since(start)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "request past the limit: status; body %s", r.body)
	require.NotEmpty(t, r.header.Get("Retry-After"), "request past the limit: Retry-After")
	p := c.problem(r)
	require.Equal(t, "unavailable", p.Code, "request past the limit: problem code")
	require.Contains(t, p.Detail, "nothing was done", "request past the limit: problem detail")
	// It waited for a slot (SlotWaitMax), not for the hung requests' 5 s.
	require.GreaterOrEqual(t, took, slotWait, "time to the 503: at least the slot wait")
	require.LessOrEqual(t, took, time.Second, "time to the 503: well under a second")
	if v := c.potVersion(shed); v != before {
		t.Fatalf("a refused request changed the journal: version %d → %d", before, v)
	}
	// A read is refused the same way; health, metrics and the operators
	// (who have slots of their own) still get answers.
	r = c.call("GET", "/v1/pots/"+shed, tokens[shed], "")
	require.Equal(t, http.StatusServiceUnavailable, r.status, "read past the limit: status; body %s", r.body)
	c.must(http.StatusOK, nil, "GET", "/healthz", "", "")
	c.must(http.StatusOK, nil, "GET", "/v1/cluster", c.operator, "")
	assert.Equal(t, 2.0, c.metric("mastertrust_http_requests_shed_total"), "requests shed")
	assert.Equal(t, 2.0, c.metric(`mastertrust_http_slot_wait_seconds_count{result="shed"}`), "slot waits of shed requests")

	// The hung requests end once their journals recover, freeing the slots.
	for _, m := range hung {
		c.journal.release(actors.PotStream(m))
	}
	for range hung {
		res := <-results
		require.NoError(t, res.err, "hung contribution")
		require.Equal(t, http.StatusAccepted, res.status, "hung contribution once the journal recovered: status")
	}

	// The retry with the same key is the command's first doing, not a replay.
	var mv movementView
	r = c.must(http.StatusAccepted, &mv, "POST", path, tokens[shed], `{"amount":"7.00"}`, "Idempotency-Key", "pay-1")
	require.Empty(t, r.header.Get("Idempotent-Replayed"), "the retry of a refused request: Idempotent-Replayed")
	var pot potView
	c.must(http.StatusOK, &pot, "GET", "/v1/pots/"+shed, tokens[shed], "")
	// One contribution of 7.00.
	require.Equal(t, "7.00", mv.Amount, "after the retry: movement amount")
	require.Equal(t, "7.00", pot.Cash.Available, "after the retry: cash available")
	require.Greater(t, c.potVersion(shed), before, "after the retry: pot version")
}

// TestSlotWaitRidesOutABurst proves that a request past the limit waits
// for a slot: when one frees within SlotWaitMax, it is served, not shed.
func TestSlotWaitRidesOutABurst(t *testing.T) {
	e := newEnv(t, envOptions{inFlightMax: 1, slotWaitMax: 3 * time.Second})
	c := e.on(t)
	const a, b = "M300011", "M300012"
	tokA, tokB := c.memberToken(a), c.memberToken(b)
	c.must(http.StatusCreated, nil, "POST", "/v1/pots", tokA, `{"memberId":"`+a+`"}`)
	c.must(http.StatusCreated, nil, "POST", "/v1/pots", tokB, `{"memberId":"`+b+`"}`)

	c.journal.block(actors.PotStream(a))
	hung := make(chan int, 1)
	go func() {
		status, _, _ := e.post("/v1/pots/"+a+"/contributions", tokA, `{"amount":"5.00"}`, "hung")
		hung <- status
	}()
	testkit.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if v := c.metric("mastertrust_http_requests_in_flight"); v != 1 {
			return fmt.Errorf("%v requests in flight, want the hung one", v)
		}
		return nil
	})
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.journal.release(actors.PotStream(a))
	}()
	c.must(http.StatusAccepted, nil, "POST", "/v1/pots/"+b+"/contributions", tokB, `{"amount":"3.00"}`, "Idempotency-Key", "burst")
	require.Equal(t, http.StatusAccepted, <-hung, "hung contribution: status")
	assert.Equal(t, 1.0, c.metric(`mastertrust_http_slot_wait_seconds_count{result="admitted"}`), "slot waits admitted")
	assert.Equal(t, 0.0, c.metric("mastertrust_http_requests_shed_total"), "requests shed")
}

// post sends a JSON POST from any goroutine (the test helpers fail the
// test, which only the test's goroutine may do).
func (e *env) post(path, token, body, key string) (int, []byte, error) {
	req, err := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// metric reads one sample from GET /metrics: name with its labels as the
// exposition format writes them; 0 if absent.
func (c tc) metric(name string) float64 {
	c.t.Helper()
	r := c.must(http.StatusOK, nil, "GET", "/metrics", "", "")
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(c.t, err, "metric %s", name)
			return v
		}
	}
	return 0
}
