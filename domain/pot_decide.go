package domain

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// sellByCashReserveFactor: a sell by cash is accepted before its price is
// known, so it reserves this many times the units it would need at the
// latest price (capped at what is available). The trade can then still raise
// its cash if the price halves by the dealing day; if it falls further, the
// sell is capped at its reservation and raises less (docs/domain.md, "Numbers
// and rounding").
var sellByCashReserveFactor = decimal.NewFromInt(2)

// idempotencyKeyBytesMax is docs/api.md's bound on Idempotency-Key.
const idempotencyKeyBytesMax = 128

// Decide decides a command against the pot's state. It returns the events to
// append and the reply to give once they are durable, or a refusal (a
// *RefusalError, or a *ValueError) and no events. It does not change p.
//
// A member command whose idempotency key the pot remembers is answered with
// the original result and no events; with a different body it is refused
// with ErrIdempotencyConflict. System commands are idempotent by content: a
// repeat has no events.
func Decide(p *Pot, cmd Command, ctx *Context) (Decision, error) {
	if mc, ok := cmd.(MemberCommand); ok {
		if err := validateKey(mc.IdempotencyKey()); err != nil {
			return Decision{}, err
		}
		rec, seen := p.Request(mc.IdempotencyKey())
		if !seen && ctx.PastRequest != nil && ctx.PastRequest.Key == mc.IdempotencyKey() {
			rec, seen = *ctx.PastRequest, true
		}
		if seen && !rec.At.Add(RequestRetention).After(ctx.Now) {
			return Decision{}, refuse(ErrIdempotencyKeyExpired, "key %q was used at %s, more than %s ago: a request is never applied twice, so send a new request with a new key",
				rec.Key, rec.At.UTC().Format(time.RFC3339), retentionWords)
		}
		if seen {
			if rec.Hash != RequestHash(mc) {
				return Decision{}, refuse(ErrIdempotencyConflict, "key %q was used for another request", rec.Key)
			}
			return Decision{Reply: Reply{Kind: rec.Kind, RefID: rec.RefID, Replayed: true}}, nil
		}
	}
	if _, open := cmd.(OpenPot); !open && !p.Opened {
		return Decision{}, refuse(ErrPotNotFound, "member %s has no pot", p.MemberID)
	}
	d := decider{p: p, ctx: ctx}
	var err error
	switch c := cmd.(type) {
	case OpenPot:
		err = d.openPot(c)
	case Contribute:
		err = d.contribute(c)
	case Withdraw:
		err = d.withdraw(c)
	case PlaceOrder:
		err = d.placeOrder(c)
	case CancelOrder:
		err = d.cancelOrder(c)
	case SetRiskProfile:
		err = d.setRiskProfile(c)
	case Rebalance:
		err = d.rebalance(c)
	case AllocateTrades:
		err = d.allocate(c)
	case SettleTrades:
		err = d.settle(c)
	case RollOrder:
		err = d.roll(c)
	default:
		panic(fmt.Sprintf("domain: Decide of unknown command %T", cmd))
	}
	if err != nil {
		return Decision{}, err
	}
	if mc, ok := cmd.(MemberCommand); ok {
		d.reply.Kind = mc.requestKind()
		d.emit(RequestRecorded{Record: RequestRecord{Key: mc.IdempotencyKey(), Hash: RequestHash(mc),
			Kind: mc.requestKind(), RefID: d.reply.RefID, At: ctx.Now}})
	} else if len(d.events) == 0 {
		d.reply.Replayed = true
	}
	return Decision{Events: d.events, Reply: d.reply}, nil
}

// decider holds one decision in progress: the events so far and the ids
// handed out.
type decider struct {
	p      *Pot
	ctx    *Context
	events []Event
	reply  Reply
	seq    uint64 // ids handed out by this decision
}

func (d *decider) emit(e Event) { d.events = append(d.events, e) }

// nextID is the next id of the pot: "<member>-<n>".
func (d *decider) nextID() string {
	d.seq++
	return d.p.MemberID + "-" + strconv.FormatUint(d.p.Seq+d.seq, 10)
}

// idSeq is the number n of an id "<member>-<n>".
func idSeq(memberID, id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, memberID+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

func validateKey(k string) error {
	if k == "" || len(k) > idempotencyKeyBytesMax {
		return refuse(ErrInvalidCommand, "idempotency key must be 1 to %d characters", idempotencyKeyBytesMax)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return refuse(ErrInvalidCommand, "idempotency key must be printable ASCII")
		}
	}
	return nil
}

