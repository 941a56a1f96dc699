package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of the dealing calendar (docs/domain.md, "Dealing days and the cycle").
const (
	// DefaultLocationName is the time zone of the platform's dealing day.
	// domain never reads the time-zone database itself: the caller loads it
	// (time.LoadLocation, with time/tzdata linked in) and passes the
	// *time.Location in CalendarConfig.
	DefaultLocationName = "Europe/London"
	// DefaultCutOffHour and DefaultCutOffMinute: orders accepted before 11:00
	// deal that day.
	DefaultCutOffHour   = 11
	DefaultCutOffMinute = 0
	// DefaultValuationHour and DefaultValuationMinute: the day's prices are
	// struck at 12:00.
	DefaultValuationHour   = 12
	DefaultValuationMinute = 0
)

// ErrInvalidCalendar refuses a CalendarConfig; it is wrapped in a
// *CalendarConfigError listing every problem.
var ErrInvalidCalendar = errors.New("domain: invalid calendar configuration")

// CalendarConfigError lists every problem of a CalendarConfig, each with the
// value that broke the rule.
type CalendarConfigError struct {
	Problems []string
}

// Error lists the problems.
func (e *CalendarConfigError) Error() string {
	return fmt.Sprintf("%v: %s", ErrInvalidCalendar, strings.Join(e.Problems, "; "))
}

// Unwrap makes errors.Is(err, ErrInvalidCalendar) true.
func (e *CalendarConfigError) Unwrap() error { return ErrInvalidCalendar }

// CalendarConfig configures the dealing calendar. EnsureDefaults fills the
// zero values; Validate checks the result.
type CalendarConfig struct {
	// Location is the time zone in which dealing days, the cut-off and the
	// valuation point are reckoned. Required; the platform uses
	// Europe/London (DefaultLocationName), which the caller loads: the
	// daylight-saving rules come from it, so the cut-off is 11:00 on the
	// clocks of London in winter and in summer alike.
	Location *time.Location
	// CutOffHour and CutOffMinute are the wall-clock time of a dealing day's
	// cut-off: an order accepted strictly before it deals that day, at or
	// after it the next dealing day. Default 11:00 (when both are zero, so
	// midnight cannot be configured: it would be before any valuation point
	// worth having anyway). Must be before the valuation point.
	CutOffHour, CutOffMinute int
	// ValuationHour and ValuationMinute are the wall-clock time of the
	// valuation point, whose closing prices the day's orders execute at
	// (forward pricing). Default 12:00 (when both are zero).
	ValuationHour, ValuationMinute int
	// Holidays are the weekdays on which there is no dealing. nil means
	// DefaultHolidays(); to configure none, give an empty non-nil slice.
	// Weekend dates and repeats are harmless.
	Holidays []Date
}

// EnsureDefaults fills zero values with the defaults documented on each
// field. It leaves Location alone: domain does not load time zones.
func (c *CalendarConfig) EnsureDefaults() {
	if c.CutOffHour == 0 && c.CutOffMinute == 0 {
		c.CutOffHour, c.CutOffMinute = DefaultCutOffHour, DefaultCutOffMinute
	}
	if c.ValuationHour == 0 && c.ValuationMinute == 0 {
		c.ValuationHour, c.ValuationMinute = DefaultValuationHour, DefaultValuationMinute
	}
	if c.Holidays == nil {
		c.Holidays = DefaultHolidays()
	}
}

