package codec

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// orderCanonical is an order's whole state as text: the canonical form of a
// pot holding only it (domain.Pot.Canonical compares decimals by value and
// instants in UTC), and the order id each trade names.
func orderCanonical(o *domain.Order) string {
	p := domain.NewPot("M000042")
	p.Orders[o.ID], p.OrderIDs = o, []string{o.ID}
	p.Reindex()
	s := p.Canonical()
	for _, t := range o.Trades {
		s += fmt.Sprintf("trade %s of order %s\n", t.ID, t.OrderID)
	}
	return s
}

// entryText is a statement entry's every field as text, numbers by value.
func entryText(e domain.StatementEntry) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s", e.At.UTC().Format(time.RFC3339Nano), e.Kind, e.Description, e.Cash, e.Units,
		e.Asset, e.BalanceAfter)
}

// TestHistoryRecordsRoundTrip proves the read model's records stand for what
// they were made from, at every point of a pot's life that produces every
// kind of event: every order (trades, executions, cancellation, roll),
// every statement entry, every idempotency key's record and the projected
// pot decode to the same state and encode again to the same bytes.
func TestHistoryRecordsRoundTrip(t *testing.T) {
	events := potLife(t)
	p := domain.NewPot("M000042")
	entries := domain.Statement("M000042", events, domain.DefaultCatalogue())
	for k, e := range events {
		p.Apply(e)
		for _, id := range p.OrderIDs {
			o := p.Orders[id]
			data := EncodeOrder(o)
			back, err := DecodeOrder(data)
			require.NoError(t, err, "after %d events: order %s", k+1, id)
			require.Equal(t, orderCanonical(o), orderCanonical(back), "after %d events: order %s", k+1, id)
			require.Equal(t, data, EncodeOrder(back), "after %d events: order %s encodes again to other bytes", k+1, id)

			// Rendered, the record lists as its status and view, and still
			// decodes to the order.
			view := []byte(`{"id":"` + id + `"}`)
			rendered := EncodeRenderedOrder(o, domain.OrderStatusSettled, view)
			back, err = DecodeOrder(rendered)
			require.NoError(t, err, "after %d events: order %s rendered", k+1, id)
			require.Equal(t, orderCanonical(o), orderCanonical(back), "after %d events: order %s rendered", k+1, id)
			listed, err := DecodeListedOrder(rendered, id)
			require.NoError(t, err)
			require.Equal(t, ListedOrder{ID: id, Status: domain.OrderStatusSettled, View: view}, listed)
			listed, err = DecodeListedOrder(data, "unused")
			require.NoError(t, err)
			require.Equal(t, id, listed.ID, "a record not rendered lists as its order, with the order's id")
			require.Equal(t, orderCanonical(o), orderCanonical(listed.Order))
			require.Nil(t, listed.View)
		}
		if rr, ok := e.(domain.RequestRecorded); ok {
			data := EncodeRequestRecord(rr.Record)
			back, err := DecodeRequestRecord(data)
			require.NoError(t, err)
			want := rr.Record
			want.At = want.At.UTC()
			require.Equal(t, want, back)
		}
		m := ProjectedPot{Version: p.Version, At: p.OpenedAt.UTC(), Balance: p.Cash.Available.Add(p.Cash.Reserved), Replica: p}
		data, err := EncodeProjectedPot(m)
		require.NoError(t, err)
		back, err := DecodeProjectedPot(data, true)
		require.NoError(t, err, "after %d events", k+1)
		require.Equal(t, p.Canonical(), back.Replica.Canonical(), "after %d events: the replica", k+1)
		again, err := EncodeProjectedPot(back)
		require.NoError(t, err)
		require.Equal(t, data, again, "after %d events: the projected pot encodes again to other bytes", k+1)
		short, err := DecodeProjectedPot(data, false)
		require.NoError(t, err)
		require.Nil(t, short.Replica)
		back.Replica = nil
		require.Equal(t, back, short, "after %d events: decoded without the replica", k+1)
	}
	require.NotEmpty(t, entries)
	for i, e := range entries {
		data := EncodeStatementEntry(e)
		back, err := DecodeStatementEntry(data)
		require.NoError(t, err, "entry %d", i)
		require.Equal(t, entryText(e), entryText(back), "entry %d", i)
		require.Equal(t, data, EncodeStatementEntry(back), "entry %d encodes again to other bytes", i)
	}
}