func (d *decider) profile(name string) (RiskProfile, error) {
	prof, ok := d.ctx.Catalogue.Profile(name)
	if !ok {
		return RiskProfile{}, refuse(ErrUnknownProfile, "no risk profile %q", name)
	}
	return prof, nil
}

func (d *decider) asset(isin ISIN) (Asset, error) {
	a, ok := d.ctx.Catalogue.Asset(isin)
	if !ok {
		return Asset{}, refuse(ErrUnknownAsset, "no asset %q in the catalogue", isin)
	}
	return a, nil
}

func checkAmount(m Money) error {
	if m.Sign() <= 0 {
		return &ValueError{Quantity: "cash", Input: m.String(), Err: ErrNotPositive, Detail: "must be greater than zero"}
	}
	return checkDecimal("cash", m.d, CashDecimals, true, CashMax)
}

// ---------------------------------------------------------------------------
// Member commands

func (d *decider) openPot(c OpenPot) error {
	if d.p.Opened {
		return refuse(ErrPotAlreadyOpen, "member %s already has a pot", d.p.MemberID)
	}
	if c.Profile != "" {
		if _, err := d.profile(c.Profile); err != nil {
			return err
		}
	}
	d.emit(PotOpened{MemberID: d.p.MemberID, Profile: c.Profile, At: d.ctx.Now})
	return nil
}

func (d *decider) contribute(c Contribute) error {
	if err := checkAmount(c.Amount); err != nil {
		return err
	}
	// A pot's own numbers, and a dealing day's sums of them, stay within
	// what the system reads back (TotalMax) because each pot stays within
	// PotValueMax.
	value := d.p.Mix(d.latestPrices()).Total().Add(d.p.Cash.Reserved)
	if after := value.Add(c.Amount); after.Decimal().GreaterThan(PotValueMax) {
		return refuse(ErrPotLimit, "a pot holds at most %s; with this contribution it would hold %s", PotValueMax.StringFixed(CashDecimals), after)
	}
	id := d.nextID()
	d.reply.RefID = id
	d.emit(CashContributed{MovementID: id, Amount: c.Amount, At: d.ctx.Now})
	if d.p.Profile == "" {
		return nil
	}
	prof, err := d.profile(d.p.Profile)
	if err != nil {
		return err
	}
	date := d.ctx.DealingDate()
	for _, buy := range InvestContribution(prof, d.mix(d.latestPrices()), c.Amount) {
		d.emit(OrderPlaced{OrderID: d.nextID(), Type: OrderBuy, MovementID: id, DealingDate: date, At: d.ctx.Now,
			Trades: []TradeSpec{{ID: d.nextID(), Asset: buy.Asset, Side: Buy, Cash: buy.Amount, ReservedCash: buy.Amount}}})
	}
	return nil
}

func (d *decider) withdraw(c Withdraw) error {
	if err := checkAmount(c.Amount); err != nil {
		return err
	}
	mix := d.mix(d.latestPrices())
	withdrawable := d.p.Cash.Available
	for _, pos := range mix.Positions {
		withdrawable = withdrawable.Add(pos.AvailableValue())
	}
	if c.Amount.Cmp(withdrawable) > 0 {
		return refuse(ErrAmountAboveValue, "%s asked, %s can be withdrawn", c.Amount, withdrawable)
	}
	id := d.nextID()
	d.reply.RefID = id
	cashPart := minMoney(c.Amount, d.p.Cash.Available)
	raise := c.Amount.Sub(cashPart)
	var date Date
	if raise.Sign() > 0 {
		date = d.ctx.DealingDate()
	}
	d.emit(WithdrawalRequested{MovementID: id, Amount: c.Amount, CashPart: cashPart, DealingDate: date, At: d.ctx.Now})
	if raise.Sign() == 0 {
		d.emit(WithdrawalPaid{MovementID: id, Amount: c.Amount, At: d.ctx.Now})
		return nil
	}
	var prof *RiskProfile
	if d.p.Profile != "" {
		pr, err := d.profile(d.p.Profile)
		if err != nil {
			return err
		}
		prof = &pr
	}
	after := mix.Total().Sub(c.Amount)
	for _, sell := range RaiseWithdrawal(prof, mix, after, raise) {
		a, err := d.asset(sell.Asset)
		if err != nil {
			return err
		}
		pos := mix.Positions[sell.Asset]
		reserve := sellByCashReserve(sell.Amount, pos.Price, pos.Available, a.UnitDecimals)
		d.emit(OrderPlaced{OrderID: d.nextID(), Type: OrderSell, MovementID: id, DealingDate: date, At: d.ctx.Now,
			Trades: []TradeSpec{{ID: d.nextID(), Asset: sell.Asset, Side: Sell, Cash: sell.Amount, ReservedUnits: reserve}}})
	}
	return nil
}

