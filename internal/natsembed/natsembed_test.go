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
	if err != nil {
		t.Fatal(err)
	}
	if !s.NATS().JetStreamConfig().SyncAlways {
		t.Fatal("JetStream is not SyncAlways")
	}
	if got := s.NATS().JetStreamConfig().StoreDir; got == "" {
		t.Fatal("no store dir")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		s.Shutdown()
		t.Fatal(err)
	}
	if mp := nc.MaxPayload(); mp != 8<<20 {
		t.Errorf("max payload %d, want 8 MiB", mp)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	s.Shutdown()

	s2, err := natsembed.Start(natsembed.Options{Dir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Shutdown)
	nc2, err := nats.Connect(s2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	js2, _ := jetstream.New(nc2)
	st, err := js2.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 10 {
		t.Fatalf("after restart: %d messages, want 10", info.State.Msgs)
	}
}

// TestDirRequired proves that a server without a directory is refused.
func TestDirRequired(t *testing.T) {
	if _, err := natsembed.Start(natsembed.Options{}); err == nil {
		t.Fatal("started without a directory")
	}
}

// TestFatalStartFailsFast proves that a server that cannot start (here a
// clustered JetStream without routes) makes Start fail at once with the
// server's reason, instead of waiting for its timeout.
func TestFatalStartFailsFast(t *testing.T) {
	start := time.Now()
	_, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Cluster: &natsembed.ClusterOptions{Name: "alone"}})
	if err == nil {
		t.Fatal("a clustered JetStream without routes started")
	}
	if !strings.Contains(err.Error(), "routes") {
		t.Errorf("error %q does not give the server's reason", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start took %s to fail", d)
	}
}

// TestMonitorPort proves that the monitoring endpoints are served only when
// asked for, and that a taken client port fails Start at once, naming it.
func TestMonitorPort(t *testing.T) {
	s, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), MonitorPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if s.MonitorURL() == "" {
		t.Fatal("no monitoring URL")
	}
	resp, err := http.Get(s.MonitorURL() + "/jsz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/jsz: %s", resp.Status)
	}

	_, portText, _ := net.SplitHostPort(strings.TrimPrefix(s.ClientURL(), "nats://"))
	port, _ := strconv.Atoi(portText)
	start := time.Now()
	_, err = natsembed.Start(natsembed.Options{Dir: t.TempDir(), Port: port})
	if err == nil || !strings.Contains(err.Error(), portText) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a second server on port %d: %v", port, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Start took %s to fail", d)
	}

	none, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(none.Shutdown)
	if u := none.MonitorURL(); u != "" {
		t.Fatalf("monitoring on %s without MonitorPort", u)
	}
}
