// Command mastertrust runs ACME's master trust platform.
//
//	mastertrust dev        everything in one process (embedded NATS, Pebble under ./data)
//	mastertrust nats       a NATS server with JetStream, for a cluster's shared journal
//	mastertrust node       a cluster member hosting pots
//	mastertrust gateway    a gateway: the HTTP API, calling pots in the cluster
//	mastertrust custodian  the simulated custodian, against a NATS server
//	mastertrust cert       issue a certificate for the cluster's mutual TLS or the gateway's HTTPS
//	mastertrust secrets    make the CA, NATS's certificate and every role's NATS credential
//	mastertrust token      print a bearer token for a member or an operator
//	mastertrust prices     publish a dealing day's closing prices
//	mastertrust cycle      run a dealing day's cycle, showing its progress
//	mastertrust reconcile  reconcile the pots and the house with the custodian
//	mastertrust history    rebuild a stopped node's history read model from its journal
//	mastertrust bench      run a benchmark workload
//	mastertrust version    print what the binary was built from
//
// Every flag has an environment variable: --data-dir is MASTERTRUST_DATA_DIR,
// and so on. Run a command with --help (or mastertrust help <command>) for
// its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acme/mastertrust/bench"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/platform"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"dev", "run the whole platform in one process (embedded NATS, Pebble under ./data, one node, the gateway)", runDev},
		{"nats", "run a NATS server with JetStream (SyncAlways) for a cluster's shared journal", runNATS},
		{"custodian", "run the simulated custodian against a NATS server (with fault injection)", runCustodian},
		{"node", "run a cluster member hosting pots (several share a JetStream journal)", runNode},
		{"secrets", "make a secrets directory: a CA, the NATS server's certificate, every role's NATS credential (init)", runSecrets},
		{"gateway", "run a gateway: the HTTP API as a cluster client", runGateway},
		{"cert", "issue a certificate from a CA of the data dir, for the cluster's mutual TLS or the gateway's HTTPS", runCert},
		{"token", "print a bearer token for a member (--member ID) or an operator (--operator)", runToken},
		{"prices", "publish a dealing day's closing prices (operator)", runPrices},
		{"cycle", "run a dealing day's cycle and show its progress (operator)", runCycleCommand},
		{"reconcile", "reconcile the pots and the house account with the custodian (operator)", runReconcile},
		{"cluster", "print every cluster member's own view: members it sees, pots active, dealing grains, recoveries, cut-off holds (status; operator)", runClusterCommand},
		{"history", "rebuild a stopped node's history read model (orders, statements, idempotency keys) from its Pebble journal (rebuild)", runHistory},
		{"load", "drive a platform through its gateways with a workload of members and dealing days, and check every acknowledged request (gen, run)", runLoad},
		{"bench", "run a benchmark workload: journal, pots, cycle, overload or history (figures beside same-run baselines)", runBench},
		{"version", "print the version, the revision the binary was built from, and the Go toolchain", runVersion},
	}
}

func main() {
	ctx, stop := signalContext()
	if bench.IsGenerator() {
		// Started by `bench overload` as its load generator.
		code := exitCode(bench.RunGenerator(ctx, os.Stdin, os.Stdout), os.Stderr)
		stop()
		os.Exit(code)
	}
	stopProfile := startCPUProfile(os.Getenv(cpuProfileEnv), os.Stderr)
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// cpuProfileEnv names a path prefix: a process started with it set
// writes a CPU profile of its whole life to <prefix>.<pid>.pprof, once it
// stops (SIGTERM or Ctrl-C; not kill -9). It profiles a cluster's processes
// under load, each its own file, with nothing served on a port.
const cpuProfileEnv = "MASTERTRUST_CPU_PROFILE"

// startCPUProfile starts the profile that cpuProfileEnv asks for, if any,
// and returns what stops and writes it. A profile that cannot start is
// reported and skipped: the command still runs.
func startCPUProfile(prefix string, stderr io.Writer) (stop func()) {
	if prefix == "" {
		return func() {}
	}
	path := fmt.Sprintf("%s.%d.pprof", prefix, os.Getpid())
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(stderr, "mastertrust: %s: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "mastertrust: %s: %v\n", cpuProfileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "mastertrust: %s: %v\n", cpuProfileEnv, err)
		}
	}
}

