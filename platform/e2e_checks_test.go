package platform_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
)

// The final checks of the end-to-end tests (e2e_test.go), once every trade
// has settled.

// e2eBatch adds up the contract notes of one batch (dealing day and asset)
// over every pot.
type e2eBatch struct {
	notes                          int64
	buyUnits, sellUnits            decimal.Decimal
	buyConsideration, sellProceeds decimal.Decimal
	prices                         map[string]bool
	// manifest holds each pot group's manifest lines (docs/domain.md: the
	// batch manifest, recorded before the order goes out).
	manifest map[uint32][]string
}

func newE2EBatch() *e2eBatch {
	return &e2eBatch{prices: map[string]bool{}, manifest: map[uint32][]string{}}
}

// manifestHash is the batch's manifest hash as the asset book records it:
// the SHA-256 of the lines "group <n> <hash of the group's sorted lines>",
// in group order.
func (b *e2eBatch) manifestHash() string {
	var groups []string
	for _, g := range slices.Sorted(maps.Keys(b.manifest)) {
		sorted := slices.Clone(b.manifest[g])
		slices.Sort(sorted)
		groups = append(groups, fmt.Sprintf("group %d %s", g, domain.ManifestHash(sorted)))
	}
	return domain.ManifestHash(groups)
}

// verify checks, after everything settled: zero breaks in a deep
// reconciliation; every pot's view, orders and statement against what the
// driver was acknowledged (docs/domain.md invariants 1, 3 and 4); every batch's contract
// notes against the executed net order (invariant 5); the custodian's
// executions (none twice) and holdings; and that running every cycle again
// reports the same summary and changes nothing.
func (e *e2e) verify() {
	e.t.Helper()
	began := time.Now()
	rep := e.reconcile("e2e-final", true)

	var mu sync.Mutex
	settled := map[string]decimal.Decimal{}
	pending := map[string]decimal.Decimal{}
	batches := map[string]*e2eBatch{}
	versions := map[string]uint64{}
	var orders, trades, cancelled, shortPaid int
	potGroups := actors.PotGroups(e.currentDev().Node.Journal) // a batch's manifest is hashed per pot group
	e.forEach(func(_ int, p *e2ePotModel) {
		v := e.view(p, e.opToken)
		if v == nil {
			return
		}
		list := e.listOrders(p)
		st := e.statement(p)
		if list == nil || st == nil {
			return
		}
		c := e.checkPot(p, v, list, st)
		mu.Lock()
		defer mu.Unlock()
		versions[p.id] = v.Version
		for _, h := range v.Holdings {
			s, _ := decOf(h.SettledUnits)
			pu, _ := decOf(h.PendingUnits)
			settled[h.Asset] = settled[h.Asset].Add(s)
			pending[h.Asset] = pending[h.Asset].Add(pu)
		}
		for _, o := range list {
			orders++
			trades += len(o.Trades)
			if o.Status == "cancelled" {
				cancelled++
			}
			for _, n := range o.ContractNotes {
				b := batches[n.BatchID]
				if b == nil {
					b = newE2EBatch()
					batches[n.BatchID] = b
				}
				units, _ := decOf(n.Units)
				cash, _ := decOf(n.Consideration)
				if money, err := domain.MoneyFromDecimal(cash); err == nil {
					side := map[string]domain.Side{"buy": domain.Buy, "sell": domain.Sell}[n.Side]
					g := actors.PotGroup(p.id, potGroups)
					b.manifest[g] = append(b.manifest[g], domain.ManifestLine(n.TradeID, side, domain.MustUnits(units.String()), money))
				}
				b.notes++
				b.prices[n.UnitPrice] = true
				if n.Side == "buy" {
					b.buyUnits, b.buyConsideration = b.buyUnits.Add(units), b.buyConsideration.Add(cash)
				} else {
					b.sellUnits, b.sellProceeds = b.sellUnits.Add(units), b.sellProceeds.Add(cash)
				}
			}
		}
		shortPaid += c.shortPaid
	})
	e.t.Logf("checked %d pots: %d orders (%d cancelled), %d trades, %d withdrawals paid less than asked; in %s",
		len(e.pots), orders, cancelled, trades, shortPaid, time.Since(began).Round(time.Millisecond))

	e.checkBatches(batches)
	last := e.cycles[len(e.cycles)-1].date
	e.checkCustodian(last, settled, pending, rep)

	// Running every cycle again reports the same summary and changes
	// nothing: no execution at the custodian, no event in any pot.
	executions := len(e.currentDev().Custodian.Executions())
	for _, c := range e.cycles {
		path := "/v1/cycles/" + c.date.String() + "/run"
		r, err := e.api.do(e.t.Context(), http.MethodPost, path, e.opToken, "", jsonBody(map[string]bool{"rebalance": c.rebalance}))
		if err != nil || r.Status != http.StatusOK || !sameJSON(r.Body, c.raw) {
			e.fail("cycle %s run again: %v %s\nfirst run: %s", c.date, err, r, c.raw)
		}
	}
	if n := len(e.currentDev().Custodian.Executions()); n != executions {
		e.fail("the custodian executed %d orders before the cycles ran again, %d after", executions, n)
	}
	e.forEach(func(_ int, p *e2ePotModel) {
		v := e.view(p, e.opToken)
		if v != nil && v.Version != versions[p.id] {
			e.fail("pot %s at version %d after the cycles ran again, %d before", p.id, v.Version, versions[p.id])
		}
	})
	e.reconcile("e2e-after-reruns", false)
	e.t.Logf("ran %d cycles again: same summaries, no execution, no pot event", len(e.cycles))
}

