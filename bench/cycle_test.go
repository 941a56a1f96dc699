package bench

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
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
	c := CycleConfig{Pots: -1, Days: 500, DailyActivity: 1.5, Callers: -3, PhaseTimeout: time.Millisecond, MemoryLimitBytes: 1 << 20}
	c.EnsureDefaults()
	err := c.Validate()
	require.Error(t, err, "Validate of negative pots and callers, 500 days, an activity of 1.5, a 1ms timeout and a 1 MiB memory limit")
	for _, want := range []string{"pots -1", "days 500", "daily activity 1.5", "callers -3", "phase timeout 1ms", "memory limit 1048576 bytes"} {
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

// TestRunCycleDailyActivity proves that with DailyActivity each day's
// cycle deals new requests (trades every day, members' orders once day 1's
// units have settled), that each day's cycle time, CPU time and heap after
// the day are printed with their ratios to day 3's against the targets, and
// that the profiles say what grew from day 3 to the last day.
func TestRunCycleDailyActivity(t *testing.T) {
	var out strings.Builder
	cfg := CycleConfig{
		Pots:          200,
		Days:          4,
		DailyActivity: 0.5,
		Callers:       16,
		DataDir:       t.TempDir(),
		HeapSettle:    10 * time.Millisecond,
		ProfileDir:    t.TempDir(),
		FastOnly:      true,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := RunCycle(ctx, cfg, &out)
	text := out.String()
	t.Logf("RunCycle with daily activity:\n%s", text)
	require.NoError(t, err, "RunCycle with daily activity (it fails if a day did not deal its new requests)")
	for day := 1; day <= 4; day++ {
		assert.Contains(t, text, fmt.Sprintf("Day %d's new requests (50%% of the pots, a new draw each day): 100 contributions", day), "day %d's requests", day)
		assert.Regexp(t, fmt.Sprintf(`(?m)^  day %d: cycle [0-9.]+ s, CPU [0-9.]+ s \([0-9.]+ cores\), live heap after the day [0-9.]+ MiB`, day), text, "day %d's figures", day)
	}
	_, table, ok := strings.Cut(text, "Days: each day's cycle time, CPU time and live heap after the day, and each ÷ day 3's")
	require.True(t, ok, "the days' table")
	row := regexp.MustCompile(`(?m)^  (\d) \d{4}-\d\d-\d\d +(\d+) +(\d+) +(\d+) +\d+ +\d+ +\d+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$`)
	rows := row.FindAllStringSubmatch(table, -1)
	require.Len(t, rows, 4, "a row per day in:\n%s", table)
	for _, r := range rows {
		day, pays, orders, trades := atoi(t, r[1]), atoi(t, r[2]), atoi(t, r[3]), atoi(t, r[4])
		assert.Equal(t, 100, pays, "day %d's contributions", day)
		assert.Positive(t, trades, "day %d's trades", day)
		if day >= 3 { // day 1's units settled on day 2: the profiled pots can sell
			assert.Positive(t, orders, "day %d's members' orders", day)
		}
	}
	for _, what := range []string{"cycle time", "CPU time", "live heap after the day"} {
		assert.Regexp(t, `day 4 ÷ day 3, `+what+`: [0-9.]+ (s|MiB) ÷ [0-9.]+ (s|MiB) = [0-9.]+ \(target ≤ 1\.2: (met|missed)\)`, table, "the %s ratio", what)
	}
	assert.Contains(t, text, "What grew from day 3 to day 4: the cycle's CPU", "the CPU profiles compared")
	assert.Contains(t, text, "What grew from day 3 to day 4: the live heap after the day", "the heap profiles compared")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "a number in the table")
	return n
}

// TestPlanActivity proves that each day draws DailyActivity of the pots,
// each once, a different subset each day, and the same one in every run.
func TestPlanActivity(t *testing.T) {
	r := &cycleRun{cfg: CycleConfig{Pots: 1000, DailyActivity: 0.2}}
	drawn := func(day int) map[int]bool {
		set := map[int]bool{}
		for _, p := range r.planActivity(day) {
			assert.False(t, set[p.pot], "pot %d drawn twice on day %d", p.pot, day)
			set[p.pot] = true
			assert.True(t, p.pence >= 2_500 && p.pence < 102_100, "contribution of %d pence", p.pence)
		}
		return set
	}
	day1, day2 := drawn(1), drawn(2)
	assert.Len(t, day1, 200, "pots drawn on day 1")
	assert.Len(t, day2, 200, "pots drawn on day 2")
	assert.NotEqual(t, day1, day2, "day 1's and day 2's pots")
	assert.Equal(t, day1, drawn(1), "day 1's pots drawn again")
	r.cfg.DailyActivity = 0
	assert.Empty(t, r.planActivity(1), "no activity")
}
