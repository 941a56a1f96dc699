package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/testkit"
)

// childEnv makes the test binary run mastertrust itself (TestMain), so that
// a test can start it as a child process and kill it.
const childEnv = "MASTERTRUST_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signalContext()
		code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// devProcess is a `mastertrust dev` child process.
type devProcess struct {
	cmd         *exec.Cmd
	url         string
	memberToken string
	dataDir     string
	// natsURL and natsLine are the NATS server's URL and the whole line
	// that gave it; natsMonitorURL its monitoring URL, if it has one.
	natsURL, natsLine, natsMonitorURL string
	// natsTry is the nats CLI command line dev suggests.
	natsTry string
}

// startDev starts dev on dataDir and waits for its ready lines.
func startDev(t *testing.T, dataDir, member string) *devProcess {
	t.Helper()
	return startDevArgs(t, dataDir, member)
}

// startDevArgs is startDev with more flags. Its NATS server listens on a
// free port unless extra says otherwise (a test's dev must not take NATS's
// well-known port from whatever else runs on the machine).
func startDevArgs(t *testing.T, dataDir, member string, extra ...string) *devProcess {
	t.Helper()
	return startDevCommand(t, dataDir, member, append([]string{"--nats-port", "0"}, extra...)...)
}

// startDevCommand starts dev with the flags startDev gives and extra, and
// waits for its ready lines.
func startDevCommand(t *testing.T, dataDir, member string, extra ...string) *devProcess {
	t.Helper()
	args := append([]string{"dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--member", member, "--log-level", "warn"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &devProcess{cmd: cmd, dataDir: dataDir}
	lines := bufio.NewScanner(stdout)
	ready := make(chan error, 1)
	go func() {
		for lines.Scan() {
			line := lines.Text()
			if url, ok := strings.CutPrefix(line, "gateway listening on "); ok {
				d.url = url
			}
			if rest, ok := strings.CutPrefix(line, "nats listening on "); ok {
				d.natsURL, _, _ = strings.Cut(rest, " ")
				d.natsLine = line
			}
			if try, ok := strings.CutPrefix(line, "try: nats "); ok {
				d.natsTry = try
			}
			if url, ok := strings.CutPrefix(line, "nats monitoring on "); ok {
				d.natsMonitorURL = url
			}
			if _, token, ok := strings.Cut(line, "member token ("+member+"): "); ok {
				d.memberToken = token
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("dev exited before it was ready: %v", lines.Err())
	}()
	select {
	case err := <-ready:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not start within 60s")
	}
	return d
}

func (d *devProcess) post(path, key, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.memberToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestDevKilledKeepsEveryAcknowledgedWrite proves "durable before
// acknowledged" for the whole process: dev is killed with SIGKILL while
// contributions are in flight; after a restart on the same data every
// contribution that got a 202 is there (a retry with its key is a replay),
// and the pot holds exactly the money of those that are.
func TestDevKilledKeepsEveryAcknowledgedWrite(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dataDir := t.TempDir()
	const member = "M000777"
	d := startDev(t, dataDir, member)
	code, err := d.post("/v1/pots", "open", `{"memberId":"`+member+`"}`)
	require.NoError(t, err, "open")
	require.Equal(t, http.StatusCreated, code, "open: status")

	const writers = 8
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				code, err := d.post("/v1/pots/"+member+"/contributions", key, `{"amount":"1.00"}`)
				if err == nil && code == http.StatusAccepted {
					mu.Lock()
					acked[key] = true
					mu.Unlock()
				}
			}
		})
	}
	// Kill at a random moment once some writes were acknowledged.
	testkit.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 50 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	d.cmd.Wait()
	cancel()
	wg.Wait()
	t.Logf("%d contributions acknowledged before the kill", len(acked))

	d2 := startDev(t, dataDir, member)
	for key := range acked {
		req, _ := http.NewRequest(http.MethodPost, d2.url+"/v1/pots/"+member+"/contributions", strings.NewReader(`{"amount":"1.00"}`))
		req.Header.Set("Authorization", "Bearer "+d2.memberToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		// Else the acknowledged contribution was lost.
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "acknowledged contribution %s retried after the crash: status", key)
		require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"), "acknowledged contribution %s retried after the crash: Idempotent-Replayed", key)
	}
	// The pot holds at least the acknowledged money (writes in flight at
	// the kill may or may not have landed, unacknowledged), and only whole
	// pounds: no partial request.
	req, _ := http.NewRequest(http.MethodGet, d2.url+"/v1/pots/"+member, nil)
	req.Header.Set("Authorization", "Bearer "+d2.memberToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var pot struct {
		Cash struct {
			Available string `json:"available"`
		} `json:"cash"`
	}
	err = json.NewDecoder(resp.Body).Decode(&pot)
	resp.Body.Close()
	require.NoError(t, err)
	available, err := decimal.NewFromString(pot.Cash.Available)
	require.NoError(t, err)
	require.True(t, available.GreaterThanOrEqual(decimal.NewFromInt(int64(len(acked)))),
		"after restart the pot has %s available, %d contributions of 1.00 were acknowledged", available, len(acked))
	require.True(t, available.IsInteger(), "after restart the pot has %s available, not whole contributions of 1.00", available)
}

// call sends a request with a token and decodes a JSON answer into out (if
// not nil), returning the status.
func call(t *testing.T, method, url, token, key, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out), "%s %s: decode", method, url)
	}
	return resp.StatusCode
}

