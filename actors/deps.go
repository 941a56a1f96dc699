// Package actors holds the actor shells of mastertrust: the pot grain, and
// (with the dealing cycle) the aggregators and asset books. A shell loads
// state, asks domain to decide, makes the events durable, and replies; the
// business rules are all in domain.
package actors

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
)

// PotKind is the grain kind of pots: the proto service name.
const PotKind = "Pot"

// PotStream is the journal stream of a member's pot.
func PotStream(memberID string) string { return "pot/" + memberID }

// PotGroup is the pot group of a member: it partitions the journal's feed,
// the aggregators and the rebalance sweep. FNV-1a is stable across
// processes and releases, which the group of an existing stream must be.
func PotGroup(memberID string, groups uint32) uint32 {
	h := fnv.New32a()
	h.Write([]byte(memberID))
	return h.Sum32() % groups
}

// Market is what a pot needs to know of the world besides its own state:
// the latest closing prices and the first dealing day still open. The
// dealing cycle changes it; pots only read it.
type Market interface {
	Prices() map[domain.ISIN]domain.PricePoint
	OpenFrom() domain.Date
}

// MarketState is a Market held in memory, safe for concurrent use.
type MarketState struct {
	mu       sync.RWMutex
	prices   map[domain.ISIN]domain.PricePoint // mu guards; replaced, never changed in place
	openFrom domain.Date                       // mu guards
}

// NewMarketState is a market with no prices and every day open.
func NewMarketState() *MarketState {
	return &MarketState{prices: map[domain.ISIN]domain.PricePoint{}}
}

// Prices returns the latest prices. The map must not be changed.
func (m *MarketState) Prices() map[domain.ISIN]domain.PricePoint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.prices
}

// OpenFrom returns the first dealing day still open.
func (m *MarketState) OpenFrom() domain.Date {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.openFrom
}

// SetPrices records the closing prices of a date; a price older than the
// one held is ignored.
func (m *MarketState) SetPrices(date domain.Date, prices map[domain.ISIN]domain.Price) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[domain.ISIN]domain.PricePoint, len(m.prices)+len(prices))
	for a, p := range m.prices {
		next[a] = p
	}
	for a, p := range prices {
		if old, ok := next[a]; !ok || !old.Date.After(date) {
			next[a] = domain.PricePoint{Price: p, Date: date}
		}
	}
	m.prices = next
}

// SetOpenFrom records that dealing days before d are cut off. It never
// moves back.
func (m *MarketState) SetOpenFrom(d domain.Date) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d.After(m.openFrom) {
		m.openFrom = d
	}
}

// PotConfig configures the pot grains of a node.
type PotConfig struct {
	// SnapshotEvery: a pot saves a snapshot once this many events were
	// appended since its last one, so recovery replays at most about that
	// many. Default: 100.
	SnapshotEvery uint64
	// AppendTimeout bounds one journal append. Past it the pot answers
	// "unavailable" and stops (the append may still land: its retry, with
	// the same idempotency key, finds out). Default: 5 s.
	AppendTimeout time.Duration
	// BatchEventsMax bounds the events of one append: a pot appends
	// whatever its mailbox held, in batches up to this size. It must not
	// exceed persistence.AppendEventsMax. Default: 256.
	BatchEventsMax int
	// RecoveriesMax bounds the pots of one node recovering (reading their
	// journal) at once, so that a node taking over many pots does not
	// stampede the journal. Default: 64.
	RecoveriesMax int
}

// EnsureDefaults fills zero fields with their defaults.
func (c *PotConfig) EnsureDefaults() {
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = 100
	}
	if c.AppendTimeout == 0 {
		c.AppendTimeout = 5 * time.Second
	}
	if c.BatchEventsMax == 0 {
		c.BatchEventsMax = 256
	}
	if c.RecoveriesMax == 0 {
		c.RecoveriesMax = 64
	}
}

// Validate reports every invalid field.
func (c *PotConfig) Validate() error {
	var problems []string
	if c.BatchEventsMax < 1 || c.BatchEventsMax > persistence.AppendEventsMax {
		problems = append(problems, fmt.Sprintf("BatchEventsMax %d not in [1, %d]", c.BatchEventsMax, persistence.AppendEventsMax))
	}
	if c.AppendTimeout < 0 {
		problems = append(problems, fmt.Sprintf("AppendTimeout %s is negative", c.AppendTimeout))
	}
	if c.RecoveriesMax < 0 {
		problems = append(problems, fmt.Sprintf("RecoveriesMax %d is negative", c.RecoveriesMax))
	}
	if len(problems) > 0 {
		return fmt.Errorf("actors: invalid pot config: %v", problems)
	}
	return nil
}

// PotDeps is what the pot grains of a node share.
type PotDeps struct {
	Journal   persistence.Journal
	Catalogue *domain.Catalogue
	Calendar  *domain.Calendar
	Market    Market
	Now       func() time.Time
	Config    PotConfig
	Metrics   *Metrics // may be nil
	Logger    *slog.Logger
	// recoveries is the semaphore of RecoveriesMax; see NewPotKind.
	recoveries chan struct{}
}
