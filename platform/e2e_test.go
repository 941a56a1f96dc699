package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/platform"
)

// The end-to-end tests of the dealing cycle through HTTP: a
// driver that knows only the API opens pots, trades with them for several
// simulated dealing days with random prices, runs every cycle through the
// operator endpoint, and checks at the end that reconciliation finds no
// break and that docs/domain.md's invariants 1–5 hold for every pot, with its
// own bookkeeping of every request it got a success for.

var (
	e2eSeedFlag = flag.Uint64("e2e.seed", 0, "seed of the end-to-end tests' random choices (0: a new one, logged)")
	e2eFullFlag = flag.Bool("e2e.full", false, "run TestE2EDealingThroughHTTP at full size under the race detector too")
)

// e2eConfig sizes and shapes one end-to-end run.
type e2eConfig struct {
	Seed uint64
	// Start is the first dealing day; Days the dealing days with member
	// requests. After them the driver runs cycles without requests until
	// every order has settled.
	Start domain.Date
	Days  int
	Pots  int
	// Workers send requests at once; HotPots of the pots get HotShare of
	// the requests, so that requests to one pot overlap and it batches.
	Workers  int
	HotPots  int
	HotShare float64
	// OpsPerDay are the member operations before the day's cut-off,
	// LateOpsPerDay those between the cut-off and the cycle (they deal the
	// next day).
	OpsPerDay     int
	LateOpsPerDay int
	// RacingOps are sent, every other day, while that day's cycle runs,
	// with the clock just before the cut-off: each order deals that day
	// if it was decided before the cycle closed the day, else the next
	// day (or is rolled there, visibly).
	RacingOps int
	// ReplaySample is how many acknowledged requests are repeated at the
	// end, after a restart, to show they are durable.
	ReplaySample int

	Faults         simulator.Faults
	DuplicateFeed  bool
	PotIdleTimeout time.Duration
}

// e2eSeed is the seed of a run: the flag's, or a new one.
func e2eSeed() uint64 {
	if *e2eSeedFlag != 0 {
		return *e2eSeedFlag
	}
	return rand.Uint64()
}

// TestE2EDealingThroughHTTP proves the dealing cycle end to end through the
// API: at least 1,000 pots over at least 5 dealing days of random member
// requests and prices, every cycle run by the operator endpoint, end with
// zero reconciliation breaks, docs/domain.md's invariants 1–5 for every
// pot, and a second run of every cycle reporting the same summary and
// trading nothing.
func TestE2EDealingThroughHTTP(t *testing.T) {
	cfg := e2eConfig{
		Seed: e2eSeed(), Start: domain.MustDate("2026-11-23"), Days: 7, Pots: 1000,
		Workers: 32, HotPots: 16, HotShare: 0.15, OpsPerDay: 2500, LateOpsPerDay: 400, RacingOps: 500, ReplaySample: 400,
	}
	if testkit.Race && !*e2eFullFlag {
		// At full size the race detector takes over 3 minutes.
		cfg.Pots, cfg.Days, cfg.OpsPerDay, cfg.LateOpsPerDay, cfg.RacingOps, cfg.ReplaySample = 500, 6, 1200, 200, 250, 300
		t.Logf("race detector on: %d pots over %d dealing days (without it: 1000 over 7; -e2e.full for that)", cfg.Pots, cfg.Days)
	}
	runE2E(t, cfg)
}

// TestE2EDealingWithFaults is the same with the custodian's faults on
// (dropped, duplicated, delayed and reordered reports, refused orders), a
// journal that delivers feed events twice, and pots that passivate after 2 s
// idle: still no break, and no order executed twice.
func TestE2EDealingWithFaults(t *testing.T) {
	seed := e2eSeed()
	cfg := e2eConfig{
		Seed: seed, Start: domain.MustDate("2026-11-23"), Days: 6, Pots: 500,
		Workers: 32, HotPots: 8, HotShare: 0.1, OpsPerDay: 1000, LateOpsPerDay: 200, RacingOps: 250, ReplaySample: 300,
		Faults: simulator.Faults{Seed: seed, DropProbability: 0.2, DuplicateProbability: 0.2,
			DelayMax: 300 * time.Millisecond, ReorderWindow: 3, OutageOrders: 3},
		DuplicateFeed: true, PotIdleTimeout: 2 * time.Second,
	}
	// Under the race detector it takes about 80 s: the same size.
	runE2E(t, cfg)
}

// e2e is one run: the platform, the driver's model of every pot, and what
// it has seen.
type e2e struct {
	t     *testing.T
	cfg   e2eConfig
	pcfg  platform.Config
	clock *e2eClock
	cal   *domain.Calendar
	api   *e2eAPI

	mu    sync.Mutex
	dev   *platform.Dev     // mu guards: replaced by a restart
	feeds []*dupFeedJournal // mu guards

	opToken  string
	assets   []e2eAsset
	profiles []string
	prices   map[string]decimal.Decimal // the day's closing prices, a random walk
	walk     *rand.Rand
	pots     []*e2ePotModel

	// The phase under way: requests now deal on dealDay (or, racing, on
	// day or dealDay).
	day     domain.Date
	phase   e2ePhase
	dealDay domain.Date

	cycles []*e2eCycleRun
	// before is the simulator's counters at the restart (they start over).
	before   simulator.Stats
	failures e2eFailures
	counts   e2eCounts
}

// e2ePhase is the part of a dealing day requests are sent in.
type e2ePhase int

const (
	e2eMorning e2ePhase = iota // before the cut-off: requests deal today
	e2eLate                    // after the cut-off: they deal the next dealing day
	e2eRacing                  // just before the cut-off, while the day's cycle runs
)

// e2eCycleRun is a cycle as first run: its request and its summary.
type e2eCycleRun struct {
	date      domain.Date
	rebalance bool
	racing    bool // requests were sent while it ran
	raw       []byte
	summary   e2eCycle
}

// e2ePotModel is what the driver knows of a pot: every request the API
// acknowledged, and what those requests made.
type e2ePotModel struct {
	id    string
	token string

	mu            sync.Mutex
	keys          int                        // mu guards: keys handed out
	acked         []*e2eAcked                // mu guards
	contributions map[string]decimal.Decimal // mu guards: by movement id
	withdrawals   map[string]*e2eWithdrawal  // mu guards: by movement id
	orders        map[string]*e2eOrderModel  // mu guards: by order id
	orderIDs      []string                   // mu guards: in acknowledgement order
	cancelAsked   map[string]bool            // mu guards: orders a cancel was sent for
}

type e2eAcked struct {
	op        string
	method    string
	path      string
	body      []byte
	key       string
	status    int
	ref       string    // the id of what it made or touched
	at        time.Time // simulated time of the request
	hasAmount bool      // the body has an "amount" (a 409 test can change it)
}

type e2eWithdrawal struct {
	amount decimal.Decimal
	orders []string
}

type e2eOrderModel struct {
	id          string
	dealingDate string
	movementID  string
	cancelled   bool
	racing      bool // placed while its day's cycle ran: it may have been rolled
}

func (p *e2ePotModel) newKey() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys++
	return fmt.Sprintf("%s-k%d", p.id, p.keys)
}

