package domain

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sim plays dealing days for a few pots the way the platform does (member
// commands, cut-off, netting and allocation, settlement, rebalancing), with
// the aggregators and custodian reduced to their arithmetic, and checks the
// invariants of docs/domain.md after every step. Scenario tests and property
// tests drive it.
type sim struct {
	t        testing.TB
	cat      *Catalogue
	cal      *Calendar
	now      time.Time
	openFrom Date
	prices   map[ISIN]PricePoint
	pots     map[string]*simPot
	members  []string

	// What the custodian holds, per asset (settled and still settling), and
	// what the house rounding account took, per asset.
	custodianUnits map[ISIN]Units
	houseCash      map[ISIN]Money
	// executed counts executions per trade id: invariant 4 says at most one.
	executed map[string]int
	// dealt lists the dealing days run, with their nets.
	dealt map[Date]map[ISIN]AssetDay
}

type simPot struct {
	p      *Pot
	events []Event
	ledger Ledger
	// keys is every idempotency key the pot ever recorded: the member's
	// history, which the shell asks for a key the pot has forgotten.
	keys map[string]RequestRecord
}

func newSim(t testing.TB, start Date) *sim {
	t.Helper()
	cal, err := NewCalendar(CalendarConfig{Location: london(t)})
	require.NoError(t, err, "calendar")
	return &sim{
		t: t, cat: DefaultCatalogue(), cal: cal,
		now:            start.At(9, 0, cal.Location()),
		prices:         map[ISIN]PricePoint{},
		pots:           map[string]*simPot{},
		custodianUnits: map[ISIN]Units{},
		houseCash:      map[ISIN]Money{},
		executed:       map[string]int{},
		dealt:          map[Date]map[ISIN]AssetDay{},
	}
}

func (s *sim) ctx() *Context {
	return &Context{Now: s.now, Catalogue: s.cat, Calendar: s.cal, Prices: s.prices, OpenFrom: s.openFrom}
}

func (s *sim) pot(member string) *simPot {
	sp, ok := s.pots[member]
	if !ok {
		sp = &simPot{p: NewPot(member), ledger: Ledger{}, keys: map[string]RequestRecord{}}
		s.pots[member] = sp
		s.members = append(s.members, member)
	}
	return sp
}

// do decides cmd for member's pot and applies its events, checking that a
// refusal changes nothing and that the pot's invariants and ledger hold.
func (s *sim) do(member string, cmd Command) (Decision, error) {
	s.t.Helper()
	sp := s.pot(member)
	before := canonical(sp.p)
	ctx := s.ctx()
	if mc, ok := cmd.(MemberCommand); ok {
		if _, remembered := sp.p.Request(mc.IdempotencyKey()); !remembered {
			if rec, used := sp.keys[mc.IdempotencyKey()]; used {
				ctx.PastRequest = &rec
			}
		}
	}
	dec, err := Decide(sp.p, cmd, ctx)
	if after := canonical(sp.p); after != before {
		s.t.Fatalf("Decide(%T) changed the pot", cmd)
	}
	if err != nil {
		if len(dec.Events) != 0 {
			s.t.Fatalf("Decide(%T) refused with %v but returned %d events", cmd, err, len(dec.Events))
		}
		var refusal *RefusalError
		var value *ValueError
		if !errors.As(err, &refusal) && !errors.As(err, &value) {
			s.t.Fatalf("Decide(%T) error %v is neither a refusal nor a value error", cmd, err)
		}
		return dec, err
	}
	for _, e := range dec.Events {
		require.NoError(s.t, sp.ledger.Post(Postings(sp.p, e)), "pot %s: %T", member, e)
		if ex, ok := e.(TradeExecuted); ok {
			s.executed[ex.TradeID]++
			if s.executed[ex.TradeID] > 1 {
				s.t.Fatalf("trade %s executed twice (invariant 4)", ex.TradeID)
			}
		}
		if r, ok := e.(RequestRecorded); ok {
			sp.keys[r.Record.Key] = r.Record
		}
		sp.p.Apply(e)
		sp.events = append(sp.events, e)
	}
	s.check(member)
	return dec, nil
}

// mustDo is do that fails the test on a refusal.
func (s *sim) mustDo(member string, cmd Command) Decision {
	s.t.Helper()
	d, err := s.do(member, cmd)
	require.NoError(s.t, err, "%s %T", member, cmd)
	return d
}

// check asserts invariants 1 and the ledger for one pot.
func (s *sim) check(member string) {
	s.t.Helper()
	sp := s.pots[member]
	require.NoError(s.t, sp.p.CheckInvariants(), "invariants after %d events", len(sp.events))
	require.NoError(s.t, sp.p.CheckLedger(sp.ledger), "ledger after %d events", len(sp.events))
	if sp.p.Version != uint64(len(sp.events)) {
		s.t.Fatalf("pot %s at version %d after %d events", member, sp.p.Version, len(sp.events))
	}
}

// checkReplay asserts invariant 2: replaying every pot's events from zero
// gives its state. (From a snapshot: package codec, which encodes snapshots,
// TestPotSnapshotRoundTrip.)
func (s *sim) checkReplay() {
	s.t.Helper()
	for _, m := range s.members {
		sp := s.pots[m]
		want := canonical(sp.p)
		fromZero := NewPot(m)
		retired := 0
		fromZero.OnRetire(func(o *Order) {
			require.True(s.t, o.Closed(), "order %s retired while open", o.ID)
			retired++
		})
		for _, e := range sp.events {
			fromZero.Apply(e)
		}
		if got := canonical(fromZero); got != want {
			s.t.Fatalf("pot %s: replay from zero differs:\n%s", m, diffLines(want, got))
		}
		s.checkReplicaReplay(m, sp, fromZero, retired)
	}
}

// checkReplicaReplay asserts that a pot which drops its closed history after
// every event (an aggregator's replica, DropClosed) applies the rest of the
// events as the whole pot does: it ends equal to the whole pot with its
// closed history dropped once, its invariants and ledger hold, and every
// order it dropped was closed and is dropped once.
func (s *sim) checkReplicaReplay(member string, sp *simPot, whole *Pot, wholeRetired int) {
	s.t.Helper()
	replica, ledger := NewPot(member), Ledger{}
	dropped := map[string]bool{}
	drop := func(o *Order) {
		require.False(s.t, dropped[o.ID], "order %s dropped twice", o.ID)
		require.True(s.t, o.Closed(), "order %s dropped while open", o.ID)
		dropped[o.ID] = true
	}
	replica.OnRetire(drop)
	for _, e := range sp.events {
		require.NoError(s.t, ledger.Post(Postings(replica, e)))
		replica.Apply(e)
		for _, o := range replica.DropClosed() {
			drop(o)
		}
	}
	require.NoError(s.t, replica.CheckInvariants(), "replica of %s", member)
	require.NoError(s.t, replica.CheckLedger(ledger), "replica of %s", member)
	wholeDropped := whole.DropClosed()
	require.Len(s.t, dropped, wholeRetired+len(wholeDropped), "orders dropped by %s's replica and retired or dropped by the whole pot", member)
	if got, want := canonical(replica), canonical(whole); got != want {
		s.t.Fatalf("pot %s: replica differs from the whole pot without its closed history:\n%s", member, diffLines(want, got))
	}
}

// setTime moves the clock to hour:minute on date d.
func (s *sim) setTime(d Date, hour, minute int) {
	s.now = d.At(hour, minute, s.cal.Location())
}

// cycleOptions vary a dealing cycle.
type cycleOptions struct {
	rebalance bool
	rng       *rand.Rand // nil: no faults
	// late is the chance that an order reaches its aggregator after the
	// cut-off and is rolled to the next dealing day.
	late float64
	// duplicate is the chance that a system message is delivered twice.
	duplicate float64
}

// cycle runs dealing day d with prices: settle what is due, cut off,
// allocate, rebalance. It checks invariant 5 for the day.
func (s *sim) cycle(d Date, prices map[ISIN]Price, opt cycleOptions) {
	s.t.Helper()
	s.setTime(d, 12, 30)
	chance := func(p float64) bool { return opt.rng != nil && opt.rng.Float64() < p }
	deliver := func(member string, cmd Command) {
		s.mustDo(member, cmd)
		if chance(opt.duplicate) {
			dec := s.mustDo(member, cmd)
			if len(dec.Events) != 0 {
				s.t.Fatalf("repeated %T for %s appended %d events", cmd, member, len(dec.Events))
			}
		}
	}

	// 1. Settle trades due on or before d.
	for _, m := range s.members {
		if due := s.pots[m].p.TradesDueBy(d); len(due) > 0 {
			deliver(m, SettleTrades{TradeIDs: due})
		}
	}

	// 2. Cut off d: later trades belong to the next dealing day.
	next := s.cal.NextDealingDay(d)
	s.openFrom = next

	// 3. Collect the day's trades; some arrive late and roll.
	var trades []DayTrade
	for _, m := range s.members {
		p := s.pots[m].p
		for _, id := range p.OrderIDs {
			o := p.Orders[id]
			if o.Cancelled || !o.DealingDate.Equal(d) || o.Trades[0].Status != TradeAccepted {
				continue
			}
			if chance(opt.late) {
				deliver(m, RollOrder{OrderID: o.ID, From: d, To: next})
				continue
			}
			for _, t := range o.Trades {
				trades = append(trades, DayTrade{MemberID: m, OrderID: o.ID, TradeSpec: t.Spec()})
			}
		}
		if o := p.Orders; len(o) > 0 && chance(opt.duplicate) {
			// An out-of-order message: settling a trade that is not
			// executed is refused and changes nothing.
			for _, t := range p.Trades {
				if t.Status == TradeAccepted {
					if _, err := s.do(m, SettleTrades{TradeIDs: []string{t.ID}}); !errors.Is(err, ErrSystemMismatch) {
						s.t.Fatalf("early settlement of %s: got %v, want ErrSystemMismatch", t.ID, err)
					}
					break
				}
			}
		}
	}

	// 4. Net and allocate at the day's prices.
	allocs, days, err := AllocateDay(trades, prices, s.unitDecimals)
	require.NoError(s.t, err, "allocate %s", d)
	byMember := map[string][]TradeExecuted{}
	for _, a := range allocs {
		asset, _ := s.cat.Asset(a.Asset)
		byMember[a.MemberID] = append(byMember[a.MemberID], TradeExecuted{
			TradeID: a.ID, DealingDate: d, Units: a.Units, Price: a.Price, Cash: a.Cash,
			SettlementDate: s.cal.SettlementDate(d, asset.SettlementDays),
			BatchID:        BatchID(d, a.Asset), ExecutionID: "exec-" + BatchID(d, a.Asset), At: s.now,
		})
	}
	dayNets := map[ISIN]AssetDay{}
	for asset, day := range days {
		s.custodianUnits[asset] = s.custodianUnits[asset].Add(day.NetUnits())
		s.houseCash[asset] = s.houseCash[asset].Add(day.HouseResidual())
		dayNets[asset] = *day
	}
	s.dealt[d] = dayNets

	// 5. Tell every pot, in a shuffled order, perhaps twice.
	members := slices.Sorted(mapsKeys(byMember))
	if opt.rng != nil {
		opt.rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	}
	for _, m := range members {
		execs := byMember[m]
		if opt.rng != nil {
			opt.rng.Shuffle(len(execs), func(i, j int) { execs[i], execs[j] = execs[j], execs[i] })
		}
		deliver(m, AllocateTrades{DealingDate: d, Executions: execs})
	}
	s.checkDay(d)

	// 6. The day's prices are now the latest.
	for a, p := range prices {
		s.prices[a] = PricePoint{Price: p, Date: d}
	}
	// 7. Rebalance with d's prices.
	if opt.rebalance {
		for _, m := range s.members {
			if s.pots[m].p.Opened {
				deliver(m, Rebalance{Date: d, Prices: prices})
			}
		}
	}
}

func (s *sim) unitDecimals(a ISIN) int32 {
	asset, ok := s.cat.Asset(a)
	if !ok {
		s.t.Fatalf("unknown asset %s", a)
	}
	return asset.UnitDecimals
}

// checkDay asserts invariant 5 for dealing day d: per asset, the units the
// pots' trades got add up to the net order, and the cash they paid and
// received, less the custodian's net cash, is the house residual.
func (s *sim) checkDay(d Date) {
	s.t.Helper()
	type sums struct {
		units        Units
		paid, credit Money
	}
	got := map[ISIN]*sums{}
	for _, m := range s.members {
		for _, t := range s.pots[m].p.Trades {
			if t.Execution == nil || !t.Execution.DealingDate.Equal(d) {
				continue
			}
			x := got[t.Asset]
			if x == nil {
				x = &sums{}
				got[t.Asset] = x
			}
			if t.Side == Buy {
				x.units, x.paid = x.units.Add(t.Execution.Units), x.paid.Add(t.Execution.Cash)
			} else {
				x.units, x.credit = x.units.Sub(t.Execution.Units), x.credit.Add(t.Execution.Cash)
			}
		}
	}
	for asset, day := range s.dealt[d] {
		x := got[asset]
		if x == nil {
			x = &sums{}
		}
		if !x.units.Equal(day.NetUnits()) {
			s.t.Fatalf("%s %s: pots got %s units, the net order is %s", d, asset, x.units, day.NetUnits())
		}
		flow := day.NetCash()
		if day.NetSide() == Sell {
			flow = flow.Neg()
		}
		if residual := x.paid.Sub(x.credit).Sub(flow); !residual.Equal(day.HouseResidual()) {
			s.t.Fatalf("%s %s: pots' cash less the custodian's is %s, the house took %s", d, asset, residual, day.HouseResidual())
		}
	}
	for asset := range got {
		if _, ok := s.dealt[d][asset]; !ok {
			s.t.Fatalf("%s: pots executed %s, which was not dealt", d, asset)
		}
	}
}

// checkHoldings asserts the external reconciliation of the simulation: per
// asset, the pots' units (settled and pending) equal the custodian's.
func (s *sim) checkHoldings() {
	s.t.Helper()
	pots := map[ISIN]Units{}
	for _, m := range s.members {
		for a, h := range s.pots[m].p.Holdings {
			pots[a] = pots[a].Add(h.Settled).Add(h.Pending)
		}
	}
	for _, a := range s.cat.Assets() {
		if !pots[a.ISIN].Equal(s.custodianUnits[a.ISIN]) {
			s.t.Fatalf("%s: pots hold %s units, the custodian %s", a.ISIN, pots[a.ISIN], s.custodianUnits[a.ISIN])
		}
	}
}

// checkAllTerminal asserts invariant 4 at the end: every trade ended in
// exactly one terminal state (settled or cancelled) and every withdrawal was
// paid.
func (s *sim) checkAllTerminal() {
	s.t.Helper()
	for _, m := range s.members {
		p := s.pots[m].p
		for _, t := range p.Trades {
			if t.Status != TradeSettledStatus && t.Status != TradeCancelled {
				s.t.Fatalf("pot %s: trade %s never finished (status %d)", m, t.ID, t.Status)
			}
			if t.Status == TradeSettledStatus && s.executed[t.ID] != 1 {
				s.t.Fatalf("pot %s: settled trade %s executed %d times", m, t.ID, s.executed[t.ID])
			}
		}
		for _, mv := range p.Movements {
			if mv.Kind == Withdrawal && !mv.IsPaid() {
				s.t.Fatalf("pot %s: withdrawal %s never paid", m, mv.ID)
			}
		}
		require.True(s.t, p.Cash.Pending.IsZero(), "pot %s: cash still pending at the end: %+v", m, p.Cash)
		require.True(s.t, p.Cash.Reserved.IsZero(), "pot %s: cash still reserved at the end: %+v", m, p.Cash)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// diffLines shows the first differing line of two dumps.
func diffLines(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n want %s\n  got %s", i+1, w, g)
		}
	}
	return "(no difference)"
}

func canonical(p *Pot) string { return p.Canonical() }
