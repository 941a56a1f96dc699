package load

import (
	"slices"
	"sync"
	"time"
)

// metrics counts every HTTP attempt by request kind and status, with its
// latency, per day of the run.
type metrics struct {
	mu        sync.Mutex
	day       int
	byStatus  map[int]int64 // every attempt's status (0: no answer)
	errors5xx int64         // 5xx answers other than 503
	perDay    map[int]map[string]*kindStats
}

type kindStats struct {
	attempts  int64
	latencies []time.Duration
}

func newMetrics() *metrics {
	return &metrics{byStatus: map[int]int64{}, perDay: map[int]map[string]*kindStats{}}
}

func (m *metrics) setDay(day int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.day = day
}

func (m *metrics) attempt(kind string, status int, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byStatus[status]++
	if status >= 500 && status != 503 {
		m.errors5xx++
	}
	kinds := m.perDay[m.day]
	if kinds == nil {
		kinds = map[string]*kindStats{}
		m.perDay[m.day] = kinds
	}
	s := kinds[kind]
	if s == nil {
		s = &kindStats{}
		kinds[kind] = s
	}
	s.attempts++
	s.latencies = append(s.latencies, took)
}

// LatencySummary is one kind's requests of one day.
type LatencySummary struct {
	Attempts int64   `json:"attempts"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
}

// dayLatencies summarises day's attempts by kind.
func (m *metrics) dayLatencies(day int) map[string]LatencySummary {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]LatencySummary{}
	for kind, s := range m.perDay[day] {
		l := slices.Clone(s.latencies)
		slices.Sort(l)
		out[kind] = LatencySummary{Attempts: s.attempts, P50Ms: ms(quantile(l, 0.5)), P99Ms: ms(quantile(l, 0.99))}
	}
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
