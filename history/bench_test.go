package history_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// BenchmarkQueries measures a page of 50 of Orders and of Statement for a
// pot of 10 orders and one of 10,000, every order executed (so the large
// pot has ~10,000 statement entries), in one run: a page is a range scan of
// the member's keys, so it costs the entries it returns, not the pot's
// age. The 10,000-order pot's pages hold 50 entries where the small pot's
// hold its 10 or 11; the limit10 rows read the large pot 10 at a time, the
// same work as the small pot's page.
func BenchmarkQueries(b *testing.B) {
	l := newLife(b, domain.MustDate("2026-11-23"))
	pots := map[int]string{10: "M000300", 10_000: "M000301"}
	for _, n := range []int{10, 10_000} {
		m := pots[n]
		l.do(m, domain.OpenPot{Key: "open"}, domain.Contribute{Key: "pay", Amount: domain.MustMoney("100000.00")})
		cmds := make([]domain.Command, n)
		for i := range cmds {
			cmds[i] = domain.PlaceOrder{Key: domain.Key(fmt.Sprintf("buy-%d", i)), Order: domain.OrderRequest{Type: domain.OrderBuy,
				Asset: "GB00BD8R3K42", Amount: domain.MustMoney("1.00")}}
		}
		l.do(m, cmds...)
	}
	l.dealingDay(domain.MustDate("2026-11-23"), l.dayPrices(0), nil)
	s := openStore(b, filepath.Join(b.TempDir(), "history"), 0)
	catchUpAll(b, s, l.j)

	for _, n := range []int{10, 10_000} {
		m := pots[n]
		b.Run(fmt.Sprintf("orders/pot=%d/limit=50", n), func(b *testing.B) {
			for b.Loop() {
				page, _, err := s.Orders(m, 0, 50, nil)
				if err != nil || len(page) != min(n, 50) {
					b.Fatalf("%d orders, %v", len(page), err)
				}
			}
		})
		b.Run(fmt.Sprintf("statement/pot=%d/limit=50", n), func(b *testing.B) {
			for b.Loop() {
				page, _, err := s.Statement(m, time.Time{}, time.Time{}, "", 50)
				if err != nil || len(page) != min(n+1, 50) {
					b.Fatalf("%d entries, %v", len(page), err)
				}
			}
		})
	}
	large := pots[10_000]
	b.Run("orders/pot=10000/limit=10", func(b *testing.B) {
		for b.Loop() {
			if page, _, err := s.Orders(large, 0, 10, nil); err != nil || len(page) != 10 {
				b.Fatalf("%d orders, %v", len(page), err)
			}
		}
	})
	b.Run("statement/pot=10000/limit=11", func(b *testing.B) {
		for b.Loop() {
			if page, _, err := s.Statement(large, time.Time{}, time.Time{}, "", 11); err != nil || len(page) != 11 {
				b.Fatalf("%d entries, %v", len(page), err)
			}
		}
	})
	// A page from the middle of the large pot's history.
	_, cursor, err := s.Statement(large, time.Time{}, time.Time{}, "", 1000)
	require.NoError(b, err)
	b.Run("orders/pot=10000/limit=50/from-the-middle", func(b *testing.B) {
		for b.Loop() {
			if page, _, err := s.Orders(large, 5000, 50, nil); err != nil || len(page) != 50 {
				b.Fatalf("%d orders, %v", len(page), err)
			}
		}
	})
	b.Run("statement/pot=10000/limit=50/from-the-middle", func(b *testing.B) {
		for b.Loop() {
			if page, _, err := s.Statement(large, time.Time{}, time.Time{}, cursor, 50); err != nil || len(page) != 50 {
				b.Fatalf("%d entries, %v", len(page), err)
			}
		}
	})
}

// BenchmarkCatchUp projects a journal of contributions, as a node that
// joins (or comes back) catches up: 40 pots, 250 contributions each, every
// one under its own key. It reports the time per event projected.
func BenchmarkCatchUp(b *testing.B) {
	l := newLife(b, domain.MustDate("2026-11-23"))
	const pots, contributions = 40, 250
	for p := range pots {
		m := fmt.Sprintf("M%06d", 400+p)
		l.do(m, domain.OpenPot{Key: "open"})
		cmds := make([]domain.Command, contributions)
		for i := range cmds {
			cmds[i] = domain.Contribute{Key: domain.Key(fmt.Sprintf("pay-%d", i)), Amount: domain.MustMoney("1.00")}
		}
		l.do(m, cmds...)
	}
	events := 0
	for g := range l.j.Groups() {
		page, err := l.j.ReadFeed(context.Background(), g, 0, 1_000_000)
		require.NoError(b, err)
		events += len(page)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		s := openStore(b, filepath.Join(b.TempDir(), "history"), 0)
		b.StartTimer()
		catchUpAll(b, s, l.j)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