// TestHistoryRecordsRefuseWhatTheyCannotRead proves a record of another
// form or a damaged one (cut short, or with a byte too many) is an error,
// never a record.
func TestHistoryRecordsRefuseWhatTheyCannotRead(t *testing.T) {
	events := potLife(t)
	p := domain.NewPot("M000042")
	for _, e := range events {
		p.Apply(e)
	}
	entries := domain.Statement("M000042", events, domain.DefaultCatalogue())
	projected, err := EncodeProjectedPot(ProjectedPot{Version: p.Version, Replica: p})
	require.NoError(t, err)
	last := p.Orders[p.OrderIDs[len(p.OrderIDs)-1]]
	rendered := EncodeRenderedOrder(last, domain.OrderStatusSettled, []byte(`{"id":"x"}`))
	records := map[string]struct {
		data   []byte
		decode func([]byte) error
	}{
		"order":          {EncodeOrder(last), func(b []byte) error { _, err := DecodeOrder(b); return err }},
		"rendered order": {rendered, func(b []byte) error { _, err := DecodeOrder(b); return err }},
		"statement entry": {EncodeStatementEntry(entries[len(entries)-1]),
			func(b []byte) error { _, err := DecodeStatementEntry(b); return err }},
		"request record": {EncodeRequestRecord(p.Requests[0]),
			func(b []byte) error { _, err := DecodeRequestRecord(b); return err }},
		"projected pot": {projected, func(b []byte) error { _, err := DecodeProjectedPot(b, true); return err }},
	}
	for name, r := range records {
		require.NoError(t, r.decode(r.data), name)
		require.Error(t, r.decode(nil), "%s: empty", name)
		require.Error(t, r.decode(append([]byte{r.data[0] + 1}, r.data[1:]...)), "%s: another format", name)
		require.Error(t, r.decode(append(append([]byte(nil), r.data...), 0)), "%s: a byte too many", name)
		for n := 1; n < len(r.data); n++ {
			require.Error(t, r.decode(r.data[:n]), "%s: cut to %d bytes", name, n)
		}
	}
	// A page reads a rendered record's status and view without decoding
	// its order: cut within them, it is an error too.
	for n := 1; n < len(rendered)-len(EncodeOrder(last)); n++ {
		_, err := DecodeListedOrder(rendered[:n], "x")
		require.Error(t, err, "a rendered order cut to %d bytes, listed", n)
	}
}

// TestHistoryRecordsAreCanonical proves a record's bytes depend on its
// values, not on how they are represented: an order whose numbers carry
// trailing zeros or are zeros computed in memory encodes as the one with
// the same values read from text, and so does a number too long for an
// int64 coefficient; decoded, each is the same value.
func TestHistoryRecordsAreCanonical(t *testing.T) {
	order := func(cash, pending domain.Money, units domain.Units) *domain.Order {
		return &domain.Order{ID: "M1-1", Type: domain.OrderBuy, Trades: []*domain.Trade{{ID: "M1-2", OrderID: "M1-1",
			Cash: cash, PendingCash: pending, Units: units}}}
	}
	computedZero := domain.MustMoney("1.50").Sub(domain.MustMoney("1.50"))
	a := EncodeOrder(order(domain.MustMoney("10.50"), computedZero, domain.MustUnits("1.2000")))
	b := EncodeOrder(order(domain.MustMoney("10.5"), domain.Money{}, domain.MustUnits("1.2")))
	require.Equal(t, a, b)
	long := domain.MustUnits("123456789012345678.9000") // 22 digits
	c, d := EncodeOrder(order(domain.Money{}, domain.Money{}, long)), EncodeOrder(order(domain.Money{}, domain.Money{}, domain.MustUnits("123456789012345678.9")))
	require.Equal(t, c, d)
	back, err := DecodeOrder(c)
	require.NoError(t, err)
	require.True(t, back.Trades[0].Units.Equal(long), "decoded %s, want %s", back.Trades[0].Units, long)
}
