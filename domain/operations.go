package domain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The operators' safeguards (docs/domain.md, "Operator safeguards"): prices
// and cycles exist only for dealing days, within a window; cycles complete
// in date order; prices can be corrected until a cycle has used them.

// Refusals of operator requests. Each is a sentinel checked with errors.Is,
// wrapped in a *RefusalError that says what exactly was refused and what the
// operator can do; each has one problem code in the table of internal/problem.
var (
	ErrNotDealingDay      = errors.New("domain: not a dealing day")
	ErrOutsideWindow      = errors.New("domain: outside the dealing window")
	ErrEarlierDayOpen     = errors.New("domain: an earlier dealing day is not complete")
	ErrPricesUsed         = errors.New("domain: prices already used by a cycle")
	ErrAsOfUnavailable    = errors.New("domain: reconciliation date not available")
	ErrCorrectionNoReason = errors.New("domain: a price correction needs a reason")
)

// DealingRegister is what the journal records of the dealing cycles: the
// dealing days whose cycle started, was cut off, and completed. It is built
// from the dealing stream's events, in any order, and a repeated event
// changes nothing.
type DealingRegister struct {
	started, cutOff, completed []Date // each sorted, without repeats
}

// Started records that a cycle for d started.
func (r *DealingRegister) Started(d Date) { r.started = insertDate(r.started, d) }

// CutOff records that d was cut off.
func (r *DealingRegister) CutOff(d Date) { r.cutOff = insertDate(r.cutOff, d) }

// Completed records that d's cycle completed.
func (r *DealingRegister) Completed(d Date) { r.completed = insertDate(r.completed, d) }

func insertDate(dates []Date, d Date) []Date {
	assertDate(d)
	i, found := slices.BinarySearchFunc(dates, d, Date.Compare)
	if found {
		return dates
	}
	return slices.Insert(dates, i, d)
}

func hasDate(dates []Date, d Date) bool {
	_, found := slices.BinarySearchFunc(dates, d, Date.Compare)
	return found
}

// IsCutOff reports whether d was cut off.
func (r *DealingRegister) IsCutOff(d Date) bool { return hasDate(r.cutOff, d) }

// IsCompleted reports whether d's cycle completed.
func (r *DealingRegister) IsCompleted(d Date) bool { return hasDate(r.completed, d) }

// LastCompleted is the latest dealing day whose cycle completed, or the zero
// date.
func (r *DealingRegister) LastCompleted() Date { return lastDate(r.completed) }

// Latest is the latest dealing day whose cycle started (or was cut off):
// the pots' units, and the custodian's holdings, are as of that day. The
// zero date when no cycle ever ran.
func (r *DealingRegister) Latest() Date {
	a, b := lastDate(r.started), lastDate(r.cutOff)
	if a.Before(b) {
		return b
	}
	return a
}

func lastDate(dates []Date) Date {
	if len(dates) == 0 {
		return Date{}
	}
	return dates[len(dates)-1]
}

// Incomplete lists the days cut off whose cycle has not completed, in date
// order: their trades are frozen in a batch that is not yet allocated.
func (r *DealingRegister) Incomplete() []Date {
	var out []Date
	for _, d := range r.cutOff {
		if !r.IsCompleted(d) {
			out = append(out, d)
		}
	}
	return out
}

// DealingWindow is the dates operators may publish prices and run cycles
// for, From and To included; a zero bound is no bound.
type DealingWindow struct {
	From, To Date
}

// Contains reports whether d is inside the window.
func (w DealingWindow) Contains(d Date) bool {
	return (w.From.IsZero() || !d.Before(w.From)) && (w.To.IsZero() || !d.After(w.To))
}

// String is the window for people: "2026-11-23 to 2026-11-24".
func (w DealingWindow) String() string {
	from, to := w.From.String(), w.To.String()
	switch {
	case from == "" && to == "":
		return "any date"
	case from == "":
		return "up to " + to
	case to == "":
		return "from " + from
	}
	return from + " to " + to
}

// Window is the operators' window: from the oldest dealing day cut off
// whose cycle is not complete, else the first dealing day after the last
// completed cycle (no bound before any cycle completed), up to
// aheadDealingDays dealing days after today (1: the next dealing day after
// today; negative: no bound, for a platform that simulates the calendar).
// A day before the window's start can no longer deal: a cycle after it has
// completed. A day far after today cannot have its closing prices yet.
func (r *DealingRegister) Window(cal *Calendar, today Date, aheadDealingDays int) DealingWindow {
	var w DealingWindow
	if last := r.LastCompleted(); !last.IsZero() {
		w.From = cal.NextDealingDay(last)
	}
	if open := r.Incomplete(); len(open) > 0 && (w.From.IsZero() || open[0].Before(w.From)) {
		w.From = open[0]
	}
	if aheadDealingDays >= 0 {
		w.To = cal.AddDealingDays(today, aheadDealingDays)
	}
	return w
}

