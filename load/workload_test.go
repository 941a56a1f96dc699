package load_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/load"
)

// TestGenerateIsItsSeed: the same config writes the same bytes, another
// seed others; what it writes reads back as the header, the pots and the
// days it says, every request of a kind with its fields.
func TestGenerateIsItsSeed(t *testing.T) {
	cfg := load.GenConfig{Members: 500, Days: 25, Seed: 42, Rates: load.DefaultRates}
	var a, b, c bytes.Buffer
	require.NoError(t, load.Generate(&a, cfg))
	require.NoError(t, load.Generate(&b, cfg))
	require.Equal(t, a.String(), b.String(), "the same seed")
	cfg.Seed = 43
	require.NoError(t, load.Generate(&c, cfg))
	require.NotEqual(t, a.String(), c.String(), "another seed")

	r, err := load.NewReader(&a)
	require.NoError(t, err)
	require.Equal(t, load.Header{Members: 500, Days: 25, Seed: 42}, r.Header)
	opens, err := r.Opens()
	require.NoError(t, err)
	require.Len(t, opens, 500)
	require.Equal(t, load.MemberID(1), opens[0].Member)
	assets := len(domain.DefaultCatalogue().Assets())
	kinds := map[load.Kind]int{}
	payroll := map[string]int{}
	for day := 1; ; day++ {
		d, err := r.NextDay()
		if errors.Is(err, io.EOF) {
			require.Equal(t, 26, day, "days read")
			break
		}
		require.NoError(t, err)
		require.Equal(t, day, d.Number)
		require.Len(t, d.Prices, assets, "day %d: a price for every asset", day)
		for _, req := range d.Requests {
			kinds[req.Kind]++
			if req.Kind == load.KindContribute && strings.HasSuffix(req.Args[0], ".00") {
				payroll[req.Member]++
			}
		}
	}
	for _, k := range []load.Kind{load.KindContribute, load.KindWithdraw, load.KindBuy, load.KindSell, load.KindSwitch, load.KindCancel} {
		require.NotZero(t, kinds[k], "requests of kind %s", k)
	}
	// 25 dealing days hold every member's pay day (one of 21) once, and a
	// few members' twice.
	require.GreaterOrEqual(t, len(payroll), 490, "members paid in")
}

// TestReaderRefusesWhatItCannotRead: a damaged workload is an error naming
// its line, never a panic or a request made up.
func TestReaderRefusesWhatItCannotRead(t *testing.T) {
	const header = "mastertrust-load 1 members=1 days=1 seed=1\n"
	for name, text := range map[string]string{
		"empty":                  "",
		"another format":         "mastertrust-load 2 members=1\n",
		"a header field unknown": "mastertrust-load 1 members=1 colour=blue\n",
		"a header number":        "mastertrust-load 1 members=one\n",
		"a day without number":   header + "open L1 -\nday\n",
		"an unknown record":      header + "open L1 -\nday 1\nteleport L1 k x\n",
		"a buy short of fields":  header + "open L1 -\nday 1\nbuy L1 k GB00BD8R3K42\n",
		"a price without =":      header + "open L1 -\nday 1\nprices GB00BD8R3K42\n",
		"an open of two fields":  header + "open L1\n",
	} {
		r, err := load.NewReader(strings.NewReader(text))
		if err == nil {
			if _, err = r.Opens(); err == nil {
				_, err = r.NextDay()
			}
		}
		require.Error(t, err, name)
		require.NotErrorIs(t, err, io.EOF, name)
	}
}