// exitCode is the process's exit status after run returned err, which it
// prints: 0 for none, and for flag.ErrHelp (the usage was asked for and
// printed); 2 for any other.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "mastertrust:", err)
	var status exitStatus
	if errors.As(err, &status) {
		return status.code
	}
	return 2
}

// exitStatus is an error that exits with its own status rather than 2 (a
// command that ran and found something wrong, as opposed to one that could
// not run).
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// signalContext is cancelled by SIGINT or SIGTERM: a graceful stop.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 2 && args[0] == "help" {
		// help <command> [<workload>]: the command's own --help.
		return run(ctx, append(slices.Clone(args[1:]), "--help"), stdout, stderr)
	}
	if len(args) == 0 || isHelp(args[0]) {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mastertrust <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'mastertrust <command> --help' (or 'mastertrust help <command>') for the flags of a command.\nEvery flag can also be set by an environment variable: --data-dir is MASTERTRUST_DATA_DIR.")
}

// flags is a flag set whose flags take their defaults from environment
// variables named after them (MASTERTRUST_ + the flag in upper case, '-' as
// '_'), so that each flag is documented once and works both ways.
type flags struct {
	*flag.FlagSet
	errs []error
	// afterParse run after parsing, to turn flag text into settings.
	afterParse []func() error
}

func newFlags(name string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet("mastertrust "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &flags{FlagSet: fs}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mastertrust %s [flags]\n\nflags (each also from its environment variable):\n", name)
		fs.PrintDefaults()
	}
	return f
}

// EnvName is the environment variable of a flag.
func envName(flagName string) string {
	return "MASTERTRUST_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *flags) env(name string) (string, bool) { return os.LookupEnv(envName(name)) }

func (f *flags) usageText(name, usage string) string {
	return fmt.Sprintf("%s (env %s)", usage, envName(name))
}

func (f *flags) stringVar(p *string, name, def, usage string) {
	if v, ok := f.env(name); ok {
		def = v
	}
	f.StringVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) intVar(p *int, name string, def int, usage string) {
	if v, ok := f.env(name); ok {
		if _, err := fmt.Sscan(v, &def); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
		}
	}
	f.IntVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) boolVar(p *bool, name string, def bool, usage string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
		}
		def = b
	}
	f.BoolVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) float64Var(p *float64, name string, def float64, usage string) {
	if v, ok := f.env(name); ok {
		if _, err := fmt.Sscan(v, &def); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
		}
	}
	f.Float64Var(p, name, def, f.usageText(name, usage))
}

// byteSizeVar binds a size in bytes (platform.ParseByteSize: 8GiB, 6GB,
// 512MiB, or bytes); its default is 0.
func (f *flags) byteSizeVar(p *int64, name, usage string) {
	if v, ok := f.env(name); ok {
		n, err := platform.ParseByteSize(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
		}
		*p = n
	}
	f.Var(byteSize{p}, name, f.usageText(name, usage))
}

// byteSize is a flag.Value of a size in bytes.
type byteSize struct{ p *int64 }

func (b byteSize) String() string {
	if b.p == nil || *b.p == 0 {
		return "0"
	}
	return platform.FormatByteSize(*b.p)
}

func (b byteSize) Set(s string) error {
	n, err := platform.ParseByteSize(s)
	if err != nil {
		return err
	}
	*b.p = n
	return nil
}

// listVar binds a comma-separated list (def too): each item trimmed, empty
// ones dropped.
func (f *flags) listVar(p *[]string, name, def, usage string) {
	if v, ok := f.env(name); ok {
		def = v
	}
	*p = splitList(def)
	f.Var(stringList{p}, name, f.usageText(name, usage))
}

// stringList is a flag.Value of a comma-separated list.
type stringList struct{ p *[]string }

func (l stringList) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l stringList) Set(s string) error {
	*l.p = splitList(s)
	return nil
}

// splitList splits s at commas, trims each item and drops the empty ones.
func splitList(s string) []string {
	var items []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// given reports whether flag name was given, on the command line or in its
// environment variable, rather than left at its default.
func (f *flags) given(name string) bool {
	if _, ok := f.env(name); ok {
		return true
	}
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

func (f *flags) durationVar(p *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := f.env(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", envName(name), v, err))
		}
		def = d
	}
	f.DurationVar(p, name, def, f.usageText(name, usage))
}

func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(f.Args(), " "))
	}
	for _, after := range f.afterParse {
		f.errs = append(f.errs, after())
	}
	return errors.Join(f.errs...)
}

