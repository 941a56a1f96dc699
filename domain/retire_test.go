package domain

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkContributeWithManyKeys decides and applies a contribution to a
// self-directed pot that remembers 2,000 keys from this week (a load
// test's pot, or a busy one): retirement runs at every such decision.
func BenchmarkContributeWithManyKeys(b *testing.B) {
	s := newSim(b, MustDate("2026-11-23"))
	ctx := s.ctx()
	p := NewPot("M000001")
	apply := func(cmd Command) {
		dec, err := Decide(p, cmd, ctx)
		require.NoError(b, err)
		for _, e := range dec.Events {
			p.Apply(e)
		}
	}
	apply(OpenPot{Key: "open"})
	for i := range 2000 {
		apply(Contribute{Key: Key(fmt.Sprintf("pay-%d", i)), Amount: MustMoney("1.00")})
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		apply(Contribute{Key: Key(fmt.Sprintf("more-%d", i)), Amount: MustMoney("1.00")})
	}
}

// The count of records by RefID that retire keeps between events always
// equals a count of the records remembered, as keys come and, a week
// later, go; and a pot replayed from the same events retires the same.
func TestRequestRefsFollowTheRecords(t *testing.T) {
	s := newSim(t, MustDate("2026-11-23"))
	p := NewPot("M000001")
	var events []Event
	apply := func(cmd Command) {
		dec, err := Decide(p, cmd, s.ctx())
		require.NoError(t, err)
		for _, e := range dec.Events {
			p.Apply(e)
			events = append(events, e)
		}
	}
	apply(OpenPot{Key: "open"})
	for i := range 1500 {
		if i%100 == 99 {
			s.now = s.now.Add(24 * time.Hour) // keys a week old are forgotten
		}
		apply(Contribute{Key: Key(fmt.Sprintf("pay-%d", i)), Amount: MustMoney("1.00")})
		if p.requestRefs == nil {
			continue
		}
		want := map[string]int{}
		for _, r := range p.Requests {
			want[r.RefID]++
		}
		require.Equal(t, want, p.requestRefs, "after contribution %d", i)
	}
	require.NotZero(t, p.ForgottenThrough, "some keys were forgotten")
	require.Less(t, len(p.MovementIDs), 1500, "some contributions were retired")

	replayed := NewPot("M000001")
	for _, e := range events {
		replayed.Apply(e)
	}
	require.Equal(t, p.Canonical(), replayed.Canonical())
}
