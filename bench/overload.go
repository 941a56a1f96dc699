package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/acme/mastertrust/gateway"
)

// The overload workload: how the platform answers more requests than it
// can do. One in-process node and the gateway on a loopback listener, as
// bench pots runs them; the sustainable rate of HTTP orders is found first
// (open loop, the highest rate at which nothing is shed and p99 stays
// low), then each repeat drives orders at that rate and at Factor times it,
// open loop, and compares the two: the 503s' latency, the accepted
// requests' latency, the share shed, and the heap.

// Targets, printed beside the figures.
const (
	// overloadShedP99Target: a request the platform cannot take is refused
	// at once, not after a wait.
	overloadShedP99Target = 50 * time.Millisecond
	// overloadAcceptedP99Ratio: the requests taken under overload are not
	// queued behind the ones refused: their p99 at Factor× the sustainable
	// rate, over their p99 at the sustainable rate.
	overloadAcceptedP99Ratio = 4.0
	// overloadHeapRatio: overload does not pile requests up in memory: the
	// peak heap under overload over the peak at the sustainable rate.
	overloadHeapRatio = 1.5
)

// Where OverloadConfig.Generator runs the load generator.
const (
	GeneratorProcess = "process"
	GeneratorInline  = "inline"
)

// OverloadConfig configures RunOverload. Zero fields take the defaults
// named on each.
type OverloadConfig struct {
	// Dir holds the Pebble journal (removed afterwards). Default: a new
	// temporary directory.
	Dir string
	// Pots are the pots the orders go to, in turn, opened and funded
	// beforehand with spread ages (as in bench pots). Default 10,000.
	Pots int
	// Callers open the pots. Default 64.
	Callers int
	// Clients are the numbers of closed-loop clients (each waiting for its
	// answer) the capacity is measured with, in turn, before the search:
	// how many requests the node needs in flight to reach its rate, which
	// is what the gateway's InFlightMax is sized from. Counts above the
	// gateway's InFlightMax are left out. Default 4, 8, 16, 32, 64.
	Clients []int
	// Rate is the sustainable rate in orders/s. Default: found by the
	// search (SearchFractions of the closed-loop capacity).
	Rate float64
	// SearchFractions are the open-loop rates tried, as fractions of the
	// closed-loop capacity, in order; the search stops at the first that
	// fails (twice in a row). Default 0.1, 0.2, …, 1.0.
	SearchFractions []float64
	// SearchP99Max is the search's bound on the p99 of a sustainable
	// rate. Default 50 ms: past the knee an open loop's queue, and so its
	// p99, grows by orders of magnitude within one step, while below it
	// the p99 on this shared machine is 5–50 ms depending on the other
	// work (a bound of 25 ms failed at 10% of the capacity when another
	// process took 1.7 cores).
	SearchP99Max time.Duration
	// Step is the measured length of each step of the search, after a
	// warm-up of a fifth of it. Default: Duration. Shorter steps passed
	// rates that then shed a tenth to a third of their orders in the
	// longer runs (the pots and the journal grow as a run goes on).
	Step time.Duration
	// Factor is the overload: Factor × the sustainable rate. Default 3.
	Factor float64
	// Duration is the measured length of each run at the sustainable rate
	// and under overload, after a warm-up of a fifth of it. Default 10 s.
	Duration time.Duration
	// Repeats of the pair of runs; medians and same-repeat ratios are
	// reported. Default 3.
	Repeats int
	// Generator is where the load generator runs: GeneratorProcess (the
	// default), this executable started again with GeneratorEnv, so that
	// its goroutines do not wait in the platform's run queue and the heap
	// measured is the platform's; or GeneratorInline, this process.
	Generator string
	// Connections bounds the load generator's connections (each request
	// takes an idle one or dials). Default: what the open-file limit
	// allows for both ends of each, at most 8,192.
	Connections int
	// ClientTimeout bounds one request, as a client would. Default 30 s.
	ClientTimeout time.Duration
	// InFlightMax and SlotWaitMax are the gateway's (gateway.Config);
	// 0 keeps the gateway's defaults, a negative SlotWaitMax is no wait.
	InFlightMax int
	SlotWaitMax time.Duration
	// ProfileDir, if set, receives a CPU profile of the last overload run
	// (cpu-overload.pprof) and a runtime trace of half a second in its
	// middle (trace-overload.out; go tool trace), and RunOverload prints
	// where the CPU went.
	ProfileDir string
	// PhaseTimeout bounds opening the pots. Default 5 min.
	PhaseTimeout time.Duration
	// Logger reports progress (Info) and the platform's warnings.
	// Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (c *OverloadConfig) EnsureDefaults() {
	if c.Pots == 0 {
		c.Pots = 10_000
	}
	if c.Callers == 0 {
		c.Callers = 64
	}
	if len(c.Clients) == 0 {
		c.Clients = []int{4, 8, 16, 32, 64}
	}
	if len(c.SearchFractions) == 0 {
		c.SearchFractions = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
	}
	if c.SearchP99Max == 0 {
		c.SearchP99Max = 50 * time.Millisecond
	}

	if c.Factor == 0 {
		c.Factor = 3
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Step == 0 {
		c.Step = c.Duration
	}
	if c.Repeats == 0 {
		c.Repeats = 3
	}
	if c.Generator == "" {
		c.Generator = GeneratorProcess
	}
	if c.Connections == 0 {
		c.Connections = defaultConnections()
	}
	if c.ClientTimeout == 0 {
		c.ClientTimeout = 30 * time.Second
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// defaultConnections is what the open-file limit leaves for the load
// generator's connections, each of which takes a descriptor at both ends
// (the generator and the server are one process), keeping 1,024 for the
// journal and the rest; at most 8,192.
func defaultConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return int(max(64, min(8192, (int64(rl.Cur)-1024)/2)))
}

// Validate reports every field out of range.
func (c *OverloadConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Pots < 1 || c.Pots > 10_000_000 {
		bad("pots %d outside [1, 10,000,000]", c.Pots)
	}
	if c.Callers < 1 || c.Callers > 4096 {
		bad("callers %d outside [1, 4096]", c.Callers)
	}
	if c.Pots < c.Callers {
		bad("pots %d fewer than callers %d", c.Pots, c.Callers)
	}
	for _, n := range c.Clients {
		if n < 1 || n > c.Pots {
			bad("clients %d outside [1, pots]", n)
		}
	}
	if c.Rate < 0 {
		bad("rate %.0f is negative", c.Rate)
	}
	for _, f := range c.SearchFractions {
		if f <= 0 || f > 10 {
			bad("search fraction %g outside (0, 10]", f)
		}
	}
	if c.SearchP99Max <= 0 {
		bad("search p99 bound %s is not positive", c.SearchP99Max)
	}
	if c.Step < 10*time.Millisecond || c.Duration < 10*time.Millisecond {
		bad("step %s or duration %s below 10ms", c.Step, c.Duration)
	}
	if c.Factor < 1 || c.Factor > 100 {
		bad("factor %g outside [1, 100]", c.Factor)
	}
	if c.Repeats < 1 || c.Repeats > 100 {
		bad("repeats %d outside [1, 100]", c.Repeats)
	}
	if c.Generator != GeneratorProcess && c.Generator != GeneratorInline {
		bad("generator %q is not %s or %s", c.Generator, GeneratorProcess, GeneratorInline)
	}
	if c.Connections < 1 {
		bad("connections %d below 1", c.Connections)
	}
	if c.ClientTimeout <= 0 {
		bad("client timeout %s is not positive", c.ClientTimeout)
	}
	if c.InFlightMax < 0 {
		bad("in-flight max %d is negative", c.InFlightMax)
	}
	if c.PhaseTimeout < time.Second {
		bad("phase timeout %s below 1s", c.PhaseTimeout)
	}
	return errors.Join(errs...)
}

// overloadRun is one RunOverload: bench pots' platform, and an open-loop
// client.
type overloadRun struct {
	*potsRun
	ocfg OverloadConfig
	// inFlightMax is the gateway's.
	inFlightMax int
	// sender sends orders from this process: the closed-loop capacity,
	// and the open-loop runs when the generator runs here.
	sender *orderSender
	// gen is the load generator's process (nil: it runs here).
	gen *generatorProc
}

// overloadPair is one repeat: the run at the sustainable rate and the run
// under overload, with the gateway handler's times of each.
type overloadPair struct {
	base, over     openResult
	baseHT, overHT *handlerTimes
}

// RunOverload finds the sustainable rate of HTTP orders (unless cfg.Rate
// names it), then drives orders open loop at that rate and at cfg.Factor
// times it, cfg.Repeats times, and prints both runs side by side with the
// targets: the 503s' p99, the accepted requests' p99 against the
// sustainable rate's, and the peak heap against the sustainable rate's.
func RunOverload(ctx context.Context, cfg OverloadConfig, out io.Writer) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: overload config: %w", err)
	}
	root, removeRoot, err := workDirs(cfg.Dir, "mastertrust-bench-overload-*", cfg.ProfileDir)
	if err != nil {
		return err
	}
	defer removeRoot()
	pcfg := PotsConfig{Dir: root, Callers: cfg.Callers, HTTPClients: cfg.Callers, Pots: cfg.Pots, Duration: cfg.Step,
		Repeats: 1, Measurements: []string{PotsHTTP}, PhaseTimeout: cfg.PhaseTimeout, Logger: cfg.Logger}
	pcfg.EnsureDefaults()
	var gwCfg gateway.Config
	pr, err := startPots(ctx, pcfg, root, func(c *gateway.Config) {
		c.InFlightMax, c.SlotWaitMax = cfg.InFlightMax, cfg.SlotWaitMax
		gwCfg = *c
		gwCfg.EnsureDefaults()
	})
	if err != nil {
		return err
	}
	defer pr.close()
	r := &overloadRun{potsRun: pr, ocfg: cfg, inFlightMax: gwCfg.InFlightMax}
	if err := r.openBenchPots(ctx, potsHistoryMax); err != nil {
		return err
	}
	setup := genSetup{Host: strings.TrimPrefix(pr.url, "http://"), Connections: cfg.Connections, Timeout: cfg.ClientTimeout,
		Members: r.members, Tokens: r.tokens, OrderBody: `{"type":"buy","asset":"` + pr.asset + `","amount":"` + potsOrderAmount + `"}`,
		KeyPrefix: "o-"}
	r.sender = newOrderSender(setup)
	defer r.sender.client.close()
	where := "in this process"
	if cfg.Generator == GeneratorProcess {
		setup.KeyPrefix = "g-" // the keys of the orders sent from here are o-…
		if r.gen, err = startGenerator(setup, os.Stderr); err != nil {
			return err
		}
		defer func() {
			if err := r.gen.close(); err != nil {
				r.log.Warn("bench: the load generator", "err", err)
			}
		}()
		where = "in a process of its own (this executable again)"
	}

	fmt.Fprintf(out, "Overload: one in-process node (platform.StartNode) with the Pebble journal on disk and the gateway on a loopback listener (InFlightMax %d, SlotWaitMax %s, RequestTimeout %s); HTTP POST orders (buys) to %d pots taken in turn; the load generator %s, open loop (each request on its own goroutine when due, whatever the answers; up to %d connections; latency from when the request was due).\n\n",
		gwCfg.InFlightMax, slotWait(gwCfg.SlotWaitMax), gwCfg.RequestTimeout, cfg.Pots, where, cfg.Connections)

	rate := cfg.Rate
	if rate == 0 {
		if rate, err = r.search(ctx, out); err != nil {
			return err
		}
	}
	pairs := make([]overloadPair, 0, cfg.Repeats)
	for rep := range cfg.Repeats {
		last := rep == cfg.Repeats-1
		p, err := r.pair(ctx, rate, last && cfg.ProfileDir != "")
		if err != nil {
			return fmt.Errorf("bench: overload, repeat %d: %w", rep+1, err)
		}
		pairs = append(pairs, p)
		r.log.Info("overload repeat", "repeat", rep+1, "rate", int(rate),
			"accepted_p99", p.base.acceptedLat.quantile(0.99), "overload_accepted_p99", p.over.acceptedLat.quantile(0.99),
			"shed_p99", p.over.shedLat.quantile(0.99), "shed", fmt.Sprintf("%.1f%%", 100*p.over.shedShare()))
	}
	r.printPairs(out, rate, pairs)
	if cfg.ProfileDir != "" {
		if err := r.printCPUProfile(out); err != nil {
			return err
		}
	}
	return nil
}