// sellByCashReserve is the units a sell of cash reserves: enough at
// sellByCashReserveFactor times the latest price's need, capped at what is
// available; everything available when there is no price.
func sellByCashReserve(cash Money, price Price, available Units, unitDecimals int32) Units {
	if price.IsZero() {
		return available
	}
	need := SellByCashUnits(Money{cash.d.Mul(sellByCashReserveFactor)}, price, available, unitDecimals)
	return need
}

func (d *decider) placeOrder(c PlaceOrder) error {
	o := c.Order
	date := d.ctx.DealingDate()
	orderID := d.nextID()
	d.reply.RefID = orderID
	placed := OrderPlaced{OrderID: orderID, Type: o.Type, DealingDate: date, At: d.ctx.Now}
	switch o.Type {
	case OrderBuy:
		if _, err := d.asset(o.Asset); err != nil {
			return err
		}
		if !o.Units.IsZero() || !o.Percent.d.IsZero() {
			return refuse(ErrInvalidCommand, "a buy is by amount only")
		}
		if err := checkAmount(o.Amount); err != nil {
			return err
		}
		if o.Amount.Cmp(d.p.Cash.Available) > 0 {
			return refuse(ErrInsufficientFunds, "buy of %s with %s available", o.Amount, d.p.Cash.Available)
		}
		placed.Trades = []TradeSpec{{ID: d.nextID(), Asset: o.Asset, Side: Buy, Cash: o.Amount, ReservedCash: o.Amount}}
	case OrderSell:
		spec, err := d.sellSpec(o.Asset, o.Units, o.Amount, o.Percent, true)
		if err != nil {
			return err
		}
		placed.Trades = []TradeSpec{spec}
	case OrderSwitch:
		if o.From == o.To {
			return refuse(ErrSameAsset, "switch from %s to itself", o.From)
		}
		if _, err := d.asset(o.To); err != nil {
			return err
		}
		if !o.Amount.IsZero() {
			return refuse(ErrInvalidCommand, "a switch is by units or percent")
		}
		sell, err := d.sellSpec(o.From, o.Units, Money{}, o.Percent, false)
		if err != nil {
			return err
		}
		buy := TradeSpec{ID: d.nextID(), Asset: o.To, Side: Buy,
			Funding: []ProceedsShare{{SellTradeID: sell.ID, Fraction: WeightOne}}}
		placed.Trades = []TradeSpec{sell, buy}
	default:
		return refuse(ErrInvalidCommand, "unknown order type %d", o.Type)
	}
	d.emit(placed)
	return nil
}

