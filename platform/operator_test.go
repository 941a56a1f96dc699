package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/platform"
)

// The operators' safeguards, tried through the HTTP API of a whole dev
// platform as an operator would: dates that are not dates, days that do not
// deal, cycles out of order, prices corrected, reconciliations as of a day,
// long work answered at once. Each test names the failure it guards against.

// operatorDev is a dev platform on a temporary data dir with a simulated
// clock, restartable on the same data, whose log is watched for errors.
type operatorDev struct {
	t     *testing.T
	cfg   platform.Config
	dev   *platform.Dev
	clock *e2eClock
	cal   *domain.Calendar
	op    string // an operator token
	logs  *errorLog
	// http checks every exchange against docs/openapi.yaml.
	http *http.Client
}

// operatorPrices are a price for every catalogue asset.
const operatorPrices = `"GB00BN7Q2L69":"2.000000","GB00BD8R3K42":"1.500000","IE00BF4W7M71":"1.250000",` +
	`"GB00BH2T9J51":"1.100000","GB00BK5V8P82":"1.2345","IE00BL3X6N73":"0.987654","GB00BP9C4D20":"1.000000"`

func startOperatorDev(t *testing.T, windowAhead int, faults simulator.Faults, now time.Time) *operatorDev {
	t.Helper()
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	logger, _ := testkit.Logger(t)
	spec, err := apispec.Load()
	require.NoError(t, err)
	d := &operatorDev{t: t, clock: &e2eClock{now: now}, cal: cal, logs: &errorLog{next: logger.Handler()},
		http: &http.Client{Transport: spec.Transport(http.DefaultTransport, t)}}
	d.cfg = platform.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Now: d.clock.Now, Logger: slog.New(d.logs),
		DealingWindowAhead: windowAhead, CustodianFaults: faults}
	d.start()
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *operatorDev) start() {
	d.t.Helper()
	dev, err := platform.StartDev(d.cfg)
	require.NoError(d.t, err)
	d.dev = dev
	d.op, err = dev.Token("", time.Hour)
	require.NoError(d.t, err)
}

func (d *operatorDev) stop() {
	if d.dev == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.dev.Stop(ctx); err != nil {
		d.t.Logf("stop: %v", err)
	}
	d.dev = nil
}

// restart stops the platform and starts it again on its data.
func (d *operatorDev) restart() {
	d.t.Helper()
	d.stop()
	d.start()
}

// call makes one request and returns its status, headers and body.
func (d *operatorDev) call(method, path, token, key, body string) (int, http.Header, []byte) {
	d.t.Helper()
	return d.callIn(context.Background(), method, path, token, key, body)
}