// search measures the closed-loop capacity, then tries open-loop rates at
// SearchFractions of it, and returns the last that passed: nothing shed or
// failed, and p99 within SearchP99Max.
func (r *overloadRun) search(ctx context.Context, out io.Writer) (float64, error) {
	// Closed loop, with no more clients than the gateway lets in: none is
	// refused, and the rate is what the platform does when pressed.
	fmt.Fprintf(out, "Capacity, closed loop (each client waits for its answer; %s per count after a %s warm-up):\n", r.ocfg.Step, r.ocfg.Step/5)
	fmt.Fprintf(out, "  %7s %9s %9s %9s %6s %6s %8s\n", "clients", "orders/s", "p50", "p99", "cores", "others", "CPU/op")
	var capacity rate
	for _, clients := range r.ocfg.Clients {
		if clients > r.inFlightMax {
			continue
		}
		busy0, total0, _ := machineCPU()
		res, err := drive(ctx, loadShape{workers: clients, warmup: r.ocfg.Step / 5, duration: r.ocfg.Step},
			func(ctx context.Context, _ int) (int, error) {
				// A client that is refused sends the order again, with the
				// same key, as a client would.
				n, i := r.sender.nextPot()
				for {
					switch outcome, what := r.sender.order(ctx, n, i); outcome {
					case openAccepted:
						return r.orderEvents, nil
					case openShed:
						time.Sleep(time.Millisecond)
					default:
						return 0, fmt.Errorf("closed-loop order failed: %s", what)
					}
				}
			})
		if err != nil {
			return 0, fmt.Errorf("bench: overload capacity: %w", err)
		}
		others := -1.0
		if busy1, total1, ok := machineCPU(); ok && total1 > total0 {
			// Warm-up included: a rough figure, for the reader.
			others = max(0, float64(busy1-busy0)/float64(total1-total0)*float64(runtime.NumCPU())-res.cores)
		}
		fmt.Fprintf(out, "  %7d %9.0f %9s %9s %6.2f %6.2f %8s\n", clients, res.appends, roundDuration(res.p50), roundDuration(res.p99),
			res.cores, others, res.cpuPerOp.Round(time.Microsecond))
		if res.appends > capacity.appends {
			capacity = res
		}
	}
	if capacity.appends == 0 {
		return 0, fmt.Errorf("bench: overload: no client count within the gateway's InFlightMax %d", r.inFlightMax)
	}
	fmt.Fprintf(out, "Capacity: %.0f orders/s (the best of the counts).\n\n", capacity.appends)
	fmt.Fprintf(out, "Search for the sustainable rate, open loop, %s per step after a %s warm-up (passes: nothing shed or failed, p99 ≤ %s):\n",
		r.ocfg.Step, r.ocfg.Step/5, r.ocfg.SearchP99Max)
	fmt.Fprintf(out, "  %8s %10s %10s %7s %7s %9s %9s %9s %6s %6s  %s\n", "capacity", "offered/s", "accepted/s", "shed", "failed", "p50", "p99", "lag p99", "cores", "others", "")
	best := 0.0
	for _, f := range r.ocfg.SearchFractions {
		rate := f * capacity.appends
		pass := false
		// A rate fails only twice in a row: once may be the machine's
		// other work.
		for attempt := 1; attempt <= 2 && !pass; attempt++ {
			res, err := r.openRun(ctx, rate, r.ocfg.Step)
			if err != nil {
				return 0, err
			}
			pass = res.shed == 0 && res.failed == 0 && res.acceptedLat.quantile(0.99) <= r.ocfg.SearchP99Max
			verdict := "pass"
			switch {
			case !pass && attempt == 1:
				verdict = "fail; once more"
			case !pass:
				verdict = "fail"
			}
			fmt.Fprintf(out, "  %7.0f%% %10.0f %10.0f %6.1f%% %7d %9s %9s %9s %6.2f %6.2f  %s\n", 100*f, rate, res.acceptedRate(), 100*res.shedShare(),
				res.failed, roundDuration(res.acceptedLat.quantile(0.5)), roundDuration(res.acceptedLat.quantile(0.99)),
				roundDuration(res.lag.quantile(0.99)), res.proc.cores, res.proc.otherCores, verdict)
			r.log.Info("overload search step", "fraction", f, "rate", int(rate), "p99", res.acceptedLat.quantile(0.99),
				"shed", res.shed, "failed", res.failed, "pass", pass)
		}
		if !pass {
			break
		}
		best = rate
	}
	if best == 0 {
		return 0, fmt.Errorf("bench: overload: no rate passed the search; the first was %.0f%% of the capacity", 100*r.ocfg.SearchFractions[0])
	}
	fmt.Fprintf(out, "Sustainable rate: %.0f orders/s.\n\n", best)
	return best, nil
}