// addOrdersLocked records orders the API acknowledged (once: a replay adds
// nothing new); p.mu must be held.
func (p *e2ePotModel) addOrdersLocked(orders []e2eOrder, movementID string, racing bool) {
	for _, o := range orders {
		if _, ok := p.orders[o.ID]; ok {
			continue
		}
		p.orders[o.ID] = &e2eOrderModel{id: o.ID, dealingDate: o.DealingDate, movementID: movementID, racing: racing}
		p.orderIDs = append(p.orderIDs, o.ID)
	}
}

func runE2E(t *testing.T, cfg e2eConfig) {
	start := time.Now()
	t.Logf("seed %d (repeat with -e2e.seed=%d); %d pots, %d dealing days from %s, %d workers, %d+%d requests a day (%d more during every other cycle)",
		cfg.Seed, cfg.Seed, cfg.Pots, cfg.Days, cfg.Start, cfg.Workers, cfg.OpsPerDay, cfg.LateOpsPerDay, cfg.RacingOps)
	e := startE2E(t, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failed with seed %d: repeat with -e2e.seed=%d", cfg.Seed, cfg.Seed)
		}
	})

	e.openPots()
	t.Logf("opened %d pots in %s", len(e.pots), time.Since(start).Round(time.Millisecond))

	day := cfg.Start
	for i := range cfg.Days {
		began := time.Now()
		e.setPhase(day, e2eMorning)
		e.runOps(i, cfg.OpsPerDay)
		var run *e2eCycleRun
		if racing := cfg.RacingOps > 0 && i%2 == 1; racing {
			// Requests race the cycle's cut-off; those after the cut-off
			// come once it is done.
			e.publishPrices(day)
			e.setPhase(day, e2eRacing)
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				e.runOps(i, cfg.RacingOps)
			}()
			run = e.runCycle(day, true)
			<-sent
			e.setPhase(day, e2eLate)
			e.runOps(i, cfg.LateOpsPerDay)
		} else {
			e.setPhase(day, e2eLate)
			e.runOps(i, cfg.LateOpsPerDay)
			if i == 0 {
				e.cycleWithoutPrices(day)
			}
			e.publishPrices(day)
			e.clock.Set(day.At(12, 30, e.cal.Location()))
			run = e.runCycle(day, true)
		}
		s := run.summary
		t.Logf("%s: cycle: %d trades, %d pots allocated, %d settled, %d orders rolled, rebalance %d checked %d traded%s; day took %s",
			day, s.Trades, s.PotsAllocated, s.TradesSettled, s.OrdersRolled, s.Rebalance.PotsChecked, s.Rebalance.PotsTraded,
			map[bool]string{true: " (requests racing it)"}[run.racing], time.Since(began).Round(time.Millisecond))
		day = e.cal.NextDealingDay(day)
	}
	e.failNow("the dealing days")
	e.logBatching()

	// Invariant 3: every acknowledged request is durable. Restart the
	// platform on its data, then repeat a sample of acknowledged requests:
	// each must be answered as a replay of the original.
	e.restart()
	e.replaySample(day)
	e.failNow("the replays")

	// Settle everything: cycles without member requests and without
	// rebalancing, until no order is left open.
	e.settleAll(day)
	e.failNow("the settlement cycles")

	e.verify()
	e.failNow("the final checks")
	t.Logf("requests: %d sent, %d retried after a 503, %d after a connection error; outcomes:\n%s",
		e.api.requests.Load(), e.api.retries503.Load(), e.api.retriesNet.Load(), e.counts.String())
	e.logFeed()
	t.Logf("end-to-end run took %s", time.Since(start).Round(time.Millisecond))
}

func startE2E(t *testing.T, cfg e2eConfig) *e2e {
	t.Helper()
	spec, err := apispec.Load()
	require.NoError(t, err)
	logger, _ := testkit.Logger(t)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	e := &e2e{t: t, cfg: cfg, cal: cal, clock: &e2eClock{now: cfg.Start.At(9, 0, cal.Location())},
		walk: rand.New(rand.NewPCG(cfg.Seed, 0x7072696365))}
	e.pcfg = platform.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Now: e.clock.Now, Logger: logger,
		CustodianFaults: cfg.Faults, PotIdleTimeout: cfg.PotIdleTimeout}
	if cfg.DuplicateFeed {
		e.pcfg.WrapJournal = func(j persistence.Journal) persistence.Journal {
			e.mu.Lock()
			defer e.mu.Unlock()
			f := newDupFeedJournal(j, cfg.Seed+uint64(len(e.feeds)))
			e.feeds = append(e.feeds, f)
			return f
		}
	}
	d, err := platform.StartDev(e.pcfg)
	require.NoError(t, err)
	e.dev = d
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.currentDev().Stop(ctx); err != nil {
			t.Logf("stop: %v", err)
		}
	})
	e.api = newE2EAPI(d.URL, cfg.Workers, spec, apispec.ReporterFunc(e.fail))
	e.opToken, err = d.Token("", 6*time.Hour)
	require.NoError(t, err)

	var assets struct {
		Assets []e2eAsset `json:"assets"`
	}
	e.getJSON("/v1/assets", e.opToken, &assets)
	e.assets = assets.Assets
	var profiles struct {
		RiskProfiles []struct {
			Name string `json:"name"`
		} `json:"riskProfiles"`
	}
	e.getJSON("/v1/risk-profiles", e.opToken, &profiles)
	for _, p := range profiles.RiskProfiles {
		e.profiles = append(e.profiles, p.Name)
	}
	require.GreaterOrEqual(t, len(e.assets), 5, "assets in the catalogue")
	require.GreaterOrEqual(t, len(e.profiles), 3, "risk profiles in the catalogue")
	e.prices = map[string]decimal.Decimal{}
	for _, a := range e.assets {
		// 0.50 … 5.00, at the asset's price decimals.
		e.prices[a.ISIN] = decimal.New(50+e.walk.Int64N(451), -2).Add(decimal.New(e.walk.Int64N(10000), -6)).Round(a.PriceDecimals)
	}
	return e
}

func (e *e2e) currentDev() *platform.Dev {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dev
}

// fail records a failure; the test reports them at the next failNow.
func (e *e2e) fail(format string, args ...any) { e.failures.add(format, args...) }

// failNow ends the test if anything failed so far.
func (e *e2e) failNow(stage string) {
	e.t.Helper()
	n, first := e.failures.snapshot()
	if n == 0 {
		return
	}
	e.t.Fatalf("seed %d: %d failures by the end of %s; the first %d:\n  %s", e.cfg.Seed, n, stage, len(first),
		strings.Join(first, "\n  "))
}

// getJSON reads path into v, failing the test on anything but 200.
func (e *e2e) getJSON(path, token string, v any) {
	e.t.Helper()
	r, err := e.api.do(e.t.Context(), http.MethodGet, path, token, "", nil)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, r.Status, "GET %s: status; %s", path, r)
	require.NoError(e.t, json.Unmarshal(r.Body, v), "GET %s: decode %s", path, r.Body)
}

// setPhase moves the clock to a phase of a dealing day: the morning
// (requests deal that day), just before the cut-off (racing the cycle) or
// after the cut-off (they deal the next dealing day).
func (e *e2e) setPhase(day domain.Date, phase e2ePhase) {
	e.day, e.phase = day, phase
	switch phase {
	case e2eMorning:
		e.clock.Set(day.At(9, 0, e.cal.Location()))
		e.dealDay = day
	case e2eRacing:
		e.clock.Set(day.At(10, 59, e.cal.Location()))
		e.dealDay = day
	case e2eLate:
		e.clock.Set(day.At(11, 30, e.cal.Location()))
		e.dealDay = e.cal.NextDealingDay(day)
	}
	if got := e.cal.DealingDayFor(e.clock.Now()); !got.Equal(e.dealDay) {
		e.t.Fatalf("clock %s deals on %s, want %s", e.clock.Now(), got, e.dealDay)
	}
}