// common binds the settings every command that hosts the platform's parts
// shares.
func common(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir, "directory of local state: the journal, JetStream's files in dev mode, the token secret")
	logFlags(f, cfg)
	catalogueFlag(f, cfg)
	tokenSecretFromEnv(cfg)
}

// logFlags binds the logger's settings.
func logFlags(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	f.stringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// catalogueFlag binds the catalogue a process validates against.
func catalogueFlag(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.CataloguePath, "catalogue", "", "an operator's catalogue file (assets and risk profiles); empty: the built-in one")
}

// tokenSecretFromEnv reads the token secret from the environment only: a
// flag would show it in the process list.
func tokenSecretFromEnv(cfg *platform.Config) {
	cfg.TokenSecret = os.Getenv("MASTERTRUST_TOKEN_SECRET")
}

// tokenTTLFlag binds how long the tokens a command signs are valid: one
// variable and one default for dev's printed tokens and the token command.
func tokenTTLFlag(f *flags, ttl *time.Duration) {
	f.durationVar(ttl, "token-ttl", platform.DefaultTokenTTL, "how long the tokens signed are valid")
}

// natsMonitorPortFlag binds the NATS server's monitoring port.
func natsMonitorPortFlag(f *flags, cfg *platform.Config) {
	f.intVar(&cfg.NATSMonitorPort, "nats-monitor-port", 0, "port of the NATS server's HTTP monitoring endpoints (/varz, /jsz…; 0: none; -1: a free one)")
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("dev", stderr)
	var cfg platform.Config
	common(f, &cfg)
	f.stringVar(&cfg.HTTPAddr, "http", platform.DefaultHTTPAddr, "the gateway's listen address (port 0 picks a free one)")
	gatewayLimitFlags(f, &cfg)
	gatewayTLSFlags(f, &cfg)
	potFlags(f, &cfg)
	memoryLimitFlag(f, &cfg.MemoryLimitBytes)
	journalSyncFlag(f, &cfg)
	f.intVar(&cfg.DealingWindowAhead, "dealing-window-ahead", 10, "dealing days after today, or after the latest day a cycle ran for if later, that prices and cycles may be for (negative: no bound)")
	tokenTTL := time.Duration(0)
	tokenTTLFlag(f, &tokenTTL)
	var member string
	f.stringVar(&member, "member", "M000001", "the member id of the member token printed at start")
	f.intVar(&cfg.NATSPort, "nats-port", platform.DefaultNATSPort, fmt.Sprintf(
		"port of the embedded NATS server on 127.0.0.1, for the nats CLI (0: a free one; if %d is taken and the port is not given, a free one)", platform.DefaultNATSPort))
	natsMonitorPortFlag(f, &cfg)
	custodianFlags(f, &cfg.CustodianFaults)
	if err := f.parse(args); err != nil {
		return err
	}
	cfg.NATSPortFallback = !f.given("nats-port")
	d, err := platform.StartDev(cfg)
	if err != nil {
		return err
	}
	memberToken, err := d.Token(member, tokenTTL)
	if err != nil {
		return err
	}
	operatorToken, err := d.Token("", tokenTTL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gateway listening on %s\n", d.URL)
	taken := ""
	if d.NATSPortTaken {
		taken = fmt.Sprintf(" (port %d is taken)", cfg.NATSPort)
	}
	fmt.Fprintf(stdout, "nats listening on %s%s\n", d.NATSURL, taken)
	if d.NATSMonitorURL != "" {
		fmt.Fprintf(stdout, "nats monitoring on %s\n", d.NATSMonitorURL)
	}
	fmt.Fprintf(stdout, "nats credentials in %s (mutual TLS with %s; per role <role>.crt, <role>.key and the nkey seed <role>.nk: %s)\n",
		d.NATSSecretsDir, natsauth.CAFile, roleNames())
	fmt.Fprintf(stdout, "try: %s\n", natsCLI(d.NATSURL, d.NATSSecretsDir, natsauth.RoleOperator, "stream ls"))
	fmt.Fprintf(stdout, "member token (%s): %s\n", member, memberToken)
	fmt.Fprintf(stdout, "operator token: %s\n", operatorToken)
	fmt.Fprintf(stdout, "try: curl -H 'Authorization: Bearer %s' %s/v1/assets\n", memberToken, d.URL)
	return waitAndStop(ctx, d.Done(), d.Stop)
}

// clusterFlags binds what a cluster's process needs to reach the members:
// a gateway's too (it is a cluster client).
func clusterFlags(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.ClusterHost, "cluster-host", "127.0.0.1", "host of this process's cluster (gRPC) address, reachable by the nodes")
	f.intVar(&cfg.ClusterPort, "cluster-port", 0, "port of this process's cluster address (0: a free one)")
	f.stringVar(&cfg.Membership, "membership", platform.MembershipKV, "how members find each other: kv (a NATS JetStream KV bucket at --nats-url; "+
		"a node joins by starting and leaves by stopping), automanaged (a fixed --peers list; adding a node restarts every process), "+
		"or protoactor's etcd, consul or k8s provider in a binary built with -tags membership_etcd, membership_consul or membership_k8s "+
		"(this binary: "+strings.Join(platform.Memberships(), ", ")+")")
	f.durationVar(&cfg.MembershipHeartbeat, "membership-heartbeat", time.Second, "kv, etcd and consul membership: how often a member puts its record again")
	f.durationVar(&cfg.MembershipTTL, "membership-ttl", 0, "kv, etcd and consul membership: how long a record lasts without a heartbeat, "+
		"so how long a dead member stays listed (0: 3 heartbeats); the same on every process")
	f.listVar(&cfg.Peers, "peers", "", "automanaged membership: comma-separated membership endpoints (host:port) of every member, this one included")
	// The settings of an external membership are flags only in a binary
	// that has it: the default binary's help lists none that it would
	// refuse to use.
	if platform.MembershipBuilt(platform.MembershipEtcd) {
		f.listVar(&cfg.EtcdEndpoints, "etcd-endpoints", "127.0.0.1:2379", "etcd membership: comma-separated etcd endpoints (host:port)")
		f.stringVar(&cfg.EtcdCA, "etcd-ca", "", "etcd membership: CA file to verify etcd's certificate with (empty: plaintext)")
		f.stringVar(&cfg.EtcdCert, "etcd-cert", "", "etcd membership: this process's client certificate file for etcd, if etcd asks for one")
		f.stringVar(&cfg.EtcdKey, "etcd-key", "", "etcd membership: the key file of --etcd-cert")
	}
	if platform.MembershipBuilt(platform.MembershipConsul) {
		f.stringVar(&cfg.ConsulAddress, "consul-address", "", "consul membership: the Consul agent's HTTP address, host:port "+
			"(empty: CONSUL_HTTP_ADDR, else 127.0.0.1:8500; token and TLS from Consul's CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...)")
	}
	f.afterParse = append(f.afterParse, func() error {
		if cfg.Membership == platform.MembershipAutomanaged && len(cfg.Peers) == 0 {
			return errors.New("--peers is required with --membership automanaged")
		}
		return nil
	})
	f.durationVar(&cfg.RequestTimeout, "request-timeout", platform.DefaultRequestTimeout, "bound of one grain call")
}

