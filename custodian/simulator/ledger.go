package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// The simulator's own books: every execution, durable in a Pebble journal
// under its data directory (not on the NATS server it talks to: a custodian
// keeps its ledger in its own systems, and the bus may be ACME's, wiped or
// replaced without the custodian forgetting what it executed).
//
// Each execution is one event, the execution report itself, appended to the
// stream "exec/<cl_ord_id>" with expected version 0: the journal refuses a
// second execution of a client order id even if memory were wrong. Appends
// are synced before they return, so an execution is durable before its
// report is published and before its order message is acknowledged. On
// start the ledger replays the journal's feed (one group) in commit order.

const (
	// executedEventType is the journal type of an execution event.
	executedEventType = "custodian.Executed"
	// executionStreamPrefix prefixes an execution's journal stream.
	executionStreamPrefix = "exec/"
	// ledgerGroup is the only group of the simulator's journal.
	ledgerGroup = 0
	// replayBatchEventsMax bounds one feed read of the replay: 1,024
	// reports of ~300 bytes is 300 KB.
	replayBatchEventsMax = 1024
	// ledgerCacheBytes and ledgerMemTableBytes size Pebble for a journal of
	// a few thousand small events a year: the journal defaults (64 MiB
	// each) are for a node's pots.
	ledgerCacheBytes    = 8 << 20
	ledgerMemTableBytes = 4 << 20
	// orderIDFormat numbers the custodian's order ids in execution order.
	orderIDFormat = "CUST-%08d"
	// executionIDPrefix makes an execution id from the client order id: one
	// execution per order, so the id is deterministic and a repeat carries
	// the same one.
	executionIDPrefix = "X-"
)

// errAlreadyExecuted: the journal already holds an execution of the order.
var errAlreadyExecuted = errors.New("custodian: order already executed")

// executed is one execution in the ledger: the report as published and its
// numbers in domain form. Immutable once recorded.
type executed struct {
	report *pb.ExecutionReport
	custodian.Execution
}

// ledger is the simulator's books. Only the order loop records; the holdings
// responder reads concurrently.
type ledger struct {
	journal *pebble.Store
	cat     *domain.Catalogue
	log     *slog.Logger

	// mu guards byClOrdID and list.
	mu        sync.RWMutex
	byClOrdID map[string]*executed
	list      []*executed // in execution order; list[i].OrderID is orderID(i+1)

	// unknown is the journal stream of an append whose outcome is unknown
	// (it failed with an error other than a version conflict: it may or
	// may not be stored). Until resolvePending has read it back, nothing
	// else is recorded, so that the next order id is not handed out twice.
	// Only the order loop touches it.
	unknown string
}