// forEach runs f for every pot, Workers at a time.
func (e *e2e) forEach(f func(i int, p *e2ePotModel)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() {
			for i := range work {
				f(i, e.pots[i])
			}
		})
	}
	for i := range e.pots {
		work <- i
	}
	close(work)
	wg.Wait()
}

// openPots opens every pot (a mix of profiles and self-directed ones) and
// pays a first contribution in.
func (e *e2e) openPots() {
	e.setPhase(e.cfg.Start, e2eMorning)
	e.pots = make([]*e2ePotModel, e.cfg.Pots)
	for i := range e.pots {
		id := fmt.Sprintf("E%05d", i)
		tok, err := e.currentDev().Token(id, 6*time.Hour)
		require.NoError(e.t, err)
		e.pots[i] = &e2ePotModel{id: id, token: tok, contributions: map[string]decimal.Decimal{},
			withdrawals: map[string]*e2eWithdrawal{}, orders: map[string]*e2eOrderModel{}, cancelAsked: map[string]bool{}}
	}
	e.forEach(func(i int, p *e2ePotModel) {
		rng := rand.New(rand.NewPCG(e.cfg.Seed, 1<<60|uint64(i)))
		// Every seventh pot is self-directed; the rest spread over the
		// profiles.
		profile := ""
		if i%7 != 0 {
			profile = e.profiles[rng.IntN(len(e.profiles))]
		}
		body := map[string]string{"memberId": p.id}
		if profile != "" || rng.IntN(2) == 0 {
			body["riskProfile"] = profile
		}
		key := p.newKey()
		r := e.send(p, "open", http.MethodPost, "/v1/pots", body, key, p.token, "201")
		if r.Status != http.StatusCreated {
			return
		}
		var v e2ePot
		if !e.decode(p, "open", r, &v) {
			return
		}
		if v.MemberID != p.id || v.RiskProfile != profile {
			e.fail("open %s with profile %q: got %+v", p.id, profile, v)
		}
		e.ack(p, &e2eAcked{op: "open", method: http.MethodPost, path: "/v1/pots", body: jsonBody(body), key: key,
			status: r.Status, ref: v.MemberID})
		// A second opening is refused; a repeat of the first is a replay.
		if i%50 == 1 {
			e.send(p, "open again", http.MethodPost, "/v1/pots", body, p.newKey(), p.token, "422 pot-already-open")
			r := e.send(p, "open replay", http.MethodPost, "/v1/pots", body, key, p.token, "201")
			if !r.Replayed {
				e.fail("open %s repeated with key %s: not a replay: %s", p.id, key, r)
			}
		}
		e.contribute(p, rng, decimal.New(50000+rng.Int64N(450000), -2))
	})
	e.failNow("opening the pots")
}

// send sends one member request with a JSON body (nil: none) and checks its
// outcome is one of want; it counts the outcome under op.
func (e *e2e) send(p *e2ePotModel, op, method, path string, body map[string]string, key, token string, want ...string) e2eResponse {
	var data []byte
	if body != nil {
		data = jsonBody(body)
	}
	return e.sendRaw(p, op, method, path, data, key, token, want...)
}

func (e *e2e) sendRaw(p *e2ePotModel, op, method, path string, body []byte, key, token string, want ...string) e2eResponse {
	r, err := e.api.do(e.t.Context(), method, path, token, key, body)
	counted := op
	if e.phase == e2eRacing {
		counted += " (racing the cycle)"
	}
	if err != nil {
		e.fail("%s %s: %s %s: %v", op, p.id, method, path, err)
		e.counts.add(counted, "error")
		return r
	}
	out := r.outcome()
	e.counts.add(counted, out)
	if !slices.Contains(want, out) {
		e.fail("%s %s: %s %s %s (key %s, clock %s): got %s, want one of %v", op, p.id, method, path, body, key,
			e.clock.Now().Format(time.DateTime), r, want)
	}
	if r.Status >= 500 {
		r.Status = 0 // not a success, whatever the caller expected
	}
	return r
}

func (e *e2e) decode(p *e2ePotModel, op string, r e2eResponse, v any) bool {
	if err := json.Unmarshal(r.Body, v); err != nil {
		e.fail("%s %s: %v in %s", op, p.id, err, r.Body)
		return false
	}
	return true
}

func (e *e2e) ack(p *e2ePotModel, a *e2eAcked) {
	a.at = e.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acked = append(p.acked, a)
}

// view reads a pot and checks invariant 1 on it.
func (e *e2e) view(p *e2ePotModel, token string) *e2ePot {
	r := e.send(p, "read pot", http.MethodGet, "/v1/pots/"+p.id, nil, "", token, "200")
	if r.Status != http.StatusOK {
		return nil
	}
	var v e2ePot
	if !e.decode(p, "read pot", r, &v) {
		return nil
	}
	if v.MemberID != p.id {
		e.fail("read pot %s: answered %s", p.id, v.MemberID)
	}
	if err := checkPotView(&v); err != nil {
		e.fail("%v", err)
	}
	return &v
}

// ---------------------------------------------------------------------------
// Member operations

// e2eOp is one kind of member operation.
type e2eOp struct {
	name   string
	weight int // in the morning
	late   int // after the cut-off, or racing the cycle
	run    func(e *e2e, p *e2ePotModel, rng *rand.Rand)
}

var e2eOps = []e2eOp{
	{"contribute", 16, 10, func(e *e2e, p *e2ePotModel, rng *rand.Rand) { e.contribute(p, rng, randMoney(rng, 1000, 300000)) }},
	{"withdraw", 7, 4, func(e *e2e, p *e2ePotModel, rng *rand.Rand) { e.withdraw(p, rng, false) }},
	{"withdraw too much", 2, 1, func(e *e2e, p *e2ePotModel, rng *rand.Rand) { e.withdraw(p, rng, true) }},
	{"buy", 12, 8, (*e2e).buy},
	{"sell", 12, 6, (*e2e).sell},
	{"switch", 7, 4, (*e2e).switchOrder},
	{"cancel", 8, 3, (*e2e).cancel},
	{"cancel cut off", 0, 8, (*e2e).cancelCutOff},
	{"profile", 4, 2, (*e2e).setProfile},
	{"replay", 8, 4, (*e2e).replay},
	{"conflict", 2, 1, (*e2e).conflict},
	{"read", 8, 4, (*e2e).read},
	{"burst", 5, 1, (*e2e).burst},
	{"send twice", 2, 1, (*e2e).sendTwice},
	{"cancel rebalance", 1, 0, (*e2e).cancelRebalance},
}