// awaitStatus GETs path every 20 ms until its status is not "running",
// decoding the last answer into out (which must have a Status field read
// by status).
func awaitStatus(t *testing.T, url, token string, out any, status func() string) {
	t.Helper()
	testkit.CheckFor(t, 2*time.Minute, 20*time.Millisecond, func() error {
		if code := call(t, "GET", url, token, "", "", out); code != http.StatusOK {
			return fmt.Errorf("GET %s: %d", url, code)
		}
		if s := status(); s == "running" {
			return fmt.Errorf("%s still running", url)
		}
		return nil
	})
}

// runCycleToEnd runs a cycle as an operator does: POST answers 202 (or 200
// once complete), then the summary is polled until the run ends.
func runCycleToEnd(t *testing.T, base, token, date, body string) cycleSummary {
	t.Helper()
	var s cycleSummary
	switch code := call(t, "POST", base+"/v1/cycles/"+date+"/run", token, "", body, &s); code {
	case http.StatusOK:
	case http.StatusAccepted:
		awaitStatus(t, base+"/v1/cycles/"+date, token, &s, func() string { return s.Status })
	default:
		t.Fatalf("run cycle %s: %d", date, code)
	}
	return s
}

type cycleSummary struct {
	Date          string `json:"date"`
	Status        string `json:"status"`
	Step          string `json:"step"`
	Trades        int64  `json:"trades"`
	PotsAllocated int64  `json:"potsAllocated"`
	Orders        []struct {
		ClOrdID string `json:"clOrdId"`
		Units   string `json:"units"`
		Cash    string `json:"cash"`
		Status  string `json:"status"`
	} `json:"orders"`
}

