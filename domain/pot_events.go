package domain

import "time"

// Event is a fact about a pot, appended to its journal stream. Apply folds
// events into a Pot; replaying a pot's events from zero gives its state.
// Every event carries what Apply needs: Apply never reads a clock, the
// catalogue or prices.
type Event interface {
	// EventType is the event's name in the journal ("pot.OrderPlaced").
	EventType() string
}

// PotOpened opens the pot.
type PotOpened struct {
	MemberID string
	Profile  string
	At       time.Time
}

// RequestRecorded remembers a member request's idempotency key.
type RequestRecorded struct {
	Record RequestRecord
}

// CashContributed puts a contribution's cash into the pot's available cash.
type CashContributed struct {
	MovementID string
	Amount     Money
	At         time.Time
}

// WithdrawalRequested starts a withdrawal: CashPart moves from available to
// reserved cash at once; the rest is raised by the sells that follow (in
// OrderPlaced events with this MovementID).
type WithdrawalRequested struct {
	MovementID  string
	Amount      Money
	CashPart    Money
	DealingDate Date
	At          time.Time
}

// WithdrawalPaid pays a withdrawal out: Amount leaves the pot from reserved
// cash; whatever the withdrawal raised above Amount returns to available.
type WithdrawalPaid struct {
	MovementID string
	Amount     Money
	At         time.Time
}

// OrderPlaced accepts an order and reserves what its trades spend.
type OrderPlaced struct {
	OrderID     string
	Type        OrderType
	MovementID  string
	DealingDate Date
	At          time.Time
	Trades      []TradeSpec
}

// TradeSpec is a trade as accepted: what it deals and what it reserves.
type TradeSpec struct {
	ID            string
	Asset         ISIN
	Side          Side
	Cash          Money
	Units         Units
	Funding       []ProceedsShare
	ReservedCash  Money
	ReservedUnits Units
}

// OrderCancelled cancels an order's trades and releases their reservations.
type OrderCancelled struct {
	OrderID string
	At      time.Time
}

// OrderRolled moves an order that reached its aggregator after its dealing
// day closed to the next dealing day.
type OrderRolled struct {
	OrderID string
	From    Date
	To      Date
	At      time.Time
}

// TradeExecuted allocates a trade's share of the day's net order.
type TradeExecuted struct {
	TradeID        string
	DealingDate    Date
	Units          Units
	Price          Price
	Cash           Money
	SettlementDate Date
	BatchID        string
	ExecutionID    string
	At             time.Time
}

// Execution is the execution e records on its trade.
func (e TradeExecuted) Execution() *Execution {
	return &Execution{DealingDate: e.DealingDate, Units: e.Units, Price: e.Price, Cash: e.Cash,
		SettlementDate: e.SettlementDate, BatchID: e.BatchID, ExecutionID: e.ExecutionID, ExecutedAt: e.At}
}

// Executed is the event that recorded x on trade tradeID.
func (x *Execution) Executed(tradeID string) TradeExecuted {
	return TradeExecuted{TradeID: tradeID, DealingDate: x.DealingDate, Units: x.Units, Price: x.Price, Cash: x.Cash,
		SettlementDate: x.SettlementDate, BatchID: x.BatchID, ExecutionID: x.ExecutionID, At: x.ExecutedAt}
}

// TradeSettled marks a trade settled: pending units become settled units,
// pending cash becomes available (or goes to the withdrawal it was raised for).
type TradeSettled struct {
	TradeID string
	At      time.Time
}

// RiskProfileSet changes the pot's target mix.
type RiskProfileSet struct {
	Profile string
	At      time.Time
}

// RebalanceRecorded says the pot was rebalanced with the prices of Date; the
// rebalance's order follows in the same append.
type RebalanceRecorded struct {
	Date Date
	At   time.Time
}

func (PotOpened) EventType() string           { return "pot.PotOpened" }
func (RequestRecorded) EventType() string     { return "pot.RequestRecorded" }
func (CashContributed) EventType() string     { return "pot.CashContributed" }
func (WithdrawalRequested) EventType() string { return "pot.WithdrawalRequested" }
func (WithdrawalPaid) EventType() string      { return "pot.WithdrawalPaid" }
func (OrderPlaced) EventType() string         { return "pot.OrderPlaced" }
func (OrderCancelled) EventType() string      { return "pot.OrderCancelled" }
func (OrderRolled) EventType() string         { return "pot.OrderRolled" }
func (TradeExecuted) EventType() string       { return "pot.TradeExecuted" }
func (TradeSettled) EventType() string        { return "pot.TradeSettled" }
func (RiskProfileSet) EventType() string      { return "pot.RiskProfileSet" }
func (RebalanceRecorded) EventType() string   { return "pot.RebalanceRecorded" }
