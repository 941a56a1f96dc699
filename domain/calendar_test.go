package domain

import (
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London without depending on the host's zoneinfo

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func london(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(DefaultLocationName)
	require.NoError(t, err)
	return loc
}

func testCalendar(t testing.TB) *Calendar {
	t.Helper()
	c, err := NewCalendar(CalendarConfig{Location: london(t)})
	require.NoError(t, err)
	return c
}

// TestDefaultHolidays re-derives the England and Wales bank holidays of
// 2025–2028 from their rules (Easter by the Gregorian computus, the Monday
// holidays, weekend substitutes) and compares them with the list.
func TestDefaultHolidays(t *testing.T) {
	var want []Date
	for year := 2025; year <= 2028; year++ {
		easter := easterSunday(year)
		fixed := []Date{NewDate(year, time.January, 1)}
		monday := func(d Date, dir int) Date { // first Monday from d going dir
			for d.Weekday() != time.Monday {
				d = d.AddDays(dir)
			}
			return d
		}
		days := []Date{
			easter.AddDays(-2),                         // Good Friday
			easter.AddDays(1),                          // Easter Monday
			monday(NewDate(year, time.May, 1), 1),      // early May
			monday(NewDate(year, time.May, 31), -1),    // spring
			monday(NewDate(year, time.August, 31), -1), // summer
		}
		// New Year's Day, Christmas Day and Boxing Day move off weekends,
		// each to the next weekday not already taken.
		taken := map[Date]bool{}
		for _, d := range append(fixed, NewDate(year, time.December, 25), NewDate(year, time.December, 26)) {
			for d.Weekday() == time.Saturday || d.Weekday() == time.Sunday || taken[d] {
				d = d.AddDays(1)
			}
			taken[d] = true
			days = append(days, d)
		}
		want = append(want, days...)
	}
	slices.SortFunc(want, Date.Compare)
	got := DefaultHolidays()
	assert.Equal(t, dateStrings(want), dateStrings(got), "DefaultHolidays(), against the rules")
	// The substitute days the brief names, and Easter, spelled out.
	for _, s := range []string{"2026-12-28", "2027-12-27", "2027-12-28", "2028-01-03", "2026-04-03", "2026-04-06", "2027-03-26"} {
		assert.Contains(t, dateStrings(got), s, "DefaultHolidays()")
	}
	for _, s := range []string{"2026-12-26", "2027-12-25", "2028-01-01"} { // weekends: their substitutes are listed
		assert.NotContains(t, dateStrings(got), s, "DefaultHolidays(): a weekend day instead of its substitute")
	}
	got[0] = Date{}
	assert.False(t, DefaultHolidays()[0].IsZero(), "DefaultHolidays() shares its slice between calls")
}

// dateStrings spells dates out, for comparing lists of them.
func dateStrings(ds []Date) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// easterSunday is the Gregorian Easter Sunday (the anonymous computus).
func easterSunday(year int) Date {
	a, b, c := year%19, year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return NewDate(year, time.Month(month), day)
}

// TestCalendarConfig checks the defaults and that Validate reports every
// problem with its value.
func TestCalendarConfig(t *testing.T) {
	cfg := CalendarConfig{Location: london(t)}
	cfg.EnsureDefaults()
	assert.Equal(t, 11, cfg.CutOffHour, "default CutOffHour")
	assert.Equal(t, 0, cfg.CutOffMinute, "default CutOffMinute")
	assert.Equal(t, 12, cfg.ValuationHour, "default ValuationHour")
	assert.Equal(t, 0, cfg.ValuationMinute, "default ValuationMinute")
	assert.Equal(t, dateStrings(DefaultHolidays()), dateStrings(cfg.Holidays), "default Holidays")
	assert.NoError(t, cfg.Validate(), "Validate of the defaults")

	none := CalendarConfig{Location: london(t), Holidays: []Date{}}
	none.EnsureDefaults()
	assert.Empty(t, none.Holidays, "EnsureDefaults of an empty holiday list")

	bad := CalendarConfig{CutOffHour: 24, CutOffMinute: -1, ValuationHour: 10, ValuationMinute: 60, Holidays: []Date{{}}}
	err := bad.Validate()
	var ce *CalendarConfigError
	require.ErrorIs(t, err, ErrInvalidCalendar, "Validate")
	require.ErrorAs(t, err, &ce, "Validate")
	want := []string{
		"Location is nil: load Europe/London and pass it",
		"CutOffHour 24: must be between 0 and 23",
		"CutOffMinute -1: must be between 0 and 59",
		"ValuationMinute 60: must be between 0 and 59",
		"Holidays[0]: zero date",
	}
	assert.Equal(t, want, ce.Problems, "problems")

	for _, tc := range []struct{ ch, cm, vh, vm int }{{12, 0, 12, 0}, {12, 30, 12, 0}, {13, 0, 12, 0}} {
		cfg := CalendarConfig{Location: london(t), CutOffHour: tc.ch, CutOffMinute: tc.cm, ValuationHour: tc.vh, ValuationMinute: tc.vm}
		_, err := NewCalendar(cfg)
		assert.ErrorIs(t, err, ErrInvalidCalendar, "cut-off %02d:%02d, valuation %02d:%02d", tc.ch, tc.cm, tc.vh, tc.vm)
		assert.ErrorContains(t, err, "is not before the valuation point", "cut-off %02d:%02d, valuation %02d:%02d", tc.ch, tc.cm, tc.vh, tc.vm)
	}
	_, err = NewCalendar(CalendarConfig{Location: london(t), CutOffHour: 16, CutOffMinute: 30, ValuationHour: 17})
	assert.NoError(t, err, "16:30 cut-off, 17:00 valuation")
}

// TestNewCalendarCopiesHolidays proves the calendar does not share the
// caller's slice.
func TestNewCalendarCopiesHolidays(t *testing.T) {
	h := []Date{MustDate("2026-06-01")}
	c, err := NewCalendar(CalendarConfig{Location: london(t), Holidays: h})
	require.NoError(t, err)
	h[0] = MustDate("2026-06-02")
	// The calendar must not change with the caller's slice.
	assert.False(t, c.IsDealingDay(MustDate("2026-06-01")), "2026-06-01 (the holiday) a dealing day")
	assert.True(t, c.IsDealingDay(MustDate("2026-06-02")), "2026-06-02 a dealing day")
	cfg := c.Config()
	assert.Same(t, c.Location(), cfg.Location, "Config().Location")
	assert.Equal(t, 11, cfg.CutOffHour, "Config().CutOffHour")
	assert.Len(t, cfg.Holidays, 1, "Config().Holidays")
}

// TestDealingDays covers weekends, holidays, substitutes and year ends.
func TestDealingDays(t *testing.T) {
	c := testCalendar(t)
	for _, tc := range []struct {
		day        string
		dealing    bool
		next, prev string
	}{
		{"2026-11-23", true, "2026-11-24", "2026-11-20"},  // Monday
		{"2026-11-20", true, "2026-11-23", "2026-11-19"},  // Friday: next is Monday
		{"2026-11-21", false, "2026-11-23", "2026-11-20"}, // Saturday
		{"2026-11-22", false, "2026-11-23", "2026-11-20"}, // Sunday
		{"2026-04-02", true, "2026-04-07", "2026-04-01"},  // Thursday before Easter
		{"2026-04-03", false, "2026-04-07", "2026-04-02"}, // Good Friday
		{"2026-04-06", false, "2026-04-07", "2026-04-02"}, // Easter Monday
		{"2026-12-24", true, "2026-12-29", "2026-12-23"},  // Christmas Eve
		{"2026-12-25", false, "2026-12-29", "2026-12-24"},
		{"2026-12-28", false, "2026-12-29", "2026-12-24"}, // Boxing Day substitute
		{"2026-12-31", true, "2027-01-04", "2026-12-30"},  // year end: New Year's Day is a Friday
		{"2027-01-01", false, "2027-01-04", "2026-12-31"},
		{"2027-12-24", true, "2027-12-29", "2027-12-23"},  // Friday before two substitutes
		{"2027-12-27", false, "2027-12-29", "2027-12-24"}, // Christmas substitute
		{"2027-12-28", false, "2027-12-29", "2027-12-24"}, // Boxing Day substitute
		{"2027-12-31", true, "2028-01-04", "2027-12-30"},  // New Year substitute on Monday 3rd
		{"2028-01-03", false, "2028-01-04", "2027-12-31"},
		{"2029-12-25", true, "2029-12-26", "2029-12-24"}, // past the list: every weekday deals
	} {
		d := MustDate(tc.day)
		assert.Equal(t, tc.dealing, c.IsDealingDay(d), "IsDealingDay(%s)", d)
		assert.Equal(t, tc.next, c.NextDealingDay(d).String(), "NextDealingDay(%s)", d)
		assert.Equal(t, tc.prev, c.PrevDealingDay(d).String(), "PrevDealingDay(%s)", d)
	}
}

// TestSettlementDate covers T+0, T+3 and T+4 over weekends and holidays,
// and AddDealingDays in both directions.
func TestSettlementDate(t *testing.T) {
	c := testCalendar(t)
	for _, tc := range []struct {
		dealing string
		n       int
		want    string
	}{
		{"2026-11-23", 0, "2026-11-23"}, // T+0 is the same day
		{"2026-11-23", 3, "2026-11-26"},
		{"2026-11-19", 3, "2026-11-24"}, // Thursday: over the weekend
		{"2026-11-20", 4, "2026-11-26"},
		{"2026-04-02", 3, "2026-04-09"}, // over Good Friday, the weekend and Easter Monday
		{"2026-04-02", 4, "2026-04-10"},
		{"2026-04-01", 1, "2026-04-02"},
		{"2026-12-23", 3, "2026-12-30"}, // over Christmas, the weekend and the substitute
		{"2026-12-23", 4, "2026-12-31"},
		{"2026-12-24", 3, "2026-12-31"},
		{"2026-12-24", 4, "2027-01-04"}, // and over New Year's Day
		{"2027-12-23", 3, "2027-12-30"}, // over two substitute days
		{"2027-12-30", 3, "2028-01-05"}, // year end and the New Year substitute
		{"2026-04-03", 0, "2026-04-07"}, // not a dealing day: T+0 is the next one
		{"2026-11-23", 10, "2026-12-07"},
	} {
		assert.Equal(t, tc.want, c.SettlementDate(MustDate(tc.dealing), tc.n).String(), "SettlementDate(%s, %d)", tc.dealing, tc.n)
	}
	for _, tc := range []struct {
		from string
		n    int
		want string
	}{
		{"2026-04-09", -3, "2026-04-02"},
		{"2026-04-06", -1, "2026-04-02"},
		{"2026-04-06", 0, "2026-04-06"},
		{"2026-04-06", 1, "2026-04-07"},
		{"2027-01-04", -2, "2026-12-30"},
	} {
		assert.Equal(t, tc.want, c.AddDealingDays(MustDate(tc.from), tc.n).String(), "AddDealingDays(%s, %d)", tc.from, tc.n)
	}
}

// TestCutOffAndValuationPoint proves the instants follow London's clocks
// across the changes to and from summer time.
func TestCutOffAndValuationPoint(t *testing.T) {
	c := testCalendar(t)
	for _, tc := range []struct {
		day               string
		cutOff, valuation string // UTC
	}{
		{"2026-01-15", "2026-01-15T11:00:00Z", "2026-01-15T12:00:00Z"}, // GMT
		{"2026-03-27", "2026-03-27T11:00:00Z", "2026-03-27T12:00:00Z"}, // the Friday before summer time
		{"2026-03-29", "2026-03-29T10:00:00Z", "2026-03-29T11:00:00Z"}, // the change (a Sunday): BST by 11:00
		{"2026-03-30", "2026-03-30T10:00:00Z", "2026-03-30T11:00:00Z"}, // BST
		{"2026-10-23", "2026-10-23T10:00:00Z", "2026-10-23T11:00:00Z"}, // the Friday before winter time
		{"2026-10-25", "2026-10-25T11:00:00Z", "2026-10-25T12:00:00Z"}, // the change back (a Sunday)
		{"2026-10-26", "2026-10-26T11:00:00Z", "2026-10-26T12:00:00Z"}, // GMT
	} {
		d := MustDate(tc.day)
		cut, val := c.CutOff(d), c.ValuationPoint(d)
		assert.Equal(t, tc.cutOff, cut.UTC().Format(time.RFC3339), "CutOff(%s)", d)
		assert.Equal(t, tc.valuation, val.UTC().Format(time.RFC3339), "ValuationPoint(%s)", d)
		// 11:00 that day in London.
		l := cut.In(c.Location())
		assert.Equal(t, 11, l.Hour(), "CutOff(%s) in London: hour", d)
		assert.Equal(t, 0, l.Minute(), "CutOff(%s) in London: minute", d)
		assert.Equal(t, d.String(), DateOf(cut, c.Location()).String(), "CutOff(%s) in London: date", d)
	}
}

// TestDealingDayFor proves which dealing day an order accepted at an instant
// belongs to: before the cut-off, today; at or after it, the next dealing
// day; on weekends and holidays, the next dealing day.
func TestDealingDayFor(t *testing.T) {
	c := testCalendar(t)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	ts := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		now  time.Time
		want string
		why  string
	}{
		{ts("2026-11-23T10:59:59Z"), "2026-11-23", "a second before the cut-off (GMT)"},
		{ts("2026-11-23T10:59:59.999999999Z"), "2026-11-23", "a nanosecond before the cut-off"},
		{ts("2026-11-23T11:00:00Z"), "2026-11-24", "exactly at the cut-off: the next day"},
		{ts("2026-11-23T11:00:00.000000001Z"), "2026-11-24", "just after the cut-off"},
		{ts("2026-11-23T00:00:00Z"), "2026-11-23", "midnight"},
		{ts("2026-11-23T23:59:59Z"), "2026-11-24", "late evening"},
		{ts("2026-11-20T11:00:00Z"), "2026-11-23", "Friday at the cut-off: Monday"},
		{ts("2026-11-21T09:00:00Z"), "2026-11-23", "Saturday morning: Monday"},
		{ts("2026-11-22T20:00:00Z"), "2026-11-23", "Sunday evening: Monday"},
		{ts("2026-07-01T09:59:59Z"), "2026-07-01", "10:59:59 BST"},
		{ts("2026-07-01T10:00:00Z"), "2026-07-02", "11:00:00 BST: the cut-off is 10:00 UTC in summer"},
		{ts("2026-06-30T23:30:00Z"), "2026-07-01", "00:30 BST on the 1st is still the 30th in UTC"},
		{ts("2026-03-29T00:30:00Z"), "2026-03-30", "the Sunday clocks go forward, before the change"},
		{ts("2026-03-29T01:30:00Z"), "2026-03-30", "the Sunday clocks go forward, after the change"},
		{ts("2026-03-27T10:30:00Z"), "2026-03-27", "Friday before the change: 10:30 GMT"},
		{ts("2026-03-30T09:59:59Z"), "2026-03-30", "the Monday after: 10:59:59 BST"},
		{ts("2026-03-30T10:00:00Z"), "2026-03-31", "the Monday after: 11:00 BST"},
		{ts("2026-10-25T00:30:00Z"), "2026-10-26", "the Sunday clocks go back, 01:30 BST"},
		{ts("2026-10-25T01:30:00Z"), "2026-10-26", "the Sunday clocks go back, 01:30 GMT again"},
		{ts("2026-10-23T09:59:59Z"), "2026-10-23", "Friday before the change back: 10:59:59 BST"},
		{ts("2026-10-23T10:00:00Z"), "2026-10-26", "Friday before the change back: 11:00 BST"},
		{ts("2026-10-26T10:30:00Z"), "2026-10-26", "the Monday after: 10:30 GMT"},
		{ts("2026-10-26T11:00:00Z"), "2026-10-27", "the Monday after: 11:00 GMT"},
		{ts("2026-04-02T11:00:00+01:00"), "2026-04-07", "Thursday before Easter at the cut-off"},
		{ts("2026-04-03T09:00:00+01:00"), "2026-04-07", "Good Friday"},
		{ts("2026-12-24T10:59:59Z"), "2026-12-24", "Christmas Eve before the cut-off"},
		{ts("2026-12-24T11:00:00Z"), "2026-12-29", "Christmas Eve at the cut-off: after Christmas and the substitute"},
		{ts("2026-12-31T12:00:00Z"), "2027-01-04", "year end after the cut-off"},
		{ts("2027-12-31T11:00:00Z"), "2028-01-04", "year end, New Year substitute on Monday"},
		{ts("2026-11-23T05:59:59-05:00").In(ny), "2026-11-23", "an instant given in New York time, 10:59:59 in London"},
		{ts("2026-11-23T06:00:00-05:00").In(ny), "2026-11-24", "an instant given in New York time, 11:00 in London"},
		{ts("2026-11-23T19:30:00-05:00").In(ny), "2026-11-24", "Monday evening in New York is Tuesday 00:30 in London"},
	} {
		assert.Equal(t, tc.want, c.DealingDayFor(tc.now).String(), "DealingDayFor(%s) (%s)", tc.now.Format(time.RFC3339Nano), tc.why)
	}
}

// TestCalendarZeroDatePanics: a question about "no date" is a programmer
// error.
func TestCalendarZeroDatePanics(t *testing.T) {
	c := testCalendar(t)
	assert.Panics(t, func() { c.IsDealingDay(Date{}) }, "IsDealingDay(Date{})")
}
