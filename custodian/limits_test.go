package custodian

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
)

// EnsureStreams brings streams made before they had limits (in a data dir
// that outlived an upgrade) to the limits, keeping their messages.
func TestEnsureStreamsAppliesLimitsToOldStreams(t *testing.T) {
	t.Parallel()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := t.Context()
	for _, cfg := range StreamConfigs(1) {
		// As they were: age limits only.
		cfg.MaxBytes, cfg.MaxMsgs, cfg.Discard = 0, 0, jetstream.DiscardOld
		_, err := js.CreateStream(ctx, cfg)
		require.NoError(t, err, cfg.Name)
	}
	_, err = js.Publish(ctx, OrderSubject(globalEquity), []byte("an order of before"))
	require.NoError(t, err)
	require.NoError(t, EnsureStreams(ctx, js, 1))
	for _, want := range StreamConfigs(1) {
		s, err := js.Stream(ctx, want.Name)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, want.MaxBytes, info.Config.MaxBytes, want.Name)
		require.Equal(t, want.MaxMsgs, info.Config.MaxMsgs, want.Name)
		require.Equal(t, want.Discard, info.Config.Discard, want.Name)
		if want.Name == OrdersStream {
			require.Equal(t, uint64(1), info.State.Msgs, "the order of before is kept")
		}
	}
}
