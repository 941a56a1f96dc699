package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunPotsSmall proves that RunPots measures every cell, the ratios and
// the heap per pot, and summarizes its profiles, on a workload small
// enough for CI (a few seconds).
func TestRunPotsSmall(t *testing.T) {
	var out strings.Builder
	cfg := PotsConfig{
		Dir:        t.TempDir(),
		Callers:    8,
		Pots:       100,
		HeapPots:   300,
		Duration:   100 * time.Millisecond,
		Repeats:    1,
		HeapSettle: 200 * time.Millisecond,
		ProfileDir: t.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := RunPots(ctx, cfg, &out)
	require.NoError(t, err, "RunPots; output:\n%s", out.String())
	text := out.String()
	t.Logf("RunPots took %s:\n%s", time.Since(start).Round(time.Millisecond), text)

	rows := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		for _, label := range []string{"raw Pebble", "pot Contribute", "pot GetPot", "HTTP POST orders", "HTTP GET pot"} {
			if strings.HasPrefix(line, label) {
				rows[label] = true
				if f := strings.Fields(line[42:]); assert.Len(t, f, 7, "the cells of %q", line) {
					assert.NotEqual(t, "0", f[0], "a cell measured nothing: %q", line)
				}
			}
		}
	}
	assert.Len(t, rows, 5, "throughput rows")
	for _, want := range []string{
		"events/s ÷ raw Pebble events/s", "GetPot calls/s", "HTTP orders/s through the gateway",
		"bytes per active pot", "Where the heap per pot went", "Where the CPU went: pot Contribute", "Where the CPU went: HTTP POST orders",
		"garbage collection",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestPotsConfigValidate proves that Validate reports every bad field.
func TestPotsConfigValidate(t *testing.T) {
	c := PotsConfig{Callers: -1, Pots: -5, Measurements: []string{"commands", "sqlite"}, Duration: time.Millisecond}
	c.EnsureDefaults()
	err := c.Validate()
	require.Error(t, err, "Validate of negative callers and pots, an unknown measurement and 1ms cells")
	for _, want := range []string{"callers -1", "pots -5", `"sqlite"`, "duration 1ms"} {
		assert.ErrorContains(t, err, want, "Validate")
	}
	var d PotsConfig
	d.EnsureDefaults()
	assert.NoError(t, d.Validate(), "Validate of the defaults")
}
