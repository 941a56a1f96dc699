package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// Grain kinds of the dealing cycle.
const (
	AggregatorKind = "Aggregator" // one per pot group: identity "<group>"
	AssetBookKind  = "AssetBook"  // one per dealing day and asset: identity "<date>/<ISIN>"
	CycleKind      = "Cycle"      // one per dealing day: identity "<date>"
	PricesKind     = "Prices"     // one per date: identity "<date>"
)

// Streams of the system group.
func aggregatorStream(group uint32) string { return "agg/" + strconv.FormatUint(uint64(group), 10) }
func assetBookStream(date domain.Date, asset domain.ISIN) string {
	return "book/" + date.String() + "/" + string(asset)
}
func cycleStream(date domain.Date) string  { return "cycle/" + date.String() }
func pricesStream(date domain.Date) string { return "prices/" + date.String() }

// dealingStream is the register of the cycles (register.go).
const dealingStream = "dealing"

// Custodian is ACME's side of the custodian protocol (package custodian):
// what the dealing cycle needs of it.
type Custodian interface {
	// SendOrder sends (or resends) a net order; attempt counts the sends.
	SendOrder(ctx context.Context, order *pb.CustodianOrder, attempt int) error
	// PublishPrices puts a date's closing prices on the price feed the
	// custodian executes at; it fails with ErrPriceFeedConflict if the feed
	// holds other prices for the date.
	PublishPrices(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error
	// Holdings asks for the custodian's holdings statement as of a date.
	Holdings(ctx context.Context, asOf domain.Date) (*pb.HoldingsStatement, error)
}

// ErrPriceFeedConflict: the custodian's price feed holds other prices for
// the date.
var ErrPriceFeedConflict = errors.New("actors: the price feed holds other prices for the date")

// Notifier publishes notifications for members downstream (on NATS): a
// contract note per executed trade. Publishing is at least once: a note may
// be published again after a restart, with the same id (the trade's).
type Notifier interface {
	PublishContractNotes(ctx context.Context, notes []*pb.ContractNote) error
}

// DealingConfig configures the dealing cycle's grains.
type DealingConfig struct {
	// PotCallsInFlight bounds the calls one aggregator makes to its pots at
	// once (allocations, settlements, rebalances): enough to keep a node's
	// pots busy without flooding its mailboxes. Default 32.
	PotCallsInFlight int
	// PotCallAttempts: a pot call that fails (timeout, unavailable) is
	// tried this many times before the step fails (the cycle can be run
	// again). Default 5.
	PotCallAttempts int
	// ResendInterval: a custodian order without an execution report is
	// resent this often. Default 2 s.
	ResendInterval time.Duration
	// ExecutionWait bounds how long a cycle waits for execution reports
	// before it stops (a run again resumes the wait). Default 2 min.
	ExecutionWait time.Duration
	// SweepChunk: the rebalance sweep records its progress every this many
	// pot calls (and at its end), so a crash repeats at most that many
	// calls. Default 256.
	SweepChunk int
	// StepTimeout bounds one call from the cycle to an aggregator or asset
	// book. Default 10 min.
	StepTimeout time.Duration
	// IdleTimeout passivates the dealing grains. An aggregator rebuilds its
	// replicas from its snapshot and its group's feed on activation, so it
	// should stay up. Default 1 h.
	IdleTimeout time.Duration
	// AggregatorSnapshotEvery: an aggregator saves a snapshot of its
	// replicas after a step once its group's feed has moved this many
	// positions since its last one, so that an activation reads the
	// snapshot and the feed after it rather than the whole feed. A group
	// of 16,000 pots (a million over 63 groups) appends ~75,000 events a
	// dealing day and its snapshot is ~10 MB: about one a day. Negative:
	// never (and never read). Default 100,000.
	AggregatorSnapshotEvery int
	// WindowAheadDealingDays is how far after today the dealing window
	// reaches (domain.DealingRegister.Window): prices and cycles are
	// accepted up to this many dealing days after today. Default 1 (the
	// next dealing day after today: a day's closing prices cannot be known
	// earlier). Negative: no bound.
	WindowAheadDealingDays int
	// SimulatedCalendar makes the window's "today" the latest dealing day
	// a cycle ran for, when that is after the clock's today: a platform
	// that simulates the calendar (dev) runs the coming dealing days at
	// once, in order, and its window moves with them.
	SimulatedCalendar bool
}

// EnsureDefaults fills zero fields with their defaults.
func (c *DealingConfig) EnsureDefaults() {
	if c.PotCallsInFlight == 0 {
		c.PotCallsInFlight = 32
	}
	if c.PotCallAttempts == 0 {
		c.PotCallAttempts = 5
	}
	if c.ResendInterval == 0 {
		c.ResendInterval = 2 * time.Second
	}
	if c.ExecutionWait == 0 {
		c.ExecutionWait = 2 * time.Minute
	}
	if c.SweepChunk == 0 {
		c.SweepChunk = 256
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = 10 * time.Minute
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = time.Hour
	}
	if c.AggregatorSnapshotEvery == 0 {
		c.AggregatorSnapshotEvery = 100_000
	}
	if c.WindowAheadDealingDays == 0 {
		c.WindowAheadDealingDays = 1
	}
}

// DealingDeps is what the dealing grains of a node share.
type DealingDeps struct {
	Journal   persistence.Journal
	Catalogue *domain.Catalogue
	Calendar  *domain.Calendar
	// Market is this node's market: its cut-off fence.
	Market    *MarketState
	Custodian Custodian // nil: this node cannot run cycles
	Notifier  Notifier  // nil: contract notes are not published
	Now       func() time.Time
	Config    DealingConfig
	Logger    *slog.Logger
	// Metrics, if set, counts the refused execution reports.
	Metrics *Metrics

	// mu guards node, set once the node has started (the kinds are made
	// before it).
	mu   sync.Mutex
	node *cluster.Node
}

// executionRefused raises the alarm of a refused execution report: an
// ERROR line and the counter.
func (d *DealingDeps) executionRefused(r *pb.ExecutionReport, reason string) {
	d.Logger.Error("execution report refused: it does not match an order ACME sent; kept for investigation",
		"execution_id", r.GetExecutionId(), "order", r.GetClOrdId(), "asset", r.GetAsset(), "dealing_date", r.GetDealingDate(), "reason", reason)
	if d.Metrics != nil {
		d.Metrics.ExecutionsRefused.Inc()
	}
}

// SetNode gives the dealing grains the node to make their calls from.
func (d *DealingDeps) SetNode(n *cluster.Node) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.node = n
}

