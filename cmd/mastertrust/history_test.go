package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/history"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
)

// TestHistoryRebuild proves `history rebuild` projects a stopped node's
// journal into DATA-DIR/history (a pot opened and paid into: its version,
// its orders, its statement), and refuses to run beside a node that holds
// the journal, on a data dir without a journal, and without its verb.
func TestHistoryRebuild(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	j, err := pebble.Open(platform.JournalDir(dataDir), pebble.Options{Groups: 4})
	require.NoError(t, err)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	ctx := &domain.Context{Now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Catalogue: domain.DefaultCatalogue(), Calendar: cal}
	const member = "M000001"
	p := domain.NewPot(member)
	var events []persistence.NewEvent
	for _, cmd := range []domain.Command{domain.OpenPot{Key: "open", Profile: "balanced"},
		domain.Contribute{Key: "pay", Amount: domain.MustMoney("100.00")}} {
		d, err := domain.Decide(p, cmd, ctx)
		require.NoError(t, err)
		for _, e := range d.Events {
			p.Apply(e)
			typ, data, err := codec.EncodePotEvent(e)
			require.NoError(t, err)
			events = append(events, persistence.NewEvent{Type: typ, Data: data})
		}
	}
	_, err = j.Append(context.Background(), persistence.AppendRequest{Stream: "pot/" + member, Group: 1, Events: events})
	require.NoError(t, err)

	_, stderr, code := runCLI(t, "history", "rebuild", "--data-dir", dataDir)
	require.Equal(t, 2, code, "beside the node holding the journal")
	require.Contains(t, stderr, "is the node stopped?")
	require.NoError(t, j.Close())

	stdout, stderr, code := runCLI(t, "history", "rebuild", "--data-dir", dataDir, "--log-level", "warn")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "rebuilt "+platform.HistoryDir(dataDir))
	s, err := history.Open(platform.HistoryDir(dataDir), history.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	version, _, err := s.Projected(member)
	require.NoError(t, err)
	require.Equal(t, p.Version, version)
	orders, _, err := s.Orders(member, 0, 50, nil)
	require.NoError(t, err)
	require.Len(t, orders, len(p.OrderIDs), "the contribution's buys")
	entries, _, err := s.Statement(member, time.Time{}, time.Time{}, "", 50)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "contribution", entries[0].Kind)

	_, stderr, code = runCLI(t, "history", "rebuild", "--data-dir", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no journal")
	_, stderr, code = runCLI(t, "history", "--data-dir", dataDir)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "name what to do: rebuild")
}
