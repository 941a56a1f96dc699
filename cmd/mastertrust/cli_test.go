package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
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
			assert.Equal(t, 0, code, "%q: exit status", args)
			assert.Empty(t, stdout, "%q: stdout", args)
			assert.Contains(t, stderr, "usage: mastertrust "+c.name, "%q: stderr", args)
			assert.NotContains(t, stderr, "mastertrust: ", "%q: stderr", args)
		}
	}
	for _, args := range [][]string{{}, {"--help"}, {"-h"}, {"help"}} {
		_, stderr, code := runCLI(t, args...)
		want := 0
		if len(args) == 0 {
			want = 2 // no command
		}
		assert.Equal(t, want, code, "%q: exit status", args)
		assert.Contains(t, stderr, "commands:", "%q: stderr", args)
	}
	_, stderr, code := runCLI(t, "help", "nonsense")
	assert.Equal(t, 2, code, "help nonsense: exit status")
	assert.Contains(t, stderr, `unknown command "nonsense"`, "help nonsense: stderr")
	_, stderr, code = runCLI(t, "gateway", "--no-such-flag")
	assert.Equal(t, 2, code, "an unknown flag: exit status")
	assert.Contains(t, stderr, "usage: mastertrust gateway", "an unknown flag: stderr")
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
		assert.Equal(t, c.code, code, "%q: exit status; output %q", c.args, out)
		assert.Contains(t, out, c.says, "%q: output", c.args)
	}
}

// bench --help lists the workloads and each one's flags; bench alone lists
// the workloads and is an error.
func TestBenchHelpListsWorkloadsAndFlags(t *testing.T) {
	t.Parallel()
	_, stderr, code := runCLI(t, "bench", "--help")
	require.Equal(t, 0, code, "bench --help: exit status; stderr %s", stderr)
	for _, w := range benchWorkloads {
		assert.Contains(t, stderr, "  "+w.name+" ", "bench --help: the workload %s in the list", w.name)
		assert.Contains(t, stderr, "usage: mastertrust bench "+w.name+" [flags]", "bench --help: the usage of %s", w.name)
	}
	for _, fl := range []string{"-backends", "-read-streams", "-measurements", "-heap-pots", "-days", "-profile-dir", "-sizes", "-orders-per-day"} {
		assert.Contains(t, stderr, fl, "bench --help: the flag %s", fl)
	}
	_, stderr, code = runCLI(t, "bench")
	assert.Equal(t, 2, code, "bench: exit status")
	assert.Contains(t, stderr, "journal", "bench: stderr lists the workloads")
	assert.Contains(t, stderr, "name a workload", "bench: stderr")
	_, stderr, code = runCLI(t, "bench", "pots", "--help")
	assert.Equal(t, 0, code, "bench pots --help: exit status")
	assert.Contains(t, stderr, "-measurements", "bench pots --help: its own flags")
	assert.NotContains(t, stderr, "-backends", "bench pots --help: another workload's flags")
}

