package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// checkHeaders fails unless h names the type typ and protobuf.
func checkHeaders(t *testing.T, what string, h nats.Header, typ string) {
	t.Helper()
	require.Equal(t, typ, h.Get("Mastertrust-Type"), what+": type header")
	require.Equal(t, "application/protobuf", h.Get("Content-Type"), what+": content type header")
}

// Every message of the protocol carries headers naming its type and
// encoding: read back raw from the streams, and seen on the wire for the
// holdings request and its reply.
func TestMessagesCarryTheirType(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")
	var mu sync.Mutex
	var requests []*nats.Msg
	spy, err := h.nc.Subscribe(custodian.HoldingsSubject, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, m)
	})
	require.NoError(t, err)
	t.Cleanup(func() { spy.Unsubscribe() })

	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000"})
	o := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")
	require.NoError(t, h.client.SendOrder(h.ctx, o))
	require.NoError(t, h.client.ResendOrder(h.ctx, o, 2))
	h.waitReport(reports, o)

	raw := func(stream string, seq uint64) *jetstream.RawStreamMsg {
		s, err := h.js.Stream(h.ctx, stream)
		require.NoError(t, err)
		m, err := s.GetMsg(h.ctx, seq)
		require.NoError(t, err, stream)
		return m
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m := raw(custodian.OrdersStream, seq)
		checkHeaders(t, fmt.Sprintf("order %d", seq), m.Header, "mastertrust.v1.CustodianOrder")
		require.True(t, m.Header.Get(jetstream.MsgIDHeader) != "", "order keeps its message id")
	}
	checkHeaders(t, "report", raw(custodian.ReportsStream, 1).Header, "mastertrust.v1.ExecutionReport")
	checkHeaders(t, "prices", raw(custodian.PricesStream, 1).Header, "mastertrust.v1.PriceFeed")

	_, err = h.client.Holdings(h.ctx, domain.MustDate("2026-11-23"))
	require.NoError(t, err)
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(requests) == 0 {
			return fmt.Errorf("no holdings request seen")
		}
		return nil
	})
	mu.Lock()
	checkHeaders(t, "holdings request", requests[0].Header, "mastertrust.v1.HoldingsRequest")
	mu.Unlock()
	req, err := natsmsg.New(custodian.HoldingsSubject, &pb.HoldingsRequest{AsOf: "2026-11-23"})
	require.NoError(t, err)
	reply, err := h.nc.RequestMsg(req, waitMax)
	require.NoError(t, err)
	checkHeaders(t, "holdings statement", reply.Header, "mastertrust.v1.HoldingsStatement")
}

// logBuffer is a log the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// terminations collects the reasons JetStream advertises for messages a
// consumer of stream terminated.
func terminations(t *testing.T, nc *nats.Conn, stream string) func() []string {
	t.Helper()
	var mu sync.Mutex
	var reasons []string
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+stream+".*", func(m *nats.Msg) {
		var adv struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &adv); err == nil {
			mu.Lock()
			defer mu.Unlock()
			reasons = append(reasons, adv.Reason)
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reasons...)
	}
}

// waitTerminated waits until reasons holds one naming both parts of want.
func waitTerminated(t *testing.T, reasons func() []string, want ...string) {
	t.Helper()
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		for _, r := range reasons() {
			all := true
			for _, w := range want {
				all = all && strings.Contains(r, w)
			}
			if all {
				return nil
			}
		}
		return fmt.Errorf("no termination naming %q among %q", want, reasons())
	})
}

// mislabelled is m's payload under headers naming another type: bytes that
// would decode as m, so only the header can tell.
func mislabelled(t *testing.T, subject string, m proto.Message, typ string) *nats.Msg {
	t.Helper()
	msg, err := natsmsg.New(subject, m)
	require.NoError(t, err)
	msg.Header.Set(natsmsg.TypeHeader, typ)
	return msg
}

