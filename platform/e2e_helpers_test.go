package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/persistence"
)

// Helpers of the end-to-end tests (e2e_test.go): a simulated clock, an HTTP
// client of the API that retries what docs/api.md says to retry, the API's JSON
// shapes, and a journal that delivers its feed twice.

// e2eClock is the platform's simulated clock; the driver moves it between
// phases of a dealing day, never while requests are in flight.
type e2eClock struct {
	mu  sync.Mutex
	now time.Time // mu guards
}

func (c *e2eClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *e2eClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// e2eAPI is a client of the gateway. It retries a 503 (and a failed
// connection) with the same Idempotency-Key, as docs/api.md tells clients to, and
// counts the retries. Every exchange is checked against docs/openapi.yaml
// (apispec.Spec.Transport); a mismatch is reported to the run's failures.
type e2eAPI struct {
	mu   sync.Mutex
	base string // mu guards: a restart moves the gateway to another port

	http       *http.Client
	requests   atomic.Int64
	retries503 atomic.Int64
	retriesNet atomic.Int64
}

// Bounds of e2eAPI's retries: 40 attempts 50 ms … 1 s apart ride out a
// pot that times out a few times in a row (5 s each) under the race
// detector.
const (
	e2eRetriesMax    = 40
	e2eRetryPauseMax = time.Second
)

// e2eResponse is one answer of the API.
type e2eResponse struct {
	Status   int
	Body     []byte
	Replayed bool // Idempotent-Replayed: true
	Problem  e2eProblem
	Header   http.Header
}

type e2eProblem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// outcome names a response for counting and expectations: "202", or
// "422 insufficient-funds" for a problem.
func (r e2eResponse) outcome() string {
	if r.Status >= 400 {
		return strconv.Itoa(r.Status) + " " + r.Problem.Code
	}
	return strconv.Itoa(r.Status)
}

func (r e2eResponse) String() string {
	body := string(bytes.TrimSpace(r.Body))
	if len(body) > 600 {
		body = body[:600] + "…"
	}
	return fmt.Sprintf("%d %s", r.Status, body)
}

func newE2EAPI(base string, conns int, spec *apispec.Spec, report apispec.Reporter) *e2eAPI {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns*2, conns*2
	return &e2eAPI{base: base, http: &http.Client{Transport: spec.Transport(tr, report)}}
}

func (a *e2eAPI) setBase(base string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.base = base
	a.http.CloseIdleConnections()
}

func (a *e2eAPI) url(path string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base + path
}

// do sends one request (body nil for none), retrying a 503 and a failed
// connection with the same key.
func (a *e2eAPI) do(ctx context.Context, method, path, token, key string, body []byte) (e2eResponse, error) {
	for attempt := 1; ; attempt++ {
		var rd io.Reader = http.NoBody
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, a.url(path), rd)
		if err != nil {
			return e2eResponse{}, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		a.requests.Add(1)
		resp, err := a.http.Do(req)
		if err != nil {
			if ctx.Err() != nil || attempt >= e2eRetriesMax {
				return e2eResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
			}
			a.retriesNet.Add(1)
			pause(ctx, attempt)
			continue
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			if ctx.Err() != nil || attempt >= e2eRetriesMax {
				return e2eResponse{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
			}
			a.retriesNet.Add(1)
			pause(ctx, attempt)
			continue
		}
		r := e2eResponse{Status: resp.StatusCode, Body: data, Replayed: resp.Header.Get("Idempotent-Replayed") == "true", Header: resp.Header}
		if r.Status >= 400 {
			if err := json.Unmarshal(data, &r.Problem); err != nil || r.Problem.Code == "" {
				return r, fmt.Errorf("%s %s: %d without a problem body: %q", method, path, r.Status, data)
			}
		}
		// "unavailable": the pot or the gateway could not answer in time;
		// anything else (a cycle that stopped) is the caller's to handle.
		if r.Status == http.StatusServiceUnavailable && r.Problem.Code == "unavailable" && attempt < e2eRetriesMax {
			a.retries503.Add(1)
			pause(ctx, attempt)
			continue
		}
		return r, nil
	}
}

func pause(ctx context.Context, attempt int) {
	d := min(time.Duration(attempt)*50*time.Millisecond, e2eRetryPauseMax)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// jsonBody encodes v (a map gives sorted keys: the same request encodes to
// the same bytes).
func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// The API's JSON shapes (docs/api.md, docs/openapi.yaml), as far as the tests
// read them.
type (
	e2eAsset struct {
		ISIN           string `json:"isin"`
		UnitDecimals   int32  `json:"unitDecimals"`
		PriceDecimals  int32  `json:"priceDecimals"`
		SettlementDays int    `json:"settlementDays"`
	}
	e2ePot struct {
		MemberID    string `json:"memberId"`
		RiskProfile string `json:"riskProfile"`
		Version     uint64 `json:"version"`
		Cash        struct {
			Available string `json:"available"`
			Reserved  string `json:"reserved"`
			Pending   string `json:"pending"`
		} `json:"cash"`
		Holdings   []e2eHolding `json:"holdings"`
		TotalValue string       `json:"totalValue"`
	}
	e2eHolding struct {
		Asset         string `json:"asset"`
		SettledUnits  string `json:"settledUnits"`
		PendingUnits  string `json:"pendingUnits"`
		ReservedUnits string `json:"reservedUnits"`
		Price         string `json:"price"`
		Value         string `json:"value"`
	}
	e2eOrder struct {
		ID                  string            `json:"id"`
		Type                string            `json:"type"`
		Status              string            `json:"status"`
		DealingDate         string            `json:"dealingDate"`
		OriginalDealingDate string            `json:"originalDealingDate"`
		MovementID          string            `json:"movementId"`
		Trades              []e2eTrade        `json:"trades"`
		ContractNotes       []e2eContractNote `json:"contractNotes"`
	}
	e2eTrade struct {
		ID             string `json:"id"`
		Asset          string `json:"asset"`
		Side           string `json:"side"`
		Amount         string `json:"amount"`
		Units          string `json:"units"`
		Status         string `json:"status"`
		ExecutedUnits  string `json:"executedUnits"`
		Price          string `json:"price"`
		Cash           string `json:"cash"`
		SettlementDate string `json:"settlementDate"`
		BatchID        string `json:"batchId"`
	}
	e2eContractNote struct {
		TradeID        string `json:"tradeId"`
		DealingDate    string `json:"dealingDate"`
		Asset          string `json:"asset"`
		Side           string `json:"side"`
		Units          string `json:"units"`
		UnitPrice      string `json:"unitPrice"`
		Consideration  string `json:"consideration"`
		SettlementDate string `json:"settlementDate"`
		BatchID        string `json:"batchId"`
	}
	e2eMovement struct {
		ID          string     `json:"id"`
		Kind        string     `json:"kind"`
		Status      string     `json:"status"`
		Amount      string     `json:"amount"`
		Paid        string     `json:"paid"`
		DealingDate string     `json:"dealingDate"`
		Orders      []e2eOrder `json:"orders"`
	}
	e2eOrderList struct {
		Orders    []e2eOrder `json:"orders"`
		NextAfter string     `json:"nextAfter"`
	}
	e2eStatement struct {
		Entries []struct {
			Kind         string `json:"kind"`
			Description  string `json:"description"`
			Cash         string `json:"cash"`
			Units        string `json:"units"`
			Asset        string `json:"asset"`
			BalanceAfter string `json:"balanceAfter"`
		} `json:"entries"`
	}
	e2eCycle struct {
		Date   string `json:"date"`
		Status string `json:"status"`
		Step   string `json:"step"`
		Error  string `json:"error"`
		Orders []struct {
			ClOrdID string `json:"clOrdId"`
			Asset   string `json:"asset"`
			Side    string `json:"side"`
			Units   string `json:"units"`
			Price   string `json:"price"`
			Cash    string `json:"cash"`
			Status  string `json:"status"`
		} `json:"orders"`
		Trades        int64 `json:"trades"`
		PotsAllocated int64 `json:"potsAllocated"`
		TradesSettled int64 `json:"tradesSettled"`
		OrdersRolled  int64 `json:"ordersRolled"`
		Rebalance     struct {
			PotsChecked int64 `json:"potsChecked"`
			PotsTraded  int64 `json:"potsTraded"`
		} `json:"rebalance"`
		Batches []struct {
			ID             string `json:"id"`
			Asset          string `json:"asset"`
			Trades         int64  `json:"trades"`
			ManifestSHA256 string `json:"manifestSha256"`
			HouseResidual  string `json:"houseResidual"`
		} `json:"batches"`
	}
	e2eReconciliation struct {
		ID       string `json:"id"`
		AsOf     string `json:"asOf"`
		Pots     int64  `json:"pots"`
		Summary  string `json:"summary"`
		Internal struct {
			Breaks []json.RawMessage `json:"breaks"`
		} `json:"internal"`
		External struct {
			Breaks []json.RawMessage `json:"breaks"`
		} `json:"external"`
		Assets []struct {
			Asset                 string `json:"asset"`
			PotSettledUnits       string `json:"potSettledUnits"`
			PotPendingUnits       string `json:"potPendingUnits"`
			HouseUnits            string `json:"houseUnits"`
			HousePendingUnits     string `json:"housePendingUnits"`
			CustodianSettledUnits string `json:"custodianSettledUnits"`
			CustodianPendingUnits string `json:"custodianPendingUnits"`
		} `json:"assets"`
	}
)

// decOf reads a decimal of the API; "" is zero. ok is false for anything
// else that is not a decimal.
func decOf(s string) (decimal.Decimal, bool) {
	if s == "" {
		return decimal.Zero, true
	}
	d, err := decimal.NewFromString(s)
	return d, err == nil
}

// checkPotView checks docs/domain.md invariant 1 on a pot as the API shows it: no cash
// figure and no unit figure is negative, and reserved units never exceed
// settled ones.
func checkPotView(v *e2ePot) error {
	var problems []string
	for _, c := range []struct{ what, value string }{
		{"available cash", v.Cash.Available}, {"reserved cash", v.Cash.Reserved}, {"pending cash", v.Cash.Pending},
	} {
		if d, ok := decOf(c.value); !ok || d.Sign() < 0 || c.value == "" {
			problems = append(problems, fmt.Sprintf("%s %q", c.what, c.value))
		}
	}
	for _, h := range v.Holdings {
		settled, ok1 := decOf(h.SettledUnits)
		pending, ok2 := decOf(h.PendingUnits)
		reserved, ok3 := decOf(h.ReservedUnits)
		switch {
		case !ok1 || !ok2 || !ok3:
			problems = append(problems, fmt.Sprintf("%s: unreadable units %+v", h.Asset, h))
		case settled.Sign() < 0 || pending.Sign() < 0 || reserved.Sign() < 0:
			problems = append(problems, fmt.Sprintf("%s: negative units %+v", h.Asset, h))
		case reserved.Cmp(settled) > 0:
			problems = append(problems, fmt.Sprintf("%s: reserved %s above settled %s", h.Asset, reserved, settled))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("pot %s (version %d) breaks invariant 1: %s", v.MemberID, v.Version, strings.Join(problems, "; "))
	}
	return nil
}

// e2eFailures collects the driver's failures from many goroutines; the
// test reports them at the end (the first ones in full).
type e2eFailures struct {
	mu    sync.Mutex
	count int      // mu guards
	first []string // mu guards
}

// e2eFailuresShown bounds the failures reported in full.
const e2eFailuresShown = 40

func (f *e2eFailures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if len(f.first) < e2eFailuresShown {
		f.first = append(f.first, fmt.Sprintf(format, args...))
	}
}

func (f *e2eFailures) snapshot() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, append([]string(nil), f.first...)
}

// e2eCounts counts outcomes by operation ("contribute 202").
type e2eCounts struct {
	mu sync.Mutex
	n  map[string]int // mu guards
}

func (c *e2eCounts) add(op, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op+" → "+outcome]++
}

func (c *e2eCounts) get(op, outcome string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op+" → "+outcome]
}

func (c *e2eCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-64s %7d\n", k, c.n[k])
	}
	return b.String()
}

