package natskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/natskv"
	"github.com/acme/mastertrust/internal/natsembed"
)

// next returns the watch's next event, failing after timeout.
func next(t *testing.T, events <-chan cluster.MemberStoreEvent, timeout time.Duration) cluster.MemberStoreEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "the watch ended")
		return ev
	case <-time.After(timeout):
		t.Fatalf("no event within %v", timeout)
		return cluster.MemberStoreEvent{}
	}
}

// The watch delivers what is there, Synced, then puts and deletions, and a
// record that is not put again is delivered as deleted once the bucket's
// TTL expires it (the server's expiry marker): watchers need not find out
// on their own clock. A second Open uses the bucket as it is.
func TestWatchSeesPutsDeletesAndExpiry(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const ttl = time.Second
	store, err := natskv.Open(ctx, nc, natskv.Options{TTL: ttl})
	require.NoError(t, err)
	require.NoError(t, store.Put(ctx, "a", []byte("record a")))

	again, err := natskv.Open(ctx, nc, natskv.Options{TTL: ttl})
	require.NoError(t, err, "open an existing bucket")
	watchCtx, stopWatch := context.WithCancel(ctx)
	events, err := again.Watch(watchCtx)
	require.NoError(t, err)
	require.Equal(t, cluster.MemberStoreEvent{Key: "a", Value: []byte("record a")}, next(t, events, 5*time.Second))
	require.Equal(t, cluster.MemberStoreEvent{Synced: true}, next(t, events, 5*time.Second))

	require.NoError(t, store.Put(ctx, "b", []byte("record b")))
	require.Equal(t, cluster.MemberStoreEvent{Key: "b", Value: []byte("record b")}, next(t, events, 5*time.Second))
	require.NoError(t, store.Delete(ctx, "b"))
	require.Equal(t, cluster.MemberStoreEvent{Key: "b"}, next(t, events, 5*time.Second), "deleted")

	start := time.Now()
	require.Equal(t, cluster.MemberStoreEvent{Key: "a"}, next(t, events, ttl+5*time.Second), "expired")
	t.Logf("expiry seen %v after the watch started (TTL %v)", time.Since(start).Round(time.Millisecond), ttl)

	stopWatch()
	for range events {
	}
}