func (d *operatorDev) callIn(ctx context.Context, method, path, token, key, body string) (int, http.Header, []byte) {
	d.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, d.dev.URL+path, strings.NewReader(body))
	require.NoError(d.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := d.http.Do(req)
	require.NoError(d.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(d.t, err, "%s %s: read body", method, path)
	return resp.StatusCode, resp.Header, b
}

// want makes a request and checks its status and, for a problem, its code.
func (d *operatorDev) want(status int, code, method, path, body string) []byte {
	d.t.Helper()
	return d.wantUnsaid("", status, code, method, path, body)
}

// wantUnsaid is want for a request the OpenAPI document cannot tell from a
// valid one (why says what it breaks; "" for none).
func (d *operatorDev) wantUnsaid(why string, status int, code, method, path, body string) []byte {
	d.t.Helper()
	ctx := context.Background()
	if why != "" {
		ctx = apispec.Unsaid(ctx, why)
	}
	got, _, b := d.callIn(ctx, method, path, d.op, "", body)
	var p struct{ Code string }
	_ = json.Unmarshal(b, &p)
	require.Equal(d.t, status, got, "%s %s %s: status; body %s", method, path, body, b)
	require.Equal(d.t, code, p.Code, "%s %s %s: problem code; body %s", method, path, body, b)
	return b
}

// prices publishes the standard prices for date.
func (d *operatorDev) prices(date string) {
	d.t.Helper()
	d.want(http.StatusOK, "", "POST", "/v1/prices", `{"date":"`+date+`","prices":{`+operatorPrices+`}}`)
}

// cycle runs date's cycle to its end through the API and returns the final
// summary.
func (d *operatorDev) cycle(date, body string) cycleStatus {
	d.t.Helper()
	d.clock.Set(domain.MustDate(date).At(12, 30, d.cal.Location()))
	status, h, b := d.call("POST", "/v1/cycles/"+date+"/run", d.op, "", body)
	if status != http.StatusAccepted && status != http.StatusOK {
		d.t.Fatalf("cycle %s: %d %s", date, status, b)
	}
	if status == http.StatusAccepted && h.Get("Location") != "/v1/cycles/"+date {
		d.t.Fatalf("cycle %s: 202 with Location %q", date, h.Get("Location"))
	}
	return d.await("/v1/cycles/" + date)
}

// cycleStatus is what these tests read of a cycle summary or a
// reconciliation report.
type cycleStatus struct {
	Date     string `json:"date"`
	Status   string `json:"status"`
	Step     string `json:"step"`
	AsOf     string `json:"asOf"`
	Progress *struct {
		Done, Total int64
		Unit        string
	} `json:"progress"`
	Problem *struct {
		Code      string `json:"code"`
		Detail    string `json:"detail"`
		Resumable bool   `json:"resumable"`
	} `json:"problem"`
	Forced *struct {
		Reason, By string
		Passed     []string
	} `json:"forced"`
	OrdersRolled int64 `json:"ordersRolled"`
	Trades       int64 `json:"trades"`
	Internal     *struct{ Breaks []json.RawMessage }
	External     *struct{ Breaks []json.RawMessage }
	raw          []byte
}

// await GETs path until its status is no longer running.
func (d *operatorDev) await(path string) cycleStatus {
	d.t.Helper()
	var s cycleStatus
	testkit.CheckFor(d.t, time.Minute, 20*time.Millisecond, func() error {
		status, _, b := d.call("GET", path, d.op, "", "")
		if status != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", path, status, b)
		}
		s = cycleStatus{raw: b}
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s.Status == "running" {
			return fmt.Errorf("%s still running: %s", path, b)
		}
		return nil
	})
	return s
}

// member opens a pot and pays into it (a contribution invests by the
// balanced profile for the dealing day of the clock), and returns its token.
func (d *operatorDev) member(id string) string {
	d.t.Helper()
	tok, err := d.dev.Token(id, time.Hour)
	require.NoError(d.t, err)
	s, _, b := d.call("POST", "/v1/pots", tok, "open-"+id, `{"memberId":"`+id+`","riskProfile":"balanced"}`)
	require.Equal(d.t, http.StatusCreated, s, "open %s: status; body %s", id, b)
	s, _, b = d.call("POST", "/v1/pots/"+id+"/contributions", tok, "pay-"+id, `{"amount":"100.00"}`)
	require.Equal(d.t, http.StatusAccepted, s, "contribute %s: status; body %s", id, b)
	return tok
}

// errorLog passes records on and counts those at ERROR or above.
type errorLog struct {
	next slog.Handler
	mu   sync.Mutex
	errs []string // mu guards
}

func (h *errorLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		h.errs = append(h.errs, r.Message)
		h.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *errorLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorLogView{errorLog: h, next: h.next.WithAttrs(attrs)}
}

func (h *errorLog) WithGroup(name string) slog.Handler {
	return &errorLogView{errorLog: h, next: h.next.WithGroup(name)}
}

// take returns the errors logged since the last take.
func (h *errorLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.errs
	h.errs = nil
	return out
}

// errorLogView is an errorLog with attributes: it counts into its root.
type errorLogView struct {
	*errorLog
	next slog.Handler
}

func (v *errorLogView) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || v.next.Enabled(ctx, l)
}

func (v *errorLogView) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		v.errorLog.mu.Lock()
		v.errorLog.errs = append(v.errorLog.errs, r.Message)
		v.errorLog.mu.Unlock()
	}
	if v.next.Enabled(ctx, r.Level) {
		return v.next.Handle(ctx, r)
	}
	return nil
}

func (v *errorLogView) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorLogView{errorLog: v.errorLog, next: v.next.WithAttrs(attrs)}
}

func (v *errorLogView) WithGroup(name string) slog.Handler {
	return &errorLogView{errorLog: v.errorLog, next: v.next.WithGroup(name)}
}

// monday is the first dealing day of these tests: Monday 2026-11-23, 09:00.
func monday(cal *domain.Calendar) time.Time {
	return domain.MustDate("2026-11-23").At(9, 0, cal.Location())
}

