package domain

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func register(started, cutOff, completed string) *DealingRegister {
	r := &DealingRegister{}
	for _, f := range []struct {
		dates  string
		record func(Date)
	}{{started, r.Started}, {cutOff, r.CutOff}, {completed, r.Completed}} {
		for _, d := range strings.Fields(f.dates) {
			f.record(MustDate(d))
		}
	}
	return r
}

// TestDealingWindow: the window starts at the oldest day cut off and not
// complete, else after the last completed cycle, and ends the configured
// number of dealing days after today.
func TestDealingWindow(t *testing.T) {
	cal := testCalendar(t)
	// Friday 2026-12-18; the next dealing days are Monday 21, Tuesday 22,
	// Wednesday 23, Thursday 24, then Tuesday 29 (Christmas, Boxing Day's
	// substitute on Monday 28).
	today := MustDate("2026-12-18")
	for _, c := range []struct {
		name                       string
		started, cutOff, completed string
		ahead                      int
		want                       string
	}{
		{"no cycle yet", "", "", "", 1, "up to 2026-12-21"},
		{"no cycle, dev", "", "", "", -1, "any date"},
		{"after the last completed", "2026-12-16 2026-12-17", "2026-12-16 2026-12-17", "2026-12-16 2026-12-17", 1, "2026-12-18 to 2026-12-21"},
		{"completed out of order", "", "2026-12-17 2026-12-15", "2026-12-17 2026-12-15", 1, "2026-12-18 to 2026-12-21"},
		{"an incomplete day starts it", "", "2026-12-15 2026-12-16 2026-12-17", "2026-12-15 2026-12-17", 1, "2026-12-16 to 2026-12-21"},
		{"started but not cut off", "2026-12-18", "2026-12-17", "2026-12-17", 1, "2026-12-18 to 2026-12-21"},
		{"two days ahead", "", "", "", 2, "up to 2026-12-22"},
		{"ahead over Christmas", "", "", "", 5, "up to 2026-12-29"},
		{"today only", "", "2026-12-17", "2026-12-17", 0, "2026-12-18 to 2026-12-18"},
	} {
		r := register(c.started, c.cutOff, c.completed)
		assert.Equal(t, c.want, r.Window(cal, today, c.ahead).String(), "%s: window", c.name)
	}
}

// TestCheckOperatorDate: only dealing days inside the window, each
// refusal saying which rule and what to do.
func TestCheckOperatorDate(t *testing.T) {
	cal := testCalendar(t)
	w := DealingWindow{From: MustDate("2026-12-18"), To: MustDate("2026-12-22")}
	for _, c := range []struct {
		date string
		want error
		says string
	}{
		{"2026-12-18", nil, ""},
		{"2026-12-22", nil, ""},
		{"2026-12-19", ErrNotDealingDay, "2026-12-19 is a weekend day (Saturday): there is no dealing that day; the dealing days around it are 2026-12-18 and 2026-12-21"},
		{"2026-12-25", ErrNotDealingDay, "2026-12-25 is a holiday (Friday)"},
		{"2026-12-17", ErrOutsideWindow, "prices for 2026-12-17: the dealing window is 2026-12-18 to 2026-12-22; a day before the window can no longer deal"},
		{"2026-12-23", ErrOutsideWindow, "a day after the window has no closing prices yet"},
	} {
		err := CheckOperatorDate(cal, w, "prices", MustDate(c.date))
		if c.want == nil {
			assert.NoError(t, err, c.date)
		} else if assert.ErrorIs(t, err, c.want, c.date) {
			assert.ErrorContains(t, err, c.says, c.date)
		}
	}
	assert.NoError(t, CheckOperatorDate(cal, DealingWindow{}, "a cycle", MustDate("2999-10-31")), "a dealing day in an unbounded window")
	// Even without a bound, the last days of the dates do not deal: their
	// next day and settlement dates would not be dates.
	assert.ErrorIs(t, CheckOperatorDate(cal, DealingWindow{}, "a cycle", MustDate("2999-12-30")), ErrOutsideWindow,
		"2999-12-30 in an unbounded window")
}

