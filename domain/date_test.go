package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestParseDate: a date from outside is a real date from 1900-01-01 to
// 2999-12-31, so that no request can make the zero date ("no date") or a
// date whose settlement leaves four-digit years.
func TestParseDate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // the date's text, or the start of the error after "domain: "
	}{
		{"2026-11-23", "2026-11-23"},
		{"1900-01-01", "1900-01-01"},
		{"2999-12-31", "2999-12-31"},
		{"2028-02-29", "2028-02-29"},
		{"0001-01-01", `error: date 0001-01-01: want a date from 1900-01-01 to 2999-12-31`},
		{"1899-12-31", `error: date 1899-12-31: want a date from`},
		{"3000-01-01", `error: date 3000-01-01: want a date from`},
		{"9999-12-31", `error: date 9999-12-31: want a date from`},
		{"2027-02-29", `error: date "2027-02-29": want YYYY-MM-DD`},
		{"2026-13-01", `error: date "2026-13-01": want YYYY-MM-DD`},
		{"", `error: date "": want YYYY-MM-DD`},
		{"26-11-23", `error: date "26-11-23": want YYYY-MM-DD`},
		{"2026-11-23T00:00:00Z", `error: date "2026-11-23T00:00:00Z": want YYYY-MM-DD`},
	} {
		d, err := ParseDate(c.in)
		got := d.String()
		if err != nil {
			got = "error: " + strings.TrimPrefix(err.Error(), "domain: ")
			if !d.IsZero() {
				t.Errorf("ParseDate(%q) failed but returned %s", c.in, d)
			}
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("ParseDate(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestDateOfUnixDay: a stored date decodes to the same Date as the
// calendar makes, comparable with ==, over every date the platform works
// with.
func TestDateOfUnixDay(t *testing.T) {
	require.Equal(t, NewDate(1970, time.January, 1), DateOfUnixDay(0))
	require.Equal(t, NewDate(2026, time.November, 23), DateOfUnixDay(20780))
	for d := dateMin; !d.After(dateMax); d = d.AddDays(1) {
		got := DateOfUnixDay(dayNumber(d))
		if got != d || got != NewDate(d.Year(), d.Month(), d.Day()) {
			t.Fatalf("DateOfUnixDay(%d) = %v, want %v", dayNumber(d), got, d)
		}
	}
}
