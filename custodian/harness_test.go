package custodian

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	client, err := NewClient(nc, ClientConfig{
		Logger: log, ReportAckWait: testAckWait,
		ReportRetryInterval: testRetryInterval, ReportRetryIntervalMax: testRetryIntervalMax,
	})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, client.EnsureStreams(ctx))
	return &harness{t: t, ctx: ctx, client: client}
}

// publishPrices publishes prices given as strings.
func (h *harness) publishPrices(day string, prices map[domain.ISIN]string) {
	h.t.Helper()
	m := make(map[domain.ISIN]domain.Price, len(prices))
	for isin, p := range prices {
		m[isin] = domain.MustPrice(p)
	}
	require.NoError(h.t, h.client.PublishPrices(h.ctx, domain.MustDate(day), m))
}