// Validate reports every problem of the configuration, each with its value,
// in one *CalendarConfigError (errors.Is ErrInvalidCalendar).
func (c *CalendarConfig) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Location == nil {
		add("Location is nil: load %s and pass it", DefaultLocationName)
	}
	timeOK := true
	for _, f := range []struct {
		name  string
		value int
		max   int
	}{
		{"CutOffHour", c.CutOffHour, 23},
		{"CutOffMinute", c.CutOffMinute, 59},
		{"ValuationHour", c.ValuationHour, 23},
		{"ValuationMinute", c.ValuationMinute, 59},
	} {
		if f.value < 0 || f.value > f.max {
			add("%s %d: must be between 0 and %d", f.name, f.value, f.max)
			timeOK = false
		}
	}
	if timeOK && c.CutOffHour*60+c.CutOffMinute >= c.ValuationHour*60+c.ValuationMinute {
		add("cut-off %02d:%02d is not before the valuation point %02d:%02d: orders must be closed before their price is struck",
			c.CutOffHour, c.CutOffMinute, c.ValuationHour, c.ValuationMinute)
	}
	for i, h := range c.Holidays {
		if h.IsZero() {
			add("Holidays[%d]: zero date", i)
		}
	}
	if len(problems) > 0 {
		return &CalendarConfigError{Problems: problems}
	}
	return nil
}

// englandAndWalesBankHolidays are the bank holidays of England and Wales
// from gov.uk/bank-holidays, substitute days included (a holiday that falls
// on a weekend moves to the next weekday not already a holiday). They end in
// 2028: extend the list before then, or every weekday after it deals.
// TestDefaultHolidays re-derives them from the rules.
const englandAndWalesBankHolidays = "" +
	// 2025
	"2025-01-01 2025-04-18 2025-04-21 2025-05-05 2025-05-26 2025-08-25 2025-12-25 2025-12-26 " +
	// 2026: Boxing Day is a Saturday, substitute Monday 28 December.
	"2026-01-01 2026-04-03 2026-04-06 2026-05-04 2026-05-25 2026-08-31 2026-12-25 2026-12-28 " +
	// 2027: Christmas Day is a Saturday and Boxing Day a Sunday,
	// substitutes Monday 27 and Tuesday 28 December.
	"2027-01-01 2027-03-26 2027-03-29 2027-05-03 2027-05-31 2027-08-30 2027-12-27 2027-12-28 " +
	// 2028: New Year's Day is a Saturday, substitute Monday 3 January.
	"2028-01-03 2028-04-14 2028-04-17 2028-05-01 2028-05-29 2028-08-28 2028-12-25 2028-12-26"

// DefaultHolidays returns the bank holidays of England and Wales for 2025 to
// 2028, in date order; a new slice each call.
func DefaultHolidays() []Date {
	fields := strings.Fields(englandAndWalesBankHolidays)
	out := make([]Date, len(fields))
	for i, f := range fields {
		out[i] = MustDate(f)
	}
	return out
}

// Calendar is the dealing calendar: which days deal, when a day's orders
// are cut off and priced, and when trades settle. It is immutable and safe
// for concurrent use.
type Calendar struct {
	loc                            *time.Location
	cutOffHour, cutOffMinute       int
	valuationHour, valuationMinute int
	holidays                       map[int64]bool // by dayNumber
	holidayList                    []Date         // sorted, no repeats
}

// NewCalendar is the calendar of cfg, after EnsureDefaults and Validate.
func NewCalendar(cfg CalendarConfig) (*Calendar, error) {
	cfg.Holidays = slices.Clone(cfg.Holidays) // the caller keeps its slice
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Calendar{
		loc:        cfg.Location,
		cutOffHour: cfg.CutOffHour, cutOffMinute: cfg.CutOffMinute,
		valuationHour: cfg.ValuationHour, valuationMinute: cfg.ValuationMinute,
		holidays: make(map[int64]bool, len(cfg.Holidays)),
	}
	for _, h := range cfg.Holidays {
		if !c.holidays[dayNumber(h)] {
			c.holidays[dayNumber(h)] = true
			c.holidayList = append(c.holidayList, h)
		}
	}
	slices.SortFunc(c.holidayList, Date.Compare)
	return c, nil
}

// Config is the configuration the calendar runs with, defaults filled in.
func (c *Calendar) Config() CalendarConfig {
	return CalendarConfig{
		Location:   c.loc,
		CutOffHour: c.cutOffHour, CutOffMinute: c.cutOffMinute,
		ValuationHour: c.valuationHour, ValuationMinute: c.valuationMinute,
		Holidays: slices.Clone(c.holidayList),
	}
}

