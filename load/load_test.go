package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/load"
	"github.com/acme/mastertrust/platform"
)

// startDev starts the whole platform in this process on a clock that
// follows the run's dealing days, as `load run --start dev` does, and
// returns the run's config for it.
func startDev(t *testing.T) load.Config {
	t.Helper()
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	clock := load.NewDayClock(cal)
	log, _ := testkit.Logger(t)
	d, err := platform.StartDev(platform.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
		Now: clock.Now, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, d.Stop(ctx))
	})
	return load.Config{URLs: []string{d.URL}, Calendar: cal, Log: log, Clock: clock,
		Token: func(member string) (string, error) { return d.Token(member, time.Hour) }}
}

// generate is a workload of members for days, at rates busier than the
// default so that a small run has every kind of request.
func generate(t *testing.T, members, days int) []byte {
	t.Helper()
	var w bytes.Buffer
	rates := load.Rates{Contribution: 0.2, Withdrawal: 0.05, Buy: 0.2, Sell: 0.2, Switch: 0.1, Profile: 0.05, Cancel: 0.3}
	require.NoError(t, load.Generate(&w, load.GenConfig{Members: members, Days: days, Seed: 7, Rates: rates}))
	return w.Bytes()
}

// TestSmallRun runs 300 members for 3 days, a tenth of each day's members
// racing the cut-off, and every check passes; each day is profiled, into a
// directory the run makes.
func TestSmallRun(t *testing.T) {
	cfg := startDev(t)
	cfg.Racing = 0.1
	cfg.ProfileDir = filepath.Join(t.TempDir(), "not", "yet", "made")
	work := generate(t, 300, 3)
	r, err := load.NewReader(bytes.NewReader(work))
	require.NoError(t, err)
	res, err := load.Run(context.Background(), cfg, r)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "report")
	require.NoError(t, res.WriteReport(dir))
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	t.Logf("%s", md)
	require.True(t, res.Checked)
	require.False(t, res.Failed(), "the run's checks")
	nextDay := 0
	for _, d := range res.Days[:3] {
		assert.Positive(t, d.Racing, "day %d: requests raced its cut-off", d.Number)
		nextDay += d.RacingNextDay
	}
	// Those sent once the cycle was at its cut-off were dealt the next day,
	// and checked like the rest.
	assert.Positive(t, nextDay)
	for _, name := range []string{"day-1.cpu.pprof", "day-3.heap.pprof"} {
		fi, err := os.Stat(filepath.Join(cfg.ProfileDir, name))
		require.NoError(t, err)
		assert.Positive(t, fi.Size(), name)
	}
}

// After five warm-up days, the workload's first day meets a going scheme:
// trades settle on each of days 1 to 3, as on any later day (without
// warm-up, none settle before day 4). The warm-up days are reported as
// such, not counted among the workload's days, and what they were told is
// checked like the rest.
func TestWarmUpDaysMeetDayOneInvested(t *testing.T) {
	cfg := startDev(t)
	var w bytes.Buffer
	require.NoError(t, load.Generate(&w, load.GenConfig{Members: 60, Days: 3, Seed: 5, Rates: load.DefaultRates, WarmUpDays: 5}))
	r, err := load.NewReader(bytes.NewReader(w.Bytes()))
	require.NoError(t, err)
	res, err := load.Run(context.Background(), cfg, r)
	require.NoError(t, err)
	require.True(t, res.Checked)
	require.False(t, res.Failed(), "the run's checks")
	assert.Equal(t, 3, res.Summary.Days)
	assert.Equal(t, 5, res.Summary.WarmUpDays)
	var days []int
	for _, d := range res.Days {
		if d.WarmUp {
			assert.LessOrEqual(t, d.Number, 0)
			continue
		}
		if d.Number > 0 {
			days = append(days, d.Number)
			assert.Positive(t, d.TradesSettled, "day %d settles trades", d.Number)
		}
	}
	assert.Equal(t, []int{1, 2, 3}, days)
	// The opening balances were acknowledged and checked: 60 more than the
	// pots and the days' own requests.
	assert.GreaterOrEqual(t, res.Summary.Acknowledged, int64(120))
}

