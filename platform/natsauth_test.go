package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// TestIntruderCannotFeedPrices replays the attack on dev: someone who knows
// NATS's port published a price feed for the next dealing day with every
// price at 0.01, and the operator's real prices were then refused as a
// conflict. Now a connection without a credential is refused, and with the
// credential of a role that has no business publishing prices or reports
// (a notifications deliverer, an auditor, an operator's CLI, the custodian
// for prices, the price feed for reports) the publish is refused; the
// operator's prices posted over HTTP are recorded.
func TestIntruderCannotFeedPrices(t *testing.T) {
	d := startOperatorDev(t, 0, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	const date = "2026-11-23"
	dir := d.dev.NATSSecretsDir
	require.FileExists(t, filepath.Join(dir, natsauth.CAFile))

	// No credential: refused, with or without TLS.
	_, err := nats.Connect(d.dev.NATSURL, nats.Timeout(5*time.Second))
	require.Error(t, err, "a client without TLS or credential")
	noSeed := natsauth.ClientFromDir(dir, natsauth.RoleAudit)
	noSeed.SeedFile = ""
	opts, err := noSeed.Options()
	require.NoError(t, err)
	_, err = nats.Connect(d.dev.NATSURL, opts...)
	require.ErrorIs(t, err, nats.ErrAuthorization)

	feed := &pb.PriceFeed{Date: date, Prices: map[string]string{}}
	for _, a := range []string{"GB00BN7Q2L69", "GB00BD8R3K42", "IE00BF4W7M71", "GB00BH2T9J51", "GB00BK5V8P82", "IE00BL3X6N73", "GB00BP9C4D20"} {
		feed.Prices[a] = "0.010000"
	}
	report := &pb.ExecutionReport{ClOrdId: date + "-GB00BN7Q2L69", OrderId: "CUST-1", ExecutionId: "X-" + date + "-GB00BN7Q2L69",
		Asset: "GB00BN7Q2L69", Side: pb.Side_SIDE_BUY, Units: "1000000.000000", Price: "0.010000", Cash: "10000.00", DealingDate: date, SettlementDate: date}
	attempts := []struct {
		role    natsauth.Role
		subject string
		msg     proto.Message
	}{
		{natsauth.RoleNotifications, custodian.PriceSubject(domain.MustDate(date)), feed},
		{natsauth.RoleAudit, custodian.PriceSubject(domain.MustDate(date)), feed},
		{natsauth.RoleOperator, custodian.PriceSubject(domain.MustDate(date)), feed},
		{natsauth.RoleCustodian, custodian.PriceSubject(domain.MustDate(date)), feed},
		{natsauth.RoleNotifications, custodian.ReportSubject("GB00BN7Q2L69"), report},
		{natsauth.RoleAudit, custodian.ReportSubject("GB00BN7Q2L69"), report},
		{natsauth.RolePrices, custodian.ReportSubject("GB00BN7Q2L69"), report},
		{natsauth.RoleNode, custodian.ReportSubject("GB00BN7Q2L69"), report},
	}
	for _, a := range attempts {
		opts, err := natsauth.ClientFromDir(dir, a.role).Options()
		require.NoError(t, err)
		nc, err := nats.Connect(d.dev.NATSURL, append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
		require.NoError(t, err, a.role)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		msg, err := natsmsg.New(a.subject, a.msg)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.PublishMsg(ctx, msg)
		cancel()
		assert.Error(t, err, "%s published on %s", a.role, a.subject)
		require.NoError(t, nc.Flush())
		assert.True(t, errors.Is(nc.LastError(), nats.ErrPermissionViolation), "%s on %s: %v", a.role, a.subject, nc.LastError())
		nc.Close()
	}

	// The server logs every refusal as an error: someone should look.
	violations := 0
	for _, e := range d.logs.take() {
		switch {
		case strings.Contains(e, "Publish Violation"):
			violations++
		case strings.Contains(e, "TLS handshake error"), strings.Contains(e, "authentication error"):
		default:
			t.Errorf("error logged: %s", e)
		}
	}
	assert.Equal(t, len(attempts), violations)

	// The operator's prices are recorded, and are what GET shows.
	d.prices(date)
	b := d.want(http.StatusOK, "", "GET", "/v1/prices/"+date, "")
	var view struct{ Prices map[string]string }
	require.NoError(t, json.Unmarshal(b, &view))
	assert.Equal(t, "2.000000", view.Prices["GB00BN7Q2L69"])
	if errs := d.logs.take(); len(errs) > 0 {
		t.Fatalf("errors logged: %q", errs)
	}
}

// A NATS URL with credentials in it never reaches an error (and so a log)
// with them: the node's and the custodian's connection errors name the URL
// redacted. The nats command refuses to start without its users.
func TestNATSErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	url := "nats://admin:hunter2-secret@" + addr
	_, err = platform.StartMember(platform.Config{DataDir: t.TempDir(), Journal: "jetstream", NATSURL: url, Peers: []string{"127.0.0.1:1"}})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2-secret")
	assert.Contains(t, err.Error(), "nats://REDACTED@"+addr)
	_, _, err = platform.StartCustodian(platform.Config{DataDir: t.TempDir(), NATSURL: url})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2-secret")

	_, err = platform.StartNATS(platform.Config{DataDir: t.TempDir()}, "127.0.0.1", -1)
	assert.ErrorIs(t, err, platform.ErrNATSNoSecrets)
}
