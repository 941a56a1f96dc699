package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// The group aggregator: one grain per pot group. It reads its group's feed
// (every event of every pot of the group, in commit order) and keeps a
// replica of each pot, built by the domain's own Apply. Everything the
// dealing cycle needs of the group derives from those replicas and from
// the aggregator's own decisions, which it records in its stream:
//
//   - a dealing day's batch is the orders for that day that the feed held up
//     to the position recorded when the day was closed (DayClosed); an
//     order for the day further on in the feed arrived late and is rolled
//     to the next open day;
//   - who still waits for an allocation, a settlement or a roll is read off
//     the replicas: a pot has taken a message once its events are in the
//     feed. So resending after a restart needs no list of its own;
//   - the rebalance sweep's members are the replicas with a profile;
//   - reconciliation checks every replica's invariants and ledger.
//
// No actor sees every trade of a day: an aggregator sees its group's, an
// asset book the groups' sums.
//
// On activation it restores its last snapshot, then replays its own stream
// and the group feed after it (actors/aggregator_snapshot.go; without a
// snapshot, from the start). The replicas are kept compact and encoded
// (actors/replica.go).
type aggregator struct {
	deps   *DealingDeps
	group  uint32
	stream systemStream

	position uint64 // last feed position applied
	pots     map[string]*replica
	cur      *workingReplica // the replica being applied, decoded
	scratch  []byte          // the buffer replicas are encoded in
	// closedAllocated sums the executions of the trades the replicas have
	// dropped (settled), per dealing day and asset, for reconciliation.
	closedAllocated allocatedSums
	days            map[string]*closedDay // by date text
	unfrozen        []*closedDay          // closed days not yet frozen
	// late are orders whose day was closed before they reached the feed,
	// by order id, until their pot has rolled them.
	late map[string]lateOrder
	// allocating: dates whose allocation started (AllocationStarted).
	allocating map[string]bool
	priced     map[string]*pb.DayPriced
	absorbed   map[string]*pb.TradeAbsorbed // by trade id
	sweeps     map[string]*pb.SweepProgress
	// notifiedUpTo is the feed position up to which contract notes are
	// published; pendingNotes are those of executions after it, to publish.
	notifiedUpTo uint64
	pendingNotes []*pb.ContractNote
	// snapshotAt is the feed position of the last snapshot saved or
	// restored (aggregator_snapshot.go).
	snapshotAt uint64
}

type closedDay struct {
	date     domain.Date
	position uint64
	frozen   bool
	// batch is the day's orders once frozen (codec.AppendBatchOrder), until
	// they are allocated; orders and trades count them.
	batch          []byte
	orders, trades int
	// allocated: every pot of the batch has taken its allocation, of
	// allocatedPots pots.
	allocated     bool
	allocatedPots int
}

type lateOrder struct {
	member string
	from   domain.Date
}

func (a *aggregator) failure(err error) proto.Message {
	return &pb.AggregatorResponse{Problem: failureProblem(err)}
}

func (a *aggregator) activate(identity string, f *fence) error {
	g, err := strconv.ParseUint(identity, 10, 32)
	if err != nil || uint32(g) >= PotGroups(a.deps.Journal) {
		return fmt.Errorf("aggregator identity %q is not a pot group", identity)
	}
	a.group = uint32(g)
	a.stream = systemStream{j: a.deps.Journal, name: aggregatorStream(a.group), fence: f}
	a.pots, a.days, a.late = map[string]*replica{}, map[string]*closedDay{}, map[string]lateOrder{}
	a.closedAllocated = allocatedSums{}
	a.allocating, a.priced = map[string]bool{}, map[string]*pb.DayPriced{}
	a.absorbed, a.sweeps = map[string]*pb.TradeAbsorbed{}, map[string]*pb.SweepProgress{}
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.StepTimeout)
	defer cancel()
	a.recoverFromSnapshot(ctx)
	if err := a.stream.load(ctx, a.applyOwn); err != nil {
		return err
	}
	return a.catchUp(ctx)
}

