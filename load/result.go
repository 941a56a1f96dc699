package load

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Summary is a run's outcome, summary.json's top level.
type Summary struct {
	Members int   `json:"members"`
	Seed    int64 `json:"seed"`
	// Days are the workload's dealing days run (the settling days after
	// them not counted).
	Days int `json:"days"`
	// WarmUpDays are the warm-up days run before them.
	WarmUpDays int `json:"warmUpDays"`
	// Acknowledged requests (2xx), Refused ones (422 or 409: the member's
	// request was not possible, e.g. a sell of units not held), and
	// cancellations Skipped because the order they name was refused.
	Acknowledged int64 `json:"acknowledged"`
	Refused      int64 `json:"refused"`
	Skipped      int64 `json:"skipped"`
	// The checks (check.go), and the reconciliations' breaks, fast after
	// each day and deep at the end.
	Lost       int64 `json:"lost"`
	Doubled    int64 `json:"doubled"`
	Mismatched int64 `json:"mismatched"`
	Breaks     int64 `json:"breaks"`
	// Errors5xx are answers 500–599 other than 503 (which asks for a
	// retry), each retried.
	Errors5xx       int64   `json:"errors5xx"`
	DurationSeconds float64 `json:"durationSeconds"`
	// Checked says the run got to its checks and made them all: without
	// them, the zeros of Lost, Doubled and Mismatched mean nothing (a run
	// interrupted, or ended by an error, writes its report all the same).
	Checked bool `json:"checked"`
}

// Failed reports whether the run failed a check: anything lost, doubled or
// mismatched, a break, or a 5xx other than 503, or the checks not made.
func (s Summary) Failed() bool {
	return !s.Checked || s.Lost+s.Doubled+s.Mismatched+s.Breaks+s.Errors5xx > 0
}

// verdict is the run's outcome in a word or three.
func (s Summary) verdict() string {
	switch {
	case !s.Checked:
		return "not checked (it ended before its checks: lost, doubled and mismatched are not counted)"
	case s.Failed():
		return "FAILED"
	}
	return "passed"
}

// DayResult is one day of the run: a workload's day (Number from 1), a
// warm-up day before them (WarmUp, Number 0 and below), or a settling day
// after the workload's last (Number < 0, not WarmUp).
type DayResult struct {
	Number   int      `json:"day"`
	WarmUp   bool     `json:"warmUp,omitempty"`
	Dates    []string `json:"dates"`
	Requests int      `json:"requests"`
	// Racing of the requests were sent while the day's cycle ran; of
	// those acknowledged with a dealing date, RacingSameDay were dealt
	// that day (before its cut-off) and RacingNextDay the next.
	Racing           int                       `json:"racing"`
	RacingSameDay    int                       `json:"racingSameDay"`
	RacingNextDay    int                       `json:"racingNextDay"`
	Acknowledged     int64                     `json:"acknowledged"`
	RequestSeconds   float64                   `json:"requestSeconds"`
	Trades           int64                     `json:"trades"`
	TradesSettled    int64                     `json:"tradesSettled"`
	CycleSeconds     float64                   `json:"cycleSeconds"`
	ReconcileSeconds float64                   `json:"reconcileSeconds"`
	Breaks           int64                     `json:"breaks"`
	Latencies        map[string]LatencySummary `json:"latencies"`
	// StepSeconds are the cycles' steps, by name, summed over the day's
	// dealing dates.
	StepSeconds map[string]float64 `json:"stepSeconds"`
}

// workload reports whether d is one of the workload's days (from 1).
func (d DayResult) workload() bool { return d.Number > 0 }

// name is the day as the report and the log name it: "day 3", "warm-up
// day 0", "settling day 2".
func (d DayResult) name() string {
	switch {
	case d.WarmUp:
		return fmt.Sprintf("warm-up day %d", d.Number)
	case d.Number < 0:
		return fmt.Sprintf("settling day %d", -d.Number)
	}
	return fmt.Sprintf("day %d", d.Number)
}

