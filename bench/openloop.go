package bench

import (
	"context"
	"math"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/mastertrust/internal/procmem"
)

// An open-loop load driver: requests started at a fixed rate whatever the
// answers. The closed loop of drive never overloads anything (its workers
// wait for their answers, so the arrival rate falls as latency rises);
// clients on the internet do not wait for each other.

// latencies is a histogram of durations that many goroutines add to at
// once without a lock: buckets 5% wide from 1 µs to about 5 minutes, so
// that a quantile is within 5% of the truth and a run of millions of
// requests keeps a few kilobytes (a slice per request would grow the heap
// the overload workload measures).
type latencies struct {
	counts [latencyBuckets]atomic.Int64
	n      atomic.Int64
	max    atomic.Int64
}

const (
	latencyBucketMin = time.Microsecond
	latencyGrowth    = 1.05
	// latencyBuckets: 1 µs × 1.05^400 ≈ 5 min.
	latencyBuckets = 400
)

// latencyBounds[i] is the upper bound of bucket i.
var latencyBounds = func() (b [latencyBuckets]time.Duration) {
	v := float64(latencyBucketMin)
	for i := range b {
		b[i] = time.Duration(v)
		v *= latencyGrowth
	}
	return b
}()

func newLatencies() *latencies { return &latencies{} }

func (h *latencies) add(d time.Duration) {
	i, _ := slices.BinarySearch(latencyBounds[:], d)
	h.counts[min(i, latencyBuckets-1)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *latencies) count() int64 { return h.n.Load() }

// quantile is the upper bound of the bucket holding the q-th quantile,
// never above the largest value added; 0 for an empty histogram.
func (h *latencies) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := min(int64(q*float64(n)), n-1)
	var seen int64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen > rank {
			return min(latencyBounds[i], time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// openLoad is one open-loop measurement: requests started at rate per
// second, one every 1/rate, each on its own goroutine; for warmup
// unmeasured, then for duration measured.
type openLoad struct {
	rate             float64
	warmup, duration time.Duration
}

// openOutcome is what one open-loop request came to.
type openOutcome int

const (
	openAccepted openOutcome = iota // done (202)
	openShed                        // 503 unavailable: nothing done, retry
	openFailed                      // anything else: an error, another status
)

// openResult is what driveOpen measured: the requests due in the
// measured part, as the clients saw them, and the platform's process over
// it (proc, filled in by the caller).
type openResult struct {
	load openLoad
	// started is the requests due in the measured part; accepted, shed and
	// failed are their outcomes.
	started, accepted, shed, failed int64
	// firstFailure says what the first failed request got.
	firstFailure string
	// acceptedLat and shedLat are the latencies of the accepted and the
	// shed requests, each from the time the request was due (not the time
	// the generator got round to it: a late start is waiting too).
	acceptedLat, shedLat *latencies
	// acceptedSent and shedSent are the same from when the generator sent
	// the request, without its lag.
	acceptedSent, shedSent *latencies
	// lag is how late the generator started requests: its own share of
	// the latencies, which grows when its CPUs are saturated.
	lag *latencies
	// outstandingMax is the most requests in flight at once.
	outstandingMax int64
	// elapsed is the measured part's wall time.
	elapsed time.Duration
	// generatorCores is the generator's CPU time ÷ wall time over the
	// measured part, when it runs in a process of its own (0 in process).
	generatorCores float64
	// dials are the connections the generator dialled in the run, and
	// kinds its 503s by problem detail.
	dials int64
	kinds map[string]int64
	// proc is the platform's process over the measured part.
	proc procStats
}

func (r openResult) shedShare() float64 {
	if r.started == 0 {
		return 0
	}
	return float64(r.shed) / float64(r.started)
}

// acceptedRate is the accepted requests per second of the measured part.
func (r openResult) acceptedRate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.accepted) / r.elapsed.Seconds()
}

// procStats is what a process did over a measured part.
type procStats struct {
	// heapPeak and heapMean are the heap's object bytes (live and not yet
	// swept: what the process holds), sampled every heapSampleEvery.
	heapPeak, heapMean uint64
	// cores is the process's CPU time ÷ wall time; otherCores the rest of
	// the machine's busy CPU time ÷ wall time, less excluded (the load
	// generator's, when it runs apart): the other work sharing the machine
	// (-1 where unknown).
	cores, otherCores float64
	// schedP99 is the 99th percentile of the time goroutines waited to run
	// (runtime/metrics /sched/latencies:seconds).
	schedP99 time.Duration
	elapsed  time.Duration
}

// heapSampleEvery is how often a procSampler reads the heap's size: a few
// hundred samples per run; reading runtime/metrics stops nothing.
const heapSampleEvery = 20 * time.Millisecond

// procSampler measures this process from its start to its stop.
type procSampler struct {
	start                    time.Time
	cpu0, busy0, total0      time.Duration
	machineOK                bool
	sched0                   *metrics.Float64Histogram
	stopSampling, sampled    chan struct{}
	heapPeak, heapSum, heapN uint64
}

func startProcSampler() *procSampler {
	p := &procSampler{start: time.Now(), cpu0: processCPU(), stopSampling: make(chan struct{}), sampled: make(chan struct{})}
	p.busy0, p.total0, p.machineOK = machineCPU()
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(sample)
	// Read reuses the histogram's memory: keep a copy.
	h := sample[0].Value.Float64Histogram()
	p.sched0 = &metrics.Float64Histogram{Counts: slices.Clone(h.Counts), Buckets: h.Buckets}
	go func() {
		defer close(p.sampled)
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			h := procmem.HeapObjects()
			p.heapPeak = max(p.heapPeak, h)
			p.heapSum += h
			p.heapN++
			select {
			case <-t.C:
			case <-p.stopSampling:
				return
			}
		}
	}()
	return p
}

