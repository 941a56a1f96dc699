package codec

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/domain"
)

// An aggregator's in-memory forms: a pot's replica and a dealing day's
// frozen batch, encoded because a node holds them for a million pots. They
// are never journaled.
//
// A replica is decoded and encoded for every run of its pot's events in the
// feed, and decoded by the steps that have work for it (cut-off, settle, the
// sweep, reconciliation): the protobuf snapshot form, with its decimals and
// dates as text, cost ~17 µs and 218 allocations to decode a three-trade pot
// and as much again to encode (BenchmarkReplica). So a replica has a binary
// form of its own: decimals as an int64 coefficient and exponent (text only
// when the coefficient does not fit), dates as day numbers, instants as
// Unix nanoseconds, strings sharing one copy of the bytes. It starts with
// replicaFormat, so that a change of layout is caught, not misread.
const replicaFormat byte = 1

// EncodeReplica encodes a replica: the pot (its closed history dropped by
// the caller) and its ledger's non-zero balances.
func EncodeReplica(p *domain.Pot, l domain.Ledger) ([]byte, error) {
	if len(p.OrderIDs) != len(p.Orders) || len(p.MovementIDs) != len(p.Movements) {
		return nil, fmt.Errorf("codec: replica of pot %s: %d order ids for %d orders, %d movement ids for %d movements",
			p.MemberID, len(p.OrderIDs), len(p.Orders), len(p.MovementIDs), len(p.Movements))
	}
	w := replicaWriter{b: make([]byte, 0, 512)}
	w.b = append(w.b, replicaFormat)
	w.str(p.MemberID)
	w.str(p.Profile)
	w.bool(p.Opened)
	w.instant(p.OpenedAt)
	w.uint(p.Version)
	w.uint(p.Seq)
	w.dec(p.Cash.Available.Decimal())
	w.dec(p.Cash.Reserved.Decimal())
	w.dec(p.Cash.Pending.Decimal())
	w.date(p.LastRebalance)
	w.uint(uint64(len(p.Holdings)))
	for _, a := range slices.Sorted(maps.Keys(p.Holdings)) {
		h := p.Holdings[a]
		w.str(string(a))
		w.dec(h.Settled.Decimal())
		w.dec(h.Reserved.Decimal())
		w.dec(h.Pending.Decimal())
	}
	w.uint(uint64(len(p.OrderIDs)))
	for _, id := range p.OrderIDs {
		o, ok := p.Orders[id]
		if !ok {
			return nil, fmt.Errorf("codec: replica of pot %s: order id %s without its order", p.MemberID, id)
		}
		w.order(o)
	}
	w.uint(uint64(len(p.MovementIDs)))
	for _, id := range p.MovementIDs {
		m, ok := p.Movements[id]
		if !ok {
			return nil, fmt.Errorf("codec: replica of pot %s: movement id %s without its movement", p.MemberID, id)
		}
		w.str(m.ID)
		w.uint(uint64(m.Kind))
		w.dec(m.Amount.Decimal())
		w.instant(m.At)
		w.date(m.DealingDate)
		w.uint(uint64(len(m.OrderIDs)))
		for _, oid := range m.OrderIDs {
			w.str(oid)
		}
		w.dec(m.CashPart.Decimal())
		w.dec(m.Raised.Decimal())
		w.dec(m.Paid.Decimal())
		w.instant(m.PaidAt)
	}
	w.uint(uint64(len(p.Requests)))
	for _, r := range p.Requests {
		w.str(r.Key)
		w.str(r.Hash)
		w.uint(uint64(r.Kind))
		w.str(r.RefID)
		w.instant(r.At)
	}
	keys := slices.SortedFunc(maps.Keys(l), func(x, y domain.LedgerKey) int {
		return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.Asset, y.Asset))
	})
	keys = slices.DeleteFunc(keys, func(k domain.LedgerKey) bool { return l[k].IsZero() })
	w.uint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k.Account)
		w.str(string(k.Asset))
		w.dec(l[k])
	}
	return w.b, nil
}