// pair runs the sustainable rate and the overload, with a GC before each
// so that neither starts with the other's garbage; profile profiles and
// traces the overload run.
func (r *overloadRun) pair(ctx context.Context, rate float64, profile bool) (overloadPair, error) {
	var p overloadPair
	p.baseHT = &handlerTimes{ok: newLatencies(), unavailable: newLatencies()}
	r.handlerTimes.Store(p.baseHT)
	var err error
	if p.base, err = r.openRun(ctx, rate, r.ocfg.Duration); err != nil {
		return p, err
	}
	p.overHT = &handlerTimes{ok: newLatencies(), unavailable: newLatencies()}
	r.handlerTimes.Store(p.overHT)
	defer r.handlerTimes.Store(nil)
	if profile {
		stop, _, err := startCPUProfile(filepath.Join(r.ocfg.ProfileDir, "cpu-overload.pprof"), r.log)
		if err != nil {
			return p, err
		}
		defer stop()
		go r.traceWindow(ctx, filepath.Join(r.ocfg.ProfileDir, "trace-overload.out"), r.ocfg.Duration/5+r.ocfg.Duration/2, 500*time.Millisecond)
	}
	if p.over, err = r.openRun(ctx, r.ocfg.Factor*rate, r.ocfg.Duration); err != nil {
		return p, err
	}
	return p, nil
}