// applyOwn applies one of the aggregator's own events.
func (a *aggregator) applyOwn(m proto.Message) error {
	switch m := m.(type) {
	case *pb.DayClosed:
		d, err := domain.ParseDate(m.Date)
		if err != nil {
			return err
		}
		a.addClosedDay(&closedDay{date: d, position: m.Position})
	case *pb.DayPriced:
		a.priced[m.Date] = m
	case *pb.AllocationStarted:
		a.allocating[m.Date] = true
	case *pb.TradeAbsorbed:
		a.absorbed[m.TradeId] = m
	case *pb.SweepProgress:
		a.sweeps[m.Date] = m
	case *pb.ContractNotesPublished:
		a.notifiedUpTo = max(a.notifiedUpTo, m.Position)
	default:
		return fmt.Errorf("unexpected %T in an aggregator stream", m)
	}
	return nil
}

// catchUp applies the group's feed up to its end.
func (a *aggregator) catchUp(ctx context.Context) error {
	for {
		events, err := a.deps.Journal.ReadFeed(ctx, a.group, a.position, feedPage)
		if err != nil {
			return fmt.Errorf("read feed of group %d: %w", a.group, err)
		}
		for _, e := range events {
			if err := a.applyFeed(e); err != nil {
				return err
			}
		}
		if len(events) < feedPage {
			// The steps read the replicas next: store the one applied last.
			if err := a.storeWorking(); err != nil {
				return err
			}
			return a.freezeUpTo(a.position)
		}
	}
}

// applyFeed applies one event of the group's feed.
// A feed delivered twice (a repeated page, a consumer that resumed from an
// older checkpoint) changes nothing: positions at or before the last one
// applied, and pot versions the replica has, are skipped.
func (a *aggregator) applyFeed(e persistence.FeedEvent) error {
	if e.Position <= a.position {
		return nil
	}
	if err := a.freezeUpTo(e.Position - 1); err != nil {
		return err
	}
	a.position = e.Position
	member, ok := strings.CutPrefix(e.Stream, "pot/")
	if !ok {
		return nil // not a pot's event
	}
	if r := a.pots[member]; r != nil && e.Version <= r.version {
		return nil
	}
	w, err := a.working(member)
	if err != nil {
		return err
	}
	if e.Version != w.pot.Version+1 {
		return fmt.Errorf("group %d feed: %s version %d after %d", a.group, e.Stream, e.Version, w.pot.Version)
	}
	de, err := codec.DecodePotEvent(e.Type, e.Data)
	if err != nil {
		return fmt.Errorf("group %d feed: %s version %d: %w", a.group, e.Stream, e.Version, err)
	}
	if err := w.ledger.Post(domain.Postings(w.pot, de)); err != nil {
		return fmt.Errorf("group %d feed: %s version %d: %w", a.group, e.Stream, e.Version, err)
	}
	w.pot.Apply(de)
	w.r.version = w.pot.Version
	switch de := de.(type) {
	case domain.OrderPlaced:
		if a.closedBefore(de.DealingDate, e.Position) {
			a.late[de.OrderID] = lateOrder{member: member, from: de.DealingDate}
		}
	case domain.OrderRolled:
		delete(a.late, de.OrderID)
		if a.closedBefore(de.To, e.Position) {
			// Rolled to a day that has closed since: roll again.
			a.late[de.OrderID] = lateOrder{member: member, from: de.To}
		}
	case domain.OrderCancelled:
		delete(a.late, de.OrderID)
	case domain.TradeExecuted:
		if a.deps.Notifier != nil && e.Position > a.notifiedUpTo {
			a.pendingNotes = append(a.pendingNotes, a.contractNote(member, w.pot, de))
		}
	}
	return nil
}

// contractNote is the note of an execution, for the member.
func (a *aggregator) contractNote(member string, p *domain.Pot, e domain.TradeExecuted) *pb.ContractNote {
	t := p.Trades[e.TradeID]
	v := viewer{cat: a.deps.Catalogue}
	return &pb.ContractNote{MemberId: member, OrderId: t.OrderID, TradeId: t.ID, DealingDate: e.DealingDate.String(),
		Asset: string(t.Asset), Side: t.Side.String(), Units: v.units(t.Asset, e.Units), UnitPrice: v.price(t.Asset, e.Price),
		Consideration: e.Cash.String(), SettlementDate: e.SettlementDate.String(), BatchId: e.BatchID}
}

// contractNotesChunk bounds the notes published between two records of
// progress.
const contractNotesChunk = 1000