// listOrders reads all of a pot's orders, page by page.
func (e *e2e) listOrders(p *e2ePotModel) []e2eOrder {
	out := []e2eOrder{} // not nil: nil is a failed read
	after := ""
	for {
		path := "/v1/pots/" + p.id + "/orders?limit=50"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		r := e.send(p, "list orders", http.MethodGet, path, nil, "", e.opToken, "200")
		var page e2eOrderList
		if r.Status != http.StatusOK || !e.decode(p, "list orders", r, &page) {
			return nil
		}
		out = append(out, page.Orders...)
		if page.NextAfter == "" {
			return out
		}
		after = page.NextAfter
	}
}

func (e *e2e) statement(p *e2ePotModel) *e2eStatement {
	r := e.send(p, "statement", http.MethodGet, "/v1/pots/"+p.id+"/statement", nil, "", e.opToken, "200")
	var st e2eStatement
	if r.Status != http.StatusOK || !e.decode(p, "statement", r, &st) {
		return nil
	}
	return &st
}

type e2ePotCheck struct {
	shortPaid int
}

// checkPot checks one pot once everything settled: invariant 1 (its view),
// 4 (each order in one terminal state, each executed trade with one
// contract note, no order lost) and 3 (every acknowledged contribution and
// withdrawal is in its statement, which adds up to its cash and units).
func (e *e2e) checkPot(p *e2ePotModel, v *e2ePot, list []e2eOrder, st *e2eStatement) e2ePotCheck {
	var c e2ePotCheck
	bad := func(format string, args ...any) { e.fail("pot %s: "+format, append([]any{p.id}, args...)...) }
	p.mu.Lock()
	defer p.mu.Unlock()

	// Nothing reserved or pending once everything settled.
	if v.Cash.Reserved != "0.00" || v.Cash.Pending != "0.00" {
		bad("cash reserved %s and pending %s after everything settled", v.Cash.Reserved, v.Cash.Pending)
	}
	units := map[string]decimal.Decimal{}
	for _, h := range v.Holdings {
		s, _ := decOf(h.SettledUnits)
		pu, _ := decOf(h.PendingUnits)
		r, _ := decOf(h.ReservedUnits)
		if !pu.IsZero() || !r.IsZero() {
			bad("%s: units pending %s and reserved %s after everything settled", h.Asset, pu, r)
		}
		units[h.Asset] = s.Add(pu)
	}

	// Invariant 4.
	seen := map[string]*e2eOrder{}
	tradeIDs := map[string]bool{}
	for i := range list {
		o := &list[i]
		if seen[o.ID] != nil {
			bad("order %s listed twice", o.ID)
		}
		seen[o.ID] = o
		notes := map[string]int{}
		for _, n := range o.ContractNotes {
			notes[n.TradeID]++
		}
		switch o.Status {
		case "settled", "cancelled", "rejected":
		default:
			bad("order %s is %s after everything settled", o.ID, o.Status)
		}
		for _, t := range o.Trades {
			if tradeIDs[t.ID] {
				bad("trade %s in two orders", t.ID)
			}
			tradeIDs[t.ID] = true
			switch {
			case o.Status == "cancelled" && (t.Status != "cancelled" || notes[t.ID] != 0):
				bad("order %s cancelled, its trade %s %s with %d contract notes", o.ID, t.ID, t.Status, notes[t.ID])
			case o.Status == "settled" && (t.Status != "settled" || notes[t.ID] != 1):
				bad("order %s settled, its trade %s %s with %d contract notes (want exactly one)", o.ID, t.ID, t.Status, notes[t.ID])
			}
		}
		for _, n := range o.ContractNotes {
			t := tradeOf(o, n.TradeID)
			switch {
			case t == nil:
				bad("order %s: contract note of trade %s, not one of its trades", o.ID, n.TradeID)
			case n.DealingDate != o.DealingDate || n.BatchID != n.DealingDate+"-"+t.Asset || n.Asset != t.Asset ||
				n.Side != t.Side || n.Units != t.ExecutedUnits || n.UnitPrice != t.Price || n.Consideration != t.Cash ||
				n.SettlementDate != t.SettlementDate || t.BatchID != n.BatchID:
				bad("order %s: contract note %+v does not match its trade %+v (dealing day %s)", o.ID, n, *t, o.DealingDate)
			}
			// Settlement is T+N dealing days, N the asset's.
			a, _ := e.asset(n.Asset)
			if d, err := domain.ParseDate(n.DealingDate); err != nil ||
				n.SettlementDate != e.cal.SettlementDate(d, a.SettlementDays).String() {
				bad("contract note %+v: settles on %s, want T+%d", n, n.SettlementDate, a.SettlementDays)
			}
		}
	}
	for id, o := range seen {
		if p.orders[id] == nil && o.Type != "rebalance" {
			bad("order %s (%s) was never acknowledged", id, o.Type)
		}
	}
	for id, m := range p.orders {
		o := seen[id]
		switch {
		case o == nil:
			bad("acknowledged order %s is lost", id)
		case m.cancelled && o.Status != "cancelled":
			bad("order %s was cancelled (200), ends %s", id, o.Status)
		case !p.cancelAsked[id] && o.Status == "cancelled":
			bad("order %s ends cancelled, no cancel was asked", id)
		case o.DealingDate != m.dealingDate || o.OriginalDealingDate != "":
			// Only an order that raced its day's cut-off may have been
			// rolled, to the next dealing day, visibly.
			d, _ := domain.ParseDate(m.dealingDate)
			rolled := m.racing && o.OriginalDealingDate == m.dealingDate && o.DealingDate == e.cal.NextDealingDay(d).String()
			if !rolled {
				bad("order %s accepted for %s, deals on %s (originally %q)", id, m.dealingDate, o.DealingDate, o.OriginalDealingDate)
			}
		case o.MovementID != m.movementID:
			bad("order %s of movement %q, acknowledged as of %q", id, o.MovementID, m.movementID)
		}
	}

	// Invariant 3: the statement holds every acknowledged contribution and
	// every acknowledged withdrawal (paid by now), and adds up to the cash
	// and units the pot shows.
	contributions := map[string]decimal.Decimal{}
	paid := map[string]decimal.Decimal{}
	var balance decimal.Decimal
	stUnits := map[string]decimal.Decimal{}
	for i, en := range st.Entries {
		cash, ok1 := decOf(en.Cash)
		after, ok2 := decOf(en.BalanceAfter)
		u, ok3 := decOf(en.Units)
		if !ok1 || !ok2 || !ok3 {
			bad("statement entry %d unreadable: %+v", i, en)
			continue
		}
		balance = balance.Add(cash)
		if !balance.Equal(after) {
			bad("statement entry %d: balance after %s, the entries add up to %s", i, after, balance)
		}
		if en.Asset != "" {
			stUnits[en.Asset] = stUnits[en.Asset].Add(u)
		}
		switch en.Kind {
		case "contribution":
			id, _ := strings.CutPrefix(en.Description, "Contribution ")
			if _, dup := contributions[id]; dup {
				bad("contribution %s twice in the statement", id)
			}
			contributions[id] = cash
		case "withdrawal":
			id, _ := strings.CutPrefix(en.Description, "Withdrawal ")
			id, _ = strings.CutSuffix(id, " paid")
			if _, dup := paid[id]; dup {
				bad("withdrawal %s paid twice", id)
			}
			paid[id] = cash.Neg()
		case "buy", "sell":
		default:
			bad("statement entry %d of kind %q", i, en.Kind)
		}
	}
	var inSum, inAcked decimal.Decimal
	for id, amount := range p.contributions {
		inAcked = inAcked.Add(amount)
		if got, ok := contributions[id]; !ok || !got.Equal(amount) {
			bad("acknowledged contribution %s of %s: in the statement as %v (present %v)", id, amount, got, ok)
		}
	}
	for id, got := range contributions {
		inSum = inSum.Add(got)
		if _, ok := p.contributions[id]; !ok {
			bad("contribution %s of %s in the statement was never acknowledged", id, got)
		}
	}
	if !inSum.Equal(inAcked) {
		bad("contributions: statement %s, acknowledged %s", inSum, inAcked)
	}
	for id, w := range p.withdrawals {
		got, ok := paid[id]
		allCancelled := len(w.orders) > 0
		for _, oid := range w.orders {
			allCancelled = allCancelled && p.orders[oid] != nil && p.orders[oid].cancelled
		}
		switch {
		case !ok && allCancelled:
			// Nothing raised and no cash part: paid nothing, no entry.
		case !ok:
			bad("acknowledged withdrawal %s of %s not paid after everything settled", id, w.amount)
		case got.Sign() < 0 || got.GreaterThan(w.amount):
			bad("withdrawal %s of %s paid %s", id, w.amount, got)
		case got.LessThan(w.amount):
			c.shortPaid++
		}
		// What it pays is exact: its cash part (the amount less what its
		// sells were to raise) and the proceeds of the sells that
		// settled, up to the amount.
		if ok {
			held := w.amount
			for _, oid := range w.orders {
				o := seen[oid]
				if o == nil {
					continue
				}
				for _, t := range o.Trades {
					asked, _ := decOf(t.Amount)
					proceeds, _ := decOf(t.Cash)
					held = held.Sub(asked)
					if t.Status == "settled" {
						held = held.Add(proceeds)
					}
				}
			}
			if want := decimal.Min(w.amount, held); !got.Equal(want) {
				bad("withdrawal %s of %s paid %s; its cash part and settled sells hold %s", id, w.amount, got, held)
			}
		}
	}
	for id := range paid {
		if _, ok := p.withdrawals[id]; !ok {
			bad("withdrawal %s paid, never acknowledged", id)
		}
	}
	avail, _ := decOf(v.Cash.Available)
	reserved, _ := decOf(v.Cash.Reserved)
	pend, _ := decOf(v.Cash.Pending)
	if cash := avail.Add(reserved).Add(pend); !balance.Equal(cash) {
		bad("statement adds up to %s, the pot holds %s", balance, cash)
	}
	for _, a := range slices.Sorted(maps.Keys(units)) {
		if !stUnits[a].Equal(units[a]) {
			bad("%s: statement adds up to %s units, the pot holds %s", a, stUnits[a], units[a])
		}
	}
	for a, u := range stUnits {
		if _, ok := units[a]; !ok && !u.IsZero() {
			bad("%s: statement adds up to %s units, the pot holds none", a, u)
		}
	}
	return c
}