// traceWindow writes a runtime trace of length d, starting after delay.
func (r *overloadRun) traceWindow(ctx context.Context, path string, delay, d time.Duration) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		r.log.Warn("bench: no runtime trace", "err", err)
		return
	}
	time.Sleep(d)
	trace.Stop()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		r.log.Warn("bench: write runtime trace", "err", err)
	}
}

// openRun drives orders open loop at rate for a fifth of duration, then
// duration measured, after a GC, and measures this process over the
// measured part.
func (r *overloadRun) openRun(ctx context.Context, rate float64, duration time.Duration) (openResult, error) {
	runtime.GC()
	var sampler *procSampler
	var proc procStats
	measure := func() func() {
		sampler = startProcSampler()
		return func() { proc = sampler.stop(0) }
	}
	load := openLoad{rate: rate, warmup: duration / 5, duration: duration}
	var res openResult
	var err error
	if r.gen != nil {
		res, err = r.gen.run(ctx, genJob{Rate: rate, Warmup: load.warmup, Duration: load.duration}, measure)
		if proc.otherCores > 0 {
			proc.otherCores = max(0, proc.otherCores-res.generatorCores)
		}
	} else {
		r.sender.reset()
		dials := r.sender.client.dials.Load()
		res, err = driveOpen(ctx, load, r.sender.openOrder, measure)
		res.dials, res.kinds = r.sender.client.dials.Load()-dials, r.sender.takeKinds()
	}
	res.proc = proc
	return res, err
}

