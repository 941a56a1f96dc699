package gateway

import (
	"github.com/acme/mastertrust/proto/pb"
)

// The API's JSON representations (docs/api.md), built from the pots' views,
// which already hold every value as the string the API shows. Optional
// strings are omitted when empty; lists are always present ([] rather than
// null), so that clients can range over them.

type potJSON struct {
	MemberID    string        `json:"memberId"`
	RiskProfile string        `json:"riskProfile,omitempty"`
	Version     uint64        `json:"version"`
	Currency    string        `json:"currency,omitempty"`
	Cash        cashJSON      `json:"cash"`
	Holdings    []holdingJSON `json:"holdings"`
	TotalValue  string        `json:"totalValue"`
}

type cashJSON struct {
	Available string `json:"available"`
	Reserved  string `json:"reserved"`
	Pending   string `json:"pending"`
}

type holdingJSON struct {
	Asset         string `json:"asset"`
	SettledUnits  string `json:"settledUnits"`
	PendingUnits  string `json:"pendingUnits"`
	ReservedUnits string `json:"reservedUnits"`
	Price         string `json:"price,omitempty"`
	PriceDate     string `json:"priceDate,omitempty"`
	Value         string `json:"value,omitempty"`
}

type orderJSON struct {
	ID                  string             `json:"id"`
	Type                string             `json:"type"`
	Status              string             `json:"status"`
	DealingDate         string             `json:"dealingDate,omitempty"`
	OriginalDealingDate string             `json:"originalDealingDate,omitempty"`
	CreatedAt           string             `json:"createdAt"`
	MovementID          string             `json:"movementId,omitempty"`
	Trades              []tradeJSON        `json:"trades"`
	ContractNotes       []contractNoteJSON `json:"contractNotes"`
}

type tradeJSON struct {
	ID             string `json:"id"`
	Asset          string `json:"asset"`
	Side           string `json:"side"`
	Amount         string `json:"amount,omitempty"`
	Units          string `json:"units,omitempty"`
	Status         string `json:"status"`
	ExecutedUnits  string `json:"executedUnits,omitempty"`
	Price          string `json:"price,omitempty"`
	Cash           string `json:"cash,omitempty"`
	SettlementDate string `json:"settlementDate,omitempty"`
	BatchID        string `json:"batchId,omitempty"`
}

type contractNoteJSON struct {
	TradeID        string `json:"tradeId"`
	DealingDate    string `json:"dealingDate"`
	Asset          string `json:"asset"`
	Side           string `json:"side"`
	Units          string `json:"units"`
	UnitPrice      string `json:"unitPrice"`
	Consideration  string `json:"consideration"`
	SettlementDate string `json:"settlementDate"`
	BatchID        string `json:"batchId,omitempty"`
}

type movementJSON struct {
	ID          string      `json:"id"`
	Kind        string      `json:"kind"`
	Status      string      `json:"status"`
	Amount      string      `json:"amount"`
	Paid        string      `json:"paid,omitempty"`
	DealingDate string      `json:"dealingDate,omitempty"`
	Orders      []orderJSON `json:"orders"`
}

type orderListJSON struct {
	Orders    []orderJSON `json:"orders"`
	NextAfter string      `json:"nextAfter,omitempty"`
}

type statementJSON struct {
	Entries   []statementEntryJSON `json:"entries"`
	NextAfter string               `json:"nextAfter,omitempty"`
}

type statementEntryJSON struct {
	At           string `json:"at"`
	Kind         string `json:"kind"`
	Description  string `json:"description"`
	Cash         string `json:"cash"`
	Units        string `json:"units,omitempty"`
	Asset        string `json:"asset,omitempty"`
	BalanceAfter string `json:"balanceAfter"`
}

func potView(v *pb.PotView) potJSON {
	out := potJSON{MemberID: v.GetMemberId(), RiskProfile: v.GetRiskProfile(), Version: v.GetVersion(),
		Currency: v.GetCurrency(), TotalValue: v.GetTotalValue(), Holdings: make([]holdingJSON, 0, len(v.GetHoldings())),
		Cash: cashJSON{Available: v.GetCash().GetAvailable(), Reserved: v.GetCash().GetReserved(), Pending: v.GetCash().GetPending()}}
	for _, h := range v.GetHoldings() {
		out.Holdings = append(out.Holdings, holdingJSON{Asset: h.GetAsset(), SettledUnits: h.GetSettledUnits(),
			PendingUnits: h.GetPendingUnits(), ReservedUnits: h.GetReservedUnits(), Price: h.GetPrice(),
			PriceDate: h.GetPriceDate(), Value: h.GetValue()})
	}
	return out
}

func orderView(v *pb.OrderView) orderJSON {
	original := v.GetOriginalDealingDate()
	if original == v.GetDealingDate() {
		original = "" // shown only for an order rolled to another day
	}
	out := orderJSON{ID: v.GetId(), Type: v.GetType(), Status: v.GetStatus(), DealingDate: v.GetDealingDate(),
		OriginalDealingDate: original, CreatedAt: v.GetCreatedAt(), MovementID: v.GetMovementId(),
		Trades: make([]tradeJSON, 0, len(v.GetTrades())), ContractNotes: make([]contractNoteJSON, 0, len(v.GetContractNotes()))}
	for _, t := range v.GetTrades() {
		out.Trades = append(out.Trades, tradeJSON{ID: t.GetId(), Asset: t.GetAsset(), Side: t.GetSide(), Amount: t.GetAmount(),
			Units: t.GetUnits(), Status: t.GetStatus(), ExecutedUnits: t.GetExecutedUnits(), Price: t.GetPrice(),
			Cash: t.GetCash(), SettlementDate: t.GetSettlementDate(), BatchID: t.GetBatchId()})
	}
	for _, n := range v.GetContractNotes() {
		out.ContractNotes = append(out.ContractNotes, contractNoteJSON{TradeID: n.GetTradeId(), DealingDate: n.GetDealingDate(),
			Asset: n.GetAsset(), Side: n.GetSide(), Units: n.GetUnits(), UnitPrice: n.GetUnitPrice(),
			Consideration: n.GetConsideration(), SettlementDate: n.GetSettlementDate(), BatchID: n.GetBatchId()})
	}
	return out
}

func orderViews(vs []*pb.OrderView) []orderJSON {
	out := make([]orderJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, orderView(v))
	}
	return out
}

func movementView(v *pb.MovementView) movementJSON {
	return movementJSON{ID: v.GetId(), Kind: v.GetKind(), Status: v.GetStatus(), Amount: v.GetAmount(), Paid: v.GetPaid(),
		DealingDate: v.GetDealingDate(), Orders: orderViews(v.GetOrders())}
}

func orderListView(v *pb.OrderList) orderListJSON {
	return orderListJSON{Orders: orderViews(v.GetOrders()), NextAfter: v.GetNextAfter()}
}

func statementView(v *pb.Statement) statementJSON {
	out := statementJSON{Entries: make([]statementEntryJSON, 0, len(v.GetEntries())), NextAfter: v.GetNextAfter()}
	for _, e := range v.GetEntries() {
		out.Entries = append(out.Entries, statementEntryJSON{At: e.GetAt(), Kind: e.GetKind(), Description: e.GetDescription(),
			Cash: e.GetCash(), Units: e.GetUnits(), Asset: e.GetAsset(), BalanceAfter: e.GetBalanceAfter()})
	}
	return out
}