// stop ends the sampling; excluded is CPU time (as cores) of other
// processes of the measurement, left out of otherCores.
func (p *procSampler) stop(excluded float64) procStats {
	st := procStats{elapsed: time.Since(p.start), otherCores: -1}
	st.cores = (processCPU() - p.cpu0).Seconds() / st.elapsed.Seconds()
	if busy1, total1, ok := machineCPU(); ok && p.machineOK && total1 > p.total0 {
		// The machine's busy share of its CPUs, as cores, less ours.
		busy := float64(busy1-p.busy0) / float64(total1-p.total0) * float64(runtime.NumCPU())
		st.otherCores = max(0, busy-st.cores-excluded)
	}
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(sample)
	st.schedP99 = histogramQuantileDelta(p.sched0, sample[0].Value.Float64Histogram(), 0.99)
	close(p.stopSampling)
	<-p.sampled
	st.heapPeak = p.heapPeak
	if p.heapN > 0 {
		st.heapMean = p.heapSum / p.heapN
	}
	return st
}

// driveOpen starts op at load.rate per second for load.warmup plus
// load.duration, passing n, the request's number in the run (0, 1, …),
// then waits for every request to end, and returns what the measured
// part's requests came to. op returns its outcome and, for a failure, what
// happened. measure, if not nil, is called as the measured part begins,
// and the function it returns as it ends. driveOpen fails only if ctx
// ends.
func driveOpen(ctx context.Context, load openLoad, op func(ctx context.Context, n int64) (openOutcome, string),
	measure func() (end func())) (openResult, error) {
	res := openResult{load: load, acceptedLat: newLatencies(), shedLat: newLatencies(), acceptedSent: newLatencies(),
		shedSent: newLatencies(), lag: newLatencies()}
	interval := time.Duration(float64(time.Second) / load.rate)
	if interval <= 0 {
		interval = 1
	}
	firstMeasured := int64(load.warmup / interval)
	total := firstMeasured + int64(load.duration/interval)
	var (
		wg                          sync.WaitGroup
		accepted, shed, failed      atomic.Int64
		outstanding, outstandingMax atomic.Int64
		failOnce                    sync.Once
		measureStart                time.Time
		measuring                   bool
		end                         func()
	)
	beginMeasuring := func() {
		measuring = true
		measureStart = time.Now()
		if measure != nil {
			end = measure()
		}
	}
	endMeasuring := func() {
		res.elapsed = time.Since(measureStart)
		if end != nil {
			end()
		}
	}
	goers := newGoers(openGoersIdleMax)
	defer goers.stop()
	launch := func(n int64, due time.Time) {
		measured := n >= firstMeasured
		wg.Add(1)
		goers.run(func() {
			defer wg.Done()
			sent := time.Now()
			if measured {
				res.lag.add(sent.Sub(due))
			}
			o := outstanding.Add(1)
			for {
				m := outstandingMax.Load()
				if o <= m || outstandingMax.CompareAndSwap(m, o) {
					break
				}
			}
			outcome, what := op(ctx, n)
			end := time.Now()
			outstanding.Add(-1)
			if !measured {
				return
			}
			switch outcome {
			case openAccepted:
				accepted.Add(1)
				res.acceptedLat.add(end.Sub(due))
				res.acceptedSent.add(end.Sub(sent))
			case openShed:
				shed.Add(1)
				res.shedLat.add(end.Sub(due))
				res.shedSent.add(end.Sub(sent))
			default:
				failed.Add(1)
				failOnce.Do(func() { res.firstFailure = what })
			}
		})
	}

	start := time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for n := int64(0); n < total && ctx.Err() == nil; {
		due := start.Add(time.Duration(n) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
			}
		}
		// Start every request now due: a generator that fell behind
		// catches up at once rather than sending fewer.
		now := time.Now()
		for ; n < total; n++ {
			due := start.Add(time.Duration(n) * interval)
			if due.After(now) {
				break
			}
			if n == firstMeasured {
				beginMeasuring()
			}
			launch(n, due)
		}
	}
	if !measuring {
		beginMeasuring()
	}
	endMeasuring()
	wg.Wait()
	res.started = total - firstMeasured
	res.accepted, res.shed, res.failed = accepted.Load(), shed.Load(), failed.Load()
	res.outstandingMax = outstandingMax.Load()
	return res, ctx.Err()
}