// Location is the time zone of the calendar.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsDealingDay reports whether d is a weekday and not a holiday.
func (c *Calendar) IsDealingDay(d Date) bool {
	assertDate(d)
	switch d.Weekday() {
	case time.Saturday, time.Sunday:
		return false
	}
	return !c.holidays[dayNumber(d)]
}

// NextDealingDay is the first dealing day strictly after d.
func (c *Calendar) NextDealingDay(d Date) Date { return c.step(d, 1) }

// PrevDealingDay is the last dealing day strictly before d.
func (c *Calendar) PrevDealingDay(d Date) Date { return c.step(d, -1) }

// step moves from d one dealing day in direction dir (+1 or −1).
func (c *Calendar) step(d Date, dir int) Date {
	assertDate(d)
	// Every run of non-dealing days is made of at most one weekend per five
	// weekdays and the holidays; past this many days something is wrong with
	// the configuration (say, every weekday for a year listed as a holiday),
	// and looping on would hide it.
	limit := 7 + 2*len(c.holidayList)
	for i := 1; i <= limit; i++ {
		if n := d.AddDays(dir * i); c.IsDealingDay(n) {
			return n
		}
	}
	panic(fmt.Sprintf("domain: no dealing day within %d days of %s", limit, d))
}

// AddDealingDays moves n dealing days from d: forwards if n > 0, backwards
// if n < 0, and not at all if n is 0. d need not be a dealing day: counting
// starts from the next (or previous) one.
func (c *Calendar) AddDealingDays(d Date, n int) Date {
	assertDate(d)
	dir := 1
	if n < 0 {
		dir, n = -1, -n
	}
	for ; n > 0; n-- {
		d = c.step(d, dir)
	}
	return d
}

// SettlementDate is the settlement date of a trade dealt on dealing: T+N,
// N dealing days later (docs/domain.md). T+0 is the dealing day itself.
// Settlement never falls on a non-dealing day: should dealing not be one
// (a holiday added after the trade was placed), T+0 is the next dealing day.
// N comes from the catalogue (0 to SettlementDaysMax); a negative N is a
// programmer error.
func (c *Calendar) SettlementDate(dealing Date, settlementDays int) Date {
	if settlementDays < 0 {
		panic(fmt.Sprintf("domain: negative settlement days %d", settlementDays))
	}
	if settlementDays == 0 && !c.IsDealingDay(dealing) {
		return c.NextDealingDay(dealing)
	}
	return c.AddDealingDays(dealing, settlementDays)
}

// CutOff is the instant of d's cut-off: the configured wall-clock time on d
// in the calendar's location, whatever its offset from UTC that day.
func (c *Calendar) CutOff(d Date) time.Time {
	assertDate(d)
	return d.At(c.cutOffHour, c.cutOffMinute, c.loc)
}

// ValuationPoint is the instant of d's valuation point, the time of the
// closing prices its orders execute at.
func (c *Calendar) ValuationPoint(d Date) time.Time {
	assertDate(d)
	return d.At(c.valuationHour, c.valuationMinute, c.loc)
}

// DealingDayFor is the dealing day of an order accepted at now: today (in
// the calendar's location) if today is a dealing day and now is strictly
// before its cut-off, else the next dealing day. An order at exactly the
// cut-off belongs to the next dealing day. now is passed in: domain never
// reads the clock.
func (c *Calendar) DealingDayFor(now time.Time) Date {
	today := DateOf(now, c.loc)
	if c.IsDealingDay(today) && now.Before(c.CutOff(today)) {
		return today
	}
	return c.NextDealingDay(today)
}

// dayNumber identifies a date by its days since 1970-01-01; Date holds
// midnight UTC, so the division is exact.
func dayNumber(d Date) int64 { return d.t.Unix() / secondsPerDay }

// assertDate refuses the zero Date, which means "no date": a calendar
// question about it is a programmer error.
func assertDate(d Date) {
	if d.IsZero() {
		panic("domain: calendar asked about the zero date")
	}
}
