package bench

import (
	"context"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunCycleSmall proves that RunCycle sets up a world, runs both dealing
// days (the second one rebalancing most pots), reconciles with zero breaks
// and summarizes its profiles, at a size small enough for CI (< 20 s).
func TestRunCycleSmall(t *testing.T) {
	var out strings.Builder
	cfg := CycleConfig{
		Pots:       300,
		Callers:    16,
		DataDir:    t.TempDir(),
		HeapSettle: 10 * time.Millisecond,
		ProfileDir: t.TempDir(),
		// Far above what 300 pots use: it must be set for the run only.
		MemoryLimitBytes: 4 << 30,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	limitBefore := debug.SetMemoryLimit(-1)
	start := time.Now()
	err := RunCycle(ctx, cfg, &out)
	took := time.Since(start)
	assert.Equal(t, limitBefore, debug.SetMemoryLimit(-1), "the memory limit after the run")
	text := out.String()
	t.Logf("RunCycle took %s:\n%s", took.Round(time.Millisecond), text)
	require.NoError(t, err, "RunCycle")
	assert.LessOrEqual(t, took, 20*time.Second, "time RunCycle took for 300 pots")
	for _, want := range []string{
		"Go memory limit 4GiB", "Setup: 300 pots opened (270 with a risk profile)",
		"Day 1, 2026-11-23", "Day 2, 2026-11-27", "trades 1200,", "trades settled 1200,",
		"pots allocated 270,", "pots checked 270,",
		"Reconciliation, fast", "Reconciliation, deep", "0 internal and 0 external breaks",
		"Summary, 300 pots", "Where the CPU went: day 1's cycle", "Where the CPU went: deep reconciliation",
		"Where the heap went, after the setup",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Day 2's drift takes every profiled pot out of its band.
	if !strings.Contains(text, "pots traded 270 (100% of checked)") {
		t.Errorf("day 2 did not rebalance every profiled pot")
	}
}

// TestCycleConfigValidate proves that Validate reports every bad field and
// that the defaults are valid.
func TestCycleConfigValidate(t *testing.T) {
	c := CycleConfig{Pots: -1, Days: 50, Callers: -3, PhaseTimeout: time.Millisecond, MemoryLimitBytes: 1 << 20}
	c.EnsureDefaults()
	err := c.Validate()
	require.Error(t, err, "Validate of negative pots and callers, 50 days, a 1ms timeout and a 1 MiB memory limit")
	for _, want := range []string{"pots -1", "days 50", "callers -3", "phase timeout 1ms", "memory limit 1048576 bytes"} {
		assert.ErrorContains(t, err, want, "Validate")
	}
	var d CycleConfig
	d.EnsureDefaults()
	assert.NoError(t, d.Validate(), "Validate of the defaults")
}

// TestRunCycleScaleCheck proves that the scale check runs the workload at a
// tenth of the pots and then at all of them, and prints every step of the
// day, the setup and both reconciliations with their figures and ratios.
func TestRunCycleScaleCheck(t *testing.T) {
	var out strings.Builder
	cfg := CycleConfig{
		Pots:       200,
		Days:       1,
		Callers:    16,
		DataDir:    t.TempDir(),
		HeapSettle: 10 * time.Millisecond,
		ScaleCheck: true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := RunCycle(ctx, cfg, &out)
	text := out.String()
	t.Logf("RunCycle with the scale check:\n%s", text)
	require.NoError(t, err, "RunCycle with the scale check")
	for _, want := range []string{
		"Scale check, run 1 of 2: a tenth of the pots (20).", "Setup: 20 pots opened",
		"Scale check, run 2 of 2: all the pots (200).", "Setup: 200 pots opened",
		"Scale check: 200 pots ÷ 20 pots, each step",
	} {
		assert.Contains(t, text, want, "output")
	}
	_, table, ok := strings.Cut(text, "Scale check: 200 pots ÷ 20 pots")
	require.True(t, ok, "the scale check's table")
	num := `[0-9]+\.[0-9]+`
	// A row: its step, both times, the time ratio, then the CPU, heap and
	// RSS ratios (a day's step may have no window at this size: —).
	row := func(label, use string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(label) + ` +` + num + ` +` + num + ` +` + num + ` +` + use + ` +` + use + ` +` + use + `(?:  |$)`)
	}
	measured := num
	if runtime.GOOS != "linux" {
		measured = `(?:` + num + `|\?)` // no peak RSS
	}
	for _, label := range []string{"setup", "reconcile-fast", "reconcile-deep"} {
		assert.Regexp(t, row(label, measured), table, "row %s", label)
	}
	for _, step := range cycleSteps {
		assert.Regexp(t, row("day 1 "+step, `(?:`+measured+`|—)`), table, "row of step %s", step)
	}
	assert.Regexp(t, `every time ratio ≤ 12: met|time ratio\(s\) over 12: missed`, table, "the verdict")
}