// A message whose headers name another type is refused — terminated with
// the reason, logged, never handed on — though its bytes would decode; one
// without headers (published before they existed) is read as before.
func TestMessagesOfAnotherTypeRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := custodian.NewClient(h.nc, custodian.ClientConfig{Logger: log, ReportAckWait: testAckWait,
		ReportRetryInterval: testRetryInterval, ReportRetryIntervalMax: testRetryIntervalMax})
	require.NoError(t, err)
	sim, err := Start(h.ctx, h.nc, Config{Dir: t.TempDir(), Logger: log, OrderAckWait: testAckWait,
		RetryInterval: testRetryInterval, RetryIntervalMax: testRetryIntervalMax})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sim.Stop()) })
	orderTerms := terminations(t, h.nc, custodian.OrdersStream)
	reportTerms := terminations(t, h.nc, custodian.ReportsStream)
	priceTerms := terminations(t, h.nc, custodian.PricesStream)

	// Orders: a mislabelled order is rejected, not executed.
	h.publishPrices("2026-11-23", map[domain.ISIN]string{globalEquity: "2.000000", globalBond: "1.000000"})
	o := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")
	_, err = h.js.PublishMsg(h.ctx, mislabelled(t, custodian.OrderSubject(globalEquity), o, "mastertrust.v1.ExecutionReport"))
	require.NoError(t, err)
	waitTerminated(t, orderTerms, "not a readable order", `"mastertrust.v1.ExecutionReport"`)
	require.Equal(t, int64(0), sim.Stats().Executions, "the mislabelled order was executed")
	require.Equal(t, int64(1), sim.Stats().Rejected)

	// Reports: a mislabelled report never reaches the handler; the next
	// report does.
	var mu sync.Mutex
	var handled []string
	stop, err := client.Reports(h.ctx, "acme", func(_ context.Context, r *pb.ExecutionReport) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, r.GetExecutionId())
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(stop)
	fake := &pb.ExecutionReport{ClOrdId: o.ClOrdId, OrderId: "CUST-X", ExecutionId: "X-fake", Asset: o.Asset,
		Side: o.Side, Units: o.Units, Price: "2.000000", Cash: "2.00", SettlementDate: "2026-11-26", DealingDate: o.DealingDate}
	_, err = h.js.PublishMsg(h.ctx, mislabelled(t, custodian.ReportSubject(globalEquity), fake, "mastertrust.v1.CustodianOrder"))
	require.NoError(t, err)
	waitTerminated(t, reportTerms, "not a readable execution report", `"mastertrust.v1.CustodianOrder"`)
	require.NoError(t, client.SendOrder(h.ctx, o))
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(handled) == 0 {
			return fmt.Errorf("no report handled")
		}
		return nil
	})
	mu.Lock()
	require.Equal(t, []string{"X-" + o.ClOrdId}, handled, "only the real report is handled")
	mu.Unlock()

	// Prices: a mislabelled feed is refused by the feed's consumer and by
	// readers of the date's feed.
	day := domain.MustDate("2026-11-24")
	feed := &pb.PriceFeed{Date: day.String(), Prices: map[string]string{string(globalEquity): "2.000000"}}
	_, err = h.js.PublishMsg(h.ctx, mislabelled(t, custodian.PriceSubject(day), feed, "mastertrust.v1.HoldingsStatement"))
	require.NoError(t, err)
	var days []string
	stopPrices, err := client.PriceFeed(h.ctx, "acme-prices", func(_ context.Context, d domain.Date, _ map[domain.ISIN]domain.Price) error {
		mu.Lock()
		defer mu.Unlock()
		days = append(days, d.String())
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(stopPrices)
	waitTerminated(t, priceTerms, "not a readable price feed", `"mastertrust.v1.HoldingsStatement"`)
	_, _, err = client.Prices(h.ctx, day)
	require.ErrorIs(t, err, custodian.ErrInvalidPrices)
	require.ErrorIs(t, err, natsmsg.ErrWrongType)
	mu.Lock()
	require.Equal(t, []string{"2026-11-23"}, days, "the feed's consumer handled the mislabelled day")
	mu.Unlock()

	// Holdings: a mislabelled request is answered with a refusal.
	req := mislabelled(t, custodian.HoldingsSubject, &pb.HoldingsRequest{AsOf: "2026-11-23"}, "mastertrust.v1.PriceFeed")
	reply, err := h.nc.RequestMsg(req, waitMax)
	require.NoError(t, err)
	require.True(t, strings.Contains(reply.Header.Get(custodian.ErrorHeader), "mastertrust.v1.PriceFeed"), "holdings refusal: %v", reply.Header)

	// A content type other than protobuf is refused too.
	o2 := order("2026-11-23", globalBond, pb.Side_SIDE_BUY, "1.000")
	msg, err := natsmsg.New(custodian.OrderSubject(globalBond), o2)
	require.NoError(t, err)
	msg.Header.Set(natsmsg.ContentTypeHeader, "application/json")
	_, err = h.js.PublishMsg(h.ctx, msg)
	require.NoError(t, err)
	waitTerminated(t, orderTerms, "not a readable order", "application/json")
	require.Equal(t, int64(2), sim.Stats().Rejected)

	for _, want := range []string{"order rejected", "message refused and terminated"} {
		require.True(t, strings.Contains(logs.String(), want), "log lacks %q:\n%s", want, logs.String())
	}
}

// Messages without the headers — in a stream written before they existed —
// are read as before: an order executes, its report and the day's prices
// are read.
func TestMessagesWithoutHeadersAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	sim := h.startSim(t.TempDir(), Faults{})
	reports := h.collect("acme")
	day := domain.MustDate("2026-11-23")
	feed, err := proto.Marshal(&pb.PriceFeed{Date: day.String(), Prices: map[string]string{string(globalEquity): "2.000000"}})
	require.NoError(t, err)
	_, err = h.js.Publish(h.ctx, custodian.PriceSubject(day), feed)
	require.NoError(t, err)
	prices, found, err := h.client.Prices(h.ctx, day)
	require.NoError(t, err)
	require.True(t, found && prices[globalEquity].Equal(domain.MustPrice("2")), "prices without headers: %v", prices)

	o := order("2026-11-23", globalEquity, pb.Side_SIDE_BUY, "1.0000")
	data, err := proto.Marshal(o)
	require.NoError(t, err)
	_, err = h.js.Publish(h.ctx, custodian.OrderSubject(globalEquity), data, jetstream.WithMsgID(o.ClOrdId))
	require.NoError(t, err)
	r := h.waitReport(reports, o)
	require.Equal(t, "2.00", r.GetCash())
	require.Equal(t, int64(1), sim.Stats().Executions)

	// A report without headers (as the simulator published them before).
	old := proto.CloneOf(r)
	old.ExecutionId, old.ClOrdId, old.DealingDate = "X-old", "2026-11-24-"+string(globalEquity), "2026-11-24"
	data, err = proto.Marshal(old)
	require.NoError(t, err)
	_, err = h.js.Publish(h.ctx, custodian.ReportSubject(globalEquity), data, jetstream.WithMsgID(old.ExecutionId))
	require.NoError(t, err)
	testkit.CheckFor(t, waitMax, pollInterval, func() error {
		if _, ok := reports.report(old.ClOrdId); !ok {
			return fmt.Errorf("the report without headers was not handled")
		}
		return nil
	})
}
