package codec

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/acme/mastertrust/domain"
)

// The records of the pots' history read model (package history): an order
// as it ended, a statement entry, an idempotency key's record, and what the
// read model keeps of each member to project its next event. They are in
// the binary form of pots (binary.go), an order written as in a snapshot,
// each after a byte naming its form, so that a record of another form is
// refused rather than misread (the read model is then rebuilt from the
// journal, which is the truth).
//
// Their decimals are written canonically (canonicalDecimal): by value, not
// by representation. A read model rebuilt from the journal must be byte for
// byte the one projected live, and the same value reaches a record in
// different forms depending on the path: a number read from an event's text
// has no trailing zeros, a decoded zero has no places, while the same value
// computed in memory may have both, and whether a pot was decoded between
// two of its events depends on how the feed was paged.
const (
	orderFormat          byte = 1
	statementEntryFormat byte = 1
	requestRecordFormat  byte = 1
	projectedPotFormat   byte = 1
	// renderedOrderFormat leads the record of a closed order stored with
	// its view (EncodeRenderedOrder); the order formats count up from 1.
	renderedOrderFormat byte = 0xff
)

// EncodeOrder encodes an order with its trades and their executions.
func EncodeOrder(o *domain.Order) []byte {
	w := potWriter{b: make([]byte, 0, 128), canonical: true}
	w.b = append(w.b, orderFormat)
	w.order(o)
	return w.b
}

// DecodeOrder decodes what EncodeOrder or EncodeRenderedOrder encoded.
// Its strings share one copy of data, never data itself, which may be a
// database's buffer reused after the call.
func DecodeOrder(data []byte) (*domain.Order, error) {
	if len(data) > 0 && data[0] == renderedOrderFormat {
		r, err := splitRendered(data)
		if err != nil {
			return nil, err
		}
		data = r.order
	}
	if len(data) == 0 || data[0] != orderFormat {
		return nil, fmt.Errorf("codec: order record of another format")
	}
	r := potReader{s: string(data[1:])}
	o := r.order()
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("codec: decode order: %w", err)
	}
	return o, nil
}

// A closed order's record may carry its view, rendered once when the
// order closed (package history renders it as the API's JSON), so that a
// page of old orders copies each view rather than decoding its decimals and
// formatting them again at every read:
//
//	renderedOrderFormat, uvarint n, status (n bytes), uvarint m, view (m bytes), EncodeOrder's record
//
// The order's own record stays in it for what needs the order (DecodeOrder).

// EncodeRenderedOrder encodes a closed order with its status and view.
func EncodeRenderedOrder(o *domain.Order, status domain.OrderStatus, view []byte) []byte {
	order := EncodeOrder(o)
	b := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(status)+len(view)+len(order))
	b = append(b, renderedOrderFormat)
	b = binary.AppendUvarint(b, uint64(len(status)))
	b = append(b, status...)
	b = binary.AppendUvarint(b, uint64(len(view)))
	b = append(b, view...)
	return append(b, order...)
}

// ListedOrder is an order record as a page of orders needs it: the order
// decoded, or, for a rendered record, its status and view (copied), the
// order left encoded.
type ListedOrder struct {
	// ID is the order's id.
	ID string
	// Order is the order decoded; nil when View is set.
	Order *domain.Order
	// Status and View are a rendered order's; View is nil otherwise.
	Status domain.OrderStatus
	View   []byte
}

// DecodeListedOrder decodes an order record for a page of orders: a
// rendered one (whose order id the caller knows, from its key) to its
// status and view, any other to the order.
func DecodeListedOrder(data []byte, id string) (ListedOrder, error) {
	if len(data) > 0 && data[0] == renderedOrderFormat {
		r, err := splitRendered(data)
		if err != nil {
			return ListedOrder{}, err
		}
		return ListedOrder{ID: id, Status: domain.OrderStatus(r.status), View: append([]byte(nil), r.view...)}, nil
	}
	o, err := DecodeOrder(data)
	if err != nil {
		return ListedOrder{}, err
	}
	return ListedOrder{ID: o.ID, Order: o}, nil
}

// rendered is a rendered order's record split, aliasing it.
type rendered struct{ status, view, order []byte }

func splitRendered(data []byte) (rendered, error) {
	status, rest, err := lengthPrefixed(data[1:])
	if err != nil {
		return rendered{}, fmt.Errorf("codec: a rendered order's status: %w", err)
	}
	view, rest, err := lengthPrefixed(rest)
	if err != nil {
		return rendered{}, fmt.Errorf("codec: a rendered order's view: %w", err)
	}
	return rendered{status: status, view: view, order: rest}, nil
}

// lengthPrefixed splits a uvarint-length-prefixed field off b.
func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	n, size := binary.Uvarint(b)
	if size <= 0 || n > uint64(len(b)-size) {
		return nil, nil, fmt.Errorf("a length of %d bytes past the record's %d", n, len(b))
	}
	return b[size : size+int(n)], b[size+int(n):], nil
}

