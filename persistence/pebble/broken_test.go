package pebble_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

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
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	ev := []persistence.NewEvent{{Type: "t", Data: []byte("x")}}
	if _, err := st.Append(ctx, persistence.AppendRequest{Stream: "pot/a", Group: 0, ExpectedVersion: 0, Events: ev}); err != nil {
		t.Fatal(err)
	}

	failSyncs.Store(true)
	v, err := st.Append(ctx, persistence.AppendRequest{Stream: "pot/a", Group: 0, ExpectedVersion: 1, Events: ev})
	if err == nil {
		t.Fatalf("append over a failing sync acknowledged version %d", v)
	}
	var perr *persistence.Error
	if !errors.As(err, &perr) || errors.Is(err, persistence.ErrVersionConflict) {
		t.Fatalf("append over a failing sync: %v, want a *persistence.Error that is not a conflict", err)
	}

	failSyncs.Store(false)
	if _, err := st.Append(ctx, persistence.AppendRequest{Stream: "pot/b", Group: 1, ExpectedVersion: 0, Events: ev}); err == nil {
		t.Fatal("an append after a failed sync was acknowledged")
	}
	if evs, err := st.Read(ctx, "pot/a", 1, 0); err == nil {
		t.Fatalf("a read after a failed sync answered %d events", len(evs))
	}
	if evs, err := st.ReadFeed(ctx, 0, 0, 10); err == nil {
		t.Fatalf("a feed read after a failed sync answered %d events", len(evs))
	}
}
