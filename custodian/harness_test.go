package custodian

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/testkit"
)

// The tests of ACME's side of the protocol, without a custodian; the
// protocol end to end, against the simulated custodian, is tested in
// package custodian/simulator.

// The assets the tests deal in (domain/catalogue.json): unit decimals,
// price decimals, settlement days.
const (
	globalEquity = domain.ISIN("GB00BN7Q2L69") // 4, 6, T+3
	globalBond   = domain.ISIN("IE00BF4W7M71") // 3, 6, T+4
	property     = domain.ISIN("GB00BK5V8P82") // 4, 4, T+4
)

// Timings of the tests: short retries so that a failed message comes back
// within tens of milliseconds.
const (
	testRetryInterval    = 20 * time.Millisecond
	testRetryIntervalMax = 200 * time.Millisecond
	testAckWait          = 2 * time.Second
)

// harness is an embedded NATS server, a connection and ACME's client.
type harness struct {
	t      *testing.T
	ctx    context.Context
	client *Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	log, _ := testkit.Logger(t)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	noErr(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	noErr(t, err)
	t.Cleanup(nc.Close)
	client, err := NewClient(nc, ClientConfig{
		Logger: log, ReportAckWait: testAckWait,
		ReportRetryInterval: testRetryInterval, ReportRetryIntervalMax: testRetryIntervalMax,
	})
	noErr(t, err)
	ctx := t.Context()
	noErr(t, client.EnsureStreams(ctx))
	return &harness{t: t, ctx: ctx, client: client}
}

// publishPrices publishes prices given as strings.
func (h *harness) publishPrices(day string, prices map[domain.ISIN]string) {
	h.t.Helper()
	m := make(map[domain.ISIN]domain.Price, len(prices))
	for isin, p := range prices {
		m[isin] = domain.MustPrice(p)
	}
	noErr(h.t, h.client.PublishPrices(h.ctx, domain.MustDate(day), m))
}

// Assertions: each fails the test at once, saying what was wanted. msg is
// an optional format and its arguments.

func noErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", describe(msg), err)
	}
}

func errIs(t testing.TB, err, target error, msg ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%sgot error %v, want one that is %v", describe(msg), err, target)
	}
}

func equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%sgot %#v, want %#v", describe(msg), got, want)
	}
}

func isTrue(t testing.TB, cond bool, msg ...any) {
	t.Helper()
	if !cond {
		t.Fatalf("%snot true", describe(msg))
	}
}

func describe(msg []any) string {
	if len(msg) == 0 {
		return ""
	}
	if f, ok := msg[0].(string); ok {
		return fmt.Sprintf(f, msg[1:]...) + ": "
	}
	return fmt.Sprint(msg...) + ": "
}
