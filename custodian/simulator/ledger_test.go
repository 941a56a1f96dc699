package simulator

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// The journal refuses a second execution of an order even when memory has
// forgotten the first (the outcome of an append that returned an error is
// unknown): record adopts the stored execution instead, and a reopened
// ledger replays exactly what was stored.
func TestLedgerJournalRefusesSecondExecution(t *testing.T) {
	log, _ := testkit.Logger(t)
	dir := t.TempDir()
	cat := domain.DefaultCatalogue()
	ctx := t.Context()
	l, err := openLedger(ctx, dir, cat, log)
	require.NoError(t, err)
	r := &pb.ExecutionReport{ClOrdId: "2026-11-23-GB00BN7Q2L69", OrderId: "CUST-00000001",
		ExecutionId: "X-2026-11-23-GB00BN7Q2L69", Asset: string(globalEquity), Side: pb.Side_SIDE_BUY,
		Units: "10.0000", Price: "2.125000", Cash: "21.25", SettlementDate: "2026-11-26", DealingDate: "2026-11-23"}
	_, err = l.record(ctx, r)
	require.NoError(t, err)

	// Memory forgets; the journal remembers.
	l.mu.Lock()
	l.byClOrdID, l.list = map[string]*executed{}, nil
	l.mu.Unlock()
	other := proto.CloneOf(r)
	other.Units, other.Cash = "20.0000", "42.50"
	x, err := l.record(ctx, other)
	require.ErrorIs(t, err, errAlreadyExecuted)
	require.Equal(t, "10", x.Units.String(), "the stored execution is adopted")
	require.Equal(t, 1, l.len())
	require.NoError(t, l.close())

	l, err = openLedger(ctx, dir, cat, log)
	require.NoError(t, err)
	defer func() { require.NoError(t, l.close()) }()
	require.Equal(t, 1, l.len())
	require.True(t, proto.Equal(r, l.reports()[0]), "replayed %v, want %v", l.reports()[0], r)
	require.Equal(t, "CUST-00000002", l.nextOrderID())

	// An append whose outcome was unknown, but stored: resolvePending
	// brings it into the books before anything else is recorded.
	l.mu.Lock()
	l.byClOrdID, l.list = map[string]*executed{}, nil
	l.mu.Unlock()
	l.unknown = executionStreamPrefix + r.ClOrdId
	require.NoError(t, l.resolvePending(ctx))
	require.Equal(t, "", l.unknown)
	require.Equal(t, "CUST-00000002", l.nextOrderID())
	st := l.statement(domain.MustDate("2026-11-25"))
	require.Equal(t, [4]string{"0.0000", "10.0000", "0.00", "-21.25"}, statementLines(st)[globalEquity])
}