// dev prints its NATS server's URL (tls://, no credentials in it), where the
// credentials are and, when asked, its monitoring URL. A client without a
// credential is refused; with the operator's, it finds the platform's
// streams, every one bounded.
func TestDevPrintsItsNATS(t *testing.T) {
	t.Parallel()
	d := startDevArgs(t, t.TempDir(), "M000001", "--nats-monitor-port", "-1")
	u, err := url.Parse(d.natsURL)
	require.NoError(t, err, "nats URL %q from %q", d.natsURL, d.natsLine)
	require.Equal(t, "tls", u.Scheme, "nats URL %q: scheme", d.natsURL)
	require.Nil(t, u.User, "nats URL %q: credentials", d.natsURL)
	require.NotEmpty(t, u.Port(), "nats URL %q: port", d.natsURL)
	secrets := platform.NATSSecretsDir(d.dataDir)
	assert.Contains(t, d.natsTry, "--tlsca "+filepath.Join(secrets, natsauth.CAFile))
	assert.Contains(t, d.natsTry, "--nkey "+natsauth.SeedFile(secrets, natsauth.RoleOperator))
	assert.Contains(t, d.natsTry, "--tlscert "+natsauth.CertFile(secrets, natsauth.RoleOperator))
	_, err = nats.Connect(d.natsURL, nats.Timeout(5*time.Second))
	require.Error(t, err, "a client without TLS or credential")
	opts, err := natsauth.ClientFromDir(secrets, natsauth.RoleOperator).Options()
	require.NoError(t, err)
	nc, err := nats.Connect(d.natsURL, opts...)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for info := range js.ListStreams(ctx).Info() {
		c := info.Config
		// Every stream is bounded.
		assert.Positive(t, c.MaxAge, "stream %s: max age", c.Name)
		assert.Positive(t, c.MaxBytes, "stream %s: max bytes", c.Name)
		assert.Positive(t, c.MaxMsgs, "stream %s: max messages", c.Name)
		names = append(names, c.Name)
	}
	slices.Sort(names)
	require.Equal(t, []string{"CUSTODIAN_ORDERS", "CUSTODIAN_REPORTS", "NOTIFICATIONS", "PRICES"}, names, "streams")
	resp, err := http.Get(d.natsMonitorURL + "/jsz")
	require.NoError(t, err, "monitoring URL %q", d.natsMonitorURL)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "/jsz: status")
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
	require.True(t, strings.HasSuffix(d.natsLine, "(port 4222 is taken)"), "nats line %q: says port 4222 is taken", d.natsLine)
	require.False(t, strings.HasSuffix(d.natsURL, ":4222"), "nats URL %q: not on port 4222", d.natsURL)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out, code := runBinary(t, nil, "dev", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--nats-port", port)
	require.Equal(t, 2, code, "dev on a taken --nats-port: exit status; output\n%s", out)
	require.Contains(t, out, port, "dev on a taken --nats-port: output names the port")
	require.Contains(t, out, "address already in use", "dev on a taken --nats-port: output")
	out, code = runBinary(t, []string{"MASTERTRUST_NATS_PORT=" + port}, "dev", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0")
	require.Equal(t, 2, code, "dev on a taken MASTERTRUST_NATS_PORT: exit status; output\n%s", out)
	require.Contains(t, out, "address already in use", "dev on a taken MASTERTRUST_NATS_PORT: output")
}

// token takes every flag from the environment like the other commands,
// and signs for the one lifetime dev's printed tokens have too.
func TestTokenFromTheEnvironment(t *testing.T) {
	secret := strings.Repeat("ab", 32)
	t.Setenv("MASTERTRUST_TOKEN_SECRET", secret)
	t.Setenv("MASTERTRUST_MEMBER", "m-env-1")
	before := time.Now()
	stdout, stderr, code := runCLI(t, "token")
	require.Equal(t, 0, code, stderr)
	claims, err := gateway.VerifyToken([]byte(secret), strings.TrimSpace(stdout), time.Now())
	require.NoError(t, err)
	assert.Equal(t, gateway.RoleMember, claims.Role)
	assert.Equal(t, "m-env-1", claims.Subject)
	assert.InDelta(t, before.Add(platform.DefaultTokenTTL).Unix(), claims.ExpiresAt, 5, "the default lifetime")

	t.Setenv("MASTERTRUST_MEMBER", "")
	t.Setenv("MASTERTRUST_OPERATOR", "true")
	t.Setenv("MASTERTRUST_TOKEN_TTL", "2h")
	stdout, stderr, code = runCLI(t, "token")
	require.Equal(t, 0, code, stderr)
	claims, err = gateway.VerifyToken([]byte(secret), strings.TrimSpace(stdout), time.Now())
	require.NoError(t, err)
	assert.Equal(t, gateway.RoleOperator, claims.Role)
	assert.InDelta(t, time.Now().Add(2*time.Hour).Unix(), claims.ExpiresAt, 5, "MASTERTRUST_TOKEN_TTL")

	t.Setenv("MASTERTRUST_OPERATOR", "maybe")
	_, stderr, code = runCLI(t, "token")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `MASTERTRUST_OPERATOR="maybe"`)

	t.Setenv("MASTERTRUST_OPERATOR", "true")
	_, stderr, code = runCLI(t, "token", "--token-ttl", "-1h")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "want a positive duration")
}