func (d *DealingDeps) clusterNode() *cluster.Node {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.node
}

// Kinds returns the dealing cycle's grain kinds.
func (d *DealingDeps) Kinds() []cluster.Kind {
	d.Config.EnsureDefaults()
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	idle := d.Config.IdleTimeout
	return []cluster.Kind{
		{Name: AggregatorKind, IdleTimeout: idle, New: newGrainKind(AggregatorKind, d.Logger, func() grainLogic { return &aggregator{deps: d} })},
		{Name: AssetBookKind, IdleTimeout: idle, New: newGrainKind(AssetBookKind, d.Logger, func() grainLogic { return &assetBook{deps: d} })},
		{Name: CycleKind, IdleTimeout: idle, New: newGrainKind(CycleKind, d.Logger, func() grainLogic { return &cycle{deps: d} })},
		{Name: PricesKind, IdleTimeout: idle, New: newGrainKind(PricesKind, d.Logger, func() grainLogic { return &prices{deps: d} })},
		{Name: ReconciliationKind, IdleTimeout: idle, New: newGrainKind(ReconciliationKind, d.Logger, func() grainLogic { return &reconciliation{deps: d} })},
	}
}

// systemStream is an event-sourced stream of the system group, read and
// appended with its expected version.
type systemStream struct {
	j       persistence.Journal
	name    string
	version uint64
	// fence, if set, is tripped by a version conflict: the stream is its
	// grain's own (see fence).
	fence *fence
}

// load reads every event of the stream, calling apply for each.
func (s *systemStream) load(ctx context.Context, apply func(m proto.Message) error) error {
	return eachEvent(ctx, s.j, s.name, s.version+1, func(e persistence.Event) error {
		m, err := codec.DecodeSystemEvent(e.Type, e.Data)
		if err != nil {
			return err
		}
		if err := apply(m); err != nil {
			return err
		}
		s.version = e.Version
		return nil
	})
}

// append appends events at the stream's version. A conflict means another
// activation of the grain wrote: it trips the grain's fence, and the grain
// stops once the request at hand is answered.
func (s *systemStream) append(ctx context.Context, events ...proto.Message) error {
	req := persistence.AppendRequest{Stream: s.name, Group: SystemGroup(s.j), ExpectedVersion: s.version}
	for _, m := range events {
		typ, data, err := codec.EncodeSystemEvent(m)
		if err != nil {
			return err
		}
		req.Events = append(req.Events, persistence.NewEvent{Type: typ, Data: data})
	}
	v, err := s.j.Append(ctx, req)
	if err != nil {
		err = fmt.Errorf("append to %s: %w", s.name, err)
		if errors.Is(err, persistence.ErrVersionConflict) {
			s.fence.trip(err)
		}
		return err
	}
	s.version = v
	return nil
}

// errNoNode: a dealing grain was asked to call out before its node started.
var errNoNode = errors.New("actors: the node has not started")

func nanosNow(now func() time.Time) int64 { return now().UnixNano() }
