package natsembed_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
)

// TestRestartKeepsAcknowledgedMessages proves that the server listens on a
// free loopback port, that JetStream stores on the given directory with
// SyncAlways, and that a server restarted on the directory finds what the
// first one acknowledged.
func TestRestartKeepsAcknowledgedMessages(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := natsembed.Start(natsembed.Options{Dir: dir})
	require.NoError(t, err)
	require.True(t, s.NATS().JetStreamConfig().SyncAlways, "JetStream's SyncAlways")
	require.NotEmpty(t, s.NATS().JetStreamConfig().StoreDir, "JetStream's store dir")
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		s.Shutdown()
		t.Fatal(err)
	}
	assert.Equal(t, int64(8<<20), nc.MaxPayload(), "max payload (8 MiB)")
	js, _ := jetstream.New(nc)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	for i := range 10 {
		_, err := js.Publish(ctx, "t.x", []byte{byte(i)})
		require.NoError(t, err)
	}
	nc.Close()
	s.Shutdown()

	s2, err := natsembed.Start(natsembed.Options{Dir: dir, Port: -1})
	require.NoError(t, err)
	t.Cleanup(s2.Shutdown)
	nc2, err := nats.Connect(s2.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc2.Close)
	js2, _ := jetstream.New(nc2)
	st, err := js2.Stream(ctx, "T")
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(10), info.State.Msgs, "messages after the restart")
}

// TestDirRequired proves that a server without a directory is refused.
func TestDirRequired(t *testing.T) {
	_, err := natsembed.Start(natsembed.Options{})
	require.Error(t, err, "a start without a directory")
}

// TestFatalStartFailsFast proves that a server that cannot start (here a
// clustered JetStream without routes) makes Start fail at once with the
// server's reason, instead of waiting for its timeout.
func TestFatalStartFailsFast(t *testing.T) {
	start := time.Now()
	_, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Cluster: &natsembed.ClusterOptions{Name: "alone"}})
	require.Error(t, err, "a clustered JetStream without routes")
	assert.ErrorContains(t, err, "routes", "the server's reason")
	assert.LessOrEqual(t, time.Since(start), 10*time.Second, "time Start took to fail")
}

// TestMonitorPort proves that the monitoring endpoints are served only when
// asked for, and that a taken client port fails Start at once, naming it.
func TestMonitorPort(t *testing.T) {
	s, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), MonitorPort: -1})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	require.NotEmpty(t, s.MonitorURL(), "monitoring URL")
	resp, err := http.Get(s.MonitorURL() + "/jsz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "/jsz: status")

	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(s.ClientURL(), "nats://"))
	port, _ := strconv.Atoi(portText)
	start := time.Now()
	_, err = natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: port})
	require.ErrorContains(t, err, portText, "a second server on port %d: the port", port)
	require.ErrorContains(t, err, "address already in use", "a second server on port %d", port)
	assert.LessOrEqual(t, time.Since(start), 10*time.Second, "time Start took to fail")

	none, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(none.Shutdown)
	require.Empty(t, none.MonitorURL(), "monitoring URL without MonitorPort")
}