// publishNotes publishes the contract notes of executions read from the
// feed, and records how far it got: after a restart only the executions
// after that are published again (at least once; the note's id is the
// trade's, so NATS drops a repeat within its duplicate window). A failure
// is logged and retried at the next step.
func (a *aggregator) publishNotes(ctx context.Context) {
	for len(a.pendingNotes) > 0 {
		n := min(len(a.pendingNotes), contractNotesChunk)
		if err := a.deps.Notifier.PublishContractNotes(ctx, a.pendingNotes[:n]); err != nil {
			a.deps.Logger.Warn("contract notes not published yet", "group", a.group, "notes", len(a.pendingNotes), "err", err)
			return
		}
		a.pendingNotes = a.pendingNotes[n:]
	}
	if a.position > a.notifiedUpTo {
		if err := a.stream.append(ctx, &pb.ContractNotesPublished{Position: a.position, AtUnixNano: nanosNow(a.deps.Now)}); err != nil {
			a.deps.Logger.Warn("contract notes' progress not recorded", "group", a.group, "err", err)
			return
		}
		a.notifiedUpTo = a.position
	}
	a.pendingNotes = nil
}

// closedBefore reports whether dealing day d was closed at a feed position
// before pos: an order for it at pos is late. (Comparing positions, not just
// asking whether d is closed, matters when the feed is replayed after a
// restart: the orders before the close are the day's batch, not late.)
func (a *aggregator) closedBefore(d domain.Date, pos uint64) bool {
	day, closed := a.days[d.String()]
	return closed && day.position < pos
}

// addClosedDay records a closed day, to be frozen when the feed passes its
// position.
func (a *aggregator) addClosedDay(day *closedDay) {
	a.days[day.date.String()] = day
	a.unfrozen = append(a.unfrozen, day)
}

// freezeUpTo freezes the batch of every closed day whose position is at or
// before pos: the replicas are then exactly as the feed was at that day's
// close. An open order for an earlier day that was never closed (a cycle
// forced past it, or an order placed for it after the check) would be left
// behind for good: it is late, and rolls to the next open day.
func (a *aggregator) freezeUpTo(pos uint64) error {
	for len(a.unfrozen) > 0 {
		i := slices.IndexFunc(a.unfrozen, func(d *closedDay) bool { return d.position <= pos })
		if i < 0 {
			return nil
		}
		day := a.unfrozen[i]
		a.unfrozen = slices.Delete(a.unfrozen, i, i+1)
		if err := a.freeze(day); err != nil {
			return err
		}
	}
	return nil
}

// freeze builds a closed day's batch from the replicas' open orders.
func (a *aggregator) freeze(day *closedDay) error {
	if err := a.storeWorking(); err != nil {
		return err
	}
	day.frozen = true
	for _, member := range slices.Sorted(maps.Keys(a.pots)) {
		var p *domain.Pot
		for _, o := range a.pots[member].open {
			if o.date.Before(day.date) {
				if _, closed := a.days[o.date.String()]; !closed {
					a.late[o.id] = lateOrder{member: member, from: o.date}
				}
				continue
			}
			if !o.date.Equal(day.date) {
				continue
			}
			if p == nil {
				var err error
				if p, _, err = a.decoded(member); err != nil {
					return err
				}
			}
			order := p.Orders[o.id]
			day.batch = codec.AppendBatchOrder(day.batch, member, order)
			day.orders++
			day.trades += len(order.Trades)
			// An order in a batch is never late, whatever else said so.
			delete(a.late, o.id)
		}
	}
	return nil
}