// printPairs prints each repeat's two runs, then the medians against the
// targets.
func (r *overloadRun) printPairs(out io.Writer, rate float64, pairs []overloadPair) {
	fmt.Fprintf(out, "At the sustainable rate (%.0f/s) and at %g× it (%.0f/s), %s measured after a %s warm-up, %d repeat(s):\n",
		rate, r.ocfg.Factor, r.ocfg.Factor*rate, r.ocfg.Duration, r.ocfg.Duration/5, len(pairs))
	d := func(h *latencies, q float64) string { return roundDuration(h.quantile(q)).String() }
	load := func(over bool) string {
		if over {
			return fmt.Sprintf("%g×", r.ocfg.Factor)
		}
		return "1×"
	}
	fmt.Fprintf(out, "  As the clients saw it (from when each request was due; \"sent\": from when the generator sent it):\n")
	fmt.Fprintf(out, "  %3s %4s %9s %10s %6s %6s %9s %9s %9s %9s %9s %9s %9s\n", "rep", "load", "offered/s", "accepted/s", "shed", "failed",
		"acc p50", "acc p99", "503 p50", "503 p99", "acc sent", "503 sent", "lag p99")
	for i, p := range pairs {
		for _, res := range []openResult{p.base, p.over} {
			fmt.Fprintf(out, "  %3d %4s %9.0f %10.0f %5.1f%% %6d %9s %9s %9s %9s %9s %9s %9s\n", i+1, load(res.load.rate > rate),
				float64(res.started)/res.elapsed.Seconds(), res.acceptedRate(), 100*res.shedShare(), res.failed,
				d(res.acceptedLat, 0.5), d(res.acceptedLat, 0.99), d(res.shedLat, 0.5), d(res.shedLat, 0.99),
				d(res.acceptedSent, 0.99), d(res.shedSent, 0.99), d(res.lag, 0.99))
		}
	}
	fmt.Fprintf(out, "  (acc: accepted, 202; 503: shed; acc sent, 503 sent: p99 from when sent; lag: how late the generator sent requests, counted as waiting.)\n")
	fmt.Fprintf(out, "  Inside the process:\n")
	fmt.Fprintf(out, "  The platform's process (the node and the gateway), and the generator:\n")
	fmt.Fprintf(out, "  %3s %4s %9s %9s %9s %9s %9s %6s %6s %6s %7s %7s\n", "rep", "load", "hnd p99", "h503 p99", "sched p99", "heap peak", "heap mean",
		"cores", "gen", "others", "conns", "in fl.")
	for i, p := range pairs {
		for j, res := range []openResult{p.base, p.over} {
			ht := p.baseHT
			if j == 1 {
				ht = p.overHT
			}
			fmt.Fprintf(out, "  %3d %4s %9s %9s %9s %8.0fM %8.0fM %6.2f %6.2f %6.2f %7d %7d\n", i+1, load(j == 1),
				d(ht.ok, 0.99), d(ht.unavailable, 0.99), roundDuration(res.proc.schedP99), mib(res.proc.heapPeak), mib(res.proc.heapMean),
				res.proc.cores, res.generatorCores, res.proc.otherCores, res.dials, res.outstandingMax)
		}
	}
	fmt.Fprintf(out, "  (hnd, h503: p99 of the gateway's handler alone, for 202s and 503s; sched: p99 of goroutines' wait to run; heap: the heap's objects, every %s%s; cores: the platform process's; gen: the generator's, when apart; others: the rest of the machine's busy cores; conns: connections the generator dialled; in fl.: most requests in flight at once.)\n",
		heapSampleEvery, map[bool]string{true: "", false: ", generator included"}[r.gen != nil])
	for i, p := range pairs {
		if p.over.failed > 0 || p.base.failed > 0 {
			fmt.Fprintf(out, "  repeat %d: %d + %d failed; the first: %s%s\n", i+1, p.base.failed, p.over.failed, p.base.firstFailure, p.over.firstFailure)
		}
	}
	if last := pairs[len(pairs)-1].over; len(last.kinds) > 0 {
		fmt.Fprintf(out, "  the 503s of the last overload run, by detail:\n")
		type kv struct {
			k string
			n int64
		}
		var kinds []kv
		for k, n := range last.kinds {
			kinds = append(kinds, kv{k, n})
		}
		slices.SortFunc(kinds, func(a, b kv) int { return int(b.n - a.n) })
		for _, k := range kinds {
			fmt.Fprintf(out, "    %8d  %s\n", k.n, k.k)
		}
	}
	fmt.Fprintln(out)

	shedP99 := time.Duration(median(pairs, func(p overloadPair) float64 { return float64(p.over.shedLat.quantile(0.99)) }))
	accRatio := median(pairs, func(p overloadPair) float64 {
		return float64(p.over.acceptedLat.quantile(0.99)) / float64(max(1, p.base.acceptedLat.quantile(0.99)))
	})
	heapRatio := median(pairs, func(p overloadPair) float64 {
		return float64(p.over.proc.heapPeak) / float64(max(1, p.base.proc.heapPeak))
	})
	shedShare := median(pairs, func(p overloadPair) float64 { return p.over.shedShare() })
	shedSentP99 := time.Duration(median(pairs, func(p overloadPair) float64 { return float64(p.over.shedSent.quantile(0.99)) }))
	accSentRatio := median(pairs, func(p overloadPair) float64 {
		return float64(p.over.acceptedSent.quantile(0.99)) / float64(max(1, p.base.acceptedSent.quantile(0.99)))
	})
	fmt.Fprintf(out, "Against the targets (medians over the repeats; ratios are same-repeat):\n")
	if shedP99 == 0 {
		fmt.Fprintf(out, "  %-58s %9s   (target ≤ %s: nothing was shed)\n", "503s' p99 under overload", "-", overloadShedP99Target)
	} else {
		fmt.Fprintf(out, "  %-58s %9s   (target ≤ %s: %s)\n", "503s' p99 under overload", roundDuration(shedP99), overloadShedP99Target,
			metOrMissed(shedP99 <= overloadShedP99Target))
	}
	fmt.Fprintf(out, "  %-58s %9.2f   (target ≤ %g: %s)\n", "accepted p99 under overload ÷ at the sustainable rate", accRatio, overloadAcceptedP99Ratio,
		metOrMissed(accRatio <= overloadAcceptedP99Ratio))
	fmt.Fprintf(out, "  %-58s %9s / %.2f   (without the generator's lag)\n", "  the same from when sent: 503s' p99 / accepted ratio", roundDuration(shedSentP99), accSentRatio)
	fmt.Fprintf(out, "  %-58s %9.2f   (target ≤ %g: %s)\n", "peak heap under overload ÷ at the sustainable rate", heapRatio, overloadHeapRatio,
		metOrMissed(heapRatio <= overloadHeapRatio))
	fmt.Fprintf(out, "  %-58s %8.1f%%\n\n", "share shed under overload", 100*shedShare)
}

// printCPUProfile summarizes the CPU profile of the last overload run.
func (r *overloadRun) printCPUProfile(out io.Writer) error {
	path := filepath.Join(r.ocfg.ProfileDir, "cpu-overload.pprof")
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return err
	}
	p, err := parseProfile(data)
	if err != nil {
		return err
	}
	total, byArea, byPackage, byFunction, err := profileShares(p, nil, "cpu", cpuAreas, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Where the CPU went: the last overload run (%s, warm-up included: %s of CPU):\n", path, time.Duration(total).Round(time.Millisecond))
	writeShares(out, total, byArea, byPackage, byFunction, 12, func(v int64) string { return time.Duration(v).Round(time.Millisecond).String() })
	fmt.Fprintln(out)
	return nil
}

// slotWait names a gateway's SlotWaitMax.
func slotWait(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return d.String()
}
