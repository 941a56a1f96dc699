package bench

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunHistorySmall proves that RunHistory builds pots of three sizes
// through real dealing cycles (two days of orders and the settling day
// after), measures every figure of every size, and prints the table with
// its ratios and the target's verdict, at a size small enough for CI. The
// figures are not held to the target here: two pots a size are noise.
func TestRunHistorySmall(t *testing.T) {
	var out strings.Builder
	cfg := HistoryConfig{
		Sizes:          []int{2, 20, 50},
		PotsPerSize:    2,
		OrdersPerDay:   25,
		Callers:        16,
		HTTPClients:    2,
		Dir:            t.TempDir(),
		Duration:       100 * time.Millisecond,
		Repeats:        1,
		HeapSettle:     100 * time.Millisecond,
		PotIdleTimeout: time.Second,
		ProfileDir:     t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := RunHistory(ctx, cfg, &out)
	text := out.String()
	t.Logf("RunHistory took %s:\n%s", time.Since(start).Round(time.Millisecond), text)
	require.NoError(t, err, "RunHistory")

	assert.Contains(t, text, "History: 2 dealing days a week apart from 2026-11-23", "the setup's line")
	assert.Contains(t, text, "144 orders placed, dealt and settled", "the setup's line: 2 pots × (2 + 20 + 50) orders")
	// A row: its label, a figure per size, two ratios, the verdict.
	figure := `-?[0-9][0-9,.]*(?: B|µs|ms|s|ns)?`
	ratio := `-?[0-9]+\.[0-9]{2}` // heap per pot is noise at two pots a size: it may come out negative
	labels := []string{
		"journal per pot: events", "journal per pot: event bytes", "snapshot (the recovered state, encoded)",
		"recovery from its snapshot (median of the pots)", "recovery from its first event (median of the pots)",
		"heap per active pot", "CPU per contribution over HTTP",
	}
	for _, page := range []string{"GET orders?limit=50", "GET orders?limit=2 (as long at every size)", "GET statement?limit=50", "GET statement?limit=3 (alike at every size)"} {
		labels = append(labels, page+", p50", page+", p99", page+", CPU")
	}
	for _, label := range labels {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + ` +(` + figure + `) +(` + figure + `) +(` + figure + `) +(` + ratio + `) +(` + ratio + `)  (met|MISSED|exempt: .+)$`)
		m := row.FindStringSubmatch(text)
		if !assert.NotNil(t, m, "the row %q", label) {
			continue
		}
		for _, v := range m[1:6] {
			assert.NotRegexp(t, `^0(\.0+)?( B|s|ns)?$`, v, "a zero figure in the row %q", label)
		}
	}
	assert.Contains(t, text, "items on a page: orders, statement entries", "the pages' row")
	assert.Regexp(t, `(?m)^items on a page: orders, statement entries +2, [0-9]+ +20, [0-9]+ +50, 50$`, text, "the pages served: every order, up to the limit")
	assert.Regexp(t, `Target: the 50-order pot within 1\.5× of the 2-order pot on every figure but the bytes on disk: (met|MISSED on .+)\.`, text, "the verdict")
	assert.Contains(t, text, "Where the CPU went: contributions of pots of 50 orders", "the profiles' summary")
	assert.Contains(t, text, "Where the CPU went: statement of pots of 50 orders", "the profiles' summary")
}

// TestHistoryConfigValidate proves that Validate reports every bad field
// and that the defaults are valid.
func TestHistoryConfigValidate(t *testing.T) {
	c := HistoryConfig{Sizes: []int{100, 10}, OrdersPerDay: 5000, HTTPClients: 50, PotIdleTimeout: time.Second, HeapSettle: 2 * time.Second}
	c.EnsureDefaults()
	err := c.Validate()
	require.Error(t, err, "Validate of descending sizes, 5,000 orders a day, 50 clients for 20 pots, an idle timeout below the settle")
	for _, want := range []string{"not ascending", "orders per day 5000", "HTTP clients 50", "pot idle timeout 1s"} {
		assert.ErrorContains(t, err, want, "Validate")
	}
	var d HistoryConfig
	d.EnsureDefaults()
	assert.NoError(t, d.Validate(), "Validate of the defaults")
}