// gatewayLimitFlags binds the gateway's limits on members' requests in
// flight (docs/decisions.md, "Overload is refused, not queued").
func gatewayLimitFlags(f *flags, cfg *platform.Config) {
	f.intVar(&cfg.InFlightMax, "in-flight-max", 0, "members' requests the gateway serves at once; past it, 503 after the slot wait (0: the default, 32)")
	f.durationVar(&cfg.SlotWaitMax, "slot-wait-max", 0, "how long a request past --in-flight-max waits for a slot before its 503; negative: none (0: the default, 10ms)")
}

// waitAndStop serves until ctx ends (SIGINT, SIGTERM) or the process's HTTP
// server fails, then stops gracefully.
func waitAndStop(ctx context.Context, done <-chan error, stop func(context.Context) error) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-done:
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(serveErr, ignoreClosed(stop(stopCtx)))
}

// roleNames lists the NATS roles.
func roleNames() string {
	var names []string
	for _, r := range natsauth.Roles() {
		names = append(names, string(r))
	}
	return strings.Join(names, ", ")
}

// natsCLI is a nats CLI command line against url as role, with the role's
// credential in dir (file names only: nothing secret is printed).
func natsCLI(url, dir string, role natsauth.Role, command string) string {
	return fmt.Sprintf("nats %s --server %s --tlsca %s --tlscert %s --tlskey %s --nkey %s --inbox-prefix %s", command, url,
		filepath.Join(dir, natsauth.CAFile), natsauth.CertFile(dir, role), natsauth.KeyFile(dir, role),
		natsauth.SeedFile(dir, role), natsauth.InboxPrefix(role))
}