// The report compares the workload's last day with its third, the
// settling days aside, and says nothing with three days or fewer; a report
// without a single request (a run that stopped at once) still draws its
// charts (gonum/plot panicked on an empty log axis).
func TestLastDayOverDay3(t *testing.T) {
	dir := t.TempDir()
	r := &load.Result{Days: []load.DayResult{{Number: 1, CycleSeconds: 9, RequestSeconds: 1}, {Number: 3, CycleSeconds: 2, RequestSeconds: 4},
		{Number: 4, CycleSeconds: 3, RequestSeconds: 2}, {Number: -1, CycleSeconds: 100, RequestSeconds: 100}}}
	require.NoError(t, r.WriteReport(dir))
	require.Equal(t, &load.DayRatios{Day: 4, CycleSeconds: 1.5, RequestSeconds: 0.5}, r.LastDayOverDay3)
	r = &load.Result{Days: []load.DayResult{{Number: 3, CycleSeconds: 2, RequestSeconds: 4}}}
	require.NoError(t, r.WriteReport(t.TempDir()))
	require.Nil(t, r.LastDayOverDay3)

	// With eight days, days 6–8 over days 3–5 too; warm-up days and
	// settling days are neither.
	r = &load.Result{Days: []load.DayResult{{Number: 0, WarmUp: true, CycleSeconds: 50, RequestSeconds: 50}}}
	for n, cycle := range []float64{1, 1, 2, 2, 2, 2, 3, 5} {
		r.Days = append(r.Days, load.DayResult{Number: n + 1, CycleSeconds: cycle, RequestSeconds: 1})
	}
	r.Days = append(r.Days, load.DayResult{Number: -1, CycleSeconds: 100, RequestSeconds: 100})
	dir = t.TempDir()
	require.NoError(t, r.WriteReport(dir))
	require.Equal(t, &load.DayRatios{Day: 8, CycleSeconds: 2.5, RequestSeconds: 1, WindowCycleSeconds: 10.0 / 6, WindowRequestSeconds: 1},
		r.LastDayOverDay3)
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "Day 8 ÷ day 3: the cycle's time 2.50, the requests' time 1.00. Days 6–8 ÷ days 3–5: 1.67 and 1.00.")
}

// Warm-up days come before day 1, numbered up to 0: on the first, every
// member pays in its opening balance before its other requests; the days
// from 1 are the workload's. Without warm-up days the header says nothing
// of them.
func TestGenerateWarmsUp(t *testing.T) {
	var cold, warm bytes.Buffer
	require.NoError(t, load.Generate(&cold, load.GenConfig{Members: 50, Days: 3, Seed: 9, Rates: load.DefaultRates}))
	require.NoError(t, load.Generate(&warm, load.GenConfig{Members: 50, Days: 3, Seed: 9, Rates: load.DefaultRates, WarmUpDays: 5}))
	require.True(t, strings.HasPrefix(cold.String(), "mastertrust-load 1 members=50 days=3 seed=9\n"), "no warmup field")

	r, err := load.NewReader(&warm)
	require.NoError(t, err)
	require.Equal(t, load.Header{Members: 50, Days: 3, Seed: 9, WarmUp: 5}, r.Header)
	_, err = r.Opens()
	require.NoError(t, err)
	var numbers []int
	for {
		d, err := r.NextDay()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		numbers = append(numbers, d.Number)
		require.Equal(t, d.Number <= 0, d.WarmUp(), "day %d", d.Number)
		if d.Number != -4 {
			for _, req := range d.Requests {
				require.NotEqual(t, "opening", req.Key, "day %d", d.Number)
			}
			continue
		}
		first := map[string]load.Request{}
		for _, req := range d.Requests {
			if _, seen := first[req.Member]; !seen {
				first[req.Member] = req
			}
		}
		require.Len(t, first, 50, "every member")
		for m, req := range first {
			require.Equal(t, load.KindContribute, req.Kind, m)
			require.Equal(t, "opening", req.Key, m)
			pounds, err := decimal.NewFromString(req.Args[0])
			require.NoError(t, err)
			require.True(t, pounds.GreaterThanOrEqual(decimal.NewFromInt(1000)) && pounds.LessThanOrEqual(decimal.NewFromInt(30000)), "%s: %s", m, pounds)
		}
	}
	require.Equal(t, []int{-4, -3, -2, -1, 0, 1, 2, 3}, numbers)
}