// EncodeStatementEntry encodes one entry of a member's statement.
func EncodeStatementEntry(e domain.StatementEntry) []byte {
	w := potWriter{b: make([]byte, 0, 96), canonical: true}
	w.b = append(w.b, statementEntryFormat)
	w.instant(e.At)
	w.str(e.Kind)
	w.str(e.Description)
	w.dec(e.Cash.Decimal())
	w.dec(e.Units.Decimal())
	w.str(string(e.Asset))
	w.dec(e.BalanceAfter.Decimal())
	return w.b
}

// DecodeStatementEntry decodes what EncodeStatementEntry encoded.
func DecodeStatementEntry(data []byte) (domain.StatementEntry, error) {
	if len(data) == 0 || data[0] != statementEntryFormat {
		return domain.StatementEntry{}, fmt.Errorf("codec: statement entry of another format")
	}
	r := potReader{s: string(data[1:])}
	e := domain.StatementEntry{At: r.instant(), Kind: r.str(), Description: r.str(), Cash: r.money(), Units: r.units(),
		Asset: domain.ISIN(r.str()), BalanceAfter: r.money()}
	if err := r.end(); err != nil {
		return domain.StatementEntry{}, fmt.Errorf("codec: decode statement entry: %w", err)
	}
	return e, nil
}

// EncodeRequestRecord encodes an idempotency key's record.
func EncodeRequestRecord(rec domain.RequestRecord) []byte {
	w := potWriter{b: make([]byte, 0, 64)}
	w.b = append(w.b, requestRecordFormat)
	w.str(rec.Key)
	w.str(rec.Hash)
	w.uint(uint64(rec.Kind))
	w.str(rec.RefID)
	w.instant(rec.At)
	return w.b
}

// DecodeRequestRecord decodes what EncodeRequestRecord encoded.
func DecodeRequestRecord(data []byte) (domain.RequestRecord, error) {
	if len(data) == 0 || data[0] != requestRecordFormat {
		return domain.RequestRecord{}, fmt.Errorf("codec: request record of another format")
	}
	r := potReader{s: string(data[1:])}
	rec := domain.RequestRecord{Key: r.str(), Hash: r.str(), Kind: domain.RequestKind(r.uint()), RefID: r.str(), At: r.instant()}
	if err := r.end(); err != nil {
		return domain.RequestRecord{}, fmt.Errorf("codec: decode request record: %w", err)
	}
	return rec, nil
}

// ProjectedPot is what the history read model keeps of one member to
// project the member's next event: how far it got and the pot as it was
// there.
type ProjectedPot struct {
	// Version is the member's stream version projected; At the commit time
	// of that event.
	Version uint64
	At      time.Time
	// Balance is the BalanceAfter of the member's latest statement entry.
	Balance domain.Money
	// Replica is the pot at Version (a pot snapshot's form); nil when
	// decoded without it.
	Replica *domain.Pot
}

// EncodeProjectedPot encodes m: its version, time and balance first, so
// that they are read without decoding the replica.
func EncodeProjectedPot(m ProjectedPot) ([]byte, error) {
	w := potWriter{b: make([]byte, 0, 512), canonical: true}
	w.b = append(w.b, projectedPotFormat)
	w.uint(m.Version)
	w.instant(m.At)
	w.dec(m.Balance.Decimal())
	if m.Replica == nil {
		return nil, fmt.Errorf("codec: projected pot at version %d without its replica", m.Version)
	}
	if err := w.pot(m.Replica); err != nil {
		return nil, err
	}
	return w.b, nil
}

// DecodeProjectedPot decodes what EncodeProjectedPot encoded; withReplica
// false stops after the balance (Replica nil). A replica is checked as a
// snapshot is (domain.Pot.Restore).
func DecodeProjectedPot(data []byte, withReplica bool) (ProjectedPot, error) {
	if len(data) == 0 || data[0] != projectedPotFormat {
		return ProjectedPot{}, fmt.Errorf("codec: projected pot of another format")
	}
	r := potReader{s: string(data[1:])}
	m := ProjectedPot{Version: r.uint(), At: r.instant(), Balance: r.money()}
	if !withReplica {
		if r.err != nil {
			return ProjectedPot{}, fmt.Errorf("codec: decode projected pot: %w", r.err)
		}
		return m, nil
	}
	m.Replica = r.pot()
	if err := r.end(); err != nil {
		return ProjectedPot{}, fmt.Errorf("codec: decode projected pot: %w", err)
	}
	if err := m.Replica.Restore(); err != nil {
		return ProjectedPot{}, fmt.Errorf("codec: decode projected pot: %w", err)
	}
	return m, nil
}

// end is the reader's first error, or an error if bytes are left over.
func (r *potReader) end() error {
	if r.err == nil && r.s != "" {
		r.err = fmt.Errorf("%d bytes left over", len(r.s))
	}
	return r.err
}