// TestOperatorDatesNeverEndTheProcess: the year 1 (time.Time's zero, which
// reached the grains as an empty identity and panicked) and 9999 (whose
// settlement leaves four-digit years) are refused as bad dates by every
// operator endpoint, and the process goes on serving; dev's window refuses
// a year typed wrong.
func TestOperatorDatesNeverEndTheProcess(t *testing.T) {
	d := startOperatorDev(t, 0, simulator.Faults{}, time.Now())
	for _, date := range []string{"0001-01-01", "9999-12-31", "1899-12-31", "3000-01-01"} {
		d.want(http.StatusBadRequest, "invalid-request", "POST", "/v1/prices", `{"date":"`+date+`","prices":{`+operatorPrices+`}}`)
		d.want(http.StatusBadRequest, "invalid-request", "GET", "/v1/prices/"+date, "")
		d.want(http.StatusBadRequest, "invalid-request", "GET", "/v1/cycles/"+date, "")
		d.want(http.StatusBadRequest, "invalid-request", "POST", "/v1/cycles/"+date+"/run", `{}`)
		d.want(http.StatusBadRequest, "invalid-request", "POST", "/v1/reconciliations", `{"asOf":"`+date+`"}`)
		s, _, b := d.call("GET", "/healthz", "", "", "")
		require.Equal(t, http.StatusOK, s, "after the requests for %s: /healthz status; body %s", date, b)
	}
	// dev simulates the calendar, but not decades ahead: prices typed for
	// 2062 would value every pot.
	far := d.cal.NextDealingDay(domain.MustDate("2062-01-01")).String()
	d.want(http.StatusUnprocessableEntity, "outside-window", "POST", "/v1/prices", `{"date":"`+far+`","prices":{`+operatorPrices+`}}`)
	require.Empty(t, d.logs.take(), "errors logged")
}

// TestDealingCalendarIsTheLaw: prices and cycles only for dealing days,
// within the window (production: up to the next dealing day after today),
// cycles in date order unless forced with a reason; a day before the last
// completed cycle can no longer run.
func TestDealingCalendarIsTheLaw(t *testing.T) {
	d := startOperatorDev(t, 1, simulator.Faults{}, time.Time{})
	d.clock.Set(domain.MustDate("2026-12-18").At(9, 0, d.cal.Location())) // a Friday: Friday's orders deal today
	// Weekends and holidays have no prices and no cycle.
	d.want(http.StatusUnprocessableEntity, "not-dealing-day", "POST", "/v1/prices", `{"date":"2026-12-19","prices":{`+operatorPrices+`}}`)
	b := d.want(http.StatusUnprocessableEntity, "not-dealing-day", "POST", "/v1/prices", `{"date":"2026-12-25","prices":{`+operatorPrices+`}}`)
	assert.Contains(t, string(b), "2026-12-24 and 2026-12-29", "Christmas's refusal: the dealing days around it")
	d.want(http.StatusUnprocessableEntity, "not-dealing-day", "POST", "/v1/cycles/2026-12-19/run", `{}`)
	// Past the next dealing day after today, no closing price can be known.
	d.want(http.StatusUnprocessableEntity, "outside-window", "POST", "/v1/prices", `{"date":"2026-12-22","prices":{`+operatorPrices+`}}`)
	d.want(http.StatusUnprocessableEntity, "outside-window", "POST", "/v1/prices", `{"date":"2999-12-31","prices":{`+operatorPrices+`}}`)

	// A member buys on Friday; Friday's cycle is skipped and Monday's is
	// refused while Friday has open trades.
	tok := d.member("CAL001")
	d.prices("2026-12-18")
	d.clock.Set(domain.MustDate("2026-12-21").At(9, 0, d.cal.Location()))
	d.prices("2026-12-21")
	b = d.want(http.StatusUnprocessableEntity, "earlier-day-open", "POST", "/v1/cycles/2026-12-21/run", `{}`)
	assert.Contains(t, string(b), "2026-12-18", "the refusal: the open day")
	d.want(http.StatusBadRequest, "invalid-request", "POST", "/v1/cycles/2026-12-21/run", `{"force":true}`)
	d.want(http.StatusBadRequest, "invalid-request", "POST", "/v1/cycles/2026-12-21/run", `{"reason":"no force"}`)
	// Forced with a reason: it runs, records why, and Friday's orders roll
	// to Tuesday where the member sees them.
	s := d.cycle("2026-12-21", `{"force":true,"reason":"Friday's prices were never published"}`)
	require.Equal(t, "complete", s.Status, "forced cycle: status; summary %s", s.raw)
	require.NotNil(t, s.Forced, "forced cycle: forced; summary %s", s.raw)
	require.Equal(t, "Friday's prices were never published", s.Forced.Reason, "forced cycle: forced reason")
	require.Equal(t, []string{"2026-12-18"}, s.Forced.Passed, "forced cycle: days passed")
	require.NotZero(t, s.OrdersRolled, "forced cycle: orders rolled")
	_, _, ob := d.call("GET", "/v1/pots/CAL001/orders", tok, "", "")
	var orders struct {
		Orders []struct {
			DealingDate, Status string
			OriginalDealingDate string `json:"originalDealingDate"`
		}
	}
	require.NoError(t, json.Unmarshal(ob, &orders), "orders %s", ob)
	require.NotEmpty(t, orders.Orders, "orders")
	for _, o := range orders.Orders {
		require.Equal(t, "2026-12-22", o.DealingDate, "Friday's order after the forced Monday: dealingDate")
		require.Equal(t, "2026-12-18", o.OriginalDealingDate, "Friday's order after the forced Monday: originalDealingDate")
		require.Equal(t, "accepted", o.Status, "Friday's order after the forced Monday: status")
	}
	// Friday can no longer run: Monday has completed after it.
	d.want(http.StatusUnprocessableEntity, "outside-window", "POST", "/v1/cycles/2026-12-18/run", `{}`)
	d.want(http.StatusUnprocessableEntity, "outside-window", "POST", "/v1/prices", `{"date":"2026-12-17","prices":{`+operatorPrices+`}}`)
	// Running Monday again reports the same and trades nothing.
	again := d.cycle("2026-12-21", `{"force":true,"reason":"again"}`)
	require.Equal(t, string(s.raw), string(again.raw), "Monday's cycle run again against its first run")
	// Tuesday deals the rolled orders.
	d.clock.Set(domain.MustDate("2026-12-22").At(9, 0, d.cal.Location()))
	d.prices("2026-12-22")
	s = d.cycle("2026-12-22", `{}`)
	require.Equal(t, "complete", s.Status, "Tuesday's cycle: status; summary %s", s.raw)
	require.NotZero(t, s.Trades, "Tuesday's cycle: trades")
	require.Empty(t, d.logs.take(), "errors logged")
}

