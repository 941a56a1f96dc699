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

// runCLI runs the command line in this process: its output and the exit
// status main would give.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut strings.Builder
	code = exitCode(run(ctx, args, &out, &errOut), &errOut)
	return out.String(), errOut.String(), code
}

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

// Every command's --help and -h print its usage and exit 0, as does
// "mastertrust help <command>"; nothing else is printed or started.
func TestHelpOfEveryCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			stdout, stderr, code := runCLI(t, args...)
			if code != 0 || stdout != "" || !strings.Contains(stderr, "usage: mastertrust "+c.name) || strings.Contains(stderr, "mastertrust: ") {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
			}
		}
	}
	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"help"}} {
		_, stderr, code := runCLI(t, args...)
		want := 0
		if len(args) == 0 {
			want = 2 // no command
		}
		if code != want || !strings.Contains(stderr, "commands:") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
	}
	if _, stderr, code := runCLI(t, "help", "nonsense"); code != 2 || !strings.Contains(stderr, `unknown command "nonsense"`) {
		t.Errorf("help nonsense: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, "gateway", "--no-such-flag"); code != 2 || !strings.Contains(stderr, "usage: mastertrust gateway") {
		t.Errorf("an unknown flag: exit %d, stderr %q", code, stderr)
	}
}

// The process's exit status, not just run's error: help is 0, a mistake 2.
func TestHelpExitStatusOfTheProcess(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"dev", "--help"}, 0, "-nats-port"},
		{[]string{"bench", "-h"}, 0, "usage: mastertrust bench cycle"},
		{[]string{"help", "token"}, 0, "-member"},
		{[]string{"token"}, 2, "give exactly one of --member ID or --operator"},
		{[]string{"nonsense"}, 2, `unknown command "nonsense"`},
	} {
		out, code := runBinary(t, nil, c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("%q: exit %d, want %d; output %q", c.args, code, c.code, out)
		}
	}
}

// bench --help lists the workloads and each one's flags; bench alone lists
// the workloads and is an error.
func TestBenchHelpListsWorkloadsAndFlags(t *testing.T) {
	t.Parallel()
	_, stderr, code := runCLI(t, "bench", "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range benchWorkloads {
		if !strings.Contains(stderr, "  "+w.name+" ") || !strings.Contains(stderr, "usage: mastertrust bench "+w.name+" [flags]") {
			t.Errorf("bench --help does not describe %s:\n%s", w.name, stderr)
		}
	}
	for _, fl := range []string{"-backends", "-read-streams", "-measurements", "-heap-pots", "-days", "-profile-dir"} {
		if !strings.Contains(stderr, fl) {
			t.Errorf("bench --help lacks %s", fl)
		}
	}
	_, stderr, code = runCLI(t, "bench")
	if code != 2 || !strings.Contains(stderr, "journal") || !strings.Contains(stderr, "name a workload") {
		t.Errorf("bench: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCLI(t, "bench", "pots", "--help")
	if code != 0 || !strings.Contains(stderr, "-measurements") || strings.Contains(stderr, "-backends") {
		t.Errorf("bench pots --help: exit %d, stderr %q", code, stderr)
	}
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
