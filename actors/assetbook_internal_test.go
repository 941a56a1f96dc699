package actors

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

func TestReportMismatch(t *testing.T) {
	const asset = domain.ISIN("GB00BK5V8P82")
	id := domain.BatchID(domain.MustDate("2026-11-23"), asset)
	batch := &pb.BatchRecorded{Date: "2026-11-23", Asset: string(asset), Side: pb.Side_SIDE_BUY, Units: "8", Price: "1.0000", Cash: "8.00"}
	sent := func(change func(r *pb.ExecutionReport)) *pb.ExecutionReport {
		r := &pb.ExecutionReport{ClOrdId: id, ExecutionId: "e1", Asset: string(asset), Side: pb.Side_SIDE_BUY,
			Units: "8.000000", Price: "1", Cash: "8.00", DealingDate: "2026-11-23"}
		if change != nil {
			change(r)
		}
		return r
	}
	for _, c := range []struct {
		name   string
		report *pb.ExecutionReport
		want   string
	}{
		{"the order, with other trailing zeros", sent(nil), ""},
		{"another order id", sent(func(r *pb.ExecutionReport) { r.ClOrdId = "2026-11-24-GB00BK5V8P82" }),
			`order "2026-11-24-GB00BK5V8P82" of "GB00BK5V8P82", sent 2026-11-23-GB00BK5V8P82 of GB00BK5V8P82`},
		{"another asset", sent(func(r *pb.ExecutionReport) { r.Asset = "IE00B4L5Y983" }),
			`order "2026-11-23-GB00BK5V8P82" of "IE00B4L5Y983", sent 2026-11-23-GB00BK5V8P82 of GB00BK5V8P82`},
		{"another day", sent(func(r *pb.ExecutionReport) { r.DealingDate = "2026-11-24" }), `dealing date "2026-11-24", order 2026-11-23`},
		{"the other side", sent(func(r *pb.ExecutionReport) { r.Side = pb.Side_SIDE_SELL }), "side SIDE_SELL, order SIDE_BUY"},
		{"other units", sent(func(r *pb.ExecutionReport) { r.Units = "8.000001" }), `units "8.000001", order 8`},
		{"another price", sent(func(r *pb.ExecutionReport) { r.Price = "0.01" }), `price "0.01", order 1.0000`},
		{"other cash", sent(func(r *pb.ExecutionReport) { r.Cash = "7.99" }), `cash "7.99", order 8.00`},
		{"unreadable units", sent(func(r *pb.ExecutionReport) { r.Units = "eight" }), `units "eight", order 8`},
		{"a price and cash both", sent(func(r *pb.ExecutionReport) { r.Price, r.Cash = "2", "16.00" }),
			`price "2", order 1.0000; cash "16.00", order 8.00`},
		{"a long forged value is cut", sent(func(r *pb.ExecutionReport) { r.Units = "1234567890123456789012345678901234567890123" }),
			`units "1234567890123456789012345678901234567890…", order 8`},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, reportMismatch(id, asset, batch, c.report))
		})
	}
}
