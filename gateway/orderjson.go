package gateway

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/acme/mastertrust/proto/pb"
)

// Orders written by hand: a page of orders is the gateway's longest common
// answer, and encoding/json spends most of its time on it in reflection
// (walking orderJSON's fields and tags for every order, trade and note).
// These functions write the same bytes as json.Marshal of orderJSON and
// orderListJSON (views.go), field for field in the same order with the same
// omitempty rules; TestOrderJSONMatchesEncodingJSON holds them to it.
// orderJSON stays the contract's definition and what movements embed.

// appendOrderListJSON appends l as json.Marshal(orderListView(l)) would.
func appendOrderListJSON(b []byte, l *pb.OrderList) []byte {
	b = append(b, `{"orders":[`...)
	for i, o := range l.GetOrders() {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendOrderJSON(b, o)
	}
	b = append(b, ']')
	if v := l.GetNextAfter(); v != "" {
		b = appendJSONField(b, `,"nextAfter":`, v)
	}
	return append(b, '}')
}

// AppendOrderJSON appends v as json.Marshal(orderView(v)) would: the
// order's JSON in the API, or, for a view that was rendered already
// (pb.OrderView.Rendered, a closed order of the history), that JSON as it
// is.
func AppendOrderJSON(b []byte, v *pb.OrderView) []byte {
	if r := v.GetRendered(); r != nil {
		return append(b, r...)
	}
	b = appendJSONField(b, `{"id":`, v.GetId())
	b = appendJSONField(b, `,"type":`, v.GetType())
	b = appendJSONField(b, `,"status":`, v.GetStatus())
	b = appendJSONOptional(b, `,"dealingDate":`, v.GetDealingDate())
	if original := v.GetOriginalDealingDate(); original != v.GetDealingDate() {
		// shown only for an order rolled to another day, as orderView does
		b = appendJSONOptional(b, `,"originalDealingDate":`, original)
	}
	b = appendJSONField(b, `,"createdAt":`, v.GetCreatedAt())
	b = appendJSONOptional(b, `,"movementId":`, v.GetMovementId())
	b = append(b, `,"trades":[`...)
	for i, t := range v.GetTrades() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONField(b, `{"id":`, t.GetId())
		b = appendJSONField(b, `,"asset":`, t.GetAsset())
		b = appendJSONField(b, `,"side":`, t.GetSide())
		b = appendJSONOptional(b, `,"amount":`, t.GetAmount())
		b = appendJSONOptional(b, `,"units":`, t.GetUnits())
		b = appendJSONField(b, `,"status":`, t.GetStatus())
		b = appendJSONOptional(b, `,"executedUnits":`, t.GetExecutedUnits())
		b = appendJSONOptional(b, `,"price":`, t.GetPrice())
		b = appendJSONOptional(b, `,"cash":`, t.GetCash())
		b = appendJSONOptional(b, `,"settlementDate":`, t.GetSettlementDate())
		b = appendJSONOptional(b, `,"batchId":`, t.GetBatchId())
		b = append(b, '}')
	}
	b = append(b, `],"contractNotes":[`...)
	for i, n := range v.GetContractNotes() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONField(b, `{"tradeId":`, n.GetTradeId())
		b = appendJSONField(b, `,"dealingDate":`, n.GetDealingDate())
		b = appendJSONField(b, `,"asset":`, n.GetAsset())
		b = appendJSONField(b, `,"side":`, n.GetSide())
		b = appendJSONField(b, `,"units":`, n.GetUnits())
		b = appendJSONField(b, `,"unitPrice":`, n.GetUnitPrice())
		b = appendJSONField(b, `,"consideration":`, n.GetConsideration())
		b = appendJSONField(b, `,"settlementDate":`, n.GetSettlementDate())
		b = appendJSONOptional(b, `,"batchId":`, n.GetBatchId())
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendJSONField appends the field's key (with its punctuation) and s.
func appendJSONField(b []byte, key, s string) []byte {
	return appendJSONString(append(b, key...), s)
}

// appendJSONOptional is appendJSONField for an omitempty field: nothing
// when s is empty.
func appendJSONOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONField(b, key, s)
}

// appendJSONString appends s as a JSON string, as encoding/json writes it.
// The views' strings are ids, dates and decimals: printable ASCII that needs
// no escaping, which is copied as it is. Anything else (a quote, a
// backslash, a control character, <, > or &, which encoding/json escapes
// for HTML, or any non-ASCII byte, where it replaces invalid UTF-8 and
// escapes U+2028 and U+2029) is left to encoding/json itself, so that the
// rare string needing escapes is escaped exactly as before.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonVerbatim[s[i]] {
			// Marshalling a string cannot fail.
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonVerbatim[c] reports whether encoding/json writes the byte c of a
// string as it is: printable ASCII but for the quote, the backslash and the
// three characters it escapes for HTML.
var jsonVerbatim = func() (verbatim [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		verbatim[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return verbatim
}()