// DecodeReplica decodes what EncodeReplica encoded. The pot's invariants are
// not checked here (domain.Pot.Reindex): reconciliation checks them and
// reports a violation as a break.
func DecodeReplica(data []byte) (*domain.Pot, domain.Ledger, error) {
	if len(data) == 0 || data[0] != replicaFormat {
		return nil, nil, fmt.Errorf("codec: replica of another format")
	}
	r := replicaReader{s: string(data[1:])}
	p := r.balances()
	for n := r.count(); n > 0; n-- {
		o := r.order()
		p.Orders[o.ID] = o
		p.OrderIDs = append(p.OrderIDs, o.ID)
	}
	for n := r.count(); n > 0; n-- {
		m := &domain.Movement{ID: r.str(), Kind: domain.MovementKind(r.uint()), Amount: r.money(), At: r.instant(), DealingDate: r.date()}
		for k := r.count(); k > 0; k-- {
			m.OrderIDs = append(m.OrderIDs, r.str())
		}
		m.CashPart, m.Raised, m.Paid, m.PaidAt = r.money(), r.money(), r.money(), r.instant()
		p.Movements[m.ID] = m
		p.MovementIDs = append(p.MovementIDs, m.ID)
	}
	for n := r.count(); n > 0; n-- {
		p.Requests = append(p.Requests, domain.RequestRecord{Key: r.str(), Hash: r.str(), Kind: domain.RequestKind(r.uint()),
			RefID: r.str(), At: r.instant()})
	}
	n := r.count()
	l := make(domain.Ledger, n)
	for ; n > 0; n-- {
		k := domain.LedgerKey{Account: r.str(), Asset: domain.ISIN(r.str())}
		l[k] = r.dec()
	}
	if r.err == nil && r.s != "" {
		r.err = fmt.Errorf("%d bytes left over", len(r.s))
	}
	if r.err != nil {
		return nil, nil, fmt.Errorf("codec: decode replica: %w", r.err)
	}
	p.Reindex()
	return p, l, nil
}

// DecodeReplicaBalances decodes only the start of a replica: the pot's
// profile, versions, cash and holdings, without its orders, movements and
// ledger (so its HasOpenTrades is false whatever the pot holds). It is for
// questions about balances alone, such as the sweep's, at a fraction of a
// whole decode's allocations.
func DecodeReplicaBalances(data []byte) (*domain.Pot, error) {
	if len(data) == 0 || data[0] != replicaFormat {
		return nil, fmt.Errorf("codec: replica of another format")
	}
	r := replicaReader{s: string(data[1:])}
	p := r.balances()
	if r.err != nil {
		return nil, fmt.Errorf("codec: decode replica: %w", r.err)
	}
	p.Reindex()
	return p, nil
}

// balances reads the start of a replica: everything before its orders.
func (r *replicaReader) balances() *domain.Pot {
	p := domain.NewPot(r.str())
	p.Profile, p.Opened, p.OpenedAt, p.Version, p.Seq = r.str(), r.bool(), r.instant(), r.uint(), r.uint()
	p.Cash = domain.CashBalance{Available: r.money(), Reserved: r.money(), Pending: r.money()}
	p.LastRebalance = r.date()
	for n := r.count(); n > 0; n-- {
		a := domain.ISIN(r.str())
		p.Holdings[a] = &domain.Holding{Settled: r.units(), Reserved: r.units(), Pending: r.units()}
	}
	return p
}

// replicaWriter appends a replica's fields.
type replicaWriter struct{ b []byte }

func (w *replicaWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *replicaWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *replicaWriter) str(s string)  { w.uint(uint64(len(s))); w.b = append(w.b, s...) }

