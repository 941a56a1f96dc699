package actors

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// reconcile is the group's part of a reconciliation, from its replicas: every
// pot's invariants and ledger (and with deep, that the pot recovered as its
// grain would be — snapshot plus tail — equals the replica replayed from
// zero), the pots' units per asset, what they were allocated per dealing day
// and asset, and the house's absorbed trades.
func (a *aggregator) reconcile(ctx context.Context, c *pb.AggReconcile) (*pb.AggregatorResponse, error) {
	asOf, err := domain.ParseDate(c.AsOf)
	if err != nil {
		return nil, err
	}
	rec := &pb.GroupReconciliation{}
	brk := func(kind, member, detail string) {
		rec.Breaks = append(rec.Breaks, &pb.ReconciliationBreak{Kind: kind, MemberId: member, Detail: detail})
	}
	// Pots' units, and the house's (absorbed trades), settled and pending.
	type unitSums struct{ settled, pending, houseSettled, housePending decimal.Decimal }
	assets := map[domain.ISIN]*unitSums{}
	sums := func(a domain.ISIN) *unitSums {
		if assets[a] == nil {
			assets[a] = &unitSums{}
		}
		return assets[a]
	}
	// What the pots were allocated: the trades the replicas dropped (settled)
	// and those they hold.
	allocated := a.closedAllocated.clone()
	var available, reserved, pending domain.Money
	for _, member := range slices.Sorted(maps.Keys(a.pots)) {
		p, ledger, err := a.decoded(member)
		if err != nil {
			return nil, err
		}
		if !p.Opened {
			continue
		}
		rec.Pots++
		if err := p.CheckInvariants(); err != nil {
			brk("pot-invariant", member, err.Error())
		}
		if err := p.CheckLedger(ledger); err != nil {
			brk("pot-ledger", member, err.Error())
		}
		if c.Deep {
			if err := a.checkRecovery(ctx, member); err != nil {
				brk("pot-replay", member, err.Error())
			}
		}
		available, reserved, pending = available.Add(p.Cash.Available), reserved.Add(p.Cash.Reserved), pending.Add(p.Cash.Pending)
		for asset, h := range p.Holdings {
			s := sums(asset)
			s.settled, s.pending = s.settled.Add(h.Settled.Decimal()), s.pending.Add(h.Pending.Decimal())
		}
		for _, t := range p.Trades {
			e := t.Execution
			if e == nil {
				continue
			}
			if t.Side == domain.Sell && t.Status == domain.TradeExecutedStatus {
				// The pot gives up sold units when the sale executes; the
				// custodian holds them until it settles, showing them as
				// negative units still settling. Count them its way.
				s := sums(t.Asset)
				s.settled, s.pending = s.settled.Add(e.Units.Decimal()), s.pending.Sub(e.Units.Decimal())
			}
			allocated.add(t, e)
		}
	}
	// The house holds what it absorbed: a buy's units, less a sell's.
	for _, ab := range a.absorbed {
		units, err1 := decimal.NewFromString(ab.Units)
		date, err2 := domain.ParseDate(ab.Date)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unreadable absorbed trade %s", ab.TradeId)
		}
		if ab.Side == pb.Side_SIDE_SELL {
			units = units.Neg()
		}
		asset := domain.ISIN(ab.Asset)
		s := sums(asset)
		info, _ := a.deps.Catalogue.Asset(asset)
		if a.deps.Calendar.SettlementDate(date, info.SettlementDays).After(asOf) {
			s.housePending = s.housePending.Add(units)
		} else {
			s.houseSettled = s.houseSettled.Add(units)
		}
		k := dayAsset{ab.Date, asset}
		d := allocated[k]
		if d == nil {
			d = &domain.AssetDay{Asset: asset}
			allocated[k] = d
		}
		// Absorbed trades count as allocated (to the house), so that the
		// day still adds up to the custodian's order.
		cash, err := domain.MoneyFromDecimal(decimal.RequireFromString(ab.Cash))
		if err != nil {
			return nil, err
		}
		u := domain.MustUnits(units.Abs().String())
		if ab.Side == pb.Side_SIDE_BUY {
			d.BuyUnits, d.PotBuyCost = d.BuyUnits.Add(u), d.PotBuyCost.Add(cash)
		} else {
			d.SellUnits, d.PotSellCash = d.SellUnits.Add(u), d.PotSellCash.Add(cash)
		}
	}
	for _, asset := range slices.Sorted(maps.Keys(assets)) {
		s := assets[asset]
		rec.Assets = append(rec.Assets, &pb.ReconciliationAsset{Asset: string(asset), PotSettledUnits: s.settled.String(),
			PotPendingUnits: s.pending.String(), HouseUnits: s.houseSettled.String(), HousePendingUnits: s.housePending.String()})
	}
	keys := slices.SortedFunc(maps.Keys(allocated), func(x, y dayAsset) int {
		if x.date != y.date {
			return cmp.Compare(x.date, y.date)
		}
		return cmp.Compare(x.asset, y.asset)
	})
	for _, k := range keys {
		d := allocated[k]
		date, _ := domain.ParseDate(k.date)
		rec.Allocated = append(rec.Allocated, assetDayPart(date, a.group, d))
	}
	rec.PotsAvailable, rec.PotsReserved, rec.PotsPending = available.String(), reserved.String(), pending.String()
	return &pb.AggregatorResponse{Reconciliation: rec}, nil
}

// checkRecovery compares a pot recovered as its grain recovers it (latest
// snapshot, then the events after it) with the replica replayed from zero
// through the feed: docs/domain.md invariant 2, on the journal as it stands.
// The replica holds no closed history, so the recovered pot is compared
// without its own (domain.Pot.DropClosed): balances, holdings and open work.
func (a *aggregator) checkRecovery(ctx context.Context, member string) error {
	for attempt := 0; ; attempt++ {
		recovered, _, err := RecoverPot(ctx, a.deps.Journal, member, a.deps.Logger)
		if err != nil {
			return err
		}
		replica, _, err := a.decoded(member)
		if err != nil {
			return err
		}
		if recovered.Version == replica.Version {
			recovered.DropClosed()
			if recovered.Canonical() != replica.Canonical() {
				return fmt.Errorf("recovered at version %d differs from the replay of the feed", recovered.Version)
			}
			return nil
		}
		// The pot moved on between the two reads: catch up and look again.
		if attempt == 2 {
			return fmt.Errorf("pot at version %d, feed replica at %d", recovered.Version, replica.Version)
		}
		if err := a.catchUp(ctx); err != nil {
			return err
		}
	}
}