// shortName is the day as a chart's axis and a profile's file name name
// it: "3", "w0" (warm-up day 0), "s2" (settling day 2).
func (d DayResult) shortName() string {
	switch {
	case d.WarmUp:
		return "w" + strconv.Itoa(d.Number)
	case d.Number < 0:
		return "s" + strconv.Itoa(-d.Number)
	}
	return strconv.Itoa(d.Number)
}

// Result is everything a run found.
type Result struct {
	Summary
	DeepBreaks int64 `json:"deepBreaks"`
	// OpeningLatencies and CheckingLatencies are the requests that open
	// the pots and those of the checks, by kind.
	OpeningLatencies  map[string]LatencySummary `json:"openingLatencies"`
	CheckingLatencies map[string]LatencySummary `json:"checkingLatencies"`
	RefusedByCode     map[string]int64          `json:"refusedByCode"`
	Findings          []Finding                 `json:"findings"`
	BreakSummaries    []string                  `json:"breakSummaries,omitempty"`
	Days              []DayResult               `json:"dayResults"`
	// LastDayOverDay3 compares the workload's last day with its third
	// (whose pots have settled units to sell), when it has more than three:
	// the cycle's time and the requests' time, each over day 3's.
	LastDayOverDay3 *DayRatios `json:"lastDayOverDay3,omitempty"`
	// ByStatus counts every HTTP attempt by its status (0: no answer).
	ByStatus map[int]int64 `json:"byStatus"`
	// Windows are the requests of each kind in each window of the run;
	// Samples the processes' memory and the active pots, every second.
	Windows []Window `json:"windows"`
	Samples []Sample `json:"samples"`
}

// DayRatios are the workload's last day's times over day 3's and, with
// eight days or more, its last three days' over days 3 to 5 (Window…,
// zero with fewer): one day can meet a store's compaction or a garbage
// collection that the next does not, and three days are steadier.
type DayRatios struct {
	Day                  int     `json:"day"`
	CycleSeconds         float64 `json:"cycleSeconds"`
	RequestSeconds       float64 `json:"requestSeconds"`
	WindowCycleSeconds   float64 `json:"windowCycleSeconds,omitempty"`
	WindowRequestSeconds float64 `json:"windowRequestSeconds,omitempty"`
}

// dayRatiosWindow is how many days the windows of DayRatios hold.
const dayRatiosWindow = 3

// dayRatios is the last workload day over day 3, nil with three days or
// fewer.
func (r *Result) dayRatios() *DayRatios {
	var days []*DayResult // the workload's, in order
	for i := range r.Days {
		if r.Days[i].workload() {
			days = append(days, &r.Days[i])
		}
	}
	i3 := slices.IndexFunc(days, func(d *DayResult) bool { return d.Number == 3 })
	if i3 < 0 || i3 == len(days)-1 {
		return nil
	}
	sum := func(ds []*DayResult) (cycle, requests float64) {
		for _, d := range ds {
			cycle, requests = cycle+d.CycleSeconds, requests+d.RequestSeconds
		}
		return cycle, requests
	}
	day3, last := days[i3], days[len(days)-1]
	if day3.CycleSeconds == 0 || day3.RequestSeconds == 0 {
		return nil
	}
	q := &DayRatios{Day: last.Number, CycleSeconds: last.CycleSeconds / day3.CycleSeconds, RequestSeconds: last.RequestSeconds / day3.RequestSeconds}
	if len(days)-i3 >= 2*dayRatiosWindow {
		firstCycle, firstRequests := sum(days[i3 : i3+dayRatiosWindow])
		lastCycle, lastRequests := sum(days[len(days)-dayRatiosWindow:])
		q.WindowCycleSeconds, q.WindowRequestSeconds = lastCycle/firstCycle, lastRequests/firstRequests
	}
	return q
}

// WriteReport writes summary.json (the Result), report.md and the charts
// into dir.
func (r *Result) WriteReport(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.LastDayOverDay3 = r.dayRatios()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return r.writeCharts(dir)
}

