package custodian

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/internal/natsembed"
)

// EnsureStreams brings streams made before they had limits (in a data dir
// that outlived an upgrade) to the limits, keeping their messages.
func TestEnsureStreamsAppliesLimitsToOldStreams(t *testing.T) {
	t.Parallel()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	noErr(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	noErr(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	noErr(t, err)
	ctx := t.Context()
	for _, cfg := range StreamConfigs(1) {
		// As they were: age limits only.
		cfg.MaxBytes, cfg.MaxMsgs, cfg.Discard = 0, 0, jetstream.DiscardOld
		_, err := js.CreateStream(ctx, cfg)
		noErr(t, err, cfg.Name)
	}
	_, err = js.Publish(ctx, OrderSubject(globalEquity), []byte("an order of before"))
	noErr(t, err)
	noErr(t, EnsureStreams(ctx, js, 1))
	for _, want := range StreamConfigs(1) {
		s, err := js.Stream(ctx, want.Name)
		noErr(t, err)
		info, err := s.Info(ctx)
		noErr(t, err)
		equal(t, want.MaxBytes, info.Config.MaxBytes, want.Name)
		equal(t, want.MaxMsgs, info.Config.MaxMsgs, want.Name)
		equal(t, want.Discard, info.Config.Discard, want.Name)
		if want.Name == OrdersStream {
			equal(t, uint64(1), info.State.Msgs, "the order of before is kept")
		}
	}
}