// TestPricesCorrectedUntilUsed: other prices for a date are refused without
// a reason, replace the recorded ones with a reason (recorded with who),
// deal the day at the corrected prices, and are refused once the cycle has
// used them; GET shows every version.
func TestPricesCorrectedUntilUsed(t *testing.T) {
	d := startOperatorDev(t, 0, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	tok := d.member("COR001")
	d.prices("2026-11-23")
	corrected := strings.Replace(operatorPrices, `"GB00BN7Q2L69":"2.000000"`, `"GB00BN7Q2L69":"2.500000"`, 1)
	d.want(http.StatusConflict, "prices-conflict", "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+corrected+`}}`)
	b := d.want(http.StatusOK, "", "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+corrected+`},"reason":"restated by the fund manager"}`)
	var view struct {
		Prices  map[string]string
		Used    bool
		History []struct{ By, Reason string }
	}
	require.NoError(t, json.Unmarshal(b, &view), "corrected prices %s", b)
	require.Equal(t, "2.500000", view.Prices["GB00BN7Q2L69"], "corrected prices: GB00BN7Q2L69")
	require.False(t, view.Used, "corrected prices: used")
	require.Len(t, view.History, 2, "corrected prices: history")
	require.Equal(t, "restated by the fund manager", view.History[1].Reason, "corrected prices: the correction's reason")
	require.NotEmpty(t, view.History[1].By, "corrected prices: who corrected them")
	s := d.cycle("2026-11-23", `{"rebalance":false}`)
	require.Equal(t, "complete", s.Status, "cycle: status; summary %s", s.raw)
	// The day dealt at the corrected price.
	_, _, ob := d.call("GET", "/v1/pots/COR001/orders", tok, "", "")
	require.Contains(t, string(ob), `"asset":"GB00BN7Q2L69"`, "orders after the cycle: the asset corrected")
	require.Contains(t, string(ob), `"price":"2.500000"`, "orders after the cycle: the corrected price")
	d.want(http.StatusUnprocessableEntity, "prices-used", "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+operatorPrices+`},"reason":"too late"}`)
	d.want(http.StatusOK, "", "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+corrected+`}}`) // the same again is fine
	b = d.want(http.StatusOK, "", "GET", "/v1/prices/2026-11-23", "")
	require.NoError(t, json.Unmarshal(b, &view), "prices after the cycle %s", b)
	require.True(t, view.Used, "prices after the cycle: used")
	require.Len(t, view.History, 2, "prices after the cycle: history")
	d.want(http.StatusNotFound, "not-found", "GET", "/v1/prices/2026-11-24", "")
}

// TestReconciliationAsOfTheDayItCanProve: a reconciliation is as of the
// latest dealing day a cycle ran for; an earlier date (whose custodian side
// the pots can no longer be compared with) is refused, not answered with
// false breaks, and the date given is never replaced silently.
func TestReconciliationAsOfTheDayItCanProve(t *testing.T) {
	d := startOperatorDev(t, 0, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.member("REC001")
	for _, day := range []string{"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"} {
		d.prices(day)
		s := d.cycle(day, `{}`)
		require.Equal(t, "complete", s.Status, "cycle %s: status; summary %s", day, s.raw)
	}
	d.want(http.StatusUnprocessableEntity, "as-of-unavailable", "POST", "/v1/reconciliations", `{"asOf":"2026-11-23"}`)
	d.want(http.StatusUnprocessableEntity, "as-of-unavailable", "POST", "/v1/reconciliations", `{"asOf":"2026-11-30"}`)
	for _, body := range []string{`{"asOf":"2026-11-27"}`, `{"deep":true}`} {
		status, h, b := d.call("POST", "/v1/reconciliations", d.op, "", body)
		if status != http.StatusAccepted && status != http.StatusOK {
			t.Fatalf("reconcile %s: %d %s", body, status, b)
		}
		var id struct{ ID string }
		require.NoError(t, json.Unmarshal(b, &id), "reconcile %s: %s", body, b)
		if status == http.StatusAccepted {
			require.Equal(t, "/v1/reconciliations/"+id.ID, h.Get("Location"), "reconcile %s: Location", body)
		}
		r := d.await("/v1/reconciliations/" + id.ID)
		require.Equal(t, "complete", r.Status, "reconcile %s: status; report %s", body, r.raw)
		require.Equal(t, "2026-11-27", r.AsOf, "reconcile %s: asOf", body)
		require.NotNil(t, r.Internal, "reconcile %s: internal; report %s", body, r.raw)
		require.NotNil(t, r.External, "reconcile %s: external; report %s", body, r.raw)
		require.Empty(t, r.Internal.Breaks, "reconcile %s: internal breaks", body)
		require.Empty(t, r.External.Breaks, "reconcile %s: external breaks", body)
	}
}

// TestLongOperatorWorkAnswersAtOnce: a cycle that waits for its custodian
// is answered 202 with its Location at once, shows its step and progress,
// answers the same run again, and once complete answers 200 with the same
// summary; a reconciliation likewise.
func TestLongOperatorWorkAnswersAtOnce(t *testing.T) {
	d := startOperatorDev(t, 0, simulator.Faults{OutageDuration: 4 * time.Second}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.member("ASY001")
	d.prices("2026-11-23")
	d.clock.Set(domain.MustDate("2026-11-23").At(12, 30, d.cal.Location()))
	start := time.Now()
	status, h, b := d.call("POST", "/v1/cycles/2026-11-23/run", d.op, "", `{}`)
	took := time.Since(start)
	var first cycleStatus
	require.Equal(t, http.StatusAccepted, status, "POST run: status; body %s", b)
	require.Equal(t, "/v1/cycles/2026-11-23", h.Get("Location"), "POST run: Location")
	require.NoError(t, json.Unmarshal(b, &first), "POST run: %s", b)
	require.Equal(t, "running", first.Status, "POST run: summary status")
	assert.LessOrEqual(t, took, 2*time.Second, "POST run: time to answer, want at once")
	// The run waits for the custodian: its GET shows where it is.
	testkit.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		_, _, b := d.call("GET", "/v1/cycles/2026-11-23", d.op, "", "")
		var s cycleStatus
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s.Status != "running" || s.Step != "executions" || s.Progress == nil || s.Progress.Unit != "orders" || s.Progress.Total == 0 {
			return fmt.Errorf("cycle while the custodian is out: %s", b)
		}
		return nil
	})
	status, _, _ = d.call("POST", "/v1/cycles/2026-11-23/run", d.op, "", `{}`)
	require.Equal(t, http.StatusAccepted, status, "POST run again while running: status")
	done := d.await("/v1/cycles/2026-11-23")
	require.Equal(t, "complete", done.Status, "cycle: status; summary %s", done.raw)
	status, h, b = d.call("POST", "/v1/cycles/2026-11-23/run", d.op, "", `{}`)
	require.Equal(t, http.StatusOK, status, "POST run once complete: status; body %s", b)
	require.Empty(t, h.Get("Location"), "POST run once complete: Location")
	require.Equal(t, string(done.raw), string(b), "POST run once complete: the summary")

	status, h, b = d.call("POST", "/v1/reconciliations", d.op, "recon-1", `{"deep":true}`)
	require.Equal(t, http.StatusAccepted, status, "POST reconciliation: status; body %s", b)
	require.Equal(t, "/v1/reconciliations/recon-1", h.Get("Location"), "POST reconciliation: Location")
	r := d.await("/v1/reconciliations/recon-1")
	require.Equal(t, "complete", r.Status, "reconciliation: status; report %s", r.raw)
	status, _, b = d.call("POST", "/v1/reconciliations", d.op, "recon-1", `{"deep":true}`)
	require.Equal(t, http.StatusOK, status, "POST reconciliation again: status; body %s", b)
	require.Equal(t, string(r.raw), string(b), "POST reconciliation again: the report")
}

// TestRefusalsLeaveNothingUnreadable: after each kind of refused operator
// request the platform starts again on its data without an error in its
// log (a refused cycle once left a cut-off that every start logged as
// unreadable).
func TestRefusalsLeaveNothingUnreadable(t *testing.T) {
	d := startOperatorDev(t, 1, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.member("REF001")
	d.prices("2026-11-23")
	d.cycle("2026-11-23", `{}`)
	d.clock.Set(domain.MustDate("2026-11-24").At(9, 0, d.cal.Location()))
	d.member("REF002") // an open order for Tuesday
	d.prices("2026-11-25")
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"year 1", "POST", "/v1/cycles/0001-01-01/run", `{}`, 400, "invalid-request"},
		{"year 9999", "POST", "/v1/prices", `{"date":"9999-12-31","prices":{` + operatorPrices + `}}`, 400, "invalid-request"},
		{"a prices' asset missing", "POST", "/v1/prices", `{"date":"2026-11-24","prices":{"GB00BN7Q2L69":"1"}}`, 400, "invalid-request"},
		{"a Saturday's prices", "POST", "/v1/prices", `{"date":"2026-11-28","prices":{` + operatorPrices + `}}`, 422, "not-dealing-day"},
		{"a Saturday's cycle", "POST", "/v1/cycles/2026-11-28/run", `{}`, 422, "not-dealing-day"},
		{"prices far ahead", "POST", "/v1/prices", `{"date":"2026-12-01","prices":{` + operatorPrices + `}}`, 422, "outside-window"},
		{"a cycle before the last", "POST", "/v1/cycles/2026-11-20/run", `{}`, 422, "outside-window"},
		{"a cycle without prices", "POST", "/v1/cycles/2026-11-24/run", `{}`, 409, "no-prices"},
		{"a cycle past an open day", "POST", "/v1/cycles/2026-11-25/run", `{}`, 422, "earlier-day-open"},
		{"other prices, no reason", "POST", "/v1/prices", `{"date":"2026-11-25","prices":{` + strings.Replace(operatorPrices, "2.000000", "2.1", 1) + `}}`, 409, "prices-conflict"},
		{"used prices corrected", "POST", "/v1/prices", `{"date":"2026-11-23","prices":{` + strings.Replace(operatorPrices, "2.000000", "2.1", 1) + `},"reason":"x"}`, 422, "prices-used"},
		{"an earlier reconciliation", "POST", "/v1/reconciliations", `{"asOf":"2026-11-20"}`, 422, "as-of-unavailable"},
	} {
		unsaid := ""
		if c.name == "a prices' asset missing" {
			unsaid = "every catalogue asset needs a price: the catalogue is not in the document"
		}
		d.wantUnsaid(unsaid, c.status, c.code, c.method, c.path, c.body)
		d.restart()
		s, _, b := d.call("GET", "/v1/cycles/2026-11-23", d.op, "", "")
		require.Equal(t, http.StatusOK, s, "after %s and a restart: GET the completed cycle: status; body %s", c.name, b)
		require.Contains(t, string(b), `"status":"complete"`, "after %s and a restart: the completed cycle", c.name)
		require.Empty(t, d.logs.take(), "after %s and a restart: errors logged", c.name)
	}
}