// TestDevKilledMidCycleCompletesOnce kills dev with SIGKILL in the middle of
// a dealing cycle, after the custodian orders went out and before the
// allocation finished (the custodian's reports are slow), restarts it on the
// same data and runs the cycle again: it completes, every pot is allocated,
// each order was executed once by the custodian, and reconciliation finds
// no break.
func TestDevKilledMidCycleCompletesOnce(t *testing.T) {
	dataDir := t.TempDir()
	const member = "M000001"
	d := startDevArgs(t, dataDir, member, "--custodian-delay-max", "3s", "--custodian-seed", "7")
	operator := devToken(t, d, "")
	const pots = 30
	var date string
	for i := range pots {
		m := fmt.Sprintf("K%04d", i)
		token := devToken(t, d, m)
		code := call(t, "POST", d.url+"/v1/pots", token, "open", `{"memberId":"`+m+`","riskProfile":"balanced"}`, nil)
		require.Equal(t, http.StatusCreated, code, "open %s: status", m)
		var mv struct {
			DealingDate string `json:"dealingDate"`
		}
		code = call(t, "POST", d.url+"/v1/pots/"+m+"/contributions", token, "pay", `{"amount":"1000.00"}`, &mv)
		require.Equal(t, http.StatusAccepted, code, "contribute %s: status", m)
		date = mv.DealingDate
	}
	prices := `{"date":"` + date + `","prices":{"GB00BN7Q2L69":"2.000000","GB00BD8R3K42":"1.500000","IE00BF4W7M71":"1.250000",` +
		`"GB00BH2T9J51":"1.100000","GB00BK5V8P82":"1.2345","IE00BL3X6N73":"0.987654","GB00BP9C4D20":"1.000000"}}`
	code := call(t, "POST", d.url+"/v1/prices", operator, "", prices, nil)
	require.Equal(t, http.StatusOK, code, "prices: status")
	go postAndForget(d.url+"/v1/cycles/"+date+"/run", operator, `{"rebalance":true}`) // dev is killed under it
	testkit.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		var s cycleSummary
		call(t, "GET", d.url+"/v1/cycles/"+date, operator, "", "", &s)
		if s.Step != "executions" {
			return fmt.Errorf("cycle at step %q, status %q", s.Step, s.Status)
		}
		return nil
	})
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	d.cmd.Wait()

	d2 := startDevArgs(t, dataDir, member)
	operator = devToken(t, d2, "")
	var before cycleSummary
	code = call(t, "GET", d2.url+"/v1/cycles/"+date, operator, "", "", &before)
	require.Equal(t, http.StatusOK, code, "the killed cycle after the restart: GET status")
	require.Equal(t, "failed", before.Status, "the killed cycle after the restart: status (interrupted); %+v", before)
	s := runCycleToEnd(t, d2.url, operator, date, `{"rebalance":true}`)
	require.Equal(t, "complete", s.Status, "cycle after the crash: status; %+v", s)
	require.Equal(t, int64(pots), s.PotsAllocated, "cycle after the crash: pots allocated")
	require.NotEmpty(t, s.Orders, "cycle after the crash: orders")
	for _, o := range s.Orders {
		require.Equal(t, "executed", o.Status, "cycle after the crash: order %s's status", o.ClOrdID)
	}
	var again cycleSummary
	code = call(t, "POST", d2.url+"/v1/cycles/"+date+"/run", operator, "", `{"rebalance":true}`, &again)
	require.Equal(t, http.StatusOK, code, "second run: status")
	require.Equal(t, s.PotsAllocated, again.PotsAllocated, "second run: pots allocated")
	require.Equal(t, s.Trades, again.Trades, "second run: trades")
	require.Len(t, again.Orders, len(s.Orders), "second run: orders")
	var report struct {
		Internal struct{ Breaks []any } `json:"internal"`
		External struct{ Breaks []any } `json:"external"`
		Pots     int                    `json:"pots"`
	}
	var status struct{ Status string }
	switch code := call(t, "POST", d2.url+"/v1/reconciliations", operator, "after-crash", `{"deep":true}`, &status); code {
	case http.StatusOK, http.StatusAccepted:
		awaitStatus(t, d2.url+"/v1/reconciliations/after-crash", operator, &status, func() string { return status.Status })
	default:
		t.Fatalf("reconcile: %d", code)
	}
	code = call(t, "GET", d2.url+"/v1/reconciliations/after-crash", operator, "", "", &report)
	require.Equal(t, http.StatusOK, code, "reconciliation after the crash: GET status")
	require.Equal(t, "complete", status.Status, "reconciliation after the crash: status")
	require.Empty(t, report.Internal.Breaks, "reconciliation after the crash: internal breaks")
	require.Empty(t, report.External.Breaks, "reconciliation after the crash: external breaks")
	require.Equal(t, pots, report.Pots, "reconciliation after the crash: pots")
}

// devToken signs a token with the dev data dir's secret through the token
// command (a member token for member, an operator token for "").
func devToken(t *testing.T, d *devProcess, member string) string {
	t.Helper()
	args := []string{"token", "--data-dir", d.dataDir, "--token-ttl", "1h"}
	if member == "" {
		args = append(args, "--operator")
	} else {
		args = append(args, "--member", member)
	}
	var out strings.Builder
	require.NoError(t, run(context.Background(), args, &out, io.Discard))
	return strings.TrimSpace(out.String())
}

// postAndForget sends a request whose answer nobody waits for (the server
// is killed while it runs).
func postAndForget(url, token, body string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
