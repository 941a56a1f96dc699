package codec

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// The codec between domain events and their journal form. A pot event is
// stored with type "pot.<Name>" and the protobuf message <Name> as payload.
// Decoding refuses what it cannot read exactly (a malformed decimal, an
// unknown type): a journal that cannot be read must stop the pot, not be
// guessed at.

// EncodePotEvent is the journal type and payload of e.
func EncodePotEvent(e domain.Event) (string, []byte, error) {
	m, err := potEventMessage(e)
	if err != nil {
		return "", nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("codec: encode %s: %w", e.EventType(), err)
	}
	return e.EventType(), data, nil
}

// DecodePotEvent is the domain event stored with type typ and payload data.
func DecodePotEvent(typ string, data []byte) (domain.Event, error) {
	var e domain.Event
	var err error
	switch typ {
	case domain.PotOpened{}.EventType():
		var m pb.PotOpened
		if err = proto.Unmarshal(data, &m); err == nil {
			e = domain.PotOpened{MemberID: m.MemberId, Profile: m.Profile, At: unixNano(m.AtUnixNano)}
		}
	case domain.RequestRecorded{}.EventType():
		var m pb.RequestRecorded
		if err = proto.Unmarshal(data, &m); err == nil {
			e = domain.RequestRecorded{Record: domain.RequestRecord{Key: m.Key, Hash: m.Hash,
				Kind: domain.RequestKind(m.Kind), RefID: m.RefId, At: unixNano(m.AtUnixNano)}}
		}
	case domain.CashContributed{}.EventType():
		var m pb.CashContributed
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = domain.CashContributed{MovementID: m.MovementId, Amount: d.money(m.Amount), At: unixNano(m.AtUnixNano)}
			err = d.err
		}
	case domain.WithdrawalRequested{}.EventType():
		var m pb.WithdrawalRequested
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = domain.WithdrawalRequested{MovementID: m.MovementId, Amount: d.money(m.Amount), CashPart: d.money(m.CashPart),
				DealingDate: d.date(m.DealingDate), At: unixNano(m.AtUnixNano)}
			err = d.err
		}
	case domain.WithdrawalPaid{}.EventType():
		var m pb.WithdrawalPaid
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = domain.WithdrawalPaid{MovementID: m.MovementId, Amount: d.money(m.Amount), At: unixNano(m.AtUnixNano)}
			err = d.err
		}
	case domain.OrderPlaced{}.EventType():
		var m pb.OrderPlaced
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			o := domain.OrderPlaced{OrderID: m.OrderId, Type: domain.OrderType(m.Type), MovementID: m.MovementId,
				DealingDate: d.date(m.DealingDate), At: unixNano(m.AtUnixNano)}
			for _, t := range m.Trades {
				o.Trades = append(o.Trades, d.tradeSpec(t))
			}
			e, err = o, d.err
		}
	case domain.OrderCancelled{}.EventType():
		var m pb.OrderCancelled
		if err = proto.Unmarshal(data, &m); err == nil {
			e = domain.OrderCancelled{OrderID: m.OrderId, At: unixNano(m.AtUnixNano)}
		}
	case domain.OrderRolled{}.EventType():
		var m pb.OrderRolled
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = domain.OrderRolled{OrderID: m.OrderId, From: d.date(m.FromDate), To: d.date(m.ToDate), At: unixNano(m.AtUnixNano)}
			err = d.err
		}
	case domain.TradeExecuted{}.EventType():
		var m pb.TradeExecuted
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = d.tradeExecuted(&m)
			err = d.err
		}
	case domain.TradeSettled{}.EventType():
		var m pb.TradeSettled
		if err = proto.Unmarshal(data, &m); err == nil {
			e = domain.TradeSettled{TradeID: m.TradeId, At: unixNano(m.AtUnixNano)}
		}
	case domain.RiskProfileSet{}.EventType():
		var m pb.RiskProfileSet
		if err = proto.Unmarshal(data, &m); err == nil {
			e = domain.RiskProfileSet{Profile: m.Profile, At: unixNano(m.AtUnixNano)}
		}
	case domain.RebalanceRecorded{}.EventType():
		var m pb.RebalanceRecorded
		if err = proto.Unmarshal(data, &m); err == nil {
			d := decoder{}
			e = domain.RebalanceRecorded{Date: d.date(m.Date), At: unixNano(m.AtUnixNano)}
			err = d.err
		}
	default:
		return nil, fmt.Errorf("codec: unknown pot event type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: decode %s: %w", typ, err)
	}
	return e, nil
}