// natsClientFlags binds a NATS client's credential: a secrets directory
// (its role's seed, certificate and key, and the CA), or those files one by
// one.
func natsClientFlags(f *flags, cfg *platform.Config, role natsauth.Role) {
	f.stringVar(&cfg.NATSSecretsDir, "nats-secrets", "", fmt.Sprintf(
		"secrets directory (mastertrust secrets init) holding this process's NATS credential (%s, %s, %s) and the CA (%s)",
		filepath.Base(natsauth.SeedFile("", role)), filepath.Base(natsauth.CertFile("", role)),
		filepath.Base(natsauth.KeyFile("", role)), natsauth.CAFile))
	f.stringVar(&cfg.NATSNkeyFile, "nats-nkey", "", "file of this process's NATS nkey seed, instead of the one in --nats-secrets")
	f.stringVar(&cfg.NATSCertFile, "nats-cert", "", "file of this process's TLS client certificate for NATS, instead of the one in --nats-secrets")
	f.stringVar(&cfg.NATSKeyFile, "nats-key", "", "file of the key of --nats-cert")
	f.stringVar(&cfg.NATSCAFile, "nats-ca", "", "CA file to verify the NATS server's certificate with, instead of the one in --nats-secrets")
}

func runNATS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("nats", stderr)
	var cfg platform.Config
	common(f, &cfg)
	var host string
	var port int
	f.stringVar(&host, "nats-host", "127.0.0.1", "address to listen on for NATS clients")
	f.intVar(&port, "nats-port", platform.DefaultNATSPort, "port to listen on for NATS clients (-1: a free one)")
	natsMonitorPortFlag(f, &cfg)
	f.stringVar(&cfg.NATSSecretsDir, "nats-secrets", "", "secrets directory (mastertrust secrets init) holding the users ("+
		natsauth.UsersFile+") and the server's certificate and key")
	f.boolVar(&cfg.NATSNoAuth, "no-auth", false, "run without users or TLS: anyone who reaches the port may do anything (a throwaway server only)")
	f.stringVar(&cfg.NATSServerName, "nats-name", "", "name of this server, different on each server of a cluster (default: the host name with --routes-name, else mastertrust)")
	f.stringVar(&cfg.NATSRoutesName, "routes-name", "", "name of the NATS cluster to join, the same on every server (empty: a single server)")
	f.intVar(&cfg.NATSRoutesPort, "routes-port", 0, fmt.Sprintf("port, on --nats-host, of the routes from the cluster's other servers (0: %d; -1: a free one)", platform.DefaultNATSRoutesPort))
	f.listVar(&cfg.NATSRoutes, "routes", "", "comma-separated routes to the cluster's other servers (nats-route://host:port; mutual TLS with the certificate of --nats-secrets, which must name each host)")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg.EnsureDefaults()
	srv, err := platform.StartNATS(cfg, host, port)
	if err != nil {
		return err
	}
	how := "no users, no TLS"
	if cfg.NATSSecretsDir != "" {
		how = "mutual TLS; users of " + filepath.Join(cfg.NATSSecretsDir, natsauth.UsersFile)
	}
	fmt.Fprintf(stdout, "nats listening on %s (%s)\n", srv.ClientURL(), how)
	if u := srv.ClusterURL(); u != "" {
		routesHow := "plaintext"
		if cfg.NATSSecretsDir != "" {
			routesHow = "mutual TLS with " + filepath.Join(cfg.NATSSecretsDir, natsauth.ServerCertFile)
		}
		fmt.Fprintf(stdout, "nats routes of cluster %s on %s (%s)\n", cfg.NATSRoutesName, u, routesHow)
	}
	if u := srv.MonitorURL(); u != "" {
		fmt.Fprintf(stdout, "nats monitoring on %s\n", u)
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}