// openLedger opens (or creates) the journal under dir and replays it.
func openLedger(ctx context.Context, dir string, cat *domain.Catalogue, log *slog.Logger) (*ledger, error) {
	path := filepath.Join(dir, "journal")
	j, err := pebble.Open(path, pebble.Options{
		Groups:        1,
		CacheBytes:    ledgerCacheBytes,
		MemTableBytes: ledgerMemTableBytes,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("custodian: open ledger: %w", err)
	}
	l := &ledger{journal: j, cat: cat, log: log, byClOrdID: make(map[string]*executed)}
	if err := l.replay(ctx); err != nil {
		return nil, errors.Join(err, j.Close())
	}
	return l, nil
}

// replay reads every execution from the journal's feed.
func (l *ledger) replay(ctx context.Context) error {
	var after uint64
	for {
		evs, err := l.journal.ReadFeed(ctx, ledgerGroup, after, replayBatchEventsMax)
		if err != nil {
			return fmt.Errorf("custodian: replay ledger: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		for _, e := range evs {
			x, err := l.decode(e.Event)
			if err != nil {
				return fmt.Errorf("custodian: replay ledger at position %d: %w", e.Position, err)
			}
			// Checked after reading as before writing: the n-th execution
			// has the n-th order id, and each order executes once.
			if want := orderID(len(l.list) + 1); x.OrderID != want {
				return fmt.Errorf("custodian: replay ledger at position %d: order id %s, want %s", e.Position, x.OrderID, want)
			}
			if _, dup := l.byClOrdID[x.ClOrdID]; dup {
				return fmt.Errorf("custodian: replay ledger at position %d: %s executed twice", e.Position, x.ClOrdID)
			}
			l.addLocked(x) // no reader exists yet
			after = e.Position
		}
	}
}

// decode checks a stored event and returns its execution.
func (l *ledger) decode(e persistence.Event) (*executed, error) {
	if e.Type != executedEventType {
		return nil, fmt.Errorf("event type %q in stream %s", e.Type, e.Stream)
	}
	var r pb.ExecutionReport
	if err := proto.Unmarshal(e.Data, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.Stream, err)
	}
	x, err := custodian.ParseExecutionReport(l.cat, &r)
	if err != nil {
		return nil, err
	}
	if e.Stream != executionStreamPrefix+x.ClOrdID || e.Version != 1 || x.ExecutionID != executionID(x.ClOrdID) {
		return nil, fmt.Errorf("execution %s stored in %s version %d", x.ExecutionID, e.Stream, e.Version)
	}
	return &executed{report: &r, Execution: x}, nil
}

// lookup is the execution of clOrdID, if any.
func (l *ledger) lookup(clOrdID string) (*executed, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	x, ok := l.byClOrdID[clOrdID]
	return x, ok
}

// nextOrderID is the order id the next execution gets. Only the order loop
// records, so it stays valid until that loop records.
func (l *ledger) nextOrderID() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return orderID(len(l.list) + 1)
}

// len is the number of executions.
func (l *ledger) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.list)
}

// resolvePending learns the outcome of an append that failed with an
// unknown outcome: if the journal holds the execution, it joins the books.
// The order loop calls it before looking an order up.
func (l *ledger) resolvePending(ctx context.Context) error {
	if l.unknown == "" {
		return nil
	}
	evs, err := l.journal.Read(ctx, l.unknown, 1, 1)
	if err != nil {
		return fmt.Errorf("custodian: resolve execution %s: %w", l.unknown, err)
	}
	if len(evs) == 1 {
		x, err := l.decode(evs[0])
		if err != nil {
			return fmt.Errorf("custodian: resolve execution %s: %w", l.unknown, err)
		}
		l.mu.Lock()
		if _, ok := l.byClOrdID[x.ClOrdID]; !ok {
			l.addLocked(x)
		}
		l.mu.Unlock()
		l.log.Warn("an append that had failed was stored after all", "cl_ord_id", x.ClOrdID)
	}
	l.unknown = ""
	return nil
}