func (r *Result) markdown() string {
	var b strings.Builder
	s := r.Summary
	fmt.Fprintf(&b, "# Load run: %s\n\n", s.verdict())
	warmUp := ""
	if s.WarmUpDays > 0 {
		warmUp = fmt.Sprintf(" after %d warm-up days", s.WarmUpDays)
	}
	fmt.Fprintf(&b, "%d members, %d dealing days%s, seed %d, %.0f s.\n\n", s.Members, s.Days, warmUp, s.Seed, s.DurationSeconds)
	b.WriteString("| acknowledged | refused | skipped | lost | doubled | mismatched | breaks | 5xx (not 503) |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d | %d |\n\n", s.Acknowledged, s.Refused, s.Skipped, s.Lost, s.Doubled,
		s.Mismatched, s.Breaks, s.Errors5xx)
	if q := r.LastDayOverDay3; q != nil {
		fmt.Fprintf(&b, "Day %d ÷ day 3: the cycle's time %.2f, the requests' time %.2f.", q.Day, q.CycleSeconds, q.RequestSeconds)
		if q.WindowCycleSeconds > 0 {
			fmt.Fprintf(&b, " Days %d–%d ÷ days 3–%d: %.2f and %.2f.", q.Day-dayRatiosWindow+1, q.Day, 2+dayRatiosWindow,
				q.WindowCycleSeconds, q.WindowRequestSeconds)
		}
		b.WriteString("\n\n")
	}
	b.WriteString("## Days\n\nRacing: requests sent while the day's cycle ran, and of those acknowledged with a dealing date, how many were dealt that day / the next.\n\n")
	b.WriteString("| day | dealing dates | requests | racing | acknowledged | requests (s) | trades | settled | cycle (s) | reconcile (s) | breaks |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, d := range r.Days {
		day := strings.TrimPrefix(d.name(), "day ")
		racing := ""
		if d.Racing > 0 {
			racing = fmt.Sprintf("%d: %d / %d", d.Racing, d.RacingSameDay, d.RacingNextDay)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %.2f | %d | %d | %.2f | %.2f | %d |\n", day, strings.Join(d.Dates, ", "),
			d.Requests, racing, d.Acknowledged, d.RequestSeconds, d.Trades, d.TradesSettled, d.CycleSeconds, d.ReconcileSeconds, d.Breaks)
	}
	type latencyRow struct {
		name      string
		latencies map[string]LatencySummary
	}
	rows := []latencyRow{{"opening", r.OpeningLatencies}}
	for _, d := range r.Days {
		rows = append(rows, latencyRow{strings.TrimPrefix(d.name(), "day "), d.Latencies})
	}
	rows = append(rows, latencyRow{"checks", r.CheckingLatencies})
	var kinds []string
	for _, row := range rows {
		for k := range row.latencies {
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	if len(kinds) > 0 {
		b.WriteString("\n## Latency by phase and kind: attempts, p50 / p99 ms\n\n| phase |")
		for _, k := range kinds {
			b.WriteString(" " + k + " |")
		}
		b.WriteString("\n| ---: |" + strings.Repeat(" ---: |", len(kinds)) + "\n")
		for _, row := range rows {
			fmt.Fprintf(&b, "| %s |", row.name)
			for _, k := range kinds {
				if l, ok := row.latencies[k]; ok {
					fmt.Fprintf(&b, " %d: %.1f / %.1f |", l.Attempts, l.P50Ms, l.P99Ms)
				} else {
					b.WriteString(" |")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n## HTTP answers by status (every attempt; 0: no answer)\n\n")
	statuses := make([]int, 0, len(r.ByStatus))
	for st := range r.ByStatus {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		fmt.Fprintf(&b, "- %d: %d\n", st, r.ByStatus[st])
	}
	b.WriteString("\n## Charts\n\n")
	for _, c := range []string{chartRequests, chartLatency, chartErrors, chartCycleSteps, chartMemory, chartActivePots} {
		fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(c, ".png"), c)
	}
	if len(r.RefusedByCode) > 0 {
		b.WriteString("\n## Refused, by request and problem\n\n")
		for _, k := range slices.Sorted(maps.Keys(r.RefusedByCode)) {
			fmt.Fprintf(&b, "- %s: %d\n", k, r.RefusedByCode[k])
		}
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n## Findings (the first 100)\n\n")
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "- %s %s: %s\n", f.Check, f.Member, f.Detail)
		}
	}
	return b.String()
}
