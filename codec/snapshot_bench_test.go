package codec

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme/mastertrust/domain"
)

// BenchmarkPotSnapshot measures encoding and decoding a self-directed
// pot's snapshot after n contributions (2n+2 events), and reports the
// snapshot's bytes beside the bytes of the events it stands for (the
// baseline a snapshot is weighed against: actors.snapshotDue).
//
//	go test ./codec -run '^$' -bench PotSnapshot
func BenchmarkPotSnapshot(b *testing.B) {
	for _, n := range []int{50, 100, 200} {
		p, eventBytes := contributedPot(b, n)
		data, err := EncodePotSnapshot(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("contributions=%d/encode", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodePotSnapshot(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "snapshot-bytes")
			b.ReportMetric(float64(eventBytes), "event-bytes")
		})
		b.Run(fmt.Sprintf("contributions=%d/decode", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodePotSnapshot(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// contributedPot is a self-directed pot after n contributions of 10.00,
// and the encoded bytes of its events.
func contributedPot(b *testing.B, n int) (*domain.Pot, int) {
	b.Helper()
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: time.UTC})
	if err != nil {
		b.Fatal(err)
	}
	ctx := &domain.Context{Now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), Catalogue: domain.DefaultCatalogue(),
		Calendar: cal, Prices: map[domain.ISIN]domain.PricePoint{}}
	p := domain.NewPot("M000042")
	eventBytes := 0
	do := func(cmd domain.Command) {
		for _, e := range decide(b, p, cmd, ctx).Events {
			_, data, err := EncodePotEvent(e)
			if err != nil {
				b.Fatal(err)
			}
			eventBytes += len(data)
		}
	}
	do(domain.OpenPot{Key: "open"})
	for i := range n {
		do(domain.Contribute{Key: domain.Key(fmt.Sprintf("c-%d", i)), Amount: domain.MustMoney("10.00")})
	}
	return p, eventBytes
}
