package codec

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// TestReplicaRoundTrip: a replica built as an aggregator builds it (postings
// into its ledger, each event applied, closed history dropped) decodes, at
// every point of a pot's life, to the same pot and ledger, and the rest of
// the events applied to the decoded one end where the replica ends.
func TestReplicaRoundTrip(t *testing.T) {
	events := potLife(t)
	replay := func(p *domain.Pot, l domain.Ledger, es []domain.Event) {
		for _, e := range es {
			require.NoError(t, l.Post(domain.Postings(p, e)))
			p.Apply(e)
			p.DropClosed()
		}
	}
	final, finalLedger := domain.NewPot("M000042"), domain.Ledger{}
	replay(final, finalLedger, events)
	p, l := domain.NewPot("M000042"), domain.Ledger{}
	for k := 0; k <= len(events); k++ {
		if k > 0 {
			replay(p, l, events[k-1:k])
		}
		data, err := EncodeReplica(p, l)
		require.NoError(t, err, "after %d events", k)
		back, backLedger, err := DecodeReplica(data)
		require.NoError(t, err, "after %d events", k)
		require.Equal(t, p.Canonical(), back.Canonical(), "after %d events", k)
		balances, err := DecodeReplicaBalances(data)
		require.NoError(t, err, "after %d events", k)
		require.Equal(t, balancesText(p), balancesText(balances), "after %d events", k)
		require.Empty(t, balances.Orders)
		require.Equal(t, ledgerText(l), ledgerText(backLedger), "after %d events", k)
		again, err := EncodeReplica(back, backLedger)
		require.NoError(t, err)
		require.Equal(t, data, again, "after %d events: re-encoded bytes", k)
		replay(back, backLedger, events[k:])
		require.Equal(t, final.Canonical(), back.Canonical(), "after %d events: the rest applied", k)
		require.Equal(t, ledgerText(finalLedger), ledgerText(backLedger), "after %d events: the rest applied", k)
	}
	require.NoError(t, final.CheckLedger(finalLedger))
}

// ledgerText is a ledger's non-zero balances as text, sorted.
func ledgerText(l domain.Ledger) []string {
	var out []string
	for k, v := range l {
		if !v.IsZero() {
			out = append(out, k.Account+" "+string(k.Asset)+" "+v.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestDecodeReplicaRefusesDamage: another format, and every truncation or
// extension of a good replica, is an error, never a panic or a wrong pot.
func TestDecodeReplicaRefusesDamage(t *testing.T) {
	p, l := domain.NewPot("M000042"), domain.Ledger{}
	for _, e := range potLife(t) {
		require.NoError(t, l.Post(domain.Postings(p, e)))
		p.Apply(e)
	}
	data, err := EncodeReplica(p, l)
	require.NoError(t, err)
	_, _, err = DecodeReplica(nil)
	require.ErrorContains(t, err, "another format")
	_, _, err = DecodeReplica(append([]byte{replicaFormat + 1}, data[1:]...))
	require.ErrorContains(t, err, "another format")
	for n := 1; n < len(data); n++ {
		_, _, err := DecodeReplica(data[:n])
		require.Error(t, err, "cut to %d of %d bytes", n, len(data))
	}
	_, _, err = DecodeReplica(append(slices.Clone(data), 0))
	require.ErrorContains(t, err, "left over")
}

// TestBatchRoundTrip: a batch of orders decodes to their trades, in order,
// with their terms; a cut batch is refused.
func TestBatchRoundTrip(t *testing.T) {
	p := domain.NewPot("M000042")
	for _, e := range potLife(t) {
		p.Apply(e)
	}
	var b []byte
	var want []domain.DayTrade
	for _, id := range p.OrderIDs {
		o := p.Orders[id]
		b = AppendBatchOrder(b, p.MemberID, o)
		for _, tr := range o.Trades {
			want = append(want, domain.DayTrade{MemberID: p.MemberID, OrderID: o.ID, TradeSpec: tr.Spec()})
		}
	}
	require.NotEmpty(t, want)
	got, err := DecodeBatch(b)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].MemberID, got[i].MemberID)
		require.Equal(t, want[i].OrderID, got[i].OrderID)
		require.Equal(t, want[i].ID, got[i].ID)
		require.Equal(t, want[i].Asset, got[i].Asset)
		require.Equal(t, want[i].Side, got[i].Side)
		require.True(t, want[i].Cash.Equal(got[i].Cash), "trade %s cash", want[i].ID)
		require.True(t, want[i].Units.Equal(got[i].Units), "trade %s units", want[i].ID)
		require.Len(t, got[i].Funding, len(want[i].Funding))
	}
	_, err = DecodeBatch(b[:len(b)-1])
	require.Error(t, err)
}

// balancesText is what DecodeReplicaBalances decodes of a pot, as text.
func balancesText(p *domain.Pot) []string {
	out := []string{fmt.Sprint(p.MemberID, p.Profile, p.Opened, p.OpenedAt.UnixNano(), p.Version, p.Seq, p.LastRebalance),
		fmt.Sprint(p.Cash.Available, p.Cash.Reserved, p.Cash.Pending)}
	for _, a := range slices.Sorted(maps.Keys(p.Holdings)) {
		h := p.Holdings[a]
		out = append(out, fmt.Sprint(a, h.Settled, h.Reserved, h.Pending))
	}
	return out
}
