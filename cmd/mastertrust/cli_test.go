package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/platform"
)

// runBinary runs the command line as a process (the test binary as
// mastertrust, TestMain): its combined output and exit status.
func runBinary(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// dev prints its NATS server's URL (no credentials) and, when asked, its
// monitoring URL; there, a nats client finds the platform's streams, every
// one bounded.
func TestDevPrintsItsNATS(t *testing.T) {
	t.Parallel()
	d := startDevArgs(t, t.TempDir(), "M000001", "--nats-monitor-port", "-1")
	u, err := url.Parse(d.natsURL)
	if err != nil || u.Scheme != "nats" || u.User != nil || u.Port() == "" {
		t.Fatalf("nats URL %q (%v) from %q", d.natsURL, err, d.natsLine)
	}
	nc, err := nats.Connect(d.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for info := range js.ListStreams(ctx).Info() {
		c := info.Config
		if c.MaxAge <= 0 || c.MaxBytes <= 0 || c.MaxMsgs <= 0 {
			t.Errorf("stream %s is unbounded: age %s, bytes %d, msgs %d", c.Name, c.MaxAge, c.MaxBytes, c.MaxMsgs)
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if want := []string{"CUSTODIAN_ORDERS", "CUSTODIAN_REPORTS", "NOTIFICATIONS", "PRICES"}; !slices.Equal(names, want) {
		t.Fatalf("streams %q, want %q", names, want)
	}
	resp, err := http.Get(d.natsMonitorURL + "/jsz")
	if err != nil {
		t.Fatalf("monitoring URL %q: %v", d.natsMonitorURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/jsz: %s", resp.Status)
	}
}

// dev's NATS port is 4222 unless it is taken: then, unless the port was
// given, a free one, and the URL line says so; a port given and taken is an
// error naming it.
func TestDevNATSPortTaken(t *testing.T) {
	t.Parallel()
	// Hold 4222 (if something else holds it, it is taken all the same).
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(platform.DefaultNATSPort)); err == nil {
		t.Cleanup(func() { ln.Close() })
	}
	d := startDevCommand(t, t.TempDir(), "M000001")
	if !strings.HasSuffix(d.natsLine, "(port 4222 is taken)") || strings.HasSuffix(d.natsURL, ":4222") {
		t.Fatalf("nats line %q", d.natsLine)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out, code := runBinary(t, nil, "dev", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--nats-port", port)
	if code != 2 || !strings.Contains(out, port) || !strings.Contains(out, "address already in use") {
		t.Fatalf("dev on a taken --nats-port: exit %d\n%s", code, out)
	}
	out, code = runBinary(t, []string{"MASTERTRUST_NATS_PORT=" + port}, "dev", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0")
	if code != 2 || !strings.Contains(out, "address already in use") {
		t.Fatalf("dev on a taken MASTERTRUST_NATS_PORT: exit %d\n%s", code, out)
	}
}