// record makes an execution durable, then adds it to the books. If the
// journal already holds an execution of the order (memory and journal
// disagree: a bug), record adopts the stored one and returns it with
// errAlreadyExecuted. Any other error leaves the outcome unknown:
// resolvePending must then run before anything else is recorded.
func (l *ledger) record(ctx context.Context, r *pb.ExecutionReport) (*executed, error) {
	if l.unknown != "" {
		panic("custodian: record before resolvePending") // order ids could repeat
	}
	x, err := custodian.ParseExecutionReport(l.cat, r)
	if err != nil {
		panic(fmt.Sprintf("custodian: recording an execution that breaks the protocol: %v", err)) // the simulator built it
	}
	if want := l.nextOrderID(); x.OrderID != want {
		panic(fmt.Sprintf("custodian: recording order id %s, want %s", x.OrderID, want))
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("custodian: encode execution %s: %w", x.ExecutionID, err)
	}
	stream := executionStreamPrefix + x.ClOrdID
	_, err = l.journal.Append(ctx, persistence.AppendRequest{
		Stream: stream, Group: ledgerGroup, ExpectedVersion: 0,
		Events: []persistence.NewEvent{{Type: executedEventType, Data: data}},
	})
	if errors.Is(err, persistence.ErrVersionConflict) {
		stored, rerr := l.readStored(ctx, stream)
		if rerr != nil {
			return nil, rerr
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.byClOrdID[stored.ClOrdID]; !ok {
			l.addLocked(stored)
		}
		return stored, errAlreadyExecuted
	}
	if err != nil {
		l.unknown = stream
		return nil, fmt.Errorf("custodian: record execution %s: %w", x.ExecutionID, err)
	}
	e := &executed{report: r, Execution: x}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(e)
	return e, nil
}

// readStored reads the execution stored in stream.
func (l *ledger) readStored(ctx context.Context, stream string) (*executed, error) {
	evs, err := l.journal.Read(ctx, stream, 1, 1)
	if err != nil {
		return nil, fmt.Errorf("custodian: read execution %s: %w", stream, err)
	}
	if len(evs) != 1 {
		return nil, fmt.Errorf("custodian: read execution %s: version conflict but %d events", stream, len(evs))
	}
	return l.decode(evs[0])
}

// addLocked adds x to the books; l.mu must be held (or no reader exist).
func (l *ledger) addLocked(x *executed) {
	l.byClOrdID[x.ClOrdID] = x
	l.list = append(l.list, x)
}

// position is an asset's signed units and cash, ACME's point of view: a buy
// adds units and pays cash (−), a sell removes units and receives cash (+).
type position struct {
	units domain.Units
	cash  domain.Money
}

func (p *position) add(x *executed) {
	if x.Side == domain.Buy {
		p.units, p.cash = p.units.Add(x.Units), p.cash.Sub(x.Cash)
	} else {
		p.units, p.cash = p.units.Sub(x.Units), p.cash.Add(x.Cash)
	}
}

// statement is the holdings statement as of asOf: per catalogue asset,
// executions settling on or before asOf are settled, later ones pending.
func (l *ledger) statement(asOf domain.Date) *pb.HoldingsStatement {
	settled := make(map[domain.ISIN]*position)
	pending := make(map[domain.ISIN]*position)
	get := func(m map[domain.ISIN]*position, a domain.ISIN) *position {
		p, ok := m[a]
		if !ok {
			p = &position{}
			m[a] = p
		}
		return p
	}
	l.mu.RLock()
	for _, x := range l.list {
		if x.SettlementDate.After(asOf) {
			get(pending, x.Asset).add(x)
		} else {
			get(settled, x.Asset).add(x)
		}
	}
	l.mu.RUnlock()
	st := &pb.HoldingsStatement{AsOf: asOf.String()}
	for _, a := range l.cat.Assets() {
		s, p := get(settled, a.ISIN), get(pending, a.ISIN)
		st.Holdings = append(st.Holdings, &pb.HoldingLine{
			Asset:        string(a.ISIN),
			SettledUnits: s.units.StringFixed(a.UnitDecimals),
			PendingUnits: p.units.StringFixed(a.UnitDecimals),
			SettledCash:  s.cash.String(),
			PendingCash:  p.cash.String(),
		})
	}
	return st
}

// holding is an asset's units, settled and pending together.
func (l *ledger) holding(asset domain.ISIN) domain.Units {
	var p position
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, x := range l.list {
		if x.Asset == asset {
			p.add(x)
		}
	}
	return p.units
}

// reports are copies of every execution report, in execution order.
func (l *ledger) reports() []*pb.ExecutionReport {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*pb.ExecutionReport, len(l.list))
	for i, x := range l.list {
		out[i] = proto.CloneOf(x.report)
	}
	return slices.Clip(out)
}

func (l *ledger) close() error {
	if err := l.journal.Close(); err != nil {
		return fmt.Errorf("custodian: close ledger: %w", err)
	}
	return nil
}

// orderID is the custodian's id of its n-th executed order (1-based).
func orderID(n int) string { return fmt.Sprintf(orderIDFormat, n) }

// executionID is the custodian's id of the execution of clOrdID.
func executionID(clOrdID string) string { return executionIDPrefix + clOrdID }
