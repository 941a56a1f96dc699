package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunOverloadSmall proves that RunOverload finds a sustainable rate,
// drives the pair of open-loop runs, prints them against the targets and
// summarizes its CPU profile, on a workload small enough for CI.
func TestRunOverloadSmall(t *testing.T) {
	var out strings.Builder
	cfg := OverloadConfig{
		Dir:             t.TempDir(),
		Pots:            200,
		Callers:         8,
		SearchFractions: []float64{0.1, 0.2},
		// Generous: the search is exercised, not the machine.
		SearchP99Max: time.Second,
		Step:         200 * time.Millisecond,
		Duration:     400 * time.Millisecond,
		Repeats:      1,
		ProfileDir:   t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := RunOverload(ctx, cfg, &out)
	require.NoError(t, err, "RunOverload; output:\n%s", out.String())
	text := out.String()
	t.Logf("RunOverload took %s:\n%s", time.Since(start).Round(time.Millisecond), text)
	for _, want := range []string{
		"Capacity, closed loop", "Search for the sustainable rate", "Sustainable rate:",
		"503s' p99 under overload", "accepted p99 under overload ÷ at the sustainable rate",
		"peak heap under overload ÷ at the sustainable rate", "share shed under overload",
		"Where the CPU went: the last overload run",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestRunOverloadSheds proves that the overload workload counts 503s as
// shed (with their latency) and not as failures: a gateway that lets one
// request in at a time, with no wait for a slot, refuses most of a burst.
func TestRunOverloadSheds(t *testing.T) {
	var out strings.Builder
	cfg := OverloadConfig{
		Dir:         t.TempDir(),
		Pots:        200,
		Callers:     8,
		Rate:        200,
		Factor:      20,
		Duration:    300 * time.Millisecond,
		Repeats:     1,
		InFlightMax: 1,
		SlotWaitMax: -1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := RunOverload(ctx, cfg, &out)
	require.NoError(t, err, "RunOverload; output:\n%s", out.String())
	text := out.String()
	t.Logf("%s", text)
	assert.True(t, strings.Contains(text, "the gateway is at its limit of requests in flight"), "the overload shed nothing")
	assert.False(t, strings.Contains(text, "failed; the first"), "requests failed")
}

// TestOverloadConfigValidate proves that Validate reports every bad field
// and that the defaults are valid.
func TestOverloadConfigValidate(t *testing.T) {
	c := OverloadConfig{Pots: -1, Factor: 0.5, SearchFractions: []float64{0, 0.5}, Duration: time.Millisecond}
	c.EnsureDefaults()
	err := c.Validate()
	require.Error(t, err, "Validate of negative pots, a factor below 1, a zero fraction and 1ms runs")
	for _, want := range []string{"pots -1", "factor 0.5", "search fraction 0", "duration 1ms"} {
		assert.ErrorContains(t, err, want, "Validate")
	}
	var d OverloadConfig
	d.EnsureDefaults()
	assert.NoError(t, d.Validate(), "Validate of the defaults")
}