// On the run's day clock, keys pass their retention as they would over the
// run's days: after eight dealing days and the settling days, day 1's key is
// refused as past its retention. On the real clock, seconds after it was
// used, it would be answered with what it made.
func TestKeysPassTheirRetentionOnTheRunsDays(t *testing.T) {
	cfg := startDev(t)
	var w bytes.Buffer
	require.NoError(t, load.Generate(&w, load.GenConfig{Members: 2, Days: 8, Seed: 7, Rates: load.Rates{Contribution: 1}}))
	r, err := load.NewReader(bytes.NewReader(w.Bytes()))
	require.NoError(t, err)
	_, err = r.Opens()
	require.NoError(t, err)
	var first load.Request
	for {
		day, err := r.NextDay()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if day.Number == 1 {
			first = day.Requests[0]
		}
	}
	require.Equal(t, load.KindContribute, first.Kind)

	r, err = load.NewReader(bytes.NewReader(w.Bytes()))
	require.NoError(t, err)
	res, err := load.Run(context.Background(), cfg, r)
	require.NoError(t, err)
	require.False(t, res.Failed(), "the run's checks")

	contribute := func(req load.Request) (int, string) {
		token, err := cfg.Token(req.Member)
		require.NoError(t, err)
		hr, err := http.NewRequest(http.MethodPost, cfg.URLs[0]+"/v1/pots/"+req.Member+"/contributions",
			strings.NewReader(fmt.Sprintf(`{"amount":%q}`, req.Args[0])))
		require.NoError(t, err)
		hr.Header.Set("Authorization", "Bearer "+token)
		hr.Header.Set("Idempotency-Key", req.Key)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(hr)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := contribute(first)
	assert.Equal(t, http.StatusConflict, status, body)
	assert.Contains(t, body, "idempotency-key-expired")
}

// A run interrupted before its checks (here on day 1, as by Ctrl-C) writes
// its report all the same, and it says the checks were not made rather
// than that nothing was lost; the run counts as failed.
func TestInterruptedRunIsNotChecked(t *testing.T) {
	cfg := startDev(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Chaos = func(context.Context, int) error {
		cancel()
		return nil
	}
	r, err := load.NewReader(bytes.NewReader(generate(t, 40, 2)))
	require.NoError(t, err)
	res, err := load.Run(ctx, cfg, r)
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, res)
	assert.False(t, res.Checked)
	assert.True(t, res.Failed(), "a run without its checks has not passed")
	dir := t.TempDir()
	require.NoError(t, res.WriteReport(dir))
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "# Load run: not checked")
}

// TestCheckerCatchesWhatWentWrong puts a gateway between the run and the
// platform that, for one contribution each, answers without passing it on
// (lost), passes it on twice under two keys (doubled), and passes it on
// with another amount (mismatched): the checks find each, on its member.
func TestCheckerCatchesWhatWentWrong(t *testing.T) {
	cfg := startDev(t)
	work := generate(t, 60, 2)
	r, err := load.NewReader(bytes.NewReader(work))
	require.NoError(t, err)
	_, err = r.Opens()
	require.NoError(t, err)
	day, err := r.NextDay()
	require.NoError(t, err)
	var victims []string // the first three members contributing on day 1
	for _, req := range day.Requests {
		if req.Kind == load.KindContribute && !slices.Contains(victims, req.Member) {
			victims = append(victims, req.Member)
		}
	}
	require.GreaterOrEqual(t, len(victims), 3)
	lost, doubled, wrong := victims[0], victims[1], victims[2]

	target, err := url.Parse(cfg.URLs[0])
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	done := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		member, ok := strings.CutSuffix(strings.TrimPrefix(req.URL.Path, "/v1/pots/"), "/contributions")
		mu.Lock()
		first := ok && req.Method == http.MethodPost && !done[member]
		done[member] = done[member] || ok && req.Method == http.MethodPost
		mu.Unlock()
		body, _ := io.ReadAll(req.Body)
		forward := func(key string, body []byte) *httptest.ResponseRecorder {
			out := req.Clone(req.Context())
			out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			if key != "" {
				out.Header.Set("Idempotency-Key", key)
			}
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, out)
			return rec
		}
		var rec *httptest.ResponseRecorder
		switch {
		case first && member == lost:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"id":"%s-999999","kind":"contribution","status":"accepted","amount":"1.00","orders":[]}`, member)
			return
		case first && member == doubled:
			forward(req.Header.Get("Idempotency-Key")+"-again", body)
			rec = forward(req.Header.Get("Idempotency-Key"), body)
		case first && member == wrong:
			var c map[string]string
			require.NoError(t, json.Unmarshal(body, &c))
			c["amount"] = decimal.RequireFromString(c["amount"]).Add(decimal.NewFromInt(1)).StringFixed(2)
			changed, _ := json.Marshal(c)
			rec = forward(req.Header.Get("Idempotency-Key"), changed)
		default:
			rec = forward(req.Header.Get("Idempotency-Key"), body)
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)

	cfg.URLs = []string{srv.URL}
	r, err = load.NewReader(bytes.NewReader(work))
	require.NoError(t, err)
	res, err := load.Run(context.Background(), cfg, r)
	require.NoError(t, err)
	require.True(t, res.Failed())
	found := map[string][]string{}
	for _, f := range res.Findings {
		found[f.Member] = append(found[f.Member], f.Check+": "+f.Detail)
	}
	t.Logf("findings: %v", found)
	require.Contains(t, found, lost)
	require.Contains(t, found[lost][0], "lost: contribution "+lost+"-999999")
	require.Contains(t, found, doubled)
	require.Contains(t, found[doubled][0], "doubled: contribution")
	require.Contains(t, found, wrong)
	require.Contains(t, found[wrong][0], "mismatched: contribution")
	require.Len(t, found, 3, "no member but the three")
	require.Equal(t, int64(1), res.Lost)
	require.Equal(t, int64(1), res.Doubled)
	require.Zero(t, res.Breaks, "the platform itself reconciles: it did what it was asked")
}
