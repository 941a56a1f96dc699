package pebble_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// TestFailedSyncRefusesEverythingAfter proves that once a WAL sync fails,
// the append it covered is not acknowledged, and the store refuses every
// later operation instead of serving what Pebble made visible but may not
// have made durable.
func TestFailedSyncRefusesEverythingAfter(t *testing.T) {
	var failSyncs atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failSyncs.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	})
	st, err := pebble.Open("", pebble.Options{FS: errorfs.Wrap(vfs.NewMem(), inj), Groups: 2, Logger: testLogger(t)})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	ev := []persistence.NewEvent{{Type: "t", Data: []byte("x")}}
	_, err = st.Append(ctx, persistence.AppendRequest{Stream: "pot/a", Group: 0, ExpectedVersion: 0, Events: ev})
	require.NoError(t, err)

	failSyncs.Store(true)
	v, err := st.Append(ctx, persistence.AppendRequest{Stream: "pot/a", Group: 0, ExpectedVersion: 1, Events: ev})
	require.Error(t, err, "append over a failing sync (acknowledged version %d)", v)
	var perr *persistence.Error
	require.ErrorAs(t, err, &perr, "append over a failing sync")
	require.NotErrorIs(t, err, persistence.ErrVersionConflict, "append over a failing sync")

	failSyncs.Store(false)
	_, err = st.Append(ctx, persistence.AppendRequest{Stream: "pot/b", Group: 1, ExpectedVersion: 0, Events: ev})
	require.Error(t, err, "an append after a failed sync")
	evs, err := st.Read(ctx, "pot/a", 1, 0)
	require.Error(t, err, "a read after a failed sync (answered %d events)", len(evs))
	feed, err := st.ReadFeed(ctx, 0, 0, 10)
	require.Error(t, err, "a feed read after a failed sync (answered %d events)", len(feed))
}