func tradeOf(o *e2eOrder, id string) *e2eTrade {
	for i := range o.Trades {
		if o.Trades[i].ID == id {
			return &o.Trades[i]
		}
	}
	return nil
}

// checkBatches checks invariant 5 from the pots' contract notes: per
// dealing day and asset, the notes net to the custodian order's units at
// one price, their cash differs from the order's by the batch's house
// residual, and they are the trades of the batch's recorded manifest.
func (e *e2e) checkBatches(notes map[string]*e2eBatch) {
	checked := map[string]bool{}
	for _, c := range e.cycles {
		s := &c.summary
		residual := map[string]string{}
		counts := map[string]int64{}
		manifests := map[string]string{}
		for _, b := range s.Batches {
			residual[b.ID], counts[b.ID], manifests[b.ID] = b.HouseResidual, b.Trades, b.ManifestSHA256
		}
		for _, o := range s.Orders {
			checked[o.ClOrdID] = true
			b := notes[o.ClOrdID]
			if b == nil {
				b = newE2EBatch()
			}
			units, _ := decOf(o.Units)
			cash, _ := decOf(o.Cash)
			if o.Side == "sell" {
				units, cash = units.Neg(), cash.Neg()
			}
			if o.Side == "none" {
				units, cash = decimal.Zero, decimal.Zero
			}
			price, _ := decOf(o.Price)
			net := b.buyUnits.Sub(b.sellUnits)
			house := b.buyConsideration.Sub(b.sellProceeds).Sub(cash)
			res, _ := decOf(residual[o.ClOrdID])
			switch {
			case b.notes != counts[o.ClOrdID]:
				e.fail("batch %s: %d trades, %d contract notes", o.ClOrdID, counts[o.ClOrdID], b.notes)
			case !net.Equal(units):
				e.fail("batch %s: contract notes net %s units, the custodian order %s %s", o.ClOrdID, net, o.Side, o.Units)
			case !house.Equal(res):
				e.fail("batch %s: pots' cash less the order's is %s, the house residual %s", o.ClOrdID, house, res)
			case b.manifestHash() != manifests[o.ClOrdID]:
				e.fail("batch %s: the contract notes' manifest hashes to %s, the batch recorded %s", o.ClOrdID,
					b.manifestHash(), manifests[o.ClOrdID])
			}
			for p := range b.prices {
				if d, _ := decOf(p); !d.Equal(price) {
					e.fail("batch %s: a contract note at %s, the order at %s", o.ClOrdID, p, o.Price)
				}
			}
		}
	}
	for id := range notes {
		if !checked[id] {
			e.fail("contract notes of batch %s, which no cycle reported", id)
		}
	}
}

