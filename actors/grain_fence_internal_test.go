package actors

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// TestDealingGrainsTripTheirFence: every kind the grain shell runs makes
// its own stream with the shell's fence, so that a version conflict on it
// (another activation appended) stops the activation whatever the kind
// (grainShell; the end-to-end tests are in grain_conflict_test.go).
func TestDealingGrainsTripTheirFence(t *testing.T) {
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 2})
	require.NoError(t, err)
	defer j.Close()
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: time.UTC})
	require.NoError(t, err)
	deps := &DealingDeps{Journal: j, Catalogue: domain.DefaultCatalogue(), Calendar: cal, Market: NewMarketState(),
		Logger: slog.New(slog.DiscardHandler)}
	kinds := deps.Kinds() // fills deps' defaults
	agg, book, cyc, pr, rec := &aggregator{deps: deps}, &assetBook{deps: deps}, &cycle{deps: deps}, &prices{deps: deps}, &reconciliation{deps: deps}
	grains := []struct {
		kind     string
		logic    grainLogic
		identity string
		stream   *systemStream
	}{
		{AggregatorKind, agg, "0", &agg.stream},
		{AssetBookKind, book, "2026-11-23/GB00BD8R3K42", &book.stream},
		{CycleKind, cyc, "2026-11-23", &cyc.stream},
		{PricesKind, pr, "2026-11-23", &pr.stream},
		{ReconciliationKind, rec, "r-1", &rec.stream},
	}
	require.Len(t, grains, len(kinds), "a kind without a case here")
	for _, g := range grains {
		t.Run(g.kind, func(t *testing.T) {
			f := &fence{}
			require.NoError(t, g.logic.activate(g.identity, f))
			typ, data, err := codec.EncodeSystemEvent(&pb.PricesUsed{Date: "2026-11-23"})
			require.NoError(t, err)
			_, err = j.Append(context.Background(), persistence.AppendRequest{Stream: g.stream.name, Group: SystemGroup(j),
				ExpectedVersion: g.stream.version, Events: []persistence.NewEvent{{Type: typ, Data: data}}})
			require.NoError(t, err, "the other activation's append")
			require.NoError(t, f.tripped(), "tripped before any conflict")

			err = g.stream.append(context.Background(), &pb.PricesUsed{Date: "2026-11-23"})
			require.ErrorIs(t, err, persistence.ErrVersionConflict)
			require.ErrorIs(t, f.tripped(), persistence.ErrVersionConflict, "the conflict did not trip the grain's fence")
		})
	}
}
