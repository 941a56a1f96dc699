package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Command is a request to a pot: from a member (through the gateway) or from
// the system (the dealing cycle).
type Command interface {
	commandName() string
}

// MemberCommand is a command a member sends; it carries an idempotency key.
type MemberCommand interface {
	Command
	IdempotencyKey() string
	requestKind() RequestKind
	// canonical is the request's content, without the key: the same key with
	// a different canonical form is refused.
	canonical() string
}

// Key is the idempotency key of a member request (HTTP Idempotency-Key).
type Key string

func (k Key) IdempotencyKey() string { return string(k) }

// OpenPot opens a pot for a member with an optional risk profile.
type OpenPot struct {
	Key
	Profile string
}

// Contribute pays cash in.
type Contribute struct {
	Key
	Amount Money
}

// Withdraw pays cash out.
type Withdraw struct {
	Key
	Amount Money
}

// PlaceOrder is a member's own trade for the next dealing day.
type PlaceOrder struct {
	Key
	Order OrderRequest
}

// OrderRequest is one of: buy Asset with Amount; sell Asset by Units, Amount
// or Percent; switch From into To by Units or Percent. Exactly one of Units,
// Amount and Percent is set (non-zero), as the order type allows.
type OrderRequest struct {
	Type    OrderType // OrderBuy, OrderSell or OrderSwitch
	Asset   ISIN      // buy and sell
	From    ISIN      // switch
	To      ISIN      // switch
	Amount  Money
	Units   Units
	Percent Percent
}

// CancelOrder cancels an order that is not cut off.
type CancelOrder struct {
	Key
	OrderID string
}

// SetRiskProfile changes the pot's target mix; the next rebalance moves
// towards it.
type SetRiskProfile struct {
	Key
	Profile string
}

// Rebalance checks the pot against its profile with the closing prices of
// Date and, if it drifted out of band, places trades for the next dealing day.
type Rebalance struct {
	Date   Date
	Prices map[ISIN]Price
}

// AllocateTrades gives a pot its trades' parts of a dealing day's net
// orders: one message per pot and day, so that a linked buy is applied after
// the sells that fund it. A repeat (even a partial one) changes nothing.
type AllocateTrades struct {
	DealingDate Date
	Executions  []TradeExecuted
}

// SettleTrades settles executed trades whose settlement date has come.
type SettleTrades struct {
	TradeIDs []string
}

// RollOrder moves an order whose dealing day closed before its aggregator saw
// it to a later dealing day.
type RollOrder struct {
	OrderID string
	From    Date
	To      Date
}

func (OpenPot) commandName() string        { return "open-pot" }
func (Contribute) commandName() string     { return "contribute" }
func (Withdraw) commandName() string       { return "withdraw" }
func (PlaceOrder) commandName() string     { return "place-order" }
func (CancelOrder) commandName() string    { return "cancel-order" }
func (SetRiskProfile) commandName() string { return "set-risk-profile" }
func (Rebalance) commandName() string      { return "rebalance" }
func (AllocateTrades) commandName() string { return "allocate-trades" }
func (SettleTrades) commandName() string   { return "settle-trades" }
func (RollOrder) commandName() string      { return "roll-order" }

func (OpenPot) requestKind() RequestKind        { return RequestOpenPot }
func (Contribute) requestKind() RequestKind     { return RequestContribute }
func (Withdraw) requestKind() RequestKind       { return RequestWithdraw }
func (PlaceOrder) requestKind() RequestKind     { return RequestPlaceOrder }
func (CancelOrder) requestKind() RequestKind    { return RequestCancelOrder }
func (SetRiskProfile) requestKind() RequestKind { return RequestSetRiskProfile }

func (c OpenPot) canonical() string        { return "open-pot|" + c.Profile }
func (c Contribute) canonical() string     { return "contribute|" + c.Amount.String() }
func (c Withdraw) canonical() string       { return "withdraw|" + c.Amount.String() }
func (c CancelOrder) canonical() string    { return "cancel-order|" + c.OrderID }
func (c SetRiskProfile) canonical() string { return "set-risk-profile|" + c.Profile }
func (c PlaceOrder) canonical() string {
	o := c.Order
	return strings.Join([]string{"place-order", o.Type.String(), string(o.Asset), string(o.From), string(o.To),
		o.Amount.String(), o.Units.String(), o.Percent.String()}, "|")
}

// RequestHash is the hash of a member request's content, remembered with its
// idempotency key.
func RequestHash(c MemberCommand) string {
	sum := sha256.Sum256([]byte(c.canonical()))
	return hex.EncodeToString(sum[:16])
}

// Context is what Decide may know besides the pot: the time, the catalogue,
// the calendar, the latest prices and which dealing days have closed. The
// shells fill it; Decide never reads a clock.
type Context struct {
	Now       time.Time
	Catalogue *Catalogue
	Calendar  *Calendar
	// Prices are the latest closing prices known, for valuations, the
	// withdrawal limit and sell-by-cash reservations. An asset without a
	// price counts as worth nothing there.
	Prices map[ISIN]PricePoint
	// OpenFrom is the first dealing day still open: days before it have been
	// cut off by the dealing cycle (perhaps ahead of the wall clock, when an
	// operator runs a cycle). The zero date means none has.
	OpenFrom Date
	// PastRequest is the record of the command's idempotency key that the
	// pot has forgotten, found by the shell in the member's history (nil
	// when none was found): Decide refuses it as too old rather than apply
	// the request twice.
	PastRequest *RequestRecord
	// Retired is the order a CancelOrder names when the pot has retired it,
	// as the member's history has it (nil otherwise).
	Retired *Order
}

// PricePoint is an asset's closing price on a date.
type PricePoint struct {
	Price Price
	Date  Date
}

// DealingDate is the dealing day a trade accepted now belongs to: the day of
// now if before its cut-off, else the next dealing day; never a day before
// OpenFrom.
func (c *Context) DealingDate() Date {
	d := c.Calendar.DealingDayFor(c.Now)
	for d.Before(c.OpenFrom) {
		d = c.Calendar.NextDealingDay(d)
	}
	return d
}

// IsCutOff reports whether dealing day d is closed for new trades and
// cancellations: its cut-off time has passed, or the cycle has closed it.
func (c *Context) IsCutOff(d Date) bool {
	return d.Before(c.OpenFrom) || !c.Now.Before(c.Calendar.CutOff(d))
}

func (c *Context) price(asset ISIN) (Price, bool) {
	pp, ok := c.Prices[asset]
	return pp.Price, ok
}

// Reply says what a command did, for the shell to answer with.
type Reply struct {
	Kind RequestKind
	// RefID is the order or movement the command made or touched.
	RefID string
	// Replayed is true when the command was a repeat: nothing was decided
	// again and the original result stands.
	Replayed bool
}

// Decision is the outcome of Decide: the events to append (none for a
// repeat or a no-op) and the reply to give once they are durable.
type Decision struct {
	Events []Event
	Reply  Reply
}

func (o OrderRequest) String() string {
	return fmt.Sprintf("%s asset=%s from=%s to=%s amount=%s units=%s percent=%s",
		o.Type, o.Asset, o.From, o.To, o.Amount, o.Units, o.Percent)
}