// checkCustodian checks the custodian executed each cycle's orders exactly
// once, as reported, and holds what the pots hold.
func (e *e2e) checkCustodian(asOf domain.Date, settled, pending map[string]decimal.Decimal, rep *e2eReconciliation) {
	sim := e.currentDev().Custodian
	byID := map[string]int{}
	execs := sim.Executions()
	for _, x := range execs {
		byID[x.ClOrdId]++
	}
	for id, n := range byID {
		if n != 1 {
			e.fail("the custodian executed %s %d times", id, n)
		}
	}
	executed := 0
	for _, c := range e.cycles {
		for _, o := range c.summary.Orders {
			if o.Status != "executed" {
				continue
			}
			executed++
			found := false
			for _, x := range execs {
				if x.ClOrdId != o.ClOrdID {
					continue
				}
				found = true
				xu, _ := decOf(x.Units)
				xp, _ := decOf(x.Price)
				xc, _ := decOf(x.Cash)
				ou, _ := decOf(o.Units)
				op, _ := decOf(o.Price)
				oc, _ := decOf(o.Cash)
				side := map[int32]string{1: "buy", 2: "sell"}[int32(x.Side)]
				if !xu.Equal(ou) || !xp.Equal(op) || !xc.Equal(oc) || side != o.Side || x.DealingDate != c.date.String() {
					e.fail("order %s: the cycle reports %s %s at %s for %s, the custodian executed %v", o.ClOrdID,
						o.Side, o.Units, o.Price, o.Cash, x)
				}
			}
			if !found {
				e.fail("order %s executed by the cycle, unknown to the custodian", o.ClOrdID)
			}
		}
	}
	if executed != len(execs) {
		e.fail("the cycles executed %d orders, the custodian %d", executed, len(execs))
	}
	st := sim.Stats()
	if st.ConflictingRepeats != 0 || st.ShortPositions != 0 || st.Rejected != 0 {
		e.fail("custodian: %d conflicting repeats, %d short positions, %d rejected orders", st.ConflictingRepeats,
			st.ShortPositions, st.Rejected)
	}
	for _, s := range []simulator.Stats{e.before, st} {
		e.t.Logf("custodian: %d executions; %d orders received, %d repeats, %d outage refusals, reports %d published, %d dropped, %d duplicated, %d delayed, %d reordered",
			s.ExecutionsTotal, s.OrdersReceived, s.Repeats, s.OutageRefusals, s.ReportsPublished, s.ReportsDropped,
			s.ReportsDuplicated, s.ReportsDelayed, s.ReportsReordered)
	}
	if f := e.cfg.Faults; f.DropProbability > 0 || f.OutageOrders > 0 {
		// The faults happened, or the test proved nothing.
		if e.before.OutageRefusals+st.OutageRefusals == 0 || e.before.ReportsDropped+st.ReportsDropped == 0 ||
			e.before.ReportsDuplicated+st.ReportsDuplicated == 0 || e.before.Repeats+st.Repeats == 0 {
			e.fail("custodian faults configured but not seen: before the restart %+v, after %+v", e.before, st)
		}
	}

	// External, from the pots' views: their units (and the house's, none
	// here) are the custodian's holding.
	house := map[string]decimal.Decimal{}
	for _, a := range rep.Assets {
		hs, _ := decOf(a.HouseUnits)
		hp, _ := decOf(a.HousePendingUnits)
		house[a.Asset] = hs.Add(hp)
		if ps, _ := decOf(a.PotSettledUnits); !ps.Equal(settled[a.Asset]) {
			e.fail("%s: reconciliation counts %s settled units in pots, their views %s", a.Asset, ps, settled[a.Asset])
		}
		if !house[a.Asset].IsZero() {
			e.fail("%s: the house holds %s units: a trade was absorbed", a.Asset, house[a.Asset])
		}
	}
	for _, h := range sim.Statement(asOf).Holdings {
		cs, _ := decOf(h.SettledUnits)
		cp, _ := decOf(h.PendingUnits)
		if !cs.Equal(settled[h.Asset].Add(house[h.Asset])) || !cp.Equal(pending[h.Asset]) {
			e.fail("%s as of %s: the custodian holds %s settled and %s pending, the pots %s and %s, the house %s",
				h.Asset, asOf, cs, cp, settled[h.Asset], pending[h.Asset], house[h.Asset])
		}
	}
}

// logFeed reports what the duplicating journal did, and fails if it did
// nothing (the test would prove nothing).
func (e *e2e) logFeed() {
	if !e.cfg.DuplicateFeed {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var doubled, rewound, extra int64
	for _, f := range e.feeds {
		doubled += f.pagesDoubled.Load()
		rewound += f.pagesRewound.Load()
		extra += f.extraEvents.Load()
	}
	e.t.Logf("feed: %d pages doubled, %d pages rewound, %d events delivered again", doubled, rewound, extra)
	// Else the test would prove nothing.
	assert.NotZero(e.t, doubled, "pages the duplicating journal doubled")
	assert.NotZero(e.t, rewound, "pages the duplicating journal rewound")
	assert.NotZero(e.t, extra, "events the duplicating journal delivered again")
}