func (a *aggregator) handle(data []byte) proto.Message {
	req := &pb.AggregatorRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return a.failure(fmt.Errorf("unreadable request: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.StepTimeout)
	defer cancel()
	if err := a.catchUp(ctx); err != nil {
		return a.failure(err)
	}
	var resp *pb.AggregatorResponse
	var err error
	switch c := req.Command.(type) {
	case *pb.AggregatorRequest_CatchUp:
		resp = &pb.AggregatorResponse{}
	case *pb.AggregatorRequest_Settle:
		resp, err = a.settle(ctx, c.Settle)
	case *pb.AggregatorRequest_Close:
		resp, err = a.close(ctx, c.Close)
	case *pb.AggregatorRequest_Price:
		resp, err = a.price(ctx, c.Price)
	case *pb.AggregatorRequest_Allocate:
		resp, err = a.allocate(ctx, c.Allocate)
	case *pb.AggregatorRequest_Sweep:
		resp, err = a.sweep(ctx, c.Sweep)
	case *pb.AggregatorRequest_Reconcile:
		resp, err = a.reconcile(ctx, c.Reconcile)
	case *pb.AggregatorRequest_OpenDays:
		resp, err = a.openDays(c.OpenDays)
	default:
		err = errors.New("unknown aggregator command")
	}
	if err == nil {
		// Rolls of late orders go out at every step, until their pots have
		// taken them.
		if n, rerr := a.sendRolls(ctx); rerr != nil {
			err = rerr
		} else {
			resp.OrdersRolled += n
		}
	}
	if err != nil {
		return a.failure(err)
	}
	if a.deps.Notifier != nil && len(a.pendingNotes) > 0 {
		a.publishNotes(ctx)
	}
	if a.snapshotDue() {
		a.saveSnapshot(ctx)
	}
	return resp
}

// settle tells every pot of the group to settle its executed trades due on
// or before the date.
func (a *aggregator) settle(ctx context.Context, c *pb.AggSettle) (*pb.AggregatorResponse, error) {
	date, err := domain.ParseDate(c.Date)
	if err != nil {
		return nil, err
	}
	calls := map[string]*pb.PotRequest{}
	count := 0
	for member, r := range a.pots {
		if r.settleFrom.IsZero() || r.settleFrom.After(date) {
			continue
		}
		p, _, err := a.decoded(member)
		if err != nil {
			return nil, err
		}
		if due := p.TradesDueBy(date); len(due) > 0 {
			calls[member] = &pb.PotRequest{Command: &pb.PotRequest_SettleTrades{SettleTrades: &pb.SettleTrades{TradeIds: due}}}
			count += len(due)
		}
	}
	if err := a.callPots(ctx, calls, nil); err != nil {
		return nil, err
	}
	return &pb.AggregatorResponse{TradesSettled: int64(count)}, a.catchUp(ctx)
}

// close closes the group's batch of the date at the feed's current end.
func (a *aggregator) close(ctx context.Context, c *pb.AggClose) (*pb.AggregatorResponse, error) {
	date, err := domain.ParseDate(c.Date)
	if err != nil {
		return nil, err
	}
	day, ok := a.days[c.Date]
	if !ok {
		e := &pb.DayClosed{Date: c.Date, Position: a.position, AtUnixNano: nanosNow(a.deps.Now)}
		if err := a.stream.append(ctx, e); err != nil {
			return nil, err
		}
		day = &closedDay{date: date, position: a.position}
		a.addClosedDay(day)
		if err := a.freezeUpTo(a.position); err != nil {
			return nil, err
		}
	}
	return &pb.AggregatorResponse{Orders: int64(day.orders), Trades: int64(day.trades)}, nil
}

// openDays lists the dealing days before the date with trades not yet
// executed: open orders (late ones roll, and do not count) and the frozen
// batches of days not yet allocated.
func (a *aggregator) openDays(c *pb.AggOpenDays) (*pb.AggregatorResponse, error) {
	date, err := domain.ParseDate(c.Date)
	if err != nil {
		return nil, err
	}
	days := map[string]bool{}
	for _, r := range a.pots {
		for _, o := range r.open {
			if !o.date.Before(date) {
				continue
			}
			if _, late := a.late[o.id]; !late {
				days[o.date.String()] = true
			}
		}
	}
	return &pb.AggregatorResponse{OpenDays: slices.Sorted(maps.Keys(days))}, nil
}

// frozenDay is the closed and frozen batch of a date.
func (a *aggregator) frozenDay(date string) (*closedDay, error) {
	day, ok := a.days[date]
	if !ok || !day.frozen {
		return nil, fmt.Errorf("dealing day %s is not closed in group %d", date, a.group)
	}
	return day, nil
}

// price nets the group's batch at the day's prices into one part per asset,
// with the group's manifest hash, and records it.
func (a *aggregator) price(ctx context.Context, c *pb.AggPrice) (*pb.AggregatorResponse, error) {
	if done, ok := a.priced[c.Date]; ok {
		if !samePrices(done.Parts, c.Prices) {
			return nil, fmt.Errorf("dealing day %s was priced with other prices", c.Date)
		}
		return &pb.AggregatorResponse{Parts: done.Parts}, nil
	}
	day, err := a.frozenDay(c.Date)
	if err != nil {
		return nil, err
	}
	if day.allocated {
		return nil, fmt.Errorf("dealing day %s was allocated in group %d before it was priced", c.Date, a.group)
	}
	_, prices, err := decodePrices(c.Date, c.Prices)
	if err != nil {
		return nil, err
	}
	trades, err := codec.DecodeBatch(day.batch)
	if err != nil {
		return nil, err
	}
	_, nets, err := domain.AllocateDay(trades, prices, a.unitDecimals)
	if err != nil {
		return nil, err
	}
	e := &pb.DayPriced{Date: c.Date, AtUnixNano: nanosNow(a.deps.Now)}
	for _, asset := range slices.Sorted(maps.Keys(nets)) {
		e.Parts = append(e.Parts, assetDayPart(day.date, a.group, nets[asset]))
	}
	if err := a.stream.append(ctx, e); err != nil {
		return nil, err
	}
	a.priced[c.Date] = e
	return &pb.AggregatorResponse{Parts: e.Parts}, nil
}

// samePrices reports whether parts were priced with prices.
func samePrices(parts []*pb.AssetDayPart, prices map[string]string) bool {
	for _, p := range parts {
		want, err1 := domain.ParsePrice(prices[p.Asset], domain.PriceDecimalsMax)
		got, err2 := domain.ParsePrice(p.Price, domain.PriceDecimalsMax)
		if err1 != nil || err2 != nil || !want.Equal(got) {
			return false
		}
	}
	return true
}

func assetDayPart(date domain.Date, group uint32, d *domain.AssetDay) *pb.AssetDayPart {
	return &pb.AssetDayPart{DealingDate: date.String(), Asset: string(d.Asset), Group: group, Price: d.Price.String(),
		Trades: int64(d.Trades), BuyUnits: d.BuyUnits.String(), SellUnits: d.SellUnits.String(),
		PotBuyCost: d.PotBuyCost.String(), PotSellCash: d.PotSellCash.String(),
		ManifestSha256: domain.ManifestHash(d.ManifestLines)}
}

func (a *aggregator) unitDecimals(asset domain.ISIN) int32 {
	if x, ok := a.deps.Catalogue.Asset(asset); ok {
		return x.UnitDecimals
	}
	return domain.UnitDecimalsDefault
}

// allocate tells every pot of the batch its trades' executions, until each
// has applied them; a trade its pot refuses because it was cancelled after
// the cut-off is absorbed by the house. Once every pot has taken its
// allocation the day's batch is let go (a restart rebuilds it from the feed).
func (a *aggregator) allocate(ctx context.Context, c *pb.AggAllocate) (*pb.AggregatorResponse, error) {
	day, err := a.frozenDay(c.Date)
	if err != nil {
		return nil, err
	}
	if _, ok := a.priced[c.Date]; !ok {
		return nil, fmt.Errorf("dealing day %s is not priced in group %d", c.Date, a.group)
	}
	if day.allocated {
		return &pb.AggregatorResponse{PotsAllocated: int64(day.allocatedPots), Trades: int64(day.trades)}, nil
	}
	if !a.allocating[c.Date] {
		if err := a.stream.append(ctx, &pb.AllocationStarted{Date: c.Date, AtUnixNano: nanosNow(a.deps.Now)}); err != nil {
			return nil, err
		}
		a.allocating[c.Date] = true
	}
	_, prices, err := decodePrices(c.Date, c.Prices)
	if err != nil {
		return nil, err
	}
	trades, err := codec.DecodeBatch(day.batch)
	if err != nil {
		return nil, err
	}
	allocs, _, err := domain.AllocateDay(trades, prices, a.unitDecimals)
	if err != nil {
		return nil, err
	}
	byMember := map[string][]domain.Allocation{}
	for _, al := range allocs {
		byMember[al.MemberID] = append(byMember[al.MemberID], al)
	}
	now := a.deps.Now()
	executed := func(al domain.Allocation) domain.TradeExecuted {
		asset, _ := a.deps.Catalogue.Asset(al.Asset)
		return domain.TradeExecuted{
			TradeID: al.ID, DealingDate: day.date, Units: al.Units, Price: al.Price, Cash: al.Cash,
			SettlementDate: a.deps.Calendar.SettlementDate(day.date, asset.SettlementDays),
			BatchID:        domain.BatchID(day.date, al.Asset), ExecutionID: c.ExecutionIds[string(al.Asset)], At: now,
		}
	}
	for round := 0; ; round++ {
		calls := map[string]*pb.PotRequest{}
		for member, mine := range byMember {
			// A trade is missing while its order is still accepted in the
			// replica (the pot applies a day's executions in one append).
			r := a.pots[member]
			var missing []*pb.TradeExecuted
			for _, al := range mine {
				if r.hasOpen(al.OrderID) && a.absorbed[al.ID] == nil {
					missing = append(missing, codec.TradeExecutedMessage(executed(al)))
				}
			}
			if len(missing) > 0 {
				calls[member] = &pb.PotRequest{Command: &pb.PotRequest_AllocateTrades{AllocateTrades: &pb.AllocateTrades{
					DealingDate: c.Date, Executions: missing}}}
			}
		}
		if len(calls) == 0 {
			day.allocated, day.allocatedPots, day.batch = true, len(byMember), nil
			return &pb.AggregatorResponse{PotsAllocated: int64(len(byMember)), Trades: int64(len(allocs))}, nil
		}
		if round >= a.deps.Config.PotCallAttempts {
			return nil, fmt.Errorf("group %d: %d pots have not taken their allocations of %s", a.group, len(calls), c.Date)
		}
		refused := map[string]*pb.Problem{}
		var mu sync.Mutex
		err := a.callPots(ctx, calls, func(member string, resp *pb.PotResponse) {
			if p := resp.GetProblem(); p != nil && p.Code == problem.SystemMismatch {
				mu.Lock()
				refused[member] = p
				mu.Unlock()
			}
		})
		if err != nil {
			return nil, err
		}
		if err := a.catchUp(ctx); err != nil {
			return nil, err
		}
		if err := a.absorbRefused(ctx, day, byMember, executed, refused); err != nil {
			return nil, err
		}
	}
}

// absorbRefused books to the house every trade of a refused allocation that
// its pot cancelled (after the cut-off; the fence should make this
// impossible, and the house account keeps the books exact if it happens).
// A cancelled order's trades are closed, so the replica may have dropped
// them: a trade of the batch the replica no longer holds was cancelled
// (an executed one stays until it settles, days later).
func (a *aggregator) absorbRefused(ctx context.Context, day *closedDay, byMember map[string][]domain.Allocation,
	executed func(domain.Allocation) domain.TradeExecuted, refused map[string]*pb.Problem) error {
	var events []proto.Message
	for _, member := range slices.Sorted(maps.Keys(refused)) {
		p, _, err := a.decoded(member)
		if err != nil {
			return err
		}
		for _, al := range byMember[member] {
			t := p.Trades[al.ID]
			if t != nil && t.Status != domain.TradeCancelled || a.absorbed[al.ID] != nil {
				continue
			}
			e := executed(al)
			ev := &pb.TradeAbsorbed{Date: day.date.String(), MemberId: member, TradeId: al.ID, Asset: string(al.Asset),
				Side: pb.Side(al.Side), Units: e.Units.String(), Cash: e.Cash.String(), AtUnixNano: nanosNow(a.deps.Now)}
			events = append(events, ev)
			a.deps.Logger.Error("trade cancelled after the cut-off; the house absorbs it", "member", member, "trade", al.ID, "date", day.date)
		}
	}
	if len(events) == 0 {
		if len(refused) > 0 {
			for member, p := range refused {
				return fmt.Errorf("pot %s refused its allocation: %s", member, p.Detail)
			}
		}
		return nil
	}
	if err := a.stream.append(ctx, events...); err != nil {
		return err
	}
	for _, e := range events {
		ev := e.(*pb.TradeAbsorbed)
		a.absorbed[ev.TradeId] = ev
	}
	return nil
}

// sweep checks every pot of the group with a profile against the day's
// prices, in member order, recording its progress so that a run after a
// crash starts where it stopped (pots ignore a repeated rebalance anyway).
// It asks each replica first (domain.RebalanceDue) and calls only the pots
// that may trade: on an ordinary day a few. The pot still decides; a pot
// whose replica lags a member's command in flight is checked the next day.
func (a *aggregator) sweep(ctx context.Context, c *pb.AggSweep) (*pb.AggregatorResponse, error) {
	date, prices, err := decodePrices(c.Date, c.Prices)
	if err != nil {
		return nil, err
	}
	var members []string
	for _, m := range slices.Sorted(maps.Keys(a.pots)) {
		if a.pots[m].profiled {
			members = append(members, m)
		}
	}
	progress := a.sweeps[c.Date]
	if progress == nil {
		progress = &pb.SweepProgress{Date: c.Date}
	}
	chunk := a.deps.Config.SweepChunk
	for !progress.Done {
		calls := map[string]*pb.PotRequest{}
		to := int(progress.Next)
		for ; to < len(members) && len(calls) < chunk; to++ {
			m := members[to]
			r := a.pots[m]
			if len(r.open) > 0 {
				continue // accepted trades: not due (domain.RebalanceDue)
			}
			p, err := codec.DecodeReplicaBalances(r.state)
			if err != nil {
				return nil, fmt.Errorf("group %d: replica of %s: %w", a.group, m, err)
			}
			if domain.RebalanceDue(p, a.deps.Catalogue, date, prices) {
				calls[m] = &pb.PotRequest{Command: &pb.PotRequest_Rebalance{Rebalance: &pb.Rebalance{Date: c.Date, Prices: c.Prices}}}
			}
		}
		if err := a.callPots(ctx, calls, nil); err != nil {
			return nil, err
		}
		next := &pb.SweepProgress{Date: c.Date, Next: uint32(to), Done: to == len(members), AtUnixNano: nanosNow(a.deps.Now)}
		if err := a.stream.append(ctx, next); err != nil {
			return nil, err
		}
		progress = next
		a.sweeps[c.Date] = next
	}
	if err := a.catchUp(ctx); err != nil {
		return nil, err
	}
	traded := 0
	for _, m := range members {
		if a.pots[m].lastRebalance.Equal(date) {
			traded++
		}
	}
	return &pb.AggregatorResponse{PotsChecked: int64(len(members)), PotsTraded: int64(traded)}, nil
}

// sendRolls asks the pots of late orders to roll them to the next open
// dealing day.
func (a *aggregator) sendRolls(ctx context.Context) (int64, error) {
	if len(a.late) == 0 {
		return 0, nil
	}
	// The next open day is after every closed one (days close in date
	// order, and one never closed before a later one is passed for good).
	var latest domain.Date
	for _, day := range a.days {
		if day.date.After(latest) {
			latest = day.date
		}
	}
	calls := map[string][]*pb.PotRequest{}
	for id, l := range a.late {
		from := l.from
		if latest.After(from) {
			from = latest
		}
		to := a.deps.Calendar.NextDealingDay(from)
		calls[l.member] = append(calls[l.member], &pb.PotRequest{Command: &pb.PotRequest_RollOrder{RollOrder: &pb.RollOrder{
			OrderId: id, FromDate: l.from.String(), ToDate: to.String()}}})
	}
	// A pot may have several late orders: one call each, in order.
	for len(calls) > 0 {
		round := map[string]*pb.PotRequest{}
		for m, reqs := range calls {
			round[m] = reqs[0]
			if len(reqs) == 1 {
				delete(calls, m)
			} else {
				calls[m] = reqs[1:]
			}
		}
		if err := a.callPots(ctx, round, nil); err != nil {
			return 0, err
		}
	}
	n := int64(len(a.late))
	return n, a.catchUp(ctx)
}

// callPots sends each member its request, PotCallsInFlight at a time,
// retrying calls that fail to reach the pot; seen gets every answer. A
// pot's own refusal is not retried: seen decides what it means.
func (a *aggregator) callPots(ctx context.Context, calls map[string]*pb.PotRequest, seen func(member string, resp *pb.PotResponse)) error {
	node := a.deps.clusterNode()
	if node == nil {
		return errNoNode
	}
	client := PotClient{Node: node}
	sem := make(chan struct{}, a.deps.Config.PotCallsInFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, member := range slices.Sorted(maps.Keys(calls)) {
		req := calls[member]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var resp *pb.PotResponse
			var err error
			for attempt := 0; attempt < a.deps.Config.PotCallAttempts; attempt++ {
				resp, err = client.Handle(ctx, member, req)
				if err == nil && resp.GetProblem().GetCode() == problem.Unavailable {
					err = errors.New(resp.GetProblem().Detail)
				}
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("pot %s: %w", member, err))
				return
			}
			if seen != nil {
				seen(member, resp)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("group %d: %d of %d pot calls failed, first: %w", a.group, len(errs), len(calls), errs[0])
	}
	return nil
}