// gateway --help lists only what a gateway uses: no journal or dealing
// settings, and NATS for the membership only.
func TestGatewayHelpListsOnlyItsFlags(t *testing.T) {
	t.Parallel()
	_, stderr, code := runCLI(t, "gateway", "--help")
	require.Equal(t, 0, code)
	var listed []string
	for _, line := range strings.Split(stderr, "\n") {
		if name, ok := strings.CutPrefix(line, "  -"); ok {
			listed = append(listed, strings.Fields(name)[0])
		}
	}
	want := []string{"catalogue", "cluster-ca", "cluster-cert", "cluster-host", "cluster-key", "cluster-plaintext",
		"cluster-port", "data-dir", "http", "in-flight-max", "log-format", "log-level", "membership", "membership-heartbeat",
		"membership-ttl", "nats-ca", "nats-cert", "nats-key", "nats-nkey", "nats-secrets", "nats-url", "peers", "replicas",
		"request-timeout", "slot-wait-max", "tls-cert", "tls-key"}
	if platform.MembershipBuilt(platform.MembershipEtcd) {
		want = append(want, "etcd-endpoints", "etcd-ca", "etcd-cert", "etcd-key")
	}
	if platform.MembershipBuilt(platform.MembershipConsul) {
		want = append(want, "consul-address")
	}
	assert.ElementsMatch(t, want, listed)
}

// The default binary refuses --membership etcd, consul and k8s, node and
// gateway alike, with the build tag that has each, and exits without a
// panic; it has none of their flags either.
func TestMembershipNotBuiltInIsRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{platform.MembershipEtcd, platform.MembershipConsul, platform.MembershipK8s} {
		if platform.MembershipBuilt(name) {
			t.Logf("%s: built in (-tags %s)", name, platform.MembershipBuildTag(name))
			continue
		}
		for _, command := range []string{"node", "gateway"} {
			_, stderr, code := runCLI(t, command, "--membership", name, "--data-dir", t.TempDir(), "--cluster-plaintext")
			assert.Equal(t, 2, code, "%s --membership %s: exit status; stderr\n%s", command, name, stderr)
			assert.Contains(t, stderr, "membership "+name+" is not built into this binary: build with -tags membership_"+name,
				"%s --membership %s", command, name)
			assert.NotContains(t, stderr, "panic", "%s --membership %s", command, name)
		}
	}
	if !platform.MembershipBuilt(platform.MembershipEtcd) {
		_, stderr, code := runCLI(t, "node", "--membership", "etcd", "--etcd-endpoints", "127.0.0.1:2379")
		assert.NotEqual(t, 0, code)
		assert.Contains(t, stderr, "flag provided but not defined: -etcd-endpoints")
	}
}

// version names the module, the revision when the build has one, and the
// toolchain.
func TestVersion(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runCLI(t, "version")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "(github.com/acme/mastertrust)")
	assert.Contains(t, stdout, "built with go1.")

	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/acme/mastertrust/cmd/mastertrust",
		Main: debug.Module{Path: "github.com/acme/mastertrust", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0e319dc8"}, {Key: "vcs.time", Value: "2026-12-05T10:15:00Z"},
			{Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}}
	assert.Equal(t, "mastertrust v1.2.3 (github.com/acme/mastertrust)\n"+
		"revision 0e319dc8 of 2026-12-05T10:15:00Z, with uncommitted changes\n"+
		"built with go1.26.8 for linux/amd64\n", versionText(bi))
	bi.Settings = nil
	assert.Contains(t, versionText(bi), "revision unknown")
}

