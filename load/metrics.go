package load

import (
	"slices"
	"sync"
	"time"

	"github.com/acme/mastertrust/internal/procmem"
)

// recorder keeps every HTTP attempt of a run (12 bytes each: a run of a
// million members for 30 days makes ~7 million, ~80 MB) and a sample of
// the processes every second, from which the report's figures and charts
// are made once the run ends.
type recorder struct {
	start time.Time

	mu sync.Mutex
	// phaseStart is the index of the current phase's first attempt: the
	// run's phases (the opening, each day, the checks) follow each other,
	// so a phase's attempts are the log's tail since it began.
	phaseStart int
	kinds      []string // kind names, by index
	kindIndex  map[string]uint8
	attempts   []attempt
	samples    []Sample
}

// attempt is one HTTP attempt.
type attempt struct {
	atMs      uint32 // since the run started, when the answer came
	latencyUs uint32
	status    uint16 // 0: no answer
	kind      uint8
}

// Sample is what the run saw of the platform at one moment.
type Sample struct {
	AtSeconds float64 `json:"atSeconds"`
	// RSSBytes and HeapBytes are this process's (with --start dev, the
	// platform's and the load generator's together).
	RSSBytes  uint64 `json:"rssBytes"`
	HeapBytes uint64 `json:"heapBytes"`
	// ActivePots are the pots active on every cluster member (-1: not
	// known).
	ActivePots int64 `json:"activePots"`
	// ProcessRSSBytes are the resident memory of the platform's processes
	// that the run started (Config.Processes), by name.
	ProcessRSSBytes map[string]uint64 `json:"processRSSBytes,omitempty"`
	// MemberHeapBytes are each cluster member's Go heap, as it reports it
	// in GET /v1/cluster, by member id.
	MemberHeapBytes map[string]uint64 `json:"memberHeapBytes,omitempty"`
}

func newRecorder() *recorder {
	return &recorder{start: time.Now(), kindIndex: map[string]uint8{}}
}

// newPhase starts a phase: the attempts from now are its own.
func (m *recorder) newPhase() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.phaseStart = len(m.attempts)
}

func (m *recorder) attempt(kind string, status int, took time.Duration) {
	at := time.Since(m.start)
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.kindIndex[kind]
	if !ok {
		k = uint8(len(m.kinds))
		m.kinds = append(m.kinds, kind)
		m.kindIndex[kind] = k
	}
	m.attempts = append(m.attempts, attempt{atMs: uint32(at.Milliseconds()), latencyUs: uint32(min(took.Microseconds(), 1<<32-1)),
		status: uint16(status), kind: k})
}

func (m *recorder) sample(cl clusterReading, processes map[string]int) {
	rss := procmem.Resident()
	var byProcess map[string]uint64
	if len(processes) > 0 {
		byProcess = map[string]uint64{}
		for name, pid := range processes {
			byProcess[name] = procmem.ResidentOf(pid)
		}
	}
	s := Sample{AtSeconds: time.Since(m.start).Seconds(), RSSBytes: rss, HeapBytes: procmem.HeapObjects(), ActivePots: cl.activePots,
		ProcessRSSBytes: byProcess, MemberHeapBytes: cl.memberHeapBytes}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
}

// LatencySummary is one kind's requests of one day.
type LatencySummary struct {
	Attempts int64   `json:"attempts"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
}

// phaseLatencies summarises the current phase's attempts by kind.
func (m *recorder) phaseLatencies() map[string]LatencySummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	byKind := map[uint8][]uint32{}
	for _, a := range m.attempts[m.phaseStart:] {
		byKind[a.kind] = append(byKind[a.kind], a.latencyUs)
	}
	out := map[string]LatencySummary{}
	for k, l := range byKind {
		slices.Sort(l)
		out[m.kinds[k]] = LatencySummary{Attempts: int64(len(l)), P50Ms: usMs(quantile(l, 0.5)), P99Ms: usMs(quantile(l, 0.99))}
	}
	return out
}

// byStatus counts every attempt by status (0: no answer) and the 5xx
// answers other than 503.
func (m *recorder) byStatus() (counts map[int]int64, errors5xx int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts = map[int]int64{}
	for _, a := range m.attempts {
		counts[int(a.status)]++
		if a.status >= 500 && a.status != 503 {
			errors5xx++
		}
	}
	return counts, errors5xx
}

// Window is the requests of one kind answered in one window of the run.
type Window struct {
	StartSeconds float64 `json:"startSeconds"`
	Kind         string  `json:"kind"`
	Attempts     int64   `json:"attempts"`
	P50Ms        float64 `json:"p50Ms"`
	P99Ms        float64 `json:"p99Ms"`
	// NotOK are the attempts answered otherwise than 2xx, 409 or 422, by
	// status ("0": no answer).
	NotOK map[int]int64 `json:"notOK,omitempty"`
}

// windows cuts the run's attempts into windows of width, by kind.
func (m *recorder) windows(width time.Duration) []Window {
	m.mu.Lock()
	defer m.mu.Unlock()
	type cell struct {
		latencies []uint32
		notOK     map[int]int64
	}
	cells := map[[2]int]*cell{} // window, kind
	last := 0
	for _, a := range m.attempts {
		w := int(time.Duration(a.atMs) * time.Millisecond / width)
		last = max(last, w)
		c := cells[[2]int{w, int(a.kind)}]
		if c == nil {
			c = &cell{}
			cells[[2]int{w, int(a.kind)}] = c
		}
		c.latencies = append(c.latencies, a.latencyUs)
		if ok := a.status/100 == 2 || a.status == 409 || a.status == 422; !ok {
			if c.notOK == nil {
				c.notOK = map[int]int64{}
			}
			c.notOK[int(a.status)]++
		}
	}
	var out []Window
	for w := 0; w <= last; w++ {
		for k := range m.kinds {
			c := cells[[2]int{w, k}]
			if c == nil {
				continue
			}
			slices.Sort(c.latencies)
			out = append(out, Window{StartSeconds: (time.Duration(w) * width).Seconds(), Kind: m.kinds[k], Attempts: int64(len(c.latencies)),
				P50Ms: usMs(quantile(c.latencies, 0.5)), P99Ms: usMs(quantile(c.latencies, 0.99)), NotOK: c.notOK})
		}
	}
	return out
}

func (m *recorder) takeSamples() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples)
}

func quantile(sorted []uint32, q float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func usMs(us uint32) float64 { return float64(us) / 1000 }
