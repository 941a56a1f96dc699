package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/acme/mastertrust/internal/procmem"
)

// stepSampleEvery is how often a stepMeter reads the heap's size.
const stepSampleEvery = 10 * time.Millisecond

// stepUse is what the process used over one step's window: its wall time,
// CPU time (user and system), peak heap (heap object bytes, live and not
// yet swept, sampled every stepSampleEvery) and peak RSS (VmHWM, reset at
// the window's start; 0: unknown).
type stepUse struct {
	wall, cpu time.Duration
	heap, rss uint64
}

func (u stepUse) cores() float64 {
	if u.wall <= 0 {
		return 0
	}
	return u.cpu.Seconds() / u.wall.Seconds()
}

// stepMeter measures consecutive windows of this process: begin starts one,
// cut ends it and starts the next at once.
type stepMeter struct {
	mu       sync.Mutex
	start    time.Time
	cpu0     time.Duration
	rssKnown bool
	peakHeap uint64

	stop, done chan struct{}
}

// startStepMeter starts sampling the heap and a first window.
func startStepMeter() *stepMeter {
	m := &stepMeter{stop: make(chan struct{}), done: make(chan struct{})}
	m.begin()
	go func() {
		defer close(m.done)
		t := time.NewTicker(stepSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h := procmem.HeapObjects()
				m.mu.Lock()
				m.peakHeap = max(m.peakHeap, h)
				m.mu.Unlock()
			case <-m.stop:
				return
			}
		}
	}()
	return m
}

// begin starts a new window, forgetting the current one.
func (m *stepMeter) begin() {
	rssKnown := procmem.ResetPeak()
	h := procmem.HeapObjects()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.start, m.cpu0, m.rssKnown, m.peakHeap = time.Now(), processCPU(), rssKnown, h
}

// cut ends the current window, returning what it used, and begins the
// next.
func (m *stepMeter) cut() stepUse {
	h := procmem.HeapObjects()
	var rss uint64
	m.mu.Lock()
	if m.rssKnown {
		rss = procmem.Peak()
	}
	u := stepUse{wall: time.Since(m.start), cpu: processCPU() - m.cpu0, heap: max(m.peakHeap, h), rss: rss}
	m.mu.Unlock()
	m.begin()
	return u
}

// close stops the sampling.
func (m *stepMeter) close() {
	close(m.stop)
	<-m.done
}

// scaleCheckTimeRatioMax is the largest time ratio, at ten times the pots,
// that the scale check accepts: linear, with some overhead.
const scaleCheckTimeRatioMax = 12

// runScaleCheck runs the workload at a tenth of cfg.Pots, then at cfg.Pots,
// each on a fresh platform and data directory in this process, and prints
// the ratios of each step's figures. Profiles are taken of the full run
// only.
func runScaleCheck(ctx context.Context, cfg CycleConfig, out io.Writer) error {
	tenth, full := cfg, cfg
	tenth.Pots, tenth.ProfileDir = cfg.Pots/10, ""
	if cfg.DataDir != "" {
		tenth.DataDir = filepath.Join(cfg.DataDir, fmt.Sprintf("pots-%d", tenth.Pots))
		full.DataDir = filepath.Join(cfg.DataDir, fmt.Sprintf("pots-%d", full.Pots))
	}
	fmt.Fprintf(out, "Scale check, run 1 of 2: a tenth of the pots (%d).\n\n", tenth.Pots)
	small, err := runCycleOnce(ctx, tenth, out)
	if err != nil {
		return fmt.Errorf("bench: scale check at %d pots: %w", tenth.Pots, err)
	}
	// The first run's world is gone: return its memory, so that the peak
	// RSS of the second starts from as little as can be.
	debug.FreeOSMemory()
	fmt.Fprintf(out, "Scale check, run 2 of 2: all the pots (%d).\n\n", full.Pots)
	large, err := runCycleOnce(ctx, full, out)
	if err != nil {
		return fmt.Errorf("bench: scale check at %d pots: %w", full.Pots, err)
	}
	printScaleCheck(out, small, large)
	return nil
}