// dev's and node's pot flags bind platform.Config, from the command line or
// their environment variables.
func TestPotFlags(t *testing.T) {
	parse := func(args ...string) (platform.Config, error) {
		f := newFlags("test", io.Discard)
		var cfg platform.Config
		potFlags(f, &cfg)
		return cfg, f.parse(args)
	}
	cfg, err := parse()
	require.NoError(t, err)
	assert.Equal(t, platform.DefaultPotResidentMax, cfg.PotResidentMax)
	assert.Equal(t, platform.DefaultPotResidentIdle, cfg.PotResidentIdle)

	cfg, err = parse("--pot-resident-max", "10", "--pot-resident-idle", "500ms")
	require.NoError(t, err)
	assert.Equal(t, 10, cfg.PotResidentMax)
	assert.Equal(t, 500*time.Millisecond, cfg.PotResidentIdle)

	t.Setenv("MASTERTRUST_POT_RESIDENT_MAX", "-1")
	cfg, err = parse()
	require.NoError(t, err)
	assert.Equal(t, -1, cfg.PotResidentMax, "MASTERTRUST_POT_RESIDENT_MAX")
}

// The --memory-limit flag of dev, node and bench cycle reads sizes in
// units, from the command line or its environment variable.
func TestMemoryLimitFlag(t *testing.T) {
	parse := func(args ...string) (int64, error) {
		f := newFlags("test", io.Discard)
		var limit int64
		memoryLimitFlag(f, &limit)
		return limit, f.parse(args)
	}
	limit, err := parse()
	require.NoError(t, err)
	assert.Zero(t, limit, "no memory limit by default")

	limit, err = parse("--memory-limit", "8GiB")
	require.NoError(t, err)
	assert.Equal(t, int64(8<<30), limit)

	_, err = parse("--memory-limit", "8G")
	assert.ErrorContains(t, err, "unknown unit")

	t.Setenv("MASTERTRUST_MEMORY_LIMIT", "6GB")
	limit, err = parse()
	require.NoError(t, err)
	assert.Equal(t, int64(6_000_000_000), limit, "MASTERTRUST_MEMORY_LIMIT")
	t.Setenv("MASTERTRUST_MEMORY_LIMIT", "lots")
	_, err = parse()
	assert.ErrorContains(t, err, `MASTERTRUST_MEMORY_LIMIT="lots"`)
}

// TestListFlag: a list flag splits at commas, trims, drops empty items, takes
// its environment variable over its default and the command line over both.
func TestListFlag(t *testing.T) {
	parse := func(def string, args ...string) []string {
		t.Helper()
		f := newFlags("test", io.Discard)
		var hosts []string
		f.listVar(&hosts, "hosts", def, "hosts")
		require.NoError(t, f.parse(args))
		return hosts
	}
	assert.Equal(t, []string{"127.0.0.1", "localhost"}, parse("127.0.0.1,localhost"))
	assert.Empty(t, parse(""))
	assert.Equal(t, []string{"a", "b"}, parse("", "--hosts", " a, ,b ,"))
	t.Setenv("MASTERTRUST_HOSTS", "x,y")
	assert.Equal(t, []string{"x", "y"}, parse("127.0.0.1"))
	assert.Equal(t, []string{"z"}, parse("127.0.0.1", "--hosts", "z"))
}

// mastertrust node with a NATS URL where nothing listens exits with the
// connection's error, naming the server and why, and no panic: the
// cleanup of a failed start must not hide its cause.
func TestNodeExitsWithItsNATSError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	nothing := ln.Addr().String()
	ln.Close()
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	member := ln.Addr().String()
	ln.Close()
	out, code := runBinary(t, nil, "node", "--data-dir", t.TempDir(), "--nats-url", "nats://"+nothing,
		"--automanaged-port", strings.TrimPrefix(member, "127.0.0.1:"), "--peers", member, "--cluster-plaintext")
	require.NotEqual(t, 0, code, "exit status; output\n%s", out)
	assert.Contains(t, out, "connect to NATS at nats://"+nothing, "output")
	assert.Contains(t, out, nothing+": connect: connection refused", "output")
	assert.NotContains(t, out, "panic", "output")
}