func (w *replicaWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// instant: Unix nanoseconds, 0 for the zero time.
func (w *replicaWriter) instant(t time.Time) { w.int(nanos(t)) }

// date: days since 1970-01-01 plus one, 0 for the zero date.
func (w *replicaWriter) date(d domain.Date) {
	if d.IsZero() {
		w.uint(0)
		return
	}
	w.uint(uint64(d.At(0, 0, time.UTC).Unix()/secondsPerDay) + 1)
}

const secondsPerDay = 24 * 60 * 60

// Decimals: a tag, then the coefficient and exponent, or the text when the
// coefficient does not fit an int64.
const (
	decZero byte = iota
	decInt64
	decText
)

func (w *replicaWriter) dec(d decimal.Decimal) {
	switch {
	case d.IsZero():
		w.b = append(w.b, decZero)
	case d.NumDigits() <= 18:
		w.b = append(w.b, decInt64)
		w.int(d.CoefficientInt64())
		w.int(int64(d.Exponent()))
	default:
		w.b = append(w.b, decText)
		w.str(d.String())
	}
}

func (w *replicaWriter) tradeSpec(t domain.TradeSpec) {
	w.str(t.ID)
	w.str(string(t.Asset))
	w.uint(uint64(t.Side))
	w.dec(t.Cash.Decimal())
	w.dec(t.Units.Decimal())
	w.uint(uint64(len(t.Funding)))
	for _, f := range t.Funding {
		w.str(f.SellTradeID)
		w.dec(f.Fraction.Decimal())
	}
	w.dec(t.ReservedCash.Decimal())
	w.dec(t.ReservedUnits.Decimal())
}

func (w *replicaWriter) order(o *domain.Order) {
	w.str(o.ID)
	w.uint(uint64(o.Type))
	w.str(o.MovementID)
	w.instant(o.CreatedAt)
	w.date(o.DealingDate)
	w.date(o.OriginalDealingDate)
	w.bool(o.Cancelled)
	w.instant(o.CancelledAt)
	w.uint(uint64(len(o.Trades)))
	for _, t := range o.Trades {
		w.tradeSpec(t.Spec())
		w.uint(uint64(t.Status))
		w.dec(t.PendingCash.Decimal())
		w.instant(t.SettledAt)
		w.bool(t.Execution != nil)
		if x := t.Execution; x != nil {
			w.date(x.DealingDate)
			w.dec(x.Units.Decimal())
			w.dec(x.Price.Decimal())
			w.dec(x.Cash.Decimal())
			w.date(x.SettlementDate)
			w.str(x.BatchID)
			w.str(x.ExecutionID)
			w.instant(x.ExecutedAt)
		}
	}
}

// replicaReader reads a replica's fields, keeping the first error; its
// strings share one copy of the bytes.
type replicaReader struct {
	s   string
	err error
}

func (r *replicaReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.s = ""
}

func (r *replicaReader) uint() uint64 {
	v, n := binary.Uvarint([]byte(r.s[:min(len(r.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		r.fail("unreadable number")
		return 0
	}
	r.s = r.s[n:]
	return v
}

func (r *replicaReader) int() int64 {
	v, n := binary.Varint([]byte(r.s[:min(len(r.s), binary.MaxVarintLen64)]))
	if n <= 0 {
		r.fail("unreadable number")
		return 0
	}
	r.s = r.s[n:]
	return v
}

// count reads a length, refusing one longer than what is left (each item
// takes at least a byte), so that damage cannot ask for a huge allocation.
func (r *replicaReader) count() int {
	n := r.uint()
	if n > uint64(len(r.s)) {
		r.fail("count %d past the end", n)
		return 0
	}
	return int(n)
}

func (r *replicaReader) str() string {
	n := r.uint()
	if n > uint64(len(r.s)) {
		r.fail("string of %d bytes past the end", n)
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *replicaReader) byte() byte {
	if r.s == "" {
		r.fail("unexpected end")
		return 0
	}
	b := r.s[0]
	r.s = r.s[1:]
	return b
}

func (r *replicaReader) bool() bool { return r.byte() == 1 }

func (r *replicaReader) instant() time.Time { return unixNano(r.int()) }

func (r *replicaReader) date() domain.Date {
	n := r.uint()
	if n == 0 {
		return domain.Date{}
	}
	t := time.Unix(int64(n-1)*secondsPerDay, 0).UTC()
	return domain.NewDate(t.Year(), t.Month(), t.Day())
}

func (r *replicaReader) dec() decimal.Decimal {
	switch tag := r.byte(); tag {
	case decZero:
		return decimal.Decimal{}
	case decInt64:
		coefficient, exp := r.int(), r.int()
		if exp < math.MinInt32 || exp > math.MaxInt32 {
			r.fail("decimal exponent %d", exp)
			return decimal.Decimal{}
		}
		return decimal.New(coefficient, int32(exp))
	case decText:
		s := r.str()
		v, err := decimal.NewFromString(s)
		if err != nil {
			r.fail("decimal %q: %w", s, err)
		}
		return v
	default:
		r.fail("decimal tag %d", tag)
		return decimal.Decimal{}
	}
}

func (r *replicaReader) money() domain.Money {
	m, err := domain.MoneyFromDecimal(r.dec())
	if err != nil {
		r.fail("%w", err)
	}
	return m
}

func (r *replicaReader) units() domain.Units {
	u, err := domain.UnitsFromDecimal(r.dec(), domain.UnitDecimalsMax)
	if err != nil {
		r.fail("%w", err)
	}
	return u
}

func (r *replicaReader) price() domain.Price {
	p, err := domain.PriceFromDecimal(r.dec(), domain.PriceDecimalsMax)
	if err != nil {
		r.fail("%w", err)
	}
	return p
}

func (r *replicaReader) weight() domain.Weight {
	w, err := domain.WeightFromDecimal(r.dec())
	if err != nil {
		r.fail("%w", err)
	}
	return w
}

func (r *replicaReader) tradeSpec() domain.TradeSpec {
	t := domain.TradeSpec{ID: r.str(), Asset: domain.ISIN(r.str()), Side: domain.Side(r.uint()), Cash: r.money(), Units: r.units()}
	for k := r.count(); k > 0; k-- {
		t.Funding = append(t.Funding, domain.ProceedsShare{SellTradeID: r.str(), Fraction: r.weight()})
	}
	t.ReservedCash, t.ReservedUnits = r.money(), r.units()
	return t
}

func (r *replicaReader) order() *domain.Order {
	o := &domain.Order{ID: r.str(), Type: domain.OrderType(r.uint()), MovementID: r.str(), CreatedAt: r.instant(),
		DealingDate: r.date(), OriginalDealingDate: r.date(), Cancelled: r.bool(), CancelledAt: r.instant()}
	n := r.count()
	o.Trades = make([]*domain.Trade, 0, n)
	for ; n > 0; n-- {
		t := domain.NewTrade(o.ID, r.tradeSpec())
		t.Status, t.PendingCash, t.SettledAt = domain.TradeStatus(r.uint()), r.money(), r.instant()
		if r.bool() {
			t.Execution = &domain.Execution{DealingDate: r.date(), Units: r.units(), Price: r.price(), Cash: r.money(),
				SettlementDate: r.date(), BatchID: r.str(), ExecutionID: r.str(), ExecutedAt: r.instant()}
		}
		o.Trades = append(o.Trades, t)
	}
	return o
}

// A frozen day's batch is its orders one after another, in the replica's
// binary form: the member, the order's id and its trades' terms.

// AppendBatchOrder appends one order of a dealing day's batch to b and
// returns the extended slice.
func AppendBatchOrder(b []byte, member string, o *domain.Order) []byte {
	w := replicaWriter{b: b}
	w.str(member)
	w.str(o.ID)
	w.uint(uint64(len(o.Trades)))
	for _, t := range o.Trades {
		w.tradeSpec(t.Spec())
	}
	return w.b
}

// DecodeBatch decodes a batch built by AppendBatchOrder into its trades, in
// the order they were appended.
func DecodeBatch(b []byte) ([]domain.DayTrade, error) {
	var trades []domain.DayTrade
	r := replicaReader{s: string(b)}
	for r.s != "" {
		member, order := r.str(), r.str()
		for n := r.count(); n > 0; n-- {
			trades = append(trades, domain.DayTrade{MemberID: member, OrderID: order, TradeSpec: r.tradeSpec()})
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("codec: decode batch: %w", r.err)
	}
	return trades, nil
}