// scaleRow is one step's figures in both runs of the scale check.
type scaleRow struct {
	label string
	// time is the step's own (the cycle's StepMicros; the window's for the
	// setup and reconciliations).
	small, large time.Duration
	// use is the step's window; ok false where a run has none.
	smallUse, largeUse stepUse
	ok                 bool
}

// printScaleCheck prints the scale check's table.
func printScaleCheck(out io.Writer, small, large *cycleRun) {
	var rows []scaleRow
	rows = append(rows, scaleRow{"setup", small.setupUse.wall, large.setupUse.wall, small.setupUse, large.setupUse, true})
	for i := range min(len(small.results), len(large.results)) {
		ds, dl := small.results[i], large.results[i]
		if ws, ok := ds.use[cycleStart]; ok {
			if wl, ok := dl.use[cycleStart]; ok {
				rows = append(rows, scaleRow{fmt.Sprintf("day %d %s", ds.n, cycleStart), ws.wall, wl.wall, ws, wl, true})
			}
		}
		for _, name := range cycleSteps {
			us, ok1 := ds.summary.StepMicros[name]
			ul, ok2 := dl.summary.StepMicros[name]
			if !ok1 || !ok2 {
				continue
			}
			ws, okS := ds.use[name]
			wl, okL := dl.use[name]
			rows = append(rows, scaleRow{fmt.Sprintf("day %d %s", ds.n, name), time.Duration(us) * time.Microsecond,
				time.Duration(ul) * time.Microsecond, ws, wl, okS && okL})
		}
		rows = append(rows, scaleRow{fmt.Sprintf("day %d cycle", ds.n), ds.wall, dl.wall, stepUse{}, stepUse{}, false})
	}
	for i := range min(len(small.recons), len(large.recons)) {
		rs, rl := small.recons[i], large.recons[i]
		kind := map[bool]string{false: "fast", true: "deep"}[rs.deep]
		rows = append(rows, scaleRow{"reconcile-" + kind, rs.use.wall, rl.use.wall, rs.use, rl.use, true})
	}
	fmt.Fprintf(out, "Scale check: %d pots ÷ %d pots, each step (target: time ratio ≤ %d, linear with some overhead):\n",
		large.cfg.Pots, small.cfg.Pots, scaleCheckTimeRatioMax)
	fmt.Fprintf(out, "  %-22s %10s %10s %7s %7s %7s %7s\n", "step", "time N/10", "time N", "time×", "CPU×", "heap×", "RSS×")
	flagged := 0
	for _, row := range rows {
		tr := ratio(row.large.Seconds(), row.small.Seconds())
		cpu, heap, rss := "—", "—", "—"
		if row.ok {
			cpu = ratioText(row.largeUse.cpu.Seconds(), row.smallUse.cpu.Seconds())
			heap = ratioText(float64(row.largeUse.heap), float64(row.smallUse.heap))
			rss = ratioText(float64(row.largeUse.rss), float64(row.smallUse.rss))
		}
		flag := ""
		if tr > scaleCheckTimeRatioMax {
			flag = fmt.Sprintf("OVER %d", scaleCheckTimeRatioMax)
			flagged++
		}
		line := fmt.Sprintf("  %-22s %10.3f %10.3f %7s %7s %7s %7s  %s", row.label, row.small.Seconds(), row.large.Seconds(),
			ratioText(row.large.Seconds(), row.small.Seconds()), cpu, heap, rss, flag)
		fmt.Fprintln(out, strings.TrimRight(line, " "))
	}
	fmt.Fprintf(out, "  (seconds; time: each step's own, the window's for the setup, the reconciliations and a day's (start), the operator's for a day's cycle; CPU, heap and RSS: the process's CPU time, peak heap objects and peak RSS in the step's window; —: a run's polls saw no window of the step, or the row has none; ?: not measured on this system)\n")
	if flagged == 0 {
		fmt.Fprintf(out, "  every time ratio ≤ %d: met\n\n", scaleCheckTimeRatioMax)
	} else {
		fmt.Fprintf(out, "  %d time ratio(s) over %d: missed\n\n", flagged, scaleCheckTimeRatioMax)
	}
}

// ratio is a ÷ b, 0 if b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// ratioText is a ÷ b with two decimals, or "?" if either is unknown (0).
func ratioText(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", a/b)
}
