package load

import (
	"fmt"
	"image/color"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// The charts of a report, each a PNG of the report's directory.
const (
	chartRequests   = "requests.png"
	chartLatency    = "latency.png"
	chartErrors     = "errors.png"
	chartCycleSteps = "cycle-steps.png"
	chartMemory     = "memory.png"
	chartActivePots = "active-pots.png"
)

// writeCharts draws the run's charts into dir.
func (r *Result) writeCharts(dir string) error {
	// Requests and errors per window are zero where a window has none of
	// a kind or status, so that the lines fall to zero there rather than
	// join the windows either side.
	width := windowWidth.Seconds()
	last := 0.0
	for _, w := range r.Windows {
		last = max(last, w.StartSeconds)
	}
	windows := int(last/width) + 1
	perWindow := func(m map[string][]float64, name string) []float64 {
		if m[name] == nil {
			m[name] = make([]float64, windows)
		}
		return m[name]
	}
	attempts, notOKs := map[string][]float64{}, map[string][]float64{}
	p50, p99 := map[string]plotter.XYs{}, map[string]plotter.XYs{}
	for _, w := range r.Windows {
		i := int(w.StartSeconds / width)
		perWindow(attempts, w.Kind)[i] = float64(w.Attempts) / width
		x := w.StartSeconds + width/2
		p50[w.Kind] = append(p50[w.Kind], plotter.XY{X: x, Y: math.Max(w.P50Ms, 0.01)})
		p99[w.Kind] = append(p99[w.Kind], plotter.XY{X: x, Y: math.Max(w.P99Ms, 0.01)})
		for status, n := range w.NotOK {
			name := strconv.Itoa(status)
			if status == 0 {
				name = "no answer"
			}
			perWindow(notOKs, name)[i] += float64(n) / width
		}
	}
	xys := func(m map[string][]float64) map[string]plotter.XYs {
		out := map[string]plotter.XYs{}
		for name, ys := range m {
			for i, y := range ys {
				out[name] = append(out[name], plotter.XY{X: (float64(i) + 0.5) * width, Y: y})
			}
		}
		return out
	}
	kinds, notOK := xys(attempts), xys(notOKs)
	charts := []struct {
		file, title, y string
		series         []series
		log            bool
	}{
		{chartRequests, "Requests answered per second, by kind", "requests/s", seriesOf(kinds), false},
		{chartLatency, "Latency by kind: p50 (solid) and p99 (dashed)", "ms", append(seriesOf(p50), dashed(seriesOf(p99))...), true},
		{chartErrors, "Answers other than 2xx, 409 and 422, per second, by status", "answers/s", seriesOf(notOK), false},
	}
	var rss, heap, active plotter.XYs
	processes, memberHeaps := map[string]plotter.XYs{}, map[string]plotter.XYs{}
	for _, s := range r.Samples {
		rss = append(rss, plotter.XY{X: s.AtSeconds, Y: float64(s.RSSBytes) / (1 << 20)})
		heap = append(heap, plotter.XY{X: s.AtSeconds, Y: float64(s.HeapBytes) / (1 << 20)})
		for name, b := range s.ProcessRSSBytes {
			if b > 0 { // 0: not running then (killed)
				processes[name] = append(processes[name], plotter.XY{X: s.AtSeconds, Y: float64(b) / (1 << 20)})
			}
		}
		for id, b := range s.MemberHeapBytes {
			memberHeaps[id] = append(memberHeaps[id], plotter.XY{X: s.AtSeconds, Y: float64(b) / (1 << 20)})
		}
		if s.ActivePots >= 0 {
			active = append(active, plotter.XY{X: s.AtSeconds, Y: float64(s.ActivePots)})
		}
	}
	charts = append(charts,
		struct {
			file, title, y string
			series         []series
			log            bool
		}{chartMemory, "Memory: the load process (with --start dev, the platform's too), each process it started, each cluster member's heap", "MiB",
			slices.Concat([]series{{"load: RSS", rss, false}, {"load: Go heap (live objects)", heap, false}},
				prefixed(seriesOf(processes), "RSS of "), prefixed(seriesOf(memberHeaps), "Go heap of member ")), false},
		struct {
			file, title, y string
			series         []series
			log            bool
		}{chartActivePots, "Pots active on every cluster member", "pots", []series{{"active pots", active, false}}, false})
	for _, c := range charts {
		if err := lineChart(filepath.Join(dir, c.file), c.title, "seconds since the run started", c.y, c.series, c.log); err != nil {
			return fmt.Errorf("load: chart %s: %w", c.file, err)
		}
	}
	return r.cycleStepsChart(filepath.Join(dir, chartCycleSteps))
}

// palette has a colour for each of the cycle's eight steps and for the
// request kinds, distinct enough side by side (plotutil's repeats after 7).
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, color.RGBA{0xbc, 0xbd, 0x22, 0xff},
	color.RGBA{0x17, 0xbe, 0xcf, 0xff}, color.RGBA{0x00, 0x00, 0x00, 0xff}, color.RGBA{0xaa, 0x66, 0x00, 0xff},
	color.RGBA{0x00, 0x44, 0x88, 0xff}, color.RGBA{0x88, 0x00, 0x44, 0xff},
}

