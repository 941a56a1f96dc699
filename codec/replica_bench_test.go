package codec

import (
	"testing"

	"github.com/acme/mastertrust/domain"
)

// BenchmarkReplica measures encoding and decoding a replica of a pot in the
// middle of its life (open orders, executed trades, holdings, a ledger): an
// aggregator decodes and encodes one for every run of its pot's events.
func BenchmarkReplica(b *testing.B) {
	events := potLife(b)
	p, l := domain.NewPot("M000042"), domain.Ledger{}
	for _, e := range events[:len(events)*2/3] {
		if err := l.Post(domain.Postings(p, e)); err != nil {
			b.Fatal(err)
		}
		p.Apply(e)
		p.DropClosed()
	}
	data, err := EncodeReplica(p, l)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeReplica(p, l); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "bytes")
		b.ReportMetric(float64(len(p.Trades)), "trades")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := DecodeReplica(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