// sellSpec is the trade of a sell of asset by exactly one of units, amount
// (when allowed) and percent of the available units.
func (d *decider) sellSpec(asset ISIN, units Units, amount Money, pct Percent, amountAllowed bool) (TradeSpec, error) {
	a, err := d.asset(asset)
	if err != nil {
		return TradeSpec{}, err
	}
	given := 0
	for _, set := range []bool{!units.IsZero(), !amount.IsZero(), !pct.d.IsZero()} {
		if set {
			given++
		}
	}
	if given != 1 || (!amountAllowed && !amount.IsZero()) {
		return TradeSpec{}, refuse(ErrInvalidCommand, "a sell needs exactly one of units, amount or percent")
	}
	avail := d.p.holding(asset).Available()
	spec := TradeSpec{ID: d.nextID(), Asset: asset, Side: Sell}
	switch {
	case !units.IsZero():
		if err := checkDecimal("units", units.d, a.UnitDecimals, true, UnitsMax); err != nil {
			return TradeSpec{}, err
		}
		if units.Cmp(avail) > 0 {
			return TradeSpec{}, refuse(ErrInsufficientUnits, "sell of %s units of %s with %s available", units, asset, avail)
		}
		spec.Units, spec.ReservedUnits = units, units
	case !pct.d.IsZero():
		u := SellByPercentUnits(avail, pct, a.UnitDecimals)
		if u.Sign() <= 0 {
			return TradeSpec{}, refuse(ErrInsufficientUnits, "%s%% of %s available units of %s is nothing", pct, avail, asset)
		}
		spec.Units, spec.ReservedUnits = u, u
	default:
		if err := checkAmount(amount); err != nil {
			return TradeSpec{}, err
		}
		price, known := d.ctx.price(asset)
		if avail.Sign() <= 0 {
			return TradeSpec{}, refuse(ErrInsufficientUnits, "no units of %s available", asset)
		}
		if known && SellProceeds(avail, price).Cmp(amount) < 0 {
			return TradeSpec{}, refuse(ErrInsufficientUnits, "sell of %s of %s with %s available at %s",
				amount, asset, SellProceeds(avail, price), price)
		}
		spec.Cash = amount
		spec.ReservedUnits = sellByCashReserve(amount, price, avail, a.UnitDecimals)
	}
	return spec, nil
}

func (d *decider) cancelOrder(c CancelOrder) error {
	o, ok := d.p.Orders[c.OrderID]
	if !ok && d.p.Issued(c.OrderID) {
		// Retired, so closed: cancelled (answered again) or settled. The
		// shell found it in the member's history.
		if r := d.ctx.Retired; r != nil && r.ID == c.OrderID {
			o, ok = r, true
		} else {
			return refuse(ErrHistoryUnavailable, "order %s is closed and its history could not be read", c.OrderID)
		}
	}
	if !ok {
		return refuse(ErrOrderNotFound, "no order %q", c.OrderID)
	}
	d.reply.RefID = o.ID
	if o.Cancelled {
		return nil // cancelling twice: the order stays cancelled
	}
	if o.Type == OrderRebalance {
		return refuse(ErrOrderNotCancellable, "order %s is the system's rebalance", o.ID)
	}
	for _, t := range o.Trades {
		if t.Status != TradeAccepted {
			return refuse(ErrOrderCutOff, "order %s is already executed", o.ID)
		}
	}
	if d.ctx.IsCutOff(o.DealingDate) {
		return refuse(ErrOrderCutOff, "order %s was cut off for dealing day %s", o.ID, o.DealingDate)
	}
	d.emit(OrderCancelled{OrderID: o.ID, At: d.ctx.Now})
	d.payWithdrawals(nil, map[string]bool{o.ID: true})
	return nil
}

func (d *decider) setRiskProfile(c SetRiskProfile) error {
	if c.Profile != "" {
		if _, err := d.profile(c.Profile); err != nil {
			return err
		}
	}
	if c.Profile != d.p.Profile {
		d.emit(RiskProfileSet{Profile: c.Profile, At: d.ctx.Now})
	}
	return nil
}

// ---------------------------------------------------------------------------
// System commands

// RebalanceDue reports whether a Rebalance for date at prices may change the
// pot or be refused: false when Decide would certainly answer it with no
// events. The daily sweep asks it of its replicas first, and calls only the
// pots it is true for (on an ordinary day a few; Decide still decides).
func RebalanceDue(p *Pot, cat *Catalogue, date Date, prices map[ISIN]Price) bool {
	if p.Profile == "" || !date.After(p.LastRebalance) {
		return false // self-directed, or this day (or a later one) already done
	}
	if p.HasOpenTrades() {
		// Its accepted trades will change the mix; the next day's prices
		// will see the result.
		return false
	}
	prof, ok := cat.Profile(p.Profile)
	if !ok {
		return true // refused: the pot says why
	}
	mix := p.Mix(prices)
	for a, pos := range mix.Positions {
		if pos.Price.IsZero() && (pos.Units.Sign() > 0 || !prof.Target(a).IsZero()) {
			return true // refused
		}
	}
	return CheckDrift(prof, mix).OutOfBand
}

