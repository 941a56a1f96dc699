package domain

import (
	"errors"
	"strings"
	"testing"
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
		if got := r.Window(cal, today, c.ahead).String(); got != c.want {
			t.Errorf("%s: window %s, want %s", c.name, got, c.want)
		}
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
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v, want no refusal", c.date, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.date, err, c.want)
		case c.want != nil && !strings.Contains(err.Error(), c.says):
			t.Errorf("%s: %q does not say %q", c.date, err, c.says)
		}
	}
	if err := CheckOperatorDate(cal, DealingWindow{}, "a cycle", MustDate("2999-10-31")); err != nil {
		t.Errorf("an unbounded window refused a dealing day: %v", err)
	}
	// Even without a bound, the last days of the dates do not deal: their
	// next day and settlement dates would not be dates.
	if err := CheckOperatorDate(cal, DealingWindow{}, "a cycle", MustDate("2999-12-30")); !errors.Is(err, ErrOutsideWindow) {
		t.Errorf("2999-12-30 in an unbounded window: %v, want %v", err, ErrOutsideWindow)
	}
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
		switch {
		case c.wantListed == "" && err != nil:
			t.Errorf("%s: %v, want no refusal", c.name, err)
		case c.wantListed != "" && !errors.Is(err, ErrEarlierDayOpen):
			t.Errorf("%s: %v, want %v", c.name, err, ErrEarlierDayOpen)
		case c.wantListed != "" && !strings.Contains(err.Error(), "cycle: "+c.wantListed+"; run their cycles first"):
			t.Errorf("%s: %q does not list %s", c.name, err, c.wantListed)
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
		switch {
		case c.err == nil && (err != nil || got != c.want):
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		case c.err != nil && !strings.Contains(err.Error(), c.says):
			t.Errorf("%s: %q does not say %q", c.name, err, c.says)
		}
	}
}

// TestCheckReconciliationDate: only the date the pots' state is as of.
func TestCheckReconciliationDate(t *testing.T) {
	latest := MustDate("2026-12-18")
	if err := CheckReconciliationDate(latest, latest); err != nil {
		t.Errorf("the latest day refused: %v", err)
	}
	for _, d := range []string{"2026-12-11", "2026-12-21", "1900-01-01"} {
		err := CheckReconciliationDate(MustDate(d), latest)
		if !errors.Is(err, ErrAsOfUnavailable) || !strings.Contains(err.Error(), "reconcile as of 2026-12-18") {
			t.Errorf("as of %s: %v, want %v saying what to do", d, err, ErrAsOfUnavailable)
		}
	}
}
