package domain

import (
	"fmt"
	"time"
)

// Date is a calendar date (a dealing day, a settlement date) with no time of
// day and no time zone. Its text form is YYYY-MM-DD. The zero value is "no
// date".
type Date struct {
	// t is midnight UTC of the date; UTC so that adding days never meets a
	// daylight-saving change.
	t time.Time
}

// NewDate is the date year-month-day; it panics on an invalid date (it is
// for literals and for values already validated).
func NewDate(year int, month time.Month, day int) Date {
	t := time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
	if t.Year() != year || t.Month() != month || t.Day() != day {
		panic(fmt.Sprintf("domain: invalid date %04d-%02d-%02d", year, month, day))
	}
	return Date{t}
}

// DateOfUnixDay is the date days days after 1970-01-01 (a stored date's
// form): without the calendar arithmetic of NewDate, which was a tenth of
// decoding an order.
func DateOfUnixDay(days int64) Date {
	return Date{time.Unix(days*secondsPerDay, 0).UTC()}
}

const secondsPerDay = 24 * 60 * 60

// dateMin and dateMax bound the dates the platform works with. A dealing day, a settlement date or a
// statement's bound outside them is a typing slip, not a date: 0001-01-01 is
// time.Time's zero, which Date reads as "no date", and arithmetic near
// 9999-12-31 (a settlement date some days later) leaves the four-digit
// years the text form has.
var (
	dateMin = NewDate(1900, time.January, 1)
	dateMax = NewDate(2999, time.December, 31)
)

// ParseDate parses "2026-11-23": a real calendar date from dateMin to
// dateMax. Every date that comes from outside (a request, a file, a
// message) goes through it, so a Date in the system is never the zero date
// by accident.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("domain: date %q: want YYYY-MM-DD", truncateForError(s))
	}
	d := Date{t}
	if d.Before(dateMin) || d.After(dateMax) {
		return Date{}, fmt.Errorf("domain: date %s: want a date from %s to %s", s, dateMin, dateMax)
	}
	return d, nil
}

// MustDate is ParseDate for literals; it panics on a bad literal.
func MustDate(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DateOf is the date of t in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return NewDate(y, m, d)
}

func (d Date) IsZero() bool                 { return d.t.IsZero() }
func (d Date) Year() int                    { return d.t.Year() }
func (d Date) Month() time.Month            { return d.t.Month() }
func (d Date) Day() int                     { return d.t.Day() }
func (d Date) Weekday() time.Weekday        { return d.t.Weekday() }
func (d Date) AddDays(n int) Date           { return Date{d.t.AddDate(0, 0, n)} }
func (d Date) Before(o Date) bool           { return d.t.Before(o.t) }
func (d Date) After(o Date) bool            { return d.t.After(o.t) }
func (d Date) Equal(o Date) bool            { return d.t.Equal(o.t) }
func (d Date) Compare(o Date) int           { return d.t.Compare(o.t) }
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// At is the instant of the wall-clock time hour:minute on d in loc.
func (d Date) At(hour, minute int, loc *time.Location) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), hour, minute, 0, 0, loc)
}

// String is YYYY-MM-DD, or "" for the zero date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.t.Format(time.DateOnly)
}

// Append appends d.String() to b. It writes the digits itself rather than
// through time's layouts: a page of orders writes a few hundred dates.
func (d Date) Append(b []byte) []byte {
	if d.IsZero() {
		return b
	}
	y, m, day := d.t.Date()
	if y < 1000 || y > 9999 {
		return d.t.AppendFormat(b, time.DateOnly) // not a platform date; as String writes it
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(m)/10), byte('0'+int(m)%10), '-', byte('0'+day/10), byte('0'+day%10))
}

// UnmarshalText parses YYYY-MM-DD, or "" as the zero date (what
// MarshalText writes for it).
func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	p, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}