// potFlags binds when a node's pots passivate (docs/decisions.md, "A
// node keeps a bounded number of pots resident").
func potFlags(f *flags, cfg *platform.Config) {
	f.durationVar(&cfg.PotIdleTimeout, "pot-idle-timeout", platform.DefaultPotIdleTimeout, "passivate a pot after this long without a message")
	f.intVar(&cfg.PotResidentMax, "pot-resident-max", platform.DefaultPotResidentMax,
		"pots a node keeps active before quiet ones passivate early, after --pot-resident-idle (negative: no bound)")
	f.durationVar(&cfg.PotResidentIdle, "pot-resident-idle", platform.DefaultPotResidentIdle,
		"passivate a pot after this long without a message while the node holds more than --pot-resident-max")
}

// memoryLimitFlag binds the Go runtime's soft memory limit for the process
// (platform.Config.MemoryLimitBytes).
func memoryLimitFlag(f *flags, limit *int64) {
	f.byteSizeVar(limit, "memory-limit", fmt.Sprintf(
		"the Go runtime's soft memory limit, a `size` such as 8GiB, 6GB or bytes (at least %s; 0: Go's own, GOMEMLIMIT or none)", platform.FormatByteSize(platform.MemoryLimitBytesMin)))
}

// journalSyncFlag binds Config.JournalMinSyncInterval.
func journalSyncFlag(f *flags, cfg *platform.Config) {
	f.durationVar(&cfg.JournalMinSyncInterval, "journal-min-sync-interval", 0,
		"Pebble journal: wait this long after a WAL sync before the next (0: none; 300us suits many concurrent pots, see docs/performance.md)")
	journalCacheFlag(f, &cfg.JournalCacheBytes)
}