// dupFeedJournal delivers its feed twice, as an at-least-once journal may
// (a repeated page after a timeout, a consumer resuming from an older
// checkpoint): some pages hold each event twice, or the whole page twice,
// and some start from a position before the one asked for. Consumers must
// apply each event once all the same. Everything else passes through.
type dupFeedJournal struct {
	persistence.Journal

	mu   sync.Mutex
	rng  *rand.Rand          // mu guards
	seen map[uint32][]uint64 // mu guards: recent positions returned, per group

	pagesDoubled atomic.Int64
	pagesRewound atomic.Int64
	extraEvents  atomic.Int64
}

// Rates and bounds of dupFeedJournal.
const (
	dupFeedDoubleProbability = 0.3
	dupFeedRewindProbability = 0.2
	// dupFeedRewindMax: a rewound page starts at most this many events
	// before the position asked for.
	dupFeedRewindMax = 64
	// dupFeedSeenMax bounds the positions remembered per group.
	dupFeedSeenMax = 4 * dupFeedRewindMax
)

func newDupFeedJournal(j persistence.Journal, seed uint64) *dupFeedJournal {
	return &dupFeedJournal{Journal: j, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)), seen: map[uint32][]uint64{}}
}

func (j *dupFeedJournal) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	j.mu.Lock()
	double := j.rng.Float64() < dupFeedDoubleProbability
	wholePage := j.rng.IntN(2) == 0
	from := after
	if j.rng.Float64() < dupFeedRewindProbability {
		// An earlier position this group's feed returned, or the start.
		var earlier []uint64
		for _, p := range j.seen[group] {
			if p < after {
				earlier = append(earlier, p)
			}
		}
		if len(earlier) > 0 {
			back := 1 + j.rng.IntN(min(len(earlier), dupFeedRewindMax))
			from = earlier[len(earlier)-back]
			if j.rng.IntN(8) == 0 && back == len(earlier) {
				from = 0
			}
		}
	}
	j.mu.Unlock()

	events, err := j.Journal.ReadFeed(ctx, group, from, limit)
	if err != nil || len(events) == 0 {
		return events, err
	}
	j.remember(group, events)
	if from < after {
		j.pagesRewound.Add(1)
		for _, e := range events {
			if e.Position <= after {
				j.extraEvents.Add(1)
			}
		}
	}
	if !double {
		return events, nil
	}
	// Still at most limit events: half the page, each twice (or the half
	// page twice over).
	half := events[:min(len(events), (limit+1)/2)]
	out := make([]persistence.FeedEvent, 0, 2*len(half))
	if wholePage {
		out = append(append(out, half...), half...)
	} else {
		for _, e := range half {
			out = append(out, e, e)
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	j.pagesDoubled.Add(1)
	j.extraEvents.Add(int64(len(out) - len(half)))
	return out, nil
}

func (j *dupFeedJournal) remember(group uint32, events []persistence.FeedEvent) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.seen[group]
	for _, e := range events {
		if n := len(s); n == 0 || e.Position > s[n-1] {
			s = append(s, e.Position)
		}
	}
	if len(s) > dupFeedSeenMax {
		s = append(s[:0:0], s[len(s)-dupFeedSeenMax:]...)
	}
	j.seen[group] = s
}