func potEventMessage(e domain.Event) (proto.Message, error) {
	switch e := e.(type) {
	case domain.PotOpened:
		return &pb.PotOpened{MemberId: e.MemberID, Profile: e.Profile, AtUnixNano: nanos(e.At)}, nil
	case domain.RequestRecorded:
		r := e.Record
		return &pb.RequestRecorded{Key: r.Key, Hash: r.Hash, Kind: pb.RequestKind(r.Kind), RefId: r.RefID, AtUnixNano: nanos(r.At)}, nil
	case domain.CashContributed:
		return &pb.CashContributed{MovementId: e.MovementID, Amount: e.Amount.String(), AtUnixNano: nanos(e.At)}, nil
	case domain.WithdrawalRequested:
		return &pb.WithdrawalRequested{MovementId: e.MovementID, Amount: e.Amount.String(), CashPart: e.CashPart.String(),
			DealingDate: e.DealingDate.String(), AtUnixNano: nanos(e.At)}, nil
	case domain.WithdrawalPaid:
		return &pb.WithdrawalPaid{MovementId: e.MovementID, Amount: e.Amount.String(), AtUnixNano: nanos(e.At)}, nil
	case domain.OrderPlaced:
		m := &pb.OrderPlaced{OrderId: e.OrderID, Type: pb.OrderType(e.Type), MovementId: e.MovementID,
			DealingDate: e.DealingDate.String(), AtUnixNano: nanos(e.At)}
		for _, t := range e.Trades {
			m.Trades = append(m.Trades, TradeSpecMessage(t))
		}
		return m, nil
	case domain.OrderCancelled:
		return &pb.OrderCancelled{OrderId: e.OrderID, AtUnixNano: nanos(e.At)}, nil
	case domain.OrderRolled:
		return &pb.OrderRolled{OrderId: e.OrderID, FromDate: e.From.String(), ToDate: e.To.String(), AtUnixNano: nanos(e.At)}, nil
	case domain.TradeExecuted:
		return TradeExecutedMessage(e), nil
	case domain.TradeSettled:
		return &pb.TradeSettled{TradeId: e.TradeID, AtUnixNano: nanos(e.At)}, nil
	case domain.RiskProfileSet:
		return &pb.RiskProfileSet{Profile: e.Profile, AtUnixNano: nanos(e.At)}, nil
	case domain.RebalanceRecorded:
		return &pb.RebalanceRecorded{Date: e.Date.String(), AtUnixNano: nanos(e.At)}, nil
	}
	return nil, fmt.Errorf("codec: unknown pot event %T", e)
}

// TradeSpecMessage is the wire form of a trade's terms.
func TradeSpecMessage(t domain.TradeSpec) *pb.TradeSpec {
	m := &pb.TradeSpec{Id: t.ID, Asset: string(t.Asset), Side: pb.Side(t.Side), Cash: t.Cash.String(),
		Units: t.Units.String(), ReservedCash: t.ReservedCash.String(), ReservedUnits: t.ReservedUnits.String()}
	for _, f := range t.Funding {
		m.Funding = append(m.Funding, &pb.ProceedsShare{SellTradeId: f.SellTradeID, Fraction: f.Fraction.String()})
	}
	return m
}

// TradeExecutedMessage is the wire form of an execution.
func TradeExecutedMessage(e domain.TradeExecuted) *pb.TradeExecuted {
	return &pb.TradeExecuted{TradeId: e.TradeID, DealingDate: e.DealingDate.String(), Units: e.Units.String(),
		Price: e.Price.String(), Cash: e.Cash.String(), SettlementDate: e.SettlementDate.String(),
		BatchId: e.BatchID, ExecutionId: e.ExecutionID, AtUnixNano: nanos(e.At)}
}

// DecodeTradeSpec is the domain form of a trade's terms.
func DecodeTradeSpec(m *pb.TradeSpec) (domain.TradeSpec, error) {
	d := decoder{}
	t := d.tradeSpec(m)
	return t, d.err
}

// DecodeTradeExecuted is the domain form of an execution.
func DecodeTradeExecuted(m *pb.TradeExecuted) (domain.TradeExecuted, error) {
	d := decoder{}
	e := d.tradeExecuted(m)
	return e, d.err
}

// decoder parses the decimal and date strings of one message, keeping the
// first error, so that a message's fields read as one expression.
type decoder struct{ err error }

func (d *decoder) decimal(what, s string) decimal.Decimal {
	if d.err != nil {
		return decimal.Decimal{}
	}
	v, err := decimal.NewFromString(s)
	if err != nil {
		d.err = fmt.Errorf("%s %q: %w", what, s, err)
	}
	return v
}

func (d *decoder) money(s string) domain.Money {
	m, err := domain.MoneyFromDecimal(d.decimal("cash", s))
	if err != nil && d.err == nil {
		d.err = err
	}
	return m
}

func (d *decoder) units(s string) domain.Units {
	u, err := domain.UnitsFromDecimal(d.decimal("units", s), domain.UnitDecimalsMax)
	if err != nil && d.err == nil {
		d.err = err
	}
	return u
}

func (d *decoder) price(s string) domain.Price {
	p, err := domain.PriceFromDecimal(d.decimal("price", s), domain.PriceDecimalsMax)
	if err != nil && d.err == nil {
		d.err = err
	}
	return p
}

func (d *decoder) weight(s string) domain.Weight {
	w, err := domain.WeightFromDecimal(d.decimal("weight", s))
	if err != nil && d.err == nil {
		d.err = err
	}
	return w
}

// date parses "YYYY-MM-DD"; "" is the zero date.
func (d *decoder) date(s string) domain.Date {
	if s == "" || d.err != nil {
		return domain.Date{}
	}
	v, err := domain.ParseDate(s)
	if err != nil {
		d.err = err
	}
	return v
}

func (d *decoder) tradeSpec(m *pb.TradeSpec) domain.TradeSpec {
	t := domain.TradeSpec{ID: m.Id, Asset: domain.ISIN(m.Asset), Side: domain.Side(m.Side), Cash: d.money(m.Cash),
		Units: d.units(m.Units), ReservedCash: d.money(m.ReservedCash), ReservedUnits: d.units(m.ReservedUnits)}
	for _, f := range m.Funding {
		t.Funding = append(t.Funding, domain.ProceedsShare{SellTradeID: f.SellTradeId, Fraction: d.weight(f.Fraction)})
	}
	return t
}

func (d *decoder) tradeExecuted(m *pb.TradeExecuted) domain.TradeExecuted {
	return domain.TradeExecuted{TradeID: m.TradeId, DealingDate: d.date(m.DealingDate), Units: d.units(m.Units),
		Price: d.price(m.Price), Cash: d.money(m.Cash), SettlementDate: d.date(m.SettlementDate),
		BatchID: m.BatchId, ExecutionID: m.ExecutionId, At: unixNano(m.AtUnixNano)}
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