// journalCacheFlag binds the Pebble journal's block cache size
// (platform.Config.JournalCacheBytes).
func journalCacheFlag(f *flags, bytes *int64) {
	f.byteSizeVar(bytes, "journal-cache", "Pebble journal: the block cache, shared with the history read model, a `size` such as 1GiB (0: 64 MiB; outside --memory-limit)")
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("node", stderr)
	var cfg platform.Config
	common(f, &cfg)
	clusterFlags(f, &cfg)
	clusterTLSFlags(f, &cfg)
	f.intVar(&cfg.AutomanagedPort, "automanaged-port", 0, "automanaged membership: port of this node's membership endpoint, one of --peers")
	f.stringVar(&cfg.HTTPAddr, "http", "", "address for /healthz, /readyz and /metrics (empty: none)")
	f.stringVar(&cfg.Journal, "journal", "jetstream", "journal: jetstream (shared by the cluster, at --nats-url) or pebble (this node's own)")
	f.stringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server of the shared journal and the kv membership")
	natsClientFlags(f, &cfg, natsauth.RoleNode)
	groups := 0
	f.intVar(&groups, "groups", platform.DefaultGroups, "pot groups of a new journal (fixed once created)")
	f.intVar(&cfg.Replicas, "replicas", 1, "replicas of each JetStream stream (3 in production)")
	f.intVar(&cfg.JournalBatchMax, "journal-batch-max", 0, "most appends committed in one atomic batch of a JetStream stream (0: 1,000; 1: each alone)")
	potFlags(f, &cfg)
	memoryLimitFlag(f, &cfg.MemoryLimitBytes)
	journalSyncFlag(f, &cfg)
	f.intVar(&cfg.DealingWindowAhead, "dealing-window-ahead", 1, "dealing days after today that prices and cycles may be for (1: the next dealing day; negative: no bound)")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg.Groups = uint32(groups)
	p, err := platform.StartMember(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "node started; health and metrics on %s\n", orNone(p.URL))
	return waitAndStop(ctx, p.Done(), p.Stop)
}

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("gateway", stderr)
	var cfg platform.Config
	// Only what a gateway uses: it holds no state but the token secret,
	// and validates requests against the catalogue.
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir, "directory holding the token secret (unless MASTERTRUST_TOKEN_SECRET is set)")
	logFlags(f, &cfg)
	catalogueFlag(f, &cfg)
	tokenSecretFromEnv(&cfg)
	clusterFlags(f, &cfg)
	clusterTLSFlags(f, &cfg)
	f.stringVar(&cfg.HTTPAddr, "http", platform.DefaultHTTPAddr, "the API's listen address (port 0 picks a free one)")
	gatewayLimitFlags(f, &cfg)
	gatewayTLSFlags(f, &cfg)
	// NATS for the kv membership only: the gateway watches the members'
	// bucket, and creates it if no member has yet.
	f.stringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server of the kv membership (unused with any other --membership)")
	natsClientFlags(f, &cfg, natsauth.RoleGateway)
	f.intVar(&cfg.Replicas, "replicas", 1, "replicas of the members' bucket, if this gateway is the first to create it (3 in production)")
	if err := f.parse(args); err != nil {
		return err
	}
	p, err := platform.StartGateway(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gateway listening on %s\n", p.URL)
	return waitAndStop(ctx, p.Done(), p.Stop)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func ignoreClosed(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// runToken signs a bearer token with the secret dev created (or
// MASTERTRUST_TOKEN_SECRET). Its flags come from the environment like every
// command's: MASTERTRUST_MEMBER, MASTERTRUST_OPERATOR, MASTERTRUST_TOKEN_TTL.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("token", stderr)
	var cfg platform.Config
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir, "directory holding the token secret that dev created (unless MASTERTRUST_TOKEN_SECRET is set)")
	tokenSecretFromEnv(&cfg)
	var member string
	var operator bool
	var ttl time.Duration
	f.stringVar(&member, "member", "", "sign a member token for this member id")
	f.boolVar(&operator, "operator", false, "sign an operator token")
	tokenTTLFlag(f, &ttl)
	if err := f.parse(args); err != nil {
		return err
	}
	if (member == "") == !operator {
		f.Usage()
		return errors.New("give exactly one of --member ID or --operator")
	}
	if ttl <= 0 {
		return fmt.Errorf("--token-ttl %s: want a positive duration", ttl)
	}
	secret, err := cfg.LoadTokenSecret(false)
	if err != nil {
		return err
	}
	now := time.Now()
	c := gateway.Claims{Role: gateway.RoleOperator, IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
	if member != "" {
		c.Role, c.Subject = gateway.RoleMember, member
	}
	token, err := gateway.SignToken(secret, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// runSecrets makes a secrets directory (internal/natsauth): the CA, the
// NATS server's certificate, and an nkey seed per role, keeping what exists
// (delete a file and run it again to rotate it). It prints the files it
// wrote, never their contents.
func runSecrets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "init" {
		args = args[1:]
	}
	f := newFlags("secrets [init]", stderr)
	var dir string
	var hosts []string
	f.stringVar(&dir, "nats-secrets", platform.NATSSecretsDir(platform.DefaultDataDir), "the secrets directory to make or complete")
	f.listVar(&hosts, "hosts", "", "comma-separated host names and addresses of the NATS servers, for their certificate: every host clients or other servers' routes reach one by (loopback is always in)")
	if err := f.parse(args); err != nil {
		return err
	}
	written, err := natsauth.Ensure(dir, hosts)
	if err != nil {
		return err
	}
	for _, w := range written {
		fmt.Fprintf(stdout, "wrote %s\n", w)
	}
	if len(written) == 0 {
		fmt.Fprintf(stdout, "%s is complete; nothing written\n", dir)
	}
	fmt.Fprintf(stdout, "roles: %s (each one's nkey seed is <role>.nk, its TLS client certificate <role>.crt and <role>.key)\n", roleNames())
	return nil
}

// runHistory rebuilds a node's history read model from its Pebble journal
// (platform.RebuildHistory). It refuses to run beside the node: the
// journal's directory lock admits one process.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("history rebuild", stderr)
	var cfg platform.Config
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir,
		"the stopped node's data directory: the journal is read from DIR/journal, the read model rebuilt in DIR/history")
	logFlags(f, &cfg)
	catalogueFlag(f, &cfg)
	journalCacheFlag(f, &cfg.JournalCacheBytes)
	f.Usage = func() {
		fmt.Fprint(stderr, `usage: mastertrust history rebuild [flags]

Drops the node's history read model (every order and contract note, the
statements, every idempotency key ever recorded) in DATA-DIR/history and
projects it again from the node's Pebble journal in DATA-DIR/journal, which
stays the truth. Stop the node first: the journal admits one process at a
time, and this fails while the node holds it.

flags (each also from its environment variable):
`)
		f.PrintDefaults()
	}
	if len(args) > 0 && isHelp(args[0]) {
		f.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "rebuild" {
		f.Usage()
		return errors.New("name what to do: rebuild")
	}
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	start := time.Now()
	if err := platform.RebuildHistory(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt %s from %s in %s\n", platform.HistoryDir(cfg.DataDir), platform.JournalDir(cfg.DataDir),
		time.Since(start).Round(time.Millisecond))
	return nil
}
