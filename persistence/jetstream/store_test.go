package jetstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/persistence/persistencetest"
)

// testLogger keeps logs quiet unless MASTERTRUST_LOG=1.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MASTERTRUST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startServer starts an embedded server on a free loopback port with its
// store in a temporary directory, stopped at the end of the test.
func startServer(t testing.TB, dir string) *natsembed.Server {
	t.Helper()
	s, err := natsembed.Start(natsembed.Options{Dir: dir, Logger: testLogger(t)})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

var prefixSeq atomic.Int64

// backend runs each storage on its own server; every Open uses its own
// connection, as separate nodes would. batchAppendsMin is
// Options.BatchAppendsMin (0: the default).
func backend(batchAppendsMin int) persistencetest.Backend {
	return persistencetest.Backend{
		Features: persistencetest.Features{Shared: true},
		NewStorage: func(t *testing.T, groups uint32) persistencetest.OpenFunc {
			srv := startServer(t, t.TempDir())
			prefix := fmt.Sprintf("t%d", prefixSeq.Add(1))
			return func(t *testing.T) (persistence.Journal, error) {
				nc := connect(t, srv.ClientURL())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				return jetstream.Open(ctx, nc, jetstream.Options{Prefix: prefix, Groups: groups, Streams: min(int(groups), 2),
					BatchAppendsMin: batchAppendsMin, Logger: testLogger(t)})
			}
		},
	}
}

// TestContract runs the acceptance suite on an embedded nats-server.
func TestContract(t *testing.T) {
	persistencetest.Run(t, backend(0))
}

// TestContractBatched runs it with every append through the batcher, so
// that concurrent appends share atomic batches (the suite's concurrent
// cases: conflicts among them, a second writer fenced).
func TestContractBatched(t *testing.T) {
	persistencetest.Run(t, backend(1))
}

// A journal opened with other replicas than its streams have opens (the
// journal never changes an existing stream) and warns once per stream,
// naming it and both numbers: an operator who moved to --replicas 3 must
// learn that the streams made earlier are still on one server.
func TestOpenWarnsOfOtherReplicas(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := jetstream.Open(ctx, nc, jetstream.Options{Prefix: "rep", Groups: 4, Streams: 2})
	require.NoError(t, err)
	require.NoError(t, j.Close())

	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	j, err = jetstream.Open(ctx, nc, jetstream.Options{Prefix: "rep", Groups: 4, Streams: 2, Replicas: 3, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	// meta, two event streams, dir, snap.
	assert.Equal(t, 5, strings.Count(logs.String(), "other replicas than configured"), logs.String())
	assert.Contains(t, logs.String(), "stream=rep_ev_1 replicas=1 configured=3")
}

// A journal whose event streams were created before appends were batched
// (without AllowAtomicPublish) is opened with atomic batches allowed, and
// its appends then share batches.
func TestOpenAllowsAtomicBatchesOnOlderStreams(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, natsjs.StreamConfig{Name: "old_ev_0", Subjects: []string{"old.ev.0.>"},
		Storage: natsjs.FileStorage, AllowDirect: true, DenyDelete: true, DenyPurge: true})
	require.NoError(t, err)

	j, err := jetstream.Open(ctx, nc, jetstream.Options{Prefix: "old", Groups: 4, Streams: 1, BatchAppendsMin: 1})
	require.NoError(t, err)
	defer j.Close()
	st, err := js.Stream(ctx, "old_ev_0")
	require.NoError(t, err)
	assert.True(t, st.CachedInfo().Config.AllowAtomicPublish)

	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			_, err := j.Append(ctx, persistence.AppendRequest{Stream: fmt.Sprintf("pot/o%d", i), Group: uint32(i % 4),
				Events: []persistence.NewEvent{{Type: "pot.Opened", Data: []byte("x")}}})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}
