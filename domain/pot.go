package domain

import (
	"fmt"
	"time"
)

// Side is the direction of a trade.
type Side uint8

const (
	Buy Side = iota + 1
	Sell
)

func (s Side) String() string {
	switch s {
	case Buy:
		return "buy"
	case Sell:
		return "sell"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// OrderType is what the member (or the system) asked for.
type OrderType uint8

const (
	OrderBuy       OrderType = iota + 1 // buy an asset with cash (also a contribution's investing buys)
	OrderSell                           // sell units, by units, cash or percent (also a withdrawal's sells)
	OrderSwitch                         // sell one asset and buy another with the proceeds, same day
	OrderRebalance                      // the system's trades back to the profile's mix
)

func (t OrderType) String() string {
	switch t {
	case OrderBuy:
		return "buy"
	case OrderSell:
		return "sell"
	case OrderSwitch:
		return "switch"
	case OrderRebalance:
		return "rebalance"
	}
	return fmt.Sprintf("order-type(%d)", uint8(t))
}

// TradeStatus is where a trade is in its life:
// accepted → executed → settled, or accepted → cancelled. "Cut off" is not
// stored: a trade is cut off when its dealing day has closed (see
// Pot.TradeStatusAt), which the pot learns from its context.
type TradeStatus uint8

const (
	TradeAccepted TradeStatus = iota + 1
	TradeExecutedStatus
	TradeSettledStatus
	TradeCancelled
)

// MovementKind is a cash movement between the member and the pot.
type MovementKind uint8

const (
	Contribution MovementKind = iota + 1
	Withdrawal
)

func (k MovementKind) String() string {
	switch k {
	case Contribution:
		return "contribution"
	case Withdrawal:
		return "withdrawal"
	}
	return fmt.Sprintf("movement(%d)", uint8(k))
}

// Pot is the state of one member's pot: the aggregate that Decide reads and
// Apply changes. Only Apply changes it.
type Pot struct {
	MemberID string
	Profile  string // risk profile name; "" for a self-directed pot
	Opened   bool
	OpenedAt time.Time
	// Version is the number of events applied; the journal's stream version.
	Version uint64
	// Seq is the last number handed out to an order, trade or movement id.
	Seq uint64

	Cash     CashBalance
	Holdings map[ISIN]*Holding

	// Orders, Trades and Movements hold the pot's open work and what an
	// idempotency key in its window refers to; closed ones are retired
	// (retire.go) and live on in the journal and the history read model.
	Orders   map[string]*Order
	OrderIDs []string // in creation order
	// Trades indexes the trades of Orders by id (not in snapshots: it is
	// rebuilt from Orders).
	Trades    map[string]*Trade `json:"-"`
	Movements map[string]*Movement
	// MovementIDs is in creation order.
	MovementIDs []string

	// Requests remembers the accepted member requests' idempotency keys
	// for RequestRetention, oldest first (they are forgotten in that
	// order). A slice, not a map: most pots hold a handful, and a map costs
	// a group of eight slots; requestIndex finds keys in a long one.
	Requests     []RequestRecord
	requestIndex map[string]int // by key, the latest record's index; nil until needed
	// requestRefs counts, by RefID, the remembered records that refer to
	// a movement or an order, for retire; nil until needed (and after a
	// decode), then kept up to date as records come and go.
	requestRefs map[string]int

	// LastRebalance is the latest dealing day whose prices rebalanced the pot.
	LastRebalance Date
	// ForgottenThrough is the highest version that recorded an idempotency
	// key the pot has forgotten (0: it has forgotten none). A key the pot
	// does not remember was never used, or was recorded by then: the
	// member's history, projected to this version, knows it (see
	// Context.PastRequest). Keys are forgotten a week after they were
	// recorded, so the history is normally far past it.
	ForgottenThrough uint64

	// retired is called with each order as Apply retires it (OnRetire).
	retired func(*Order)
}

// CashBalance is the pot's cash. Held cash is Available + Reserved.
type CashBalance struct {
	Available Money // free to spend or withdraw
	Reserved  Money // promised to accepted buys and to withdrawals being paid
	Pending   Money // sale proceeds (and linked-buy change) not yet settled
}

// Holding is the pot's position in one asset. Settled units are held;
// Reserved of them are promised to accepted sells; Pending are bought and
// not yet settled.
type Holding struct {
	Settled  Units
	Reserved Units
	Pending  Units
}

// Available is the settled units not promised to a sell.
func (h Holding) Available() Units { return h.Settled.Sub(h.Reserved) }

// Order is a request that trades: one or more trades dealt on the same day.
type Order struct {
	ID         string
	Type       OrderType
	MovementID string // the contribution or withdrawal that made it, if any
	CreatedAt  time.Time
	// DealingDate is the day the order's trades deal; OriginalDealingDate the
	// day promised when it was accepted (they differ after a roll).
	DealingDate         Date
	OriginalDealingDate Date
	Cancelled           bool
	CancelledAt         time.Time
	Trades              []*Trade
}

// Trade is one asset's side of an order.
type Trade struct {
	ID      string
	OrderID string
	Asset   ISIN
	Side    Side
	// Cash: for a buy, the cash it spends from the pot (for a linked buy, the
	// fixed cash added to its proceeds shares); for a sell by cash, the cash
	// to raise. Units: for a sell by units (or percent), the units to sell.
	Cash    Money
	Units   Units
	Funding []ProceedsShare // a linked buy's shares of same-order sells' proceeds
	// ReservedCash and ReservedUnits are what the trade holds back from the
	// pot while it is accepted.
	ReservedCash  Money
	ReservedUnits Units

	Status    TradeStatus
	Execution *Execution
	// PendingCash is the cash this trade credits to available cash when it
	// settles: a sell's proceeds not spent by linked buys, a linked buy's
	// change.
	PendingCash Money
	SettledAt   time.Time
}

// ProceedsShare is a fraction of a sell's proceeds that funds a linked buy.
type ProceedsShare struct {
	SellTradeID string
	Fraction    Weight
}

// IsLinked reports whether the trade is a buy funded by same-day proceeds.
func (t *Trade) IsLinked() bool { return len(t.Funding) > 0 }

// Execution is how a trade was executed, from the day's allocation.
type Execution struct {
	DealingDate    Date
	Units          Units
	Price          Price
	Cash           Money // a buy's cost or a sell's proceeds
	SettlementDate Date
	BatchID        string
	ExecutionID    string
	ExecutedAt     time.Time
}

// Movement is cash in (a contribution) or out (a withdrawal).
type Movement struct {
	ID          string
	Kind        MovementKind
	Amount      Money
	At          time.Time
	DealingDate Date     // the day its orders deal (zero when it has none)
	OrderIDs    []string // the contribution's investing buys, the withdrawal's sells
	// Withdrawal only: CashPart was reserved from available cash at once;
	// Raised is what its sells' settlements brought in; Paid is what was
	// paid out (zero until paid).
	CashPart Money
	Raised   Money
	Paid     Money
	PaidAt   time.Time
}

// IsPaid reports whether a withdrawal has been paid out.
func (m *Movement) IsPaid() bool { return !m.PaidAt.IsZero() }

// RequestKind names the member request an idempotency key was used for.
type RequestKind uint8

const (
	RequestOpenPot RequestKind = iota + 1
	RequestContribute
	RequestWithdraw
	RequestPlaceOrder
	RequestCancelOrder
	RequestSetRiskProfile
)

// RequestRecord is what the pot remembers of an accepted member request, so
// that a repeat is answered with the original result.
type RequestRecord struct {
	Key   string
	Hash  string // of the request's content: a different body under the same key is refused
	Kind  RequestKind
	RefID string // the order or movement the request made or touched
	At    time.Time
	// Version is the pot's version of the event that recorded it, set by
	// Apply (the event itself carries none).
	Version uint64
}

// Retention of idempotency keys (docs/domain.md, "History and retention").
const (
	RequestRetention = 7 * 24 * time.Hour
	// requestsMax bounds the keys one pot remembers: at most one request a
	// minute for a week is 10,080; past this the oldest are forgotten early.
	requestsMax = 10_080
	// retentionWords is RequestRetention for people.
	retentionWords = "7 days"
)

// NewPot is the state of a pot that has no events yet.
func NewPot(memberID string) *Pot {
	return &Pot{
		MemberID:  memberID,
		Holdings:  map[ISIN]*Holding{},
		Orders:    map[string]*Order{},
		Trades:    map[string]*Trade{},
		Movements: map[string]*Movement{},
	}
}

// holding returns the pot's holding of asset, or an empty one (not stored).
func (p *Pot) holding(asset ISIN) Holding {
	if h, ok := p.Holdings[asset]; ok {
		return *h
	}
	return Holding{}
}

// HasOpenTrades reports whether any trade is accepted and not yet executed.
func (p *Pot) HasOpenTrades() bool {
	for _, t := range p.Trades {
		if t.Status == TradeAccepted {
			return true
		}
	}
	return false
}

// TradesDueBy returns the executed trades whose settlement date is on or
// before date, in the order they were created: the trades a SettleTrades
// for date settles.
func (p *Pot) TradesDueBy(date Date) []string {
	var due []string
	for _, id := range p.OrderIDs {
		for _, t := range p.Orders[id].Trades {
			if t.Status == TradeExecutedStatus && !t.Execution.SettlementDate.After(date) {
				due = append(due, t.ID)
			}
		}
	}
	return due
}

// OrderStatus is the status of an order as the API shows it.
type OrderStatus string

const (
	OrderStatusAccepted  OrderStatus = "accepted"
	OrderStatusCutOff    OrderStatus = "cut_off"
	OrderStatusExecuted  OrderStatus = "executed"
	OrderStatusSettled   OrderStatus = "settled"
	OrderStatusCancelled OrderStatus = "cancelled"
	OrderStatusRejected  OrderStatus = "rejected"
)

// TradeStatusAt is the status of t as shown to the member, given the first
// dealing day still open (see Context.OpenFrom) and the time now.
func TradeStatusAt(t *Trade, dealingDate Date, cutOff func(Date) bool) OrderStatus {
	switch t.Status {
	case TradeCancelled:
		return OrderStatusCancelled
	case TradeExecutedStatus:
		return OrderStatusExecuted
	case TradeSettledStatus:
		return OrderStatusSettled
	}
	if cutOff(dealingDate) {
		return OrderStatusCutOff
	}
	return OrderStatusAccepted
}

// OrderStatusAt is the status of o: cancelled, or the least advanced status
// of its trades. cutOff reports whether a dealing day is closed.
func OrderStatusAt(o *Order, cutOff func(Date) bool) OrderStatus {
	if o.Cancelled {
		return OrderStatusCancelled
	}
	least := OrderStatusSettled
	for _, t := range o.Trades {
		s := TradeStatusAt(t, o.DealingDate, cutOff)
		if statusRank(s) < statusRank(least) {
			least = s
		}
	}
	return least
}

// ClosedOrderCutOff is the cut-off test to give OrderStatusAt and
// TradeStatusAt for a closed order (Order.Closed), whose view is rendered
// once and kept: none of its trades asks which dealing days are closed, so
// being asked means the order was open, and it panics rather than answer.
func ClosedOrderCutOff(d Date) bool {
	panic("domain: the status of a closed order asked whether " + d.String() + " is cut off: the order is open")
}

// statusRank orders a trade's statuses from the least advanced; any other
// (cancelled) ranks with accepted. A switch rather than a map literal: the
// map was built on every call, a page of orders' views calling it for each.
func statusRank(s OrderStatus) int {
	switch s {
	case OrderStatusCutOff:
		return 1
	case OrderStatusExecuted:
		return 2
	case OrderStatusSettled:
		return 3
	}
	return 0
}

// requestIndexFrom: a pot with more remembered keys than this finds them
// through an index rather than a scan. A map for every pot would cost more
// than a scan of a few keys (most pots see a handful of requests a week),
// but a scan of 64 was 5% of a busy pot's CPU (docs/performance.md).
const requestIndexFrom = 16

// Request returns the record of the latest accepted request with key.
func (p *Pot) Request(key string) (RequestRecord, bool) {
	if len(p.Requests) <= requestIndexFrom {
		for i := len(p.Requests) - 1; i >= 0; i-- {
			if p.Requests[i].Key == key {
				return p.Requests[i], true
			}
		}
		return RequestRecord{}, false
	}
	if p.requestIndex == nil {
		p.requestIndex = make(map[string]int, len(p.Requests))
		for i, r := range p.Requests {
			p.requestIndex[r.Key] = i
		}
	}
	i, ok := p.requestIndex[key]
	if !ok {
		return RequestRecord{}, false
	}
	return p.Requests[i], true
}