// runOps runs n random operations, Workers at a time. Operation i of a day
// draws from its own generator, so a run with the same seed asks the same
// (the answers depend on how the requests interleave).
func (e *e2e) runOps(dayIndex, n int) {
	late := e.phase != e2eMorning
	total := 0
	for _, op := range e2eOps {
		total += op.weightFor(late)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() {
			for i := range work {
				stream := uint64(dayIndex)<<40 | uint64(e.phase)<<32 | uint64(i)
				rng := rand.New(rand.NewPCG(e.cfg.Seed, stream))
				p := e.pickPot(rng)
				x := rng.IntN(total)
				for _, op := range e2eOps {
					if x -= op.weightFor(late); x < 0 {
						op.run(e, p, rng)
						break
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

func (op e2eOp) weightFor(late bool) int {
	if late {
		return op.late
	}
	return op.weight
}

func (e *e2e) pickPot(rng *rand.Rand) *e2ePotModel {
	if rng.Float64() < e.cfg.HotShare {
		return e.pots[rng.IntN(min(e.cfg.HotPots, len(e.pots)))]
	}
	return e.pots[rng.IntN(len(e.pots))]
}

// randMoney is a random amount of cash from minPence to maxPence.
func randMoney(rng *rand.Rand, minPence, maxPence int64) decimal.Decimal {
	return decimal.New(minPence+rng.Int64N(maxPence-minPence+1), -2)
}

func (e *e2e) contribute(p *e2ePotModel, rng *rand.Rand, amount decimal.Decimal) {
	body := map[string]string{"amount": amount.StringFixed(2)}
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/contributions"
	r := e.send(p, "contribute", http.MethodPost, path, body, key, p.token, "202")
	if r.Status != http.StatusAccepted {
		return
	}
	var m e2eMovement
	if !e.decode(p, "contribute", r, &m) {
		return
	}
	if got, _ := decOf(m.Amount); m.Kind != "contribution" || !got.Equal(amount) || m.ID == "" {
		e.fail("contribute %s of %s: answered %s", p.id, amount, r)
	}
	e.checkDealingDates(p, "contribute", m.Orders, r.Replayed)
	p.mu.Lock()
	p.contributions[m.ID] = amount
	p.addOrdersLocked(m.Orders, m.ID, e.phase == e2eRacing)
	p.mu.Unlock()
	e.ack(p, &e2eAcked{op: "contribute", method: http.MethodPost, path: path, body: jsonBody(body), key: key,
		status: r.Status, ref: m.ID, hasAmount: true})
}

// checkDealingDates checks orders just accepted deal on the phase's
// dealing day: the same day before the cut-off, the next one after it,
// either while the cycle closes the day. A replay shows the orders as they
// are now: cut off, if the cycle has closed their day since.
func (e *e2e) checkDealingDates(p *e2ePotModel, op string, orders []e2eOrder, replayed bool) {
	for _, o := range orders {
		ok := o.DealingDate == e.dealDay.String()
		if e.phase == e2eRacing {
			ok = ok || o.DealingDate == e.cal.NextDealingDay(e.day).String()
		}
		if e.phase == e2eRacing && !replayed {
			e.counts.add("order placed racing the cycle", map[bool]string{true: "deals today", false: "deals the next day"}[o.DealingDate == e.day.String()])
		}
		if !ok || (o.Status != "accepted" && !(replayed && o.Status == "cut_off")) {
			e.fail("%s %s at %s: order %s deals on %s (%s), want %s (accepted)", op, p.id,
				e.clock.Now().Format(time.DateTime), o.ID, o.DealingDate, o.Status, e.dealDay)
		}
	}
}

func (e *e2e) withdraw(p *e2ePotModel, rng *rand.Rand, tooMuch bool) {
	v := e.view(p, p.token)
	if v == nil {
		return
	}
	total, _ := decOf(v.TotalValue)
	avail, _ := decOf(v.Cash.Available)
	// What can be withdrawn: available cash and the available units'
	// value (at the latest prices, as the pot values them).
	withdrawable := avail
	for _, h := range v.Holdings {
		settled, _ := decOf(h.SettledUnits)
		reserved, _ := decOf(h.ReservedUnits)
		price, _ := decOf(h.Price)
		withdrawable = withdrawable.Add(settled.Sub(reserved).Mul(price).RoundFloor(2))
	}
	var amount decimal.Decimal
	want := []string{"202", "422 amount-above-value"}
	if tooMuch {
		// More than the pot is worth, whatever else happens to it now.
		amount = total.Add(avail).Add(randMoney(rng, 1_000_000, 5_000_000)).Round(2)
		want = []string{"422 amount-above-value"}
	} else {
		upTo := withdrawable.Mul(decimal.NewFromInt(100)).IntPart() // in pence
		if upTo < 100 {
			e.contribute(p, rng, randMoney(rng, 1000, 100000))
			return
		}
		if rng.IntN(10) != 0 {
			upTo = upTo * 9 / 10 // mostly not all of it
		}
		amount = randMoney(rng, 1, upTo)
	}
	body := map[string]string{"amount": amount.StringFixed(2)}
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/withdrawals"
	op := map[bool]string{false: "withdraw", true: "withdraw too much"}[tooMuch]
	r := e.send(p, op, http.MethodPost, path, body, key, p.token, want...)
	if r.Status != http.StatusAccepted {
		return
	}
	var m e2eMovement
	if !e.decode(p, op, r, &m) {
		return
	}
	if got, _ := decOf(m.Amount); m.Kind != "withdrawal" || !got.Equal(amount) || m.ID == "" ||
		(m.Status == "paid") != (len(m.Orders) == 0) {
		e.fail("withdraw %s of %s: answered %s", p.id, amount, r)
	}
	e.checkDealingDates(p, op, m.Orders, r.Replayed)
	p.mu.Lock()
	w := &e2eWithdrawal{amount: amount}
	for _, o := range m.Orders {
		w.orders = append(w.orders, o.ID)
	}
	p.withdrawals[m.ID] = w
	p.addOrdersLocked(m.Orders, m.ID, e.phase == e2eRacing)
	p.mu.Unlock()
	e.ack(p, &e2eAcked{op: op, method: http.MethodPost, path: path, body: jsonBody(body), key: key,
		status: r.Status, ref: m.ID, hasAmount: true})
}

// placeOrder sends an order body; want lists the refusals it may meet
// besides 202.
func (e *e2e) placeOrder(p *e2ePotModel, op string, body map[string]string, want ...string) {
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/orders"
	r := e.send(p, op, http.MethodPost, path, body, key, p.token, append(want, "202")...)
	if r.Status != http.StatusAccepted {
		return
	}
	var o e2eOrder
	if !e.decode(p, op, r, &o) {
		return
	}
	if o.ID == "" || o.Type != body["type"] {
		e.fail("%s %s: answered %s", op, p.id, r)
	}
	e.checkDealingDates(p, op, []e2eOrder{o}, r.Replayed)
	p.mu.Lock()
	p.addOrdersLocked([]e2eOrder{o}, "", e.phase == e2eRacing)
	p.mu.Unlock()
	_, hasAmount := body["amount"]
	e.ack(p, &e2eAcked{op: op, method: http.MethodPost, path: path, body: jsonBody(body), key: key,
		status: r.Status, ref: o.ID, hasAmount: hasAmount})
}

func (e *e2e) buy(p *e2ePotModel, rng *rand.Rand) {
	v := e.view(p, p.token)
	if v == nil {
		return
	}
	avail, _ := decOf(v.Cash.Available)
	pence := avail.Mul(decimal.NewFromInt(100)).IntPart()
	if pence < 100 {
		e.contribute(p, rng, randMoney(rng, 1000, 100000))
		return
	}
	a := e.assets[rng.IntN(len(e.assets))]
	amount := randMoney(rng, 100, pence)
	if rng.IntN(20) == 0 {
		// More than the pot has available.
		e.placeOrder(p, "buy too much", map[string]string{"type": "buy", "asset": a.ISIN,
			"amount": avail.Add(randMoney(rng, 1_000_000, 2_000_000)).StringFixed(2)}, "422 insufficient-funds")
		return
	}
	e.placeOrder(p, "buy", map[string]string{"type": "buy", "asset": a.ISIN, "amount": amount.StringFixed(2)},
		"422 insufficient-funds")
}

// held picks an asset the pot has units of to sell, with its available
// units; ok is false when it has none.
func (e *e2e) held(v *e2ePot, rng *rand.Rand) (e2eAsset, decimal.Decimal, decimal.Decimal, bool) {
	type option struct {
		asset e2eAsset
		avail decimal.Decimal
		price decimal.Decimal
	}
	var options []option
	for _, h := range v.Holdings {
		settled, _ := decOf(h.SettledUnits)
		reserved, _ := decOf(h.ReservedUnits)
		price, _ := decOf(h.Price)
		if a, ok := e.asset(h.Asset); ok && settled.Sub(reserved).Sign() > 0 {
			options = append(options, option{a, settled.Sub(reserved), price})
		}
	}
	if len(options) == 0 {
		return e2eAsset{}, decimal.Zero, decimal.Zero, false
	}
	o := options[rng.IntN(len(options))]
	return o.asset, o.avail, o.price, true
}

func (e *e2e) asset(isin string) (e2eAsset, bool) {
	for _, a := range e.assets {
		if a.ISIN == isin {
			return a, true
		}
	}
	return e2eAsset{}, false
}

// fraction is a random part (5% … 100%) of x, truncated to places.
func fraction(rng *rand.Rand, x decimal.Decimal, places int32) decimal.Decimal {
	return x.Mul(decimal.New(5+rng.Int64N(96), -2)).Truncate(places)
}

// percent is a random percentage for a sell or switch: "100", or 1 … 99
// with up to two decimals.
func percent(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0:
		return "100"
	case 1:
		return decimal.New(100+rng.Int64N(9800), -2).String()
	}
	return fmt.Sprint(1 + rng.IntN(99))
}

func (e *e2e) sell(p *e2ePotModel, rng *rand.Rand) {
	v := e.view(p, p.token)
	if v == nil {
		return
	}
	a, avail, price, ok := e.held(v, rng)
	if !ok {
		e.buy(p, rng)
		return
	}
	body := map[string]string{"type": "sell", "asset": a.ISIN}
	switch rng.IntN(4) {
	case 0:
		u := fraction(rng, avail, a.UnitDecimals)
		if u.Sign() <= 0 {
			u = avail
		}
		body["units"] = u.String()
	case 1:
		value := avail.Mul(price).RoundFloor(2)
		if value.LessThan(decimal.NewFromInt(2)) {
			body["percent"] = "100"
			break
		}
		body["amount"] = fraction(rng, value.Sub(decimal.NewFromInt(1)), 2).Add(decimal.New(1, -2)).StringFixed(2)
	case 2:
		body["percent"] = percent(rng)
	default:
		if rng.IntN(3) == 0 {
			// More units than the pot has available: refused.
			body["units"] = avail.Add(decimal.New(1+rng.Int64N(1000), 0)).String()
			e.placeOrder(p, "sell too much", body, "422 insufficient-units")
			return
		}
		body["units"] = avail.String()
	}
	e.placeOrder(p, "sell", body, "422 insufficient-units")
}

func (e *e2e) switchOrder(p *e2ePotModel, rng *rand.Rand) {
	v := e.view(p, p.token)
	if v == nil {
		return
	}
	from, avail, _, ok := e.held(v, rng)
	if !ok {
		e.buy(p, rng)
		return
	}
	to := e.assets[rng.IntN(len(e.assets))]
	for to.ISIN == from.ISIN {
		to = e.assets[rng.IntN(len(e.assets))]
	}
	body := map[string]string{"type": "switch", "from": from.ISIN, "to": to.ISIN}
	if u := fraction(rng, avail, from.UnitDecimals); rng.IntN(2) == 0 && u.Sign() > 0 {
		body["units"] = u.String()
	} else {
		body["percent"] = percent(rng)
	}
	e.placeOrder(p, "switch", body, "422 insufficient-units")
}

// cancel cancels one of the pot's orders. Before the cut-off an order of
// the day (or of a later one) is cancelled; an order of an earlier day is
// refused as cut off.
func (e *e2e) cancel(p *e2ePotModel, rng *rand.Rand) {
	p.mu.Lock()
	var pick *e2eOrderModel
	if n := len(p.orderIDs); n > 0 {
		// Mostly recent orders, sometimes any.
		i := n - 1 - rng.IntN(min(n, 6))
		if rng.IntN(4) == 0 {
			i = rng.IntN(n)
		}
		pick = p.orders[p.orderIDs[i]]
	}
	var cancelled bool
	if pick != nil {
		cancelled = pick.cancelled
	}
	p.mu.Unlock()
	if pick == nil {
		e.read(p, rng)
		return
	}
	d, _ := domain.ParseDate(pick.dealingDate)
	want := []string{"200"}
	switch {
	case cancelled:
	case d.Before(e.day), d.Equal(e.day) && e.phase == e2eLate:
		want = []string{"422 order-cut-off"}
	case d.Equal(e.day) && e.phase == e2eRacing:
		want = []string{"200", "422 order-cut-off"}
	}
	e.cancelOrder(p, "cancel", pick, want...)
}

// cancelCutOff, after the cut-off, tries to cancel an order of the day:
// refused. Racing the cycle, it may still be in time.
func (e *e2e) cancelCutOff(p *e2ePotModel, rng *rand.Rand) {
	p.mu.Lock()
	var options []*e2eOrderModel
	for _, id := range p.orderIDs {
		if o := p.orders[id]; o.dealingDate == e.day.String() && !o.cancelled {
			options = append(options, o)
		}
	}
	p.mu.Unlock()
	if len(options) == 0 {
		e.cancel(p, rng)
		return
	}
	want := []string{"422 order-cut-off"}
	if e.phase == e2eRacing {
		want = append(want, "200")
	}
	e.cancelOrder(p, "cancel cut off", options[rng.IntN(len(options))], want...)
}

func (e *e2e) cancelOrder(p *e2ePotModel, op string, o *e2eOrderModel, want ...string) {
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/orders/" + url.PathEscape(o.id)
	p.mu.Lock()
	p.cancelAsked[o.id] = true
	p.mu.Unlock()
	r := e.send(p, op, http.MethodDelete, path, nil, key, p.token, want...)
	if r.Status != http.StatusOK {
		return
	}
	var got e2eOrder
	if !e.decode(p, op, r, &got) {
		return
	}
	if got.ID != o.id || got.Status != "cancelled" {
		e.fail("%s %s of %s: answered %s", op, p.id, o.id, r)
	}
	p.mu.Lock()
	o.cancelled = true
	p.mu.Unlock()
	e.ack(p, &e2eAcked{op: op, method: http.MethodDelete, path: path, key: key, status: r.Status, ref: o.id})
}

func (e *e2e) setProfile(p *e2ePotModel, rng *rand.Rand) {
	profile := ""
	if rng.IntN(6) != 0 {
		profile = e.profiles[rng.IntN(len(e.profiles))]
	}
	body := map[string]string{"riskProfile": profile}
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/risk-profile"
	r := e.send(p, "profile", http.MethodPut, path, body, key, p.token, "200")
	if r.Status != http.StatusOK {
		return
	}
	var v e2ePot
	if !e.decode(p, "profile", r, &v) {
		return
	}
	if v.MemberID != p.id || v.RiskProfile != profile {
		e.fail("profile %s to %q: answered %s", p.id, profile, r)
	}
	if err := checkPotView(&v); err != nil {
		e.fail("%v", err)
	}
	e.ack(p, &e2eAcked{op: "profile", method: http.MethodPut, path: path, body: jsonBody(body), key: key,
		status: r.Status, ref: v.MemberID})
}

// e2eRetention is how far back the driver repeats requests: within the
// pots' memory of idempotency keys (domain.RequestRetention, 7 days), with
// a margin.
const e2eRetention = domain.RequestRetention - 12*time.Hour

// replayable picks an acknowledged request of the pot within the keys'
// retention; nil if there is none.
func (e *e2e) replayable(p *e2ePotModel, rng *rand.Rand, amountOnly bool) *e2eAcked {
	since := e.clock.Now().Add(-e2eRetention)
	p.mu.Lock()
	defer p.mu.Unlock()
	var options []*e2eAcked
	for _, a := range p.acked {
		if a.at.After(since) && (!amountOnly || a.hasAmount) {
			options = append(options, a)
		}
	}
	if len(options) == 0 {
		return nil
	}
	return options[rng.IntN(len(options))]
}

// replay repeats an acknowledged request with its key: the API answers with
// the first answer's status, marked as a replay, about the same resource,
// and nothing changes.
func (e *e2e) replay(p *e2ePotModel, rng *rand.Rand) {
	a := e.replayable(p, rng, false)
	if a == nil {
		e.read(p, rng)
		return
	}
	e.replayAcked(p, a)
}

func (e *e2e) replayAcked(p *e2ePotModel, a *e2eAcked) {
	op := "replay " + a.op
	r := e.sendRaw(p, op, a.method, a.path, a.body, a.key, p.token, fmt.Sprint(a.status))
	if r.Status != a.status {
		return
	}
	if !r.Replayed {
		e.fail("%s %s (key %s, first at %s): not marked Idempotent-Replayed: %s", op, p.id, a.key,
			a.at.Format(time.DateTime), r)
	}
	var ref struct {
		ID       string `json:"id"`
		MemberID string `json:"memberId"`
	}
	if !e.decode(p, op, r, &ref) {
		return
	}
	got := ref.ID
	if got == "" {
		got = ref.MemberID
	}
	if got != a.ref {
		e.fail("%s %s (key %s): answered about %q, first about %q", op, p.id, a.key, got, a.ref)
	}
}

// conflict sends an acknowledged request's key with another amount, or to
// the other movement endpoint: 409.
func (e *e2e) conflict(p *e2ePotModel, rng *rand.Rand) {
	a := e.replayable(p, rng, true)
	if a == nil {
		e.read(p, rng)
		return
	}
	var body map[string]string
	if err := json.Unmarshal(a.body, &body); err != nil {
		e.fail("conflict %s: %v", p.id, err)
		return
	}
	path := a.path
	switch base := "/v1/pots/" + p.id; {
	case rng.IntN(3) == 0 && path == base+"/contributions":
		path = base + "/withdrawals"
	case rng.IntN(3) == 0 && path == base+"/withdrawals":
		path = base + "/contributions"
	default:
		amount, _ := decOf(body["amount"])
		body["amount"] = amount.Add(decimal.New(1+rng.Int64N(99), -2)).StringFixed(2)
	}
	e.send(p, "conflict", a.method, path, body, a.key, p.token, "409 idempotency-conflict")
}

// read reads the pot, an order, the order list or the statement, with the
// member's token or the operator's.
func (e *e2e) read(p *e2ePotModel, rng *rand.Rand) {
	token := p.token
	if rng.IntN(5) == 0 {
		token = e.opToken
	}
	switch rng.IntN(4) {
	case 0:
		e.view(p, token)
	case 1:
		p.mu.Lock()
		var id string
		if n := len(p.orderIDs); n > 0 {
			id = p.orderIDs[rng.IntN(n)]
		}
		p.mu.Unlock()
		if id == "" {
			e.view(p, token)
			return
		}
		r := e.send(p, "read order", http.MethodGet, "/v1/pots/"+p.id+"/orders/"+url.PathEscape(id), nil, "", token, "200")
		var o e2eOrder
		if r.Status == http.StatusOK && e.decode(p, "read order", r, &o) && o.ID != id {
			e.fail("read order %s of %s: answered %s", id, p.id, r)
		}
	case 2:
		e.send(p, "read orders", http.MethodGet, "/v1/pots/"+p.id+"/orders?limit=20", nil, "", token, "200")
	default:
		e.send(p, "read statement", http.MethodGet, "/v1/pots/"+p.id+"/statement", nil, "", token, "200")
	}
}

// burst sends a few writes to one pot at once, so that they meet in its
// mailbox and are appended together.
func (e *e2e) burst(p *e2ePotModel, rng *rand.Rand) {
	n := 4 + rng.IntN(5)
	rngs := make([]*rand.Rand, n)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := rngs[i]
			<-start
			switch r.IntN(6) {
			case 0, 1, 2:
				e.contribute(p, r, randMoney(r, 100, 50000))
			case 3:
				e.setProfile(p, r)
			case 4:
				e.cancel(p, r)
			default:
				e.buy(p, r)
			}
		})
	}
	close(start)
	wg.Wait()
}

// sendTwice sends one contribution twice at once with the same key, as a
// client retrying too early would: both are answered, about one
// contribution, and the pot takes it once.
func (e *e2e) sendTwice(p *e2ePotModel, rng *rand.Rand) {
	amount := randMoney(rng, 100, 100000)
	body := jsonBody(map[string]string{"amount": amount.StringFixed(2)})
	key := p.newKey()
	path := "/v1/pots/" + p.id + "/contributions"
	var rs [2]e2eResponse
	var wg sync.WaitGroup
	for i := range rs {
		wg.Go(func() { rs[i] = e.sendRaw(p, "send twice", http.MethodPost, path, body, key, p.token, "202") })
	}
	wg.Wait()
	var ms [2]e2eMovement
	for i, r := range rs {
		if r.Status != http.StatusAccepted || !e.decode(p, "send twice", r, &ms[i]) {
			return
		}
	}
	if ms[0].ID != ms[1].ID || ms[0].ID == "" || (!rs[0].Replayed && !rs[1].Replayed) {
		e.fail("send twice %s (key %s): answered %s (replayed %v) and %s (replayed %v)", p.id, key,
			rs[0], rs[0].Replayed, rs[1], rs[1].Replayed)
		return
	}
	e.checkDealingDates(p, "send twice", ms[0].Orders, rs[0].Replayed)
	e.checkDealingDates(p, "send twice", ms[1].Orders, rs[1].Replayed)
	p.mu.Lock()
	p.contributions[ms[0].ID] = amount
	p.addOrdersLocked(ms[0].Orders, ms[0].ID, e.phase == e2eRacing)
	p.mu.Unlock()
	e.ack(p, &e2eAcked{op: "contribute", method: http.MethodPost, path: path, body: body, key: key,
		status: http.StatusAccepted, ref: ms[0].ID, hasAmount: true})
}

// cancelRebalance tries to cancel one of the system's rebalance orders:
// refused.
func (e *e2e) cancelRebalance(p *e2ePotModel, rng *rand.Rand) {
	r := e.send(p, "list accepted", http.MethodGet, "/v1/pots/"+p.id+"/orders?status=accepted", nil, "", p.token, "200")
	var list e2eOrderList
	if r.Status != http.StatusOK || !e.decode(p, "list accepted", r, &list) {
		return
	}
	var ids []string
	for _, o := range list.Orders {
		if o.Status != "accepted" {
			e.fail("orders of %s with status accepted: %s is %s", p.id, o.ID, o.Status)
		}
		if o.Type == "rebalance" {
			ids = append(ids, o.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	path := "/v1/pots/" + p.id + "/orders/" + url.PathEscape(ids[rng.IntN(len(ids))])
	e.send(p, "cancel rebalance", http.MethodDelete, path, nil, p.newKey(), p.token, "422 order-not-cancellable")
}

// logBatching logs how the pots batched: the commands they decided against
// the appends they made (GET /metrics).
func (e *e2e) logBatching() {
	r, err := e.api.do(e.t.Context(), http.MethodGet, "/metrics", "", "", nil)
	if err != nil || r.Status != http.StatusOK {
		e.t.Logf("metrics: %v %s", err, r)
		return
	}
	var commands, appends, events float64
	for line := range strings.Lines(string(r.Body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "mastertrust_pot_requests_total{") && strings.Contains(name, `outcome="ok"`) &&
			!strings.Contains(name, `command="get_`) && !strings.Contains(name, `command="list_`):
			commands += v
		case name == "mastertrust_pot_batch_events_count":
			appends = v
		case name == "mastertrust_pot_batch_events_sum":
			events = v
		}
	}
	e.t.Logf("pots decided %.0f commands (member and system) in %.0f appends of %.0f events", commands, appends, events)
}

// ---------------------------------------------------------------------------
// Operator endpoints

// publishPrices publishes the day's closing prices: the previous day's,
// each moved by up to ±3%, at its asset's price decimals.
func (e *e2e) publishPrices(day domain.Date) {
	e.t.Helper()
	prices := map[string]string{}
	for _, a := range e.assets {
		move := decimal.New(970+e.walk.Int64N(61), -3) // 0.970 … 1.030
		p := e.prices[a.ISIN].Mul(move).Round(a.PriceDecimals)
		if p.LessThan(decimal.New(1, -2)) {
			p = decimal.New(1, -2)
		}
		e.prices[a.ISIN] = p
		prices[a.ISIN] = p.StringFixed(a.PriceDecimals)
	}
	body := jsonBody(map[string]any{"date": day.String(), "prices": prices})
	for range 2 { // publishing the same prices again changes nothing
		r, err := e.api.do(e.t.Context(), http.MethodPost, "/v1/prices", e.opToken, "", body)
		require.NoError(e.t, err, "prices of %s", day)
		require.Equal(e.t, http.StatusOK, r.Status, "prices of %s: status; %s", day, r)
		var got struct {
			Prices map[string]string `json:"prices"`
		}
		require.NoError(e.t, json.Unmarshal(r.Body, &got), "prices of %s: decode %s", day, r.Body)
		for isin, want := range prices {
			g, _ := decOf(got.Prices[isin])
			if w, _ := decOf(want); !g.Equal(w) {
				e.t.Fatalf("prices of %s: %s recorded as %q, sent %s", day, isin, got.Prices[isin], want)
			}
		}
	}
	if day.Equal(e.cfg.Start) {
		// Other prices for the same date are refused.
		other := maps.Clone(prices)
		a := e.assets[0]
		other[a.ISIN] = e.prices[a.ISIN].Add(decimal.New(1, -a.PriceDecimals)).StringFixed(a.PriceDecimals)
		r, err := e.api.do(e.t.Context(), http.MethodPost, "/v1/prices", e.opToken, "",
			jsonBody(map[string]any{"date": day.String(), "prices": other}))
		if err != nil || r.outcome() != "409 prices-conflict" {
			e.fail("other prices for %s: %v %s, want 409 prices-conflict", day, err, r)
		}
	}
}

// runCycle runs a date's cycle through POST /v1/cycles/{date}/run and
// checks its summary.
func (e *e2e) runCycle(day domain.Date, rebalance bool) *e2eCycleRun {
	e.t.Helper()
	racing := e.phase == e2eRacing && e.day.Equal(day)
	body := jsonBody(map[string]bool{"rebalance": rebalance})
	// Every third cycle is asked for twice at once: both answers are the
	// one summary.
	var rs [2]e2eResponse
	var errs [2]error
	asks := 1
	if len(e.cycles)%3 == 2 {
		asks = 2
	}
	var wg sync.WaitGroup
	for i := range asks {
		wg.Go(func() { rs[i], errs[i] = e.postCycle(day, body) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(e.t, err)
	}
	r := rs[0]
	if rs[1].Status != 0 && !sameJSON(rs[0].Body, rs[1].Body) {
		e.fail("cycle %s asked for twice at once: ended %s and %s", day, rs[0], rs[1])
	}
	run := &e2eCycleRun{date: day, rebalance: rebalance, racing: racing, raw: r.Body}
	require.NoError(e.t, json.Unmarshal(r.Body, &run.summary), "cycle %s: decode %s", day, r.Body)
	s := &run.summary
	require.Equal(e.t, day.String(), s.Date, "cycle %s: summary date; summary %s", day, r.Body)
	require.Equal(e.t, "complete", s.Status, "cycle %s: summary status; summary %s", day, r.Body)
	var batchTrades int64
	for _, b := range s.Batches {
		batchTrades += b.Trades
	}
	if batchTrades != s.Trades {
		e.fail("cycle %s: %d trades, its batches hold %d", day, s.Trades, batchTrades)
	}
	for _, o := range s.Orders {
		if o.Status != "executed" && o.Status != "netted" {
			e.fail("cycle %s: order %s is %s after the cycle completed", day, o.ClOrdID, o.Status)
		}
	}
	if s.OrdersRolled != 0 && !racing {
		// No request was in flight while the cycle ran: the cut-off fence
		// leaves no order to roll.
		e.fail("cycle %s: %d orders rolled, with no request in flight at the cut-off", day, s.OrdersRolled)
	}
	// GET reports the same.
	g, err := e.api.do(e.t.Context(), http.MethodGet, "/v1/cycles/"+day.String(), e.opToken, "", nil)
	if err != nil || g.Status != http.StatusOK || !sameJSON(g.Body, r.Body) {
		e.fail("GET cycle %s: %v %s, the run answered %s", day, err, g, r.Body)
	}
	e.cycles = append(e.cycles, run)
	return run
}

// cycleWithoutPrices runs a cycle before its prices are published: 409
// no-prices, and nothing done (the run with prices completes it).
func (e *e2e) cycleWithoutPrices(day domain.Date) {
	e.t.Helper()
	r, err := e.api.do(e.t.Context(), http.MethodPost, "/v1/cycles/"+day.String()+"/run", e.opToken, "", nil)
	if err != nil || r.outcome() != "409 no-prices" {
		e.fail("cycle %s without prices: %v %s, want 409 no-prices", day, err, r)
	}
}

// postCycle runs a cycle as an operator does: POST /v1/cycles/{date}/run
// answers 202 with Location at once (200 once complete), then GET the
// Location until the run completes or fails. A run that failed resumably
// is run again, up to three times; with a healthy custodian none should
// stop: that is a failure. It returns the final GET.
func (e *e2e) postCycle(day domain.Date, body []byte) (e2eResponse, error) {
	path := "/v1/cycles/" + day.String() + "/run"
	for attempt := 1; ; attempt++ {
		r, err := e.api.do(e.t.Context(), http.MethodPost, path, e.opToken, "", body)
		switch {
		case err != nil:
			return r, fmt.Errorf("cycle %s: %w", day, err)
		case r.Status == http.StatusOK:
			return r, nil
		case r.Status != http.StatusAccepted || r.Header.Get("Location") != "/v1/cycles/"+day.String():
			return r, fmt.Errorf("cycle %s: %s (Location %q), want 202 with its Location", day, r, r.Header.Get("Location"))
		}
		if r, err = e.awaitRun(r.Header.Get("Location")); err != nil {
			return r, fmt.Errorf("cycle %s: %w", day, err)
		}
		var s struct {
			Status  string
			Problem struct {
				Code      string
				Resumable bool
			}
		}
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return r, fmt.Errorf("cycle %s: %w in %s", day, err, r.Body)
		}
		if s.Status == "complete" {
			return r, nil
		}
		if attempt == 3 || !s.Problem.Resumable {
			return r, fmt.Errorf("cycle %s: %s", day, r)
		}
		msg := fmt.Sprintf("cycle %s stopped (attempt %d): %s", day, attempt, r)
		if e.cfg.Faults == (simulator.Faults{}) {
			e.fail("%s", msg)
		}
		e.t.Log(msg)
	}
}

// awaitRun polls a run's Location (a cycle or a reconciliation) until it
// is no longer running, and returns the last answer.
func (e *e2e) awaitRun(location string) (e2eResponse, error) {
	for {
		r, err := e.api.do(e.t.Context(), http.MethodGet, location, e.opToken, "", nil)
		if err != nil {
			return r, err
		}
		if r.Status != http.StatusOK {
			return r, fmt.Errorf("GET %s: %s", location, r)
		}
		var s struct{ Status string }
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return r, fmt.Errorf("GET %s: %w in %s", location, err, r.Body)
		}
		if s.Status != "running" {
			return r, nil
		}
		select {
		case <-e.t.Context().Done():
			return r, e.t.Context().Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sameJSON reports whether two JSON documents hold the same values.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return jsonEqual(x, y)
}

func jsonEqual(x, y any) bool {
	xb, _ := json.Marshal(x) // maps encode with sorted keys
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// reconcile runs a reconciliation with id and checks it found no break.
func (e *e2e) reconcile(id string, deep bool) *e2eReconciliation {
	e.t.Helper()
	r, err := e.api.do(e.t.Context(), http.MethodPost, "/v1/reconciliations", e.opToken, id, jsonBody(map[string]bool{"deep": deep}))
	if err == nil && r.Status == http.StatusAccepted && r.Header.Get("Location") == "/v1/reconciliations/"+id {
		r, err = e.awaitRun(r.Header.Get("Location"))
	}
	require.NoError(e.t, err, "reconciliation %s", id)
	require.Equal(e.t, http.StatusOK, r.Status, "reconciliation %s: status; %s", id, r)
	var rep e2eReconciliation
	require.NoError(e.t, json.Unmarshal(r.Body, &rep), "reconciliation %s: decode %s", id, r.Body)
	if len(rep.Internal.Breaks) > 0 || len(rep.External.Breaks) > 0 {
		e.fail("reconciliation %s (seed %d): %d internal and %d external breaks: %s", id, e.cfg.Seed,
			len(rep.Internal.Breaks), len(rep.External.Breaks), r.Body)
	}
	if rep.Pots != int64(len(e.pots)) {
		e.fail("reconciliation %s: %d pots, want %d", id, rep.Pots, len(e.pots))
	}
	// The run is recorded, under the key given.
	g, err := e.api.do(e.t.Context(), http.MethodGet, "/v1/reconciliations/"+id, e.opToken, "", nil)
	if err != nil || g.Status != http.StatusOK || !sameJSON(g.Body, r.Body) {
		e.fail("GET reconciliation %s: %v %s, the run answered %s", id, err, g, r.Body)
	}
	e.t.Logf("reconciliation %s: %s", id, rep.Summary)
	return &rep
}

// restart stops the platform and starts it again on its data: every pot,
// cycle and custodian execution must come back from disk.
func (e *e2e) restart() {
	e.t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(e.t.Context(), time.Minute)
	defer cancel()
	e.before = e.currentDev().Custodian.Stats()
	require.NoError(e.t, e.currentDev().Stop(ctx), "stop")
	d, err := platform.StartDev(e.pcfg)
	require.NoError(e.t, err, "restart")
	e.mu.Lock()
	e.dev = d
	e.mu.Unlock()
	e.api.setBase(d.URL)
	e.t.Logf("restarted the platform in %s", time.Since(began).Round(time.Millisecond))
}

// replaySample repeats a random sample of acknowledged requests (within
// the keys' retention): each is answered as a replay of its first answer.
func (e *e2e) replaySample(day domain.Date) {
	e.clock.Set(e.cal.PrevDealingDay(day).At(13, 0, e.cal.Location()))
	rng := rand.New(rand.NewPCG(e.cfg.Seed, 0x7265706c6179))
	since := e.clock.Now().Add(-e2eRetention)
	type pick struct {
		p *e2ePotModel
		a *e2eAcked
	}
	var all []pick
	for _, p := range e.pots {
		for _, a := range p.acked {
			if a.at.After(since) {
				all = append(all, pick{p, a})
			}
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	sample := all[:min(len(all), e.cfg.ReplaySample)]
	work := make(chan pick)
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() {
			for x := range work {
				e.replayAcked(x.p, x.a)
			}
		})
	}
	for _, x := range sample {
		work <- x
	}
	close(work)
	wg.Wait()
	e.t.Logf("repeated %d of %d acknowledged requests within the keys' retention after the restart: all replays",
		len(sample), len(all))
}

// settleAll runs cycles after the last day of requests, without
// rebalancing, until every trade has settled.
func (e *e2e) settleAll(day domain.Date) {
	e.t.Helper()
	for range 10 {
		e.setPhase(day, e2eMorning)
		e.publishPrices(day)
		e.clock.Set(day.At(12, 30, e.cal.Location()))
		run := e.runCycle(day, false)
		s := run.summary
		e.t.Logf("%s: settlement cycle: %d trades, %d settled", day, s.Trades, s.TradesSettled)
		if e.allSettled() {
			return
		}
		day = e.cal.NextDealingDay(day)
	}
	e.t.Fatalf("orders still open after 10 cycles without requests")
}

// allSettled reports whether no pot holds pending or reserved cash or
// units: every trade has settled or been cancelled.
func (e *e2e) allSettled() bool {
	var mu sync.Mutex
	open := 0
	e.forEach(func(_ int, p *e2ePotModel) {
		v := e.view(p, e.opToken)
		if v == nil {
			return
		}
		reservedCash, _ := decOf(v.Cash.Reserved)
		pendingCash, _ := decOf(v.Cash.Pending)
		busy := !reservedCash.IsZero() || !pendingCash.IsZero()
		for _, h := range v.Holdings {
			pending, _ := decOf(h.PendingUnits)
			reserved, _ := decOf(h.ReservedUnits)
			busy = busy || !pending.IsZero() || !reserved.IsZero()
		}
		if busy {
			mu.Lock()
			open++
			mu.Unlock()
		}
	})
	return open == 0
}