func (d *decider) rebalance(c Rebalance) error {
	if !RebalanceDue(d.p, d.ctx.Catalogue, c.Date, c.Prices) {
		return nil
	}
	prof, err := d.profile(d.p.Profile)
	if err != nil {
		return err
	}
	mix := d.mix(c.Prices)
	for a, pos := range mix.Positions {
		if pos.Price.IsZero() && (pos.Units.Sign() > 0 || !prof.Target(a).IsZero()) {
			return refuse(ErrNoPrice, "rebalance of %s without a price for %s", c.Date, a)
		}
	}
	plan := PlanRebalance(prof, mix, d.unitDecimals)
	if plan.IsEmpty() {
		return nil
	}
	date := d.ctx.Calendar.NextDealingDay(c.Date)
	if open := d.ctx.DealingDate(); date.Before(open) {
		date = open
	}
	placed := OrderPlaced{OrderID: d.nextID(), Type: OrderRebalance, DealingDate: date, At: d.ctx.Now}
	var sellIDs []string
	for _, s := range plan.Sells {
		id := d.nextID()
		sellIDs = append(sellIDs, id)
		placed.Trades = append(placed.Trades, TradeSpec{ID: id, Asset: s.Asset, Side: Sell, Units: s.Units, ReservedUnits: s.Units})
	}
	for _, b := range plan.Buys {
		spec := TradeSpec{ID: d.nextID(), Asset: b.Asset, Side: Buy, Cash: b.FixedCash, ReservedCash: b.FixedCash}
		if !b.Fraction.IsZero() {
			for _, sid := range sellIDs {
				spec.Funding = append(spec.Funding, ProceedsShare{SellTradeID: sid, Fraction: b.Fraction})
			}
		}
		placed.Trades = append(placed.Trades, spec)
	}
	d.emit(RebalanceRecorded{Date: c.Date, At: d.ctx.Now})
	d.emit(placed)
	return nil
}

