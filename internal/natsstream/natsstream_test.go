package natsstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/natsstream"
)

func connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: -1})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

func streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage,
		MaxMsgs: 100, Duplicates: time.Minute, AllowDirect: true}
}

// Callers that ask for one new stream at once all get it, with or without
// update; TestMembersStartTogetherOnNATSCluster does the same on a
// three-server cluster with replicated streams.
func TestEnsureConcurrently(t *testing.T) {
	js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const callers = 8
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			st, err := natsstream.Ensure(ctx, js, streamConfig(), i%2 == 0)
			if err == nil && st.CachedInfo().Config.Name != "T" {
				err = assert.AnError
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "caller %d", i)
	}
}

// An existing stream is updated only with update, and only where a setting
// differs: a second Ensure with the same settings leaves it as it is.
func TestEnsureUpdates(t *testing.T) {
	js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := streamConfig()
	st, err := natsstream.Ensure(ctx, js, cfg, true)
	require.NoError(t, err)
	created := st.CachedInfo().Created
	assert.False(t, natsstream.Differs(st.CachedInfo().Config, cfg), "the server's filled-in defaults are no difference")

	cfg.MaxMsgs = 200
	st, err = natsstream.Ensure(ctx, js, cfg, false)
	require.NoError(t, err)
	assert.Equal(t, int64(100), st.CachedInfo().Config.MaxMsgs, "without update")
	st, err = natsstream.Ensure(ctx, js, cfg, true)
	require.NoError(t, err)
	assert.Equal(t, int64(200), st.CachedInfo().Config.MaxMsgs, "with update")
	assert.Equal(t, created, st.CachedInfo().Created)

	// A change JetStream cannot make in place is the caller's error.
	cfg.Storage = jetstream.MemoryStorage
	_, err = natsstream.Ensure(ctx, js, cfg, true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stream T")
}
