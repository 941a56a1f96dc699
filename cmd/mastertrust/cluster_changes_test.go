package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/testkit"
)

// clusterPhase is how long TestClusterGrowsAndShrinksUnderLoad loads the
// cluster between two changes (after each change has settled). As a
// benchmark (docs/performance.md, "A cluster that grows and shrinks"):
// -cluster.phase=15s, so that each phase spans several of the 5-second
// windows the test reports.
var clusterPhase = flag.Duration("cluster.phase", 3*time.Second, "load between two changes of the cluster in TestClusterGrowsAndShrinksUnderLoad")

// clusterPots is how many pots take TestClusterGrowsAndShrinksUnderLoad's
// contributions, in turn. Few pots are busy ones (with 40, each takes a
// contribution every ~40 ms and remembers thousands of keys, so a pot that
// moves has a long recovery); many are closer to members' own pace (with
// 1,000, every ~1 s), and a change moves more of them.
var clusterPots = flag.Int("cluster.pots", 40, "pots taking the load in TestClusterGrowsAndShrinksUnderLoad")

// TestClusterGrowsAndShrinksUnderLoad is an operator's day with the
// README's cluster (NATS, the custodian, nodes, a gateway, each its own
// process, membership in NATS): under a steady load of contributions
// through the gateway, a fourth node joins by starting, one node leaves
// by SIGTERM, one is killed with SIGKILL and restarted, and a dealing cycle
// runs and reconciles after each change, nothing else restarted. A join and
// a graceful leave cost the members no error at all; a kill costs errors
// only to requests that were in flight when it happened, answered within
// the request timeout; every acknowledged contribution is in its pot
// exactly once.
func TestClusterGrowsAndShrinksUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of a cluster's processes")
	}
	if testkit.Race {
		// Its processes are this test binary, so race-enabled too, and a
		// node that leaves meets protoactor's own gossip races
		// (docs/protoactor.md, pitfall 14): reported inside the node, they
		// stall it for seconds, and the calls it holds time out. A race of
		// the library, not of this code. .ci/run runs this test without the
		// race detector.
		t.Skip("cluster processes built with the race detector: see .ci/run's run without -race")
	}
	t.Parallel()
	ctx := context.Background()
	// The cycles deal the days after today, one after each change: the
	// local cluster's nodes deal any day ahead.
	lc, err := startLocalCluster(ctx, localClusterConfig{Dir: t.TempDir(), Nodes: 3, Env: []string{childEnv + "=1"}, Log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(lc.stop)
	c := &changesRun{t: t, base: lc.gateway, secret: lc.secret, operator: signTestToken(t, lc.secret, gateway.RoleOperator, "")}

	// Pots: self-directed ones take the load (their cash is what was paid
	// in, exactly), balanced ones give the cycles trades.
	loaded, invested := *clusterPots, 10
	c.pots = make([]string, loaded)
	for i := range loaded {
		c.pots[i] = fmt.Sprintf("C%05d", i)
	}
	opening := make(chan int)
	var opened sync.WaitGroup
	for range 8 {
		opened.Go(func() {
			for i := range opening {
				member := fmt.Sprintf("C%05d", i)
				profile := ""
				if i >= loaded {
					profile = "balanced"
				}
				token := c.memberToken(member)
				assert.Equal(t, http.StatusCreated, c.callAs(token, "POST", "/v1/pots", "open", `{"memberId":"`+member+`","riskProfile":"`+profile+`"}`, nil), "open %s", member)
				if i >= loaded {
					assert.Equal(t, http.StatusAccepted, c.callAs(token, "POST", "/v1/pots/"+member+"/contributions", "invest", `{"amount":"1000.00"}`, nil), "invest in %s", member)
				}
			}
		})
	}
	for i := range loaded + invested {
		opening <- i
	}
	close(opening)
	opened.Wait()
	require.False(t, t.Failed(), "opening the pots")
	c.invested = fmt.Sprintf("C%05d", loaded)
	var dealing string
	var mv struct{ DealingDate string }
	require.Equal(t, http.StatusAccepted, c.callAs(c.memberToken(c.invested), "POST", "/v1/pots/"+c.invested+"/contributions", "date", `{"amount":"1.00"}`, &mv))
	dealing = mv.DealingDate

	stopSampling := c.sampleCPU(lc)
	loadStart := time.Now()
	stopLoad := c.startLoad(8)
	steady := func(phase string) {
		c.setPhase(phase)
		time.Sleep(*clusterPhase)
	}
	steady("steady")
	steadyEnd := time.Now()

	c.event("join")
	require.NoError(t, lc.startNode(ctx, 4))
	require.NoError(t, lc.awaitMembers(ctx, 4))
	steady("join")
	dealing = c.cycle(dealing, "after the join")

	c.setPhase("leave")
	c.event("leave (SIGTERM)")
	require.NoError(t, lc.stopNode(2, syscall.SIGTERM))
	require.NoError(t, lc.awaitMembers(ctx, 3))
	steady("leave")
	dealing = c.cycle(dealing, "after the graceful leave")

	c.setPhase("kill")
	c.event("kill (SIGKILL)")
	killedAt := time.Now()
	require.NoError(t, lc.stopNode(3, syscall.SIGKILL))
	dead := time.Now() // a request sent until now may have reached it
	require.NoError(t, lc.awaitMembers(ctx, 2))
	steady("kill")
	dealing = c.cycle(dealing, "after the kill")

	c.setPhase("restart")
	c.event("restart")
	require.NoError(t, lc.startNode(ctx, 3))
	require.NoError(t, lc.awaitMembers(ctx, 3))
	steady("restart")
	c.cycle(dealing, "after the restart")
	stopLoad()
	stopSampling()
	c.reportWindows(loadStart, steadyEnd)

	// The verdict.
	c.mu.Lock()
	t.Logf("%d contributions acknowledged; %d answered otherwise", c.acked, len(c.failures))
	for _, f := range c.failures {
		if f.start.Before(dead) && !f.end.Before(killedAt) {
			// In flight on the killed node: answered within the request
			// timeout (5 s) of the kill.
			assert.Less(t, f.end.Sub(killedAt), 6*time.Second, "%s: answered %s after the kill", f, f.end.Sub(killedAt))
			continue
		}
		t.Errorf("%s: a member saw an error during %q, sent %s after the kill", f, f.phase, f.start.Sub(killedAt))
	}
	acked := c.acked
	c.mu.Unlock()
	require.Positive(t, acked)
	if t.Failed() {
		for _, p := range lc.processes() {
			t.Logf("%s's log:\n%s", p.name, p.output())
		}
	}
	c.settleFailures()
	for _, member := range c.pots {
		var pot struct {
			Cash struct{ Available string }
		}
		require.Equal(t, http.StatusOK, c.callAs(c.memberToken(member), "GET", "/v1/pots/"+member, "", "", &pot))
		want := fmt.Sprintf("%d.00", c.paid[member])
		assert.Equal(t, want, pot.Cash.Available, "pot %s: every contribution once", member)
	}
	c.reconcile("at the end")
}

// changesRun drives TestClusterGrowsAndShrinksUnderLoad's load.
type changesRun struct {
	t        *testing.T
	base     string
	secret   []byte
	operator string
	pots     []string
	invested string // a balanced pot: a contribution to it tells the dealing day

	mu       sync.Mutex
	cpu      []cpuSample // each process's CPU time, every second
	phase    string
	events   []changeEvent // the changes and cycles, when they began
	ackedAt  []time.Time   // when each acknowledgement came
	acked    int
	paid     map[string]int // member → £ acknowledged (each contribution £1)
	failures []changeFailure
	next     atomic.Int64
}

// cpuSample is a process's CPU time (user and system) at a moment.
type cpuSample struct {
	at   time.Time
	name string
	pid  int
	cpu  time.Duration
}

// sampleCPU records the CPU time of every process of the cluster, and of
// this test's process (the clients), every second until the returned func
// is called. The windows' report shows where the machine's cores went: the
// cluster's processes all share them here.
func (c *changesRun) sampleCPU(lc *localCluster) (stop func()) {
	sample := func() {
		now := time.Now()
		pids := lc.pids()
		pids["clients"] = os.Getpid()
		var samples []cpuSample
		for name, pid := range pids {
			if cpu, ok := processCPUTime(pid); ok {
				samples = append(samples, cpuSample{at: now, name: name, pid: pid, cpu: cpu})
			}
		}
		c.mu.Lock()
		c.cpu = append(c.cpu, samples...)
		c.mu.Unlock()
	}
	sample() // before the load starts: the first window counts from here
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				sample()
				return
			case <-tick.C:
				sample()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// processCPUTime is a process's user and system CPU time, from
// /proc/PID/stat (Linux; false elsewhere), in clock ticks of 10 ms (Linux
// reports USER_HZ, 100, whatever the kernel's own tick).
func processCPUTime(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command's name (field 2) may hold spaces: count from its ")".
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 { // f[0] is field 3; utime and stime are fields 14 and 15
		return 0, false
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	system, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(user+system) * 10 * time.Millisecond, true
}

// cpuIn sums each process's CPU time spent between from and to, by name,
// from the samples (a process that started in between counts from zero).
func (c *changesRun) cpuIn(from, to time.Time) map[string]time.Duration {
	type series struct{ before, last time.Duration }
	byPID := map[int]*series{}
	names := map[int]string{}
	for _, s := range c.cpu {
		if s.at.After(to) {
			continue
		}
		r, ok := byPID[s.pid]
		if !ok {
			r = &series{}
			byPID[s.pid], names[s.pid] = r, s.name
		}
		if !s.at.After(from) {
			r.before = s.cpu
		}
		r.last = s.cpu
	}
	out := map[string]time.Duration{}
	for pid, r := range byPID {
		out[names[pid]] += r.last - r.before
	}
	return out
}

type changeEvent struct {
	at   time.Time
	what string
}

type changeFailure struct {
	phase, member, key string
	status             int
	body               string
	start, end         time.Time
}

func (f changeFailure) String() string {
	return fmt.Sprintf("contribution %s of %s: %d %s", f.key, f.member, f.status, f.body)
}

func signTestToken(t *testing.T, secret []byte, role gateway.Role, subject string) string {
	t.Helper()
	now := time.Now()
	tok, err := gateway.SignToken(secret, gateway.Claims{Role: role, Subject: subject, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()})
	require.NoError(t, err)
	return tok
}

func (c *changesRun) memberToken(member string) string {
	return signTestToken(c.t, c.secret, gateway.RoleMember, member)
}

func (c *changesRun) setPhase(p string) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

// event notes the start of a change or a cycle, for the windows' report.
func (c *changesRun) event(what string) {
	c.mu.Lock()
	c.events = append(c.events, changeEvent{at: time.Now(), what: what})
	c.mu.Unlock()
}

// reportWindows logs the acknowledged contributions per second in 5-second
// windows from the start of the load, each beside the steady state's rate
// (the load's first phase, before any change) and the changes that began
// in it.
func (c *changesRun) reportWindows(start, steadyEnd time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	const window = 5 * time.Second
	var steadyAcks int
	counts := map[int]int{}
	last := 0
	for _, at := range c.ackedAt {
		if at.Before(steadyEnd) {
			steadyAcks++
		}
		i := int(at.Sub(start) / window)
		counts[i]++
		last = max(last, i)
	}
	steadyRate := float64(steadyAcks) / steadyEnd.Sub(start).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "steady state: %.0f contributions/s\nwindow      /s   of steady  CPU s (of %.0f)  changes begun  |  CPU s by process\n", steadyRate, float64(runtime.NumCPU())*window.Seconds())
	for i := 0; i < last; i++ { // the last window is cut short by the stop
		from := start.Add(time.Duration(i) * window)
		var begun []string
		for _, e := range c.events {
			if !e.at.Before(from) && e.at.Before(from.Add(window)) {
				begun = append(begun, e.what)
			}
		}
		rate := float64(counts[i]) / window.Seconds()
		cpu := c.cpuIn(from, from.Add(window))
		var total time.Duration
		var byProcess []string
		for _, name := range slices.Sorted(maps.Keys(cpu)) {
			total += cpu[name]
			byProcess = append(byProcess, fmt.Sprintf("%s %.1f", name, cpu[name].Seconds()))
		}
		fmt.Fprintf(&b, "%3d–%3ds %7.0f %9.0f%% %10.1f      %-14s |  %s\n", i*5, i*5+5, rate, 100*rate/steadyRate, total.Seconds(),
			strings.Join(begun, ", "), strings.Join(byProcess, ", "))
	}
	c.t.Logf("throughput by window:\n%s", b.String())
}

// callAs sends a request and decodes a 2xx answer into out.
func (c *changesRun) callAs(token, method, path, key, body string, out any) int {
	return call(c.t, method, c.base+path, token, key, body, out)
}

// awaitMembers waits until the gateway and every member see n members.
// startLoad runs workers sending £1 contributions to the loaded pots, each
// with a key of its own, until the returned func is called.
func (c *changesRun) startLoad(workers int) (stop func()) {
	c.paid = map[string]int{}
	tokens := map[string]string{}
	for _, m := range c.pots {
		tokens[m] = c.memberToken(m)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				n := c.next.Add(1)
				member := c.pots[int(n)%len(c.pots)]
				key := fmt.Sprintf("load-%d", n)
				c.mu.Lock()
				phase := c.phase
				c.mu.Unlock()
				start := time.Now()
				status, body := contribute(client, c.base, tokens[member], member, key)
				end := time.Now()
				c.mu.Lock()
				if status == http.StatusAccepted {
					c.ackedAt = append(c.ackedAt, end)
					c.acked++
					c.paid[member]++
				} else {
					c.failures = append(c.failures, changeFailure{phase: phase, member: member, key: key, status: status, body: body, start: start, end: end})
				}
				c.mu.Unlock()
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

func contribute(client *http.Client, base, token, member, key string) (int, string) {
	req, err := http.NewRequest("POST", base+"/v1/pots/"+member+"/contributions", strings.NewReader(`{"amount":"1.00"}`))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// settleFailures sends every contribution that was not acknowledged again
// with its key until it is: each then counts once, applied then or before.
func (c *changesRun) settleFailures() {
	c.t.Helper()
	c.mu.Lock()
	failures := slices.Clone(c.failures)
	c.mu.Unlock()
	client := &http.Client{Timeout: 10 * time.Second}
	for _, f := range failures {
		testkit.CheckFor(c.t, 30*time.Second, 100*time.Millisecond, func() error {
			status, body := contribute(client, c.base, c.memberToken(f.member), f.member, f.key)
			if status != http.StatusAccepted {
				return fmt.Errorf("%s again: %d %s", f, status, body)
			}
			return nil
		})
		c.mu.Lock()
		c.paid[f.member]++
		c.mu.Unlock()
	}
}

// cycle runs the dealing cycle of date and a reconciliation, and returns
// the next dealing day.
func (c *changesRun) cycle(date, when string) string {
	c.t.Helper()
	prices := `{"date":"` + date + `","prices":{"GB00BN7Q2L69":"2.000000","GB00BD8R3K42":"1.500000","IE00BF4W7M71":"1.250000",` +
		`"GB00BH2T9J51":"1.100000","GB00BK5V8P82":"1.2345","IE00BL3X6N73":"0.987654","GB00BP9C4D20":"1.000000"}}`
	c.event("cycle " + date)
	require.Equal(c.t, http.StatusOK, c.callAs(c.operator, "POST", "/v1/prices", "", prices, nil), "prices of %s %s", date, when)
	s := runCycleToEnd(c.t, c.base, c.operator, date, `{"rebalance":true}`)
	require.Equal(c.t, "complete", s.Status, "cycle %s %s", date, when)
	c.t.Logf("cycle %s %s: %d trades, %d pots allocated", date, when, s.Trades, s.PotsAllocated)
	c.reconcile(when)
	var next struct{ DealingDate string }
	require.Equal(c.t, http.StatusAccepted, c.callAs(c.memberToken(c.invested), "POST", "/v1/pots/"+c.invested+"/contributions", "after-"+date, `{"amount":"1.00"}`, &next))
	return next.DealingDate
}

func (c *changesRun) reconcile(when string) {
	c.t.Helper()
	key := fmt.Sprintf("R-%d", time.Now().UnixNano())
	var status struct{ Status string }
	switch code := c.callAs(c.operator, "POST", "/v1/reconciliations", key, `{"deep":false}`, &status); code {
	case http.StatusOK:
	case http.StatusAccepted:
		awaitStatus(c.t, c.base+"/v1/reconciliations/"+key, c.operator, &status, func() string { return status.Status })
	default:
		c.t.Fatalf("reconcile %s: %d", when, code)
	}
	var report struct {
		Status   string
		Internal struct{ Breaks []json.RawMessage }
		External struct{ Breaks []json.RawMessage }
	}
	require.Equal(c.t, http.StatusOK, c.callAs(c.operator, "GET", "/v1/reconciliations/"+key, "", "", &report))
	require.Equal(c.t, "complete", report.Status, "reconciliation %s", when)
	require.Empty(c.t, report.Internal.Breaks, "reconciliation %s: internal breaks", when)
	require.Empty(c.t, report.External.Breaks, "reconciliation %s: external breaks", when)
}