// histogramQuantileDelta is the q-th quantile of the observations added to
// a cumulative runtime/metrics histogram between before and after (the
// upper bound of its bucket; 0 if none).
func histogramQuantileDelta(before, after *metrics.Float64Histogram, q float64) time.Duration {
	if before == nil || after == nil || len(before.Counts) != len(after.Counts) {
		return 0
	}
	var n uint64
	for i := range after.Counts {
		n += after.Counts[i] - before.Counts[i]
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	var seen uint64
	for i := range after.Counts {
		if seen += after.Counts[i] - before.Counts[i]; seen > rank {
			upper := after.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = after.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}

// goers runs functions on goroutines that are kept for reuse, never making
// one wait: with no goroutine idle, a new one starts (so the load stays
// open loop). A goroutine new for each request grows its stack again
// through the client's call path, which cost the generator ~5% of the
// run's CPU (runtime.stackpoolalloc).
type goers struct {
	work    chan func() // unbuffered: a send succeeds only to an idle goroutine
	idle    atomic.Int32
	idleMax int32
	done    chan struct{}
}

// openGoersIdleMax bounds the goroutines kept idle between requests: the
// requests in flight at once at a few thousand per second.
const openGoersIdleMax = 1024

func newGoers(idleMax int) *goers {
	return &goers{work: make(chan func()), idleMax: int32(idleMax), done: make(chan struct{})}
}

// stop lets the idle goroutines exit.
func (g *goers) stop() { close(g.done) }

func (g *goers) run(fn func()) {
	select {
	case g.work <- fn:
	default:
		go g.loop(fn)
	}
}

func (g *goers) loop(fn func()) {
	for {
		fn()
		fn = nil
		if g.idle.Add(1) > g.idleMax {
			g.idle.Add(-1)
			return
		}
		select {
		case fn = <-g.work:
			g.idle.Add(-1)
		case <-g.done:
			g.idle.Add(-1)
			return
		}
	}
}