// TestCheckEarlierDaysComplete: a cycle waits for every earlier day with
// open trades or an incomplete cycle; later days do not hold it.
func TestCheckEarlierDaysComplete(t *testing.T) {
	for _, c := range []struct {
		name       string
		cutOff     string
		completed  string
		open       string
		day        string
		wantListed string // "" for no refusal
	}{
		{"nothing open", "2026-12-16", "2026-12-16", "", "2026-12-18", ""},
		{"open trades of the day itself", "", "", "2026-12-18", "2026-12-18", ""},
		{"open trades of a later day", "", "", "2026-12-21", "2026-12-18", ""},
		{"open trades of an earlier day", "", "", "2026-12-17 2026-12-21", "2026-12-18", "2026-12-17"},
		{"an incomplete earlier cycle", "2026-12-16 2026-12-17", "2026-12-16", "", "2026-12-18", "2026-12-17"},
		{"both, listed once in order", "2026-12-17", "", "2026-12-17 2026-12-15 2026-12-17", "2026-12-18", "2026-12-15, 2026-12-17"},
		{"rerunning the incomplete day itself", "2026-12-17", "", "2026-12-17", "2026-12-17", ""},
	} {
		r := register("", c.cutOff, c.completed)
		var open []Date
		for _, d := range strings.Fields(c.open) {
			open = append(open, MustDate(d))
		}
		err := r.CheckEarlierDaysComplete(MustDate(c.day), open)
		if c.wantListed == "" {
			assert.NoError(t, err, c.name)
		} else if assert.ErrorIs(t, err, ErrEarlierDayOpen, c.name) {
			assert.ErrorContains(t, err, "cycle: "+c.wantListed+"; run their cycles first", "%s: the days listed", c.name)
		}
	}
}

// TestDecidePrices: the same prices are a no-op, new ones are recorded,
// other ones replace them only with a reason and before a cycle used them.
func TestDecidePrices(t *testing.T) {
	const a, b = ISIN("GB00BN7Q2L69"), ISIN("GB00BD8R3K42")
	p := func(s string) Price { return MustPrice(s) }
	recorded := map[ISIN]Price{a: p("1.500000"), b: p("2.000000")}
	for _, c := range []struct {
		name     string
		recorded map[ISIN]Price
		prices   map[ISIN]Price
		used     bool
		reason   string
		want     PricesDecision
		err      error
		says     string
	}{
		{"first", nil, recorded, false, "", PricesRecord, nil, ""},
		{"same, other places", recorded, map[ISIN]Price{a: p("1.5"), b: p("2")}, false, "", PricesSame, nil, ""},
		{"same after use", recorded, recorded, true, "", PricesSame, nil, ""},
		{"other, no reason", recorded, map[ISIN]Price{a: p("1.6"), b: p("2")}, false, " ", 0, ErrCorrectionNoReason, "GB00BN7Q2L69 1.6 (was 1.5)"},
		{"other, with a reason", recorded, map[ISIN]Price{a: p("1.6"), b: p("2")}, false, "typo", PricesCorrect, nil, ""},
		{"other, after use", recorded, map[ISIN]Price{a: p("1.6"), b: p("2")}, true, "typo", 0, ErrPricesUsed, "can no longer be corrected"},
		{"an asset missing", recorded, map[ISIN]Price{a: p("1.5")}, false, "", 0, ErrCorrectionNoReason, "GB00BD8R3K42 missing (was 2)"},
	} {
		got, err := DecidePrices(c.recorded, c.prices, c.used, c.reason)
		if c.err == nil {
			assert.NoError(t, err, c.name)
			assert.Equal(t, c.want, got, "%s: decision", c.name)
		} else if assert.ErrorIs(t, err, c.err, c.name) {
			assert.ErrorContains(t, err, c.says, c.name)
		}
	}
}

// TestCheckReconciliationDate: only the date the pots' state is as of.
func TestCheckReconciliationDate(t *testing.T) {
	latest := MustDate("2026-12-18")
	assert.NoError(t, CheckReconciliationDate(latest, latest), "the latest day")
	for _, d := range []string{"2026-12-11", "2026-12-21", "1900-01-01"} {
		err := CheckReconciliationDate(MustDate(d), latest)
		assert.ErrorIs(t, err, ErrAsOfUnavailable, "as of %s", d)
		assert.ErrorContains(t, err, "reconcile as of 2026-12-18", "as of %s: what to do", d)
	}
}