func (d *decider) allocate(c AllocateTrades) error {
	// Sells first: a linked buy's cash depends on its sells' proceeds.
	execs := slices.Clone(c.Executions)
	sellsFirst := func(id string) int {
		if t, ok := d.p.Trades[id]; ok && t.Side == Buy {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(execs, func(a, b TradeExecuted) int {
		return sellsFirst(a.TradeID) - sellsFirst(b.TradeID)
	})
	proceeds := map[string]Money{} // sells executed by this message
	seen := map[string]bool{}
	for _, e := range execs {
		t, ok := d.p.Trades[e.TradeID]
		if !ok && d.p.Issued(e.TradeID) {
			continue // retired: settled or cancelled long since, so a repeat
		}
		if !ok {
			return refuse(ErrSystemMismatch, "no trade %q", e.TradeID)
		}
		if seen[t.ID] {
			continue // twice in one message
		}
		seen[t.ID] = true
		switch t.Status {
		case TradeExecutedStatus, TradeSettledStatus:
			if t.Execution.ExecutionID == e.ExecutionID {
				continue // a repeat
			}
			return refuse(ErrSystemMismatch, "trade %s already executed by %s, not %s", t.ID, t.Execution.ExecutionID, e.ExecutionID)
		case TradeCancelled:
			return refuse(ErrSystemMismatch, "trade %s was cancelled", t.ID)
		}
		o := d.p.Orders[t.OrderID]
		if !e.DealingDate.Equal(o.DealingDate) {
			return refuse(ErrSystemMismatch, "trade %s deals on %s, not %s", t.ID, o.DealingDate, e.DealingDate)
		}
		a, err := d.asset(t.Asset)
		if err != nil {
			return refuse(ErrSystemMismatch, "trade %s: %v", t.ID, err)
		}
		units, cash, err := AllocateTrade(t.Spec(), e.Price, a.UnitDecimals, func(sellID string) (Money, bool) {
			if m, ok := proceeds[sellID]; ok {
				return m, true
			}
			if s := d.p.Trades[sellID]; s != nil && s.Execution != nil {
				return s.Execution.Cash, true
			}
			return Money{}, false
		})
		if err != nil {
			return refuse(ErrSystemMismatch, "%v", err)
		}
		if t.Side == Sell {
			proceeds[t.ID] = cash
		}
		if !units.Equal(e.Units) || !cash.Equal(e.Cash) {
			return refuse(ErrSystemMismatch, "trade %s: allocation of %s units for %s, the rules give %s units for %s",
				t.ID, e.Units, e.Cash, units, cash)
		}
		d.emit(e)
	}
	return nil
}

func (d *decider) settle(c SettleTrades) error {
	settled := map[string]bool{}
	for _, id := range c.TradeIDs {
		t, ok := d.p.Trades[id]
		if !ok && d.p.Issued(id) {
			continue // retired: settled long since, so a repeat
		}
		if !ok {
			return refuse(ErrSystemMismatch, "no trade %q", id)
		}
		switch {
		case t.Status == TradeSettledStatus || settled[id]:
			continue // a repeat
		case t.Status != TradeExecutedStatus:
			return refuse(ErrSystemMismatch, "trade %s is not executed", id)
		}
		settled[id] = true
		d.emit(TradeSettled{TradeID: id, At: d.ctx.Now})
	}
	d.payWithdrawals(settled, nil)
	return nil
}

// payWithdrawals pays every unpaid withdrawal whose sells have all settled
// or been cancelled, counting the settlements and cancellations being
// decided now. It pays what was asked, or what was raised if less.
func (d *decider) payWithdrawals(settlingNow map[string]bool, cancellingNow map[string]bool) {
	for _, mid := range d.p.MovementIDs {
		m := d.p.Movements[mid]
		if m.Kind != Withdrawal || m.IsPaid() {
			continue
		}
		held := m.CashPart.Add(m.Raised)
		done, touched := true, false
		for _, oid := range m.OrderIDs {
			o, ok := d.p.Orders[oid]
			if !ok {
				continue // retired: closed, and a settled sell's cash is in Raised
			}
			if o.Cancelled || cancellingNow[oid] {
				touched = touched || cancellingNow[oid]
				continue
			}
			for _, t := range o.Trades {
				switch {
				case settlingNow[t.ID]:
					held = held.Add(t.PendingCash)
					touched = true
				case t.Status != TradeSettledStatus:
					done = false
				}
			}
		}
		if done && touched {
			d.emit(WithdrawalPaid{MovementID: m.ID, Amount: minMoney(m.Amount, held), At: d.ctx.Now})
		}
	}
}

func (d *decider) roll(c RollOrder) error {
	o, ok := d.p.Orders[c.OrderID]
	if !ok && d.p.Issued(c.OrderID) {
		return nil // retired: closed, nothing to roll
	}
	if !ok {
		return refuse(ErrSystemMismatch, "no order %q", c.OrderID)
	}
	if o.Cancelled || !o.DealingDate.Before(c.To) {
		return nil // nothing to roll, or rolled already
	}
	if !o.DealingDate.Equal(c.From) {
		return refuse(ErrSystemMismatch, "order %s deals on %s, not %s", o.ID, o.DealingDate, c.From)
	}
	for _, t := range o.Trades {
		if t.Status != TradeAccepted {
			return refuse(ErrSystemMismatch, "order %s has executed trades", o.ID)
		}
	}
	d.emit(OrderRolled{OrderID: o.ID, From: c.From, To: c.To, At: d.ctx.Now})
	return nil
}

// ---------------------------------------------------------------------------
// Valuation

func (d *decider) unitDecimals(a ISIN) int32 {
	if asset, ok := d.ctx.Catalogue.Asset(a); ok {
		return asset.UnitDecimals
	}
	return UnitDecimalsDefault
}

func (d *decider) latestPrices() map[ISIN]Price {
	out := make(map[ISIN]Price, len(d.ctx.Prices))
	for a, pp := range d.ctx.Prices {
		out[a] = pp.Price
	}
	return out
}

// mix values the pot at prices for the rebalancing maths. Cash counted in
// the mix is available plus pending cash (reserved cash is promised away);
// positions are settled plus pending units.
func (d *decider) mix(prices map[ISIN]Price) Mix {
	return d.p.Mix(prices)
}

// Mix values the pot at prices for the rebalancing maths: its cash is
// available plus pending cash (reserved cash is promised away), and every
// asset it holds units of (settled plus pending) is a position with its
// available units and its price in prices (zero when prices has none).
func (p *Pot) Mix(prices map[ISIN]Price) Mix {
	m := Mix{Cash: p.Cash.Available.Add(p.Cash.Pending), Available: p.Cash.Available, Positions: map[ISIN]Position{}}
	for a, h := range p.Holdings {
		units := h.Settled.Add(h.Pending)
		if units.IsZero() {
			continue
		}
		m.Positions[a] = Position{Units: units, Available: h.Available(), Price: prices[a]}
	}
	return m
}