// CheckOperatorDate refuses d for prices or a cycle unless it is a dealing
// day inside w. what names the request ("prices", "a cycle").
func CheckOperatorDate(cal *Calendar, w DealingWindow, what string, d Date) error {
	if !cal.IsDealingDay(d) {
		return refuse(ErrNotDealingDay, "%s is a %s (%s): there is no dealing that day; the dealing days around it are %s and %s",
			d, dayKind(d), d.Weekday(), cal.PrevDealingDay(d), cal.NextDealingDay(d))
	}
	// The last days the dates know: a cycle's next day and its trades'
	// settlement dates must still be dates.
	if last := dateMax.AddDays(-operatorDaysBeforeDateMax); d.After(last) {
		return refuse(ErrOutsideWindow, "%s for %s: dealing ends at %s, so that every trade's settlement date is a date", what, d, last)
	}
	if !w.Contains(d) {
		advice := "a day after the window has no closing prices yet: wait for it"
		if !w.From.IsZero() && d.Before(w.From) {
			advice = "a day before the window can no longer deal: a later cycle has completed"
		}
		return refuse(ErrOutsideWindow, "%s for %s: the dealing window is %s; %s", what, d, w, advice)
	}
	return nil
}

// operatorDaysBeforeDateMax keeps dealing days this far from dateMax: the
// next dealing day and T+SettlementDaysMax of the last one, over weekends
// and holidays, stay dates.
const operatorDaysBeforeDateMax = 4 * SettlementDaysMax

func dayKind(d Date) string {
	if d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
		return "weekend day"
	}
	return "holiday"
}

// CheckEarlierDaysComplete refuses a cycle for d while an earlier dealing
// day is not complete: a cycle cut off and not completed, or open trades
// (openTrades: the dealing days of trades not yet executed, from the
// aggregators). Cycles complete in date order, so that every trade deals
// at its own day's prices and none is left behind a later day's cut-off.
func (r *DealingRegister) CheckEarlierDaysComplete(d Date, openTrades []Date) error {
	var earlier []Date
	for _, x := range append(r.Incomplete(), openTrades...) {
		if x.Before(d) && !hasDate(earlier, x) {
			earlier = insertDate(earlier, x)
		}
	}
	if len(earlier) == 0 {
		return nil
	}
	names := make([]string, len(earlier))
	for i, x := range earlier {
		names[i] = x.String()
	}
	return refuse(ErrEarlierDayOpen, "dealing days before %s have open trades or an incomplete cycle: %s; run their cycles first, in date order (or force this one with a reason: their open orders then move to the next open dealing day)",
		d, strings.Join(names, ", "))
}

// CheckReconciliationDate refuses a reconciliation as of asOf unless the
// pots can be reconciled as of it: the pots' units are as they are now,
// which is as of the latest dealing day a cycle ran for (latest; before any
// cycle, today). The journal keeps every event, but a report as of an
// earlier day is the run recorded on that day.
func CheckReconciliationDate(asOf, latest Date) error {
	if asOf.Equal(latest) {
		return nil
	}
	return refuse(ErrAsOfUnavailable, "the pots' state is as of %s, the latest dealing day a cycle ran for; a reconciliation as of %s cannot be reconstructed: reconcile as of %s (the default), or read the run recorded on %s",
		latest, asOf, latest, asOf)
}

// PricesDecision is what publishing prices for a date does.
type PricesDecision int

const (
	// PricesRecord: the date has no prices yet; record them.
	PricesRecord PricesDecision = iota + 1
	// PricesSame: the same prices are recorded already: nothing to do.
	PricesSame
	// PricesCorrect: replace the recorded prices (a correction, with its
	// reason).
	PricesCorrect
)

// DecidePrices decides a publication of prices for a date that has
// recorded (nil: none yet), used (a cycle has cut the date off and read
// them) and the publication's reason. Prices are equal as numbers, whatever
// their places. Different prices replace the recorded ones only with a
// reason and only until a cycle used them.
func DecidePrices(recorded, prices map[ISIN]Price, used bool, reason string) (PricesDecision, error) {
	if recorded == nil {
		return PricesRecord, nil
	}
	var changed []string
	for _, a := range slices.Sorted(maps.Keys(prices)) {
		switch old, ok := recorded[a]; {
		case !ok:
			changed = append(changed, fmt.Sprintf("%s %s (was none)", a, prices[a]))
		case !old.Equal(prices[a]):
			changed = append(changed, fmt.Sprintf("%s %s (was %s)", a, prices[a], old))
		}
	}
	for _, a := range slices.Sorted(maps.Keys(recorded)) {
		if _, ok := prices[a]; !ok {
			changed = append(changed, fmt.Sprintf("%s missing (was %s)", a, recorded[a]))
		}
	}
	switch {
	case len(changed) == 0:
		return PricesSame, nil
	case used:
		return 0, refuse(ErrPricesUsed, "a cycle has cut the day off and dealt at the recorded prices; they can no longer be corrected here (changed: %s)",
			strings.Join(changed, ", "))
	case strings.TrimSpace(reason) == "":
		return 0, refuse(ErrCorrectionNoReason, "other prices are recorded for the date (changed: %s); to correct them, send them again with a reason",
			strings.Join(changed, ", "))
	}
	return PricesCorrect, nil
}