type series struct {
	name   string
	points plotter.XYs
	dashed bool
}

func seriesOf(m map[string]plotter.XYs) []series {
	var out []series
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, series{name: k, points: m[k]})
	}
	return out
}

func prefixed(s []series, prefix string) []series {
	for i := range s {
		s[i].name = prefix + s[i].name
	}
	return s
}

func dashed(s []series) []series {
	for i := range s {
		s[i].dashed = true
	}
	return s
}

func lineChart(path, title, x, y string, ss []series, logY bool) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	colours := map[string]int{}
	drawn := 0
	for _, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.points)
		if err != nil {
			return err
		}
		// A name keeps its colour across series (a kind's p50 and p99),
		// and is in the legend once, by its solid line.
		if _, ok := colours[s.name]; !ok {
			colours[s.name] = len(colours)
		}
		l.Color = palette[colours[s.name]%len(palette)]
		l.Width = vg.Points(1.2)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		} else {
			p.Legend.Add(s.name, l)
		}
		p.Add(l)
		drawn++
	}
	if drawn == 0 {
		p.Title.Text += " (none)"
	} else if logY {
		// Only with values: an empty axis's range (-1, 1) has no log.
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	return save(p, path)
}

// save writes p as a PNG. gonum/plot panics on data it cannot draw; a
// report then lacks that chart, with an error, rather than the run's
// process ending.
func save(p *plot.Plot, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("draw %s: %v", filepath.Base(path), r)
		}
	}()
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}

// cycleStepsChart stacks each day's cycle steps.
func (r *Result) cycleStepsChart(path string) error {
	p := plot.New()
	p.Title.Text, p.Y.Label.Text = "Each day's cycles, by step (settling days after the workload's last: s1, s2, …)", "seconds"
	p.Legend.Top = true
	var steps []string
	for _, d := range r.Days {
		for s := range d.StepSeconds {
			if !slices.Contains(steps, s) {
				steps = append(steps, s)
			}
		}
	}
	slices.SortFunc(steps, func(a, b string) int { return stepOrder(a) - stepOrder(b) })
	var names []string
	for _, d := range r.Days {
		names = append(names, d.shortName())
	}
	var below *plotter.BarChart
	for i, s := range steps {
		values := make(plotter.Values, len(r.Days))
		for j, d := range r.Days {
			values[j] = d.StepSeconds[s]
		}
		bc, err := plotter.NewBarChart(values, vg.Points(max(2, 400/float64(max(len(r.Days), 1)))))
		if err != nil {
			return err
		}
		bc.Color = palette[i%len(palette)]
		bc.LineStyle.Color = color.Transparent
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		p.Legend.Add(s, bc)
	}
	if len(names) > 0 {
		p.NominalX(names...)
	}
	return save(p, path)
}

// stepOrder is a cycle step's place in the cycle (docs/dealing.md).
func stepOrder(step string) int {
	if i := slices.Index([]string{"settle", "cut-off", "prices", "net", "orders", "executions", "allocate", "rebalance"}, step); i >= 0 {
		return i
	}
	return 100
}
