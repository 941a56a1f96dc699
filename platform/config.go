package platform

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
)

// Config is every setting of a mastertrust process, in one place. The
// command line binds a flag and an environment variable to each field
// (cmd/mastertrust); tests fill it directly.
type Config struct {
	// DataDir holds a node's (or dev's) local state: the Pebble journal,
	// JetStream's files in dev mode, the token secret. Default "./data".
	DataDir string
	// HTTPAddr is the HTTP listen address (host:port; port 0 picks a free
	// one): the API for dev and gateways (default "127.0.0.1:8080"), health
	// and metrics for a member (default none).
	HTTPAddr string

	// ClusterHost and ClusterPort are the node's cluster (gRPC) address;
	// port 0 picks a free one. Default 127.0.0.1:0.
	ClusterHost string
	ClusterPort int
	// Membership is how the node and gateway commands find the cluster's
	// members: MembershipKV (the default: every member puts its record into
	// a NATS JetStream KV bucket at NATSURL, and every process watches it,
	// so members join and leave without restarting the others),
	// MembershipAutomanaged (a fixed list of membership endpoints, Peers,
	// each member serving one on AutomanagedPort; no NATS needed), or one
	// of protoactor's providers, MembershipEtcd, MembershipConsul or
	// MembershipK8s, in a binary built with its tag (membership.go).
	Membership string
	// MembershipHeartbeat is how often a member puts its record again, and
	// MembershipTTL how long the record lasts without it: a member that
	// dies leaves the others' topology after about MembershipTTL, and one
	// whose heartbeats stall that long is dropped for good (it rejoins by
	// restarting). Every process of a cluster should use the same. Defaults
	// 1 s and 3 heartbeats (cluster.KVConfig). The etcd membership's lease
	// lasts MembershipTTL (in whole seconds, at least one) and a failed
	// renewal is retried every heartbeat; the consul membership's check has
	// MembershipTTL and is passed every heartbeat.
	MembershipHeartbeat time.Duration
	MembershipTTL       time.Duration
	// GossipInterval is the period of protoactor's gossip rounds among the
	// members (cluster.Config.GossipInterval; 0: its default). Membership
	// does not depend on it (the provider gives it); tests that run several
	// members in one process under the race detector stop the rounds,
	// whose code races with itself there (docs/protoactor.md).
	GossipInterval time.Duration
	// AutomanagedPort is the port of this node's membership endpoint with
	// MembershipAutomanaged.
	AutomanagedPort int
	// Peers lists the membership endpoints (host:port) of every node that
	// may be a member, this one included, with MembershipAutomanaged.
	Peers []string
	// EtcdEndpoints are the etcd servers (host:port) of MembershipEtcd.
	// EtcdCA, if set, verifies their certificates (TLS; empty: plaintext),
	// and EtcdCert and EtcdKey, if set, are this process's client
	// certificate and key (PEM files) for etcd's client authentication.
	EtcdEndpoints []string
	EtcdCA        string
	EtcdCert      string
	EtcdKey       string
	// ConsulAddress is the Consul agent's HTTP address (host:port) of
	// MembershipConsul; empty: Consul's own default (CONSUL_HTTP_ADDR, else
	// 127.0.0.1:8500). Its token and TLS come from Consul's environment
	// variables (CONSUL_HTTP_TOKEN, CONSUL_CACERT, …), so that no secret is
	// on a command line. MembershipK8s has no settings: it runs in a pod,
	// with the pod's service account, in the pod's namespace, and the
	// members reach each other at their pods' IPs.
	ConsulAddress string
	// ClusterCA, ClusterCert and ClusterKey are mutual TLS between the
	// nodes (cluster.TLSConfig): the cluster's CA and this process's
	// certificate from it, naming ClusterHost, and its key (PEM files).
	// A node or gateway needs them unless ClusterPlaintext; dev makes its
	// own under DataDir/secrets/cluster.
	ClusterCA   string
	ClusterCert string
	ClusterKey  string
	// ClusterPlaintext runs a node or gateway's cluster connections without
	// TLS: anything that reaches its ports can join the cluster and call
	// any grain. Only on a network nothing else reaches.
	ClusterPlaintext bool

	// TLSCert and TLSKey, if set, make the gateway (dev's and the gateway
	// command's) serve HTTPS with this certificate and key (PEM files)
	// instead of HTTP.
	TLSCert string
	TLSKey  string

	// Journal is "pebble" (the node's own, under DataDir) or "jetstream"
	// (shared by every node of a cluster, at NATSURL). Default "pebble".
	Journal string
	// NATSURL is the NATS server (or cluster) for the JetStream journal and
	// the custodian. Dev mode embeds its own and ignores this.
	NATSURL string
	// NATSSecretsDir is a secrets directory (internal/natsauth; `mastertrust
	// secrets init` makes one): the nats command reads its users and its
	// server certificate there, a node or the custodian its role's nkey
	// seed and the CA it verifies the server with. Dev keeps its own under
	// DataDir/secrets/nats (NATSSecretsDir) and ignores this.
	NATSSecretsDir string
	// NATSNkeyFile, NATSCertFile, NATSKeyFile and NATSCAFile, if set, are
	// the client's nkey seed file, TLS client certificate and key, and the
	// CA file, instead of (or without) NATSSecretsDir's: for machines given
	// only their own credential.
	NATSNkeyFile string
	NATSCertFile string
	NATSKeyFile  string
	NATSCAFile   string
	// NATSNoAuth lets the nats command run without users or TLS (anyone who
	// reaches it may do anything): for a throwaway server only. Without it,
	// the nats command needs NATSSecretsDir.
	NATSNoAuth bool
	// NATSPort is the client port of dev's embedded NATS server, on
	// 127.0.0.1: 0 (the default) a free one. With NATSPortFallback, a
	// NATSPort that is taken is a preference, and a free port is used
	// instead (the command line's default port, so that dev starts on a
	// machine that already runs a NATS server).
	NATSPort         int
	NATSPortFallback bool
	// NATSMonitorPort is the port of the NATS server's HTTP monitoring
	// endpoints (dev's, and the nats command's): 0 (the default) none, -1
	// a free one.
	NATSMonitorPort int
	// NATSRoutesName, NATSRoutesPort and NATSRoutes join the nats
	// command's server to a cluster of NATS servers: the cluster's name
	// (the same on every server; empty: a single server), the port other
	// servers' routes reach it on (on its host; 0: DefaultNATSRoutesPort,
	// -1: a free one) and the route URLs of other servers
	// (nats-route://host:port). Routes are mutual TLS with the server's
	// certificate from NATSSecretsDir; only NATSNoAuth runs them in
	// plaintext.
	NATSRoutesName string
	NATSRoutesPort int
	NATSRoutes     []string
	// NATSServerName names the nats command's server; the servers of a
	// cluster need different names (JetStream's replicas are placed by
	// name). Default: the machine's host name with a cluster, "mastertrust"
	// alone.
	NATSServerName string
	// Groups is the number of the journal's groups: pots are spread over
	// all but the last (the pot groups partition the journal's feed, the
	// aggregators and the rebalance sweep), which holds the system's
	// streams (actors.PotGroups, actors.SystemGroup). Fixed when a journal
	// is created. Default 64.
	Groups uint32
	// Replicas of each JetStream stream (3 in production). Default 1.
	Replicas int
	// JournalBatchMax is the most appends the JetStream journal commits in
	// one atomic batch of a stream (persistence/jetstream, batch.go): 0 is
	// its default (1,000, nats-server's limit), 1 publishes each append on
	// its own.
	JournalBatchMax int
	// JournalMinSyncInterval spaces the Pebble journal's WAL syncs: after
	// a sync, the next waits this long, so that each covers more appends.
	// Default 0 (sync as soon as the previous ends). 300µs made durable pot
	// commands 10-28% faster and cheaper in CPU with 64 callers on the
	// project's machine, at up to 0.3 ms more per append and a seventh of the
	// rate for a writer that appends one at a time (4.8K -> 0.7K appends/s;
	// docs/performance.md).
	JournalMinSyncInterval time.Duration
	// JournalCacheBytes is the Pebble journal's block cache (outside the Go
	// heap, so not under MemoryLimitBytes), which the node's history read
	// model shares. Default 64 MiB. A node of a million pots activates each
	// from its snapshot on a dealing day: with 64 MiB of a 1.4 GB journal
	// cached, the sstables' index blocks were read and decompressed again
	// on most reads (docs/performance.md).
	JournalCacheBytes int64

	// PotIdleTimeout passivates a pot without messages. Default 10 min.
	PotIdleTimeout time.Duration
	// PotResidentMax and PotResidentIdle bound the pots a node keeps
	// active (actors.PotConfig's ResidentMax and ResidentIdle, which
	// explain the defaults): while more than PotResidentMax are, a pot
	// quiet for PotResidentIdle passivates without waiting for
	// PotIdleTimeout. Defaults 100,000 and 2 s; a negative PotResidentMax
	// sets no bound. PotResidentIdle is at least 100 ms: shorter, a pot
	// would passivate between one caller's requests.
	PotResidentMax  int
	PotResidentIdle time.Duration
	// MemoryLimitBytes, if positive, is the Go runtime's soft memory limit
	// for the process (runtime/debug.SetMemoryLimit), set when dev or a
	// node starts and set back when it stops: the collector works harder
	// as the runtime's memory nears it, instead of letting the heap grow
	// to twice the live heap (GOGC=100) and the process out of its
	// machine's or container's memory. Set it below that memory, leaving
	// room for what the Go runtime does not manage (memory allocated by C
	// code, the kernel's page cache). It is soft: with a live heap above
	// it the collector takes up to about half the CPU, and nothing fails.
	// At least 64 MiB. 0 (the default): Go's own, GOMEMLIMIT or none.
	MemoryLimitBytes int64
	// RequestTimeout bounds one grain call from the gateway. Default 5 s.
	RequestTimeout time.Duration
	// InFlightMax and SlotWaitMax are the gateway's limits on members'
	// requests in flight (gateway.Config, which explains them); 0: the
	// gateway's defaults.
	InFlightMax int
	SlotWaitMax time.Duration

	// CataloguePath is an operator's catalogue file (assets and risk
	// profiles); empty: the built-in default catalogue.
	CataloguePath string
	// TokenSecret signs and checks bearer tokens; empty: read from
	// DataDir/token-secret (dev creates it on first start).
	TokenSecret string

	// LogFormat is "text" or "json"; LogLevel "debug", "info", "warn",
	// "error". Defaults "text" and "info".
	LogFormat string
	LogLevel  string

	// DealingWindowAhead is how far after today the operators' dealing
	// window reaches, in dealing days: prices and cycles are accepted for
	// dealing days up to that many after today (docs/dealing.md,
	// "Operator safeguards"). 0 takes the mode's default: 1 (the next
	// dealing day) for a node; 10 for dev, which simulates the calendar and
	// counts them from the latest day a cycle ran for when that is later.
	// Negative: no bound.
	DealingWindowAhead int

	// CustodianFaults are the simulated custodian's injected faults (dev
	// and the custodian command). The zero value injects none.
	CustodianFaults simulator.Faults

	// Now is the clock pots decide with. Default time.Now; tests set a
	// simulated one (there is no flag: production runs on real time).
	Now func() time.Time
	// Logger overrides the logger LogFormat and LogLevel describe (tests
	// route logs to the test).
	Logger *slog.Logger
	// WrapJournal, if set, wraps dev's journal: fault-injection tests use it
	// to deliver feed events twice. No flag sets it.
	WrapJournal func(persistence.Journal) persistence.Journal
}

// Defaults of Config.
const (
	DefaultDataDir  = "./data"
	DefaultHTTPAddr = "127.0.0.1:8080"
	// DefaultNATSPort is NATS's well-known client port: the nats command's
	// and dev's (which takes a free one when it is taken), and the port of
	// the nodes' default --nats-url.
	DefaultNATSPort = 4222
	// DefaultNATSRoutesPort is NATS's well-known route (cluster) port.
	DefaultNATSRoutesPort = 6222
	DefaultGroups         = 64
	DefaultPotIdleTimeout = 10 * time.Minute
	// DefaultPotResidentMax and DefaultPotResidentIdle: the pot grains'
	// defaults (actors.PotConfig explains them).
	DefaultPotResidentMax  = actors.DefaultPotResidentMax
	DefaultPotResidentIdle = actors.DefaultPotResidentIdle
	DefaultRequestTimeout  = 5 * time.Second
	// DefaultTokenTTL is how long a signed bearer token is valid, dev's
	// printed ones and the token command's alike: a working day and some,
	// short enough that a token pasted somewhere it should not be soon
	// expires (docs/decisions.md, "One token lifetime").
	DefaultTokenTTL = 24 * time.Hour

	// potResidentIdleMin: shorter, a pot would passivate between the
	// requests of one caller, and the timers of pots over the bound would
	// fire more than ten times a second each.
	potResidentIdleMin = 100 * time.Millisecond
	// MemoryLimitBytesMin: below it the collector would run all the time
	// (a node's live heap is tens of MiB before it holds any pot).
	MemoryLimitBytesMin = 64 << 20

	// journalMinSyncIntervalMax: every acknowledged append may wait this
	// long for its sync (the Pebble journal's own bound).
	journalMinSyncIntervalMax = 10 * time.Millisecond

	// tokenSecretFile is the secret's file in the data dir.
	tokenSecretFile = "token-secret"
	// tokenSecretBytes: 256 bits, the size of HMAC-SHA256's key.
	tokenSecretBytes = 32
)

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ClusterHost == "" {
		c.ClusterHost = "127.0.0.1"
	}
	if c.Journal == "" {
		c.Journal = "pebble"
	}
	if c.Membership == "" {
		c.Membership = MembershipKV
	}
	if c.Groups == 0 {
		c.Groups = DefaultGroups
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.PotIdleTimeout == 0 {
		c.PotIdleTimeout = DefaultPotIdleTimeout
	}
	if c.PotResidentMax == 0 {
		c.PotResidentMax = DefaultPotResidentMax
	}
	if c.PotResidentIdle == 0 {
		c.PotResidentIdle = DefaultPotResidentIdle
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Journal != "pebble" && c.Journal != "jetstream" {
		bad("journal %q: want pebble or jetstream", c.Journal)
	}
	if err := c.validateMembership(); err != nil {
		errs = append(errs, err)
	}
	if hb, ttl := c.membershipTimes(); hb <= 0 || ttl <= hb {
		bad("membership heartbeat %s and TTL %s: want a positive heartbeat and a longer TTL", hb, ttl)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log format %q: want text or json", c.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.ClusterPort < 0 || c.ClusterPort > 65535 || c.AutomanagedPort < 0 || c.AutomanagedPort > 65535 {
		bad("ports must be in 0…65535")
	}
	if c.NATSPort < 0 || c.NATSPort > 65535 {
		bad("nats port %d: want 0…65535 (0: a free one)", c.NATSPort)
	}
	if c.NATSMonitorPort < -1 || c.NATSMonitorPort > 65535 {
		bad("nats monitor port %d: want -1…65535 (0: none, -1: a free one)", c.NATSMonitorPort)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas %d: want 1…5", c.Replicas)
	}
	if c.PotIdleTimeout < time.Second {
		bad("pot idle timeout %s: want at least 1s", c.PotIdleTimeout)
	}
	if c.PotResidentIdle < potResidentIdleMin {
		bad("pot resident idle %s: want at least %s", c.PotResidentIdle, potResidentIdleMin)
	}
	if c.MemoryLimitBytes < 0 || (c.MemoryLimitBytes > 0 && c.MemoryLimitBytes < MemoryLimitBytesMin) {
		bad("memory limit %d bytes: want 0 (Go's own) or at least %s", c.MemoryLimitBytes, FormatByteSize(MemoryLimitBytesMin))
	}
	if c.RequestTimeout <= 0 {
		bad("request timeout %s: want more than 0", c.RequestTimeout)
	}
	if c.JournalBatchMax < 0 || c.JournalBatchMax > jetstream.BatchAppendsMaxLimit {
		bad("journal batch max %d: want 0 (%d) to %d", c.JournalBatchMax, jetstream.BatchAppendsMaxLimit, jetstream.BatchAppendsMaxLimit)
	}
	if c.JournalCacheBytes < 0 {
		bad("journal cache %d bytes: want 0 (64 MiB) or more", c.JournalCacheBytes)
	}
	if c.JournalMinSyncInterval < 0 || c.JournalMinSyncInterval > journalMinSyncIntervalMax {
		bad("journal min sync interval %s: want 0…%s", c.JournalMinSyncInterval, journalMinSyncIntervalMax)
	}
	errs = append(errs, c.validateTLS()...)
	if len(errs) > 0 {
		return fmt.Errorf("platform: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// membershipTimes are the kv membership's heartbeat and TTL, defaults
// (cluster.KVConfig's) filled in.
func (c *Config) membershipTimes() (heartbeat, ttl time.Duration) {
	probe := cluster.Config{Provider: cluster.ProviderKV, KV: cluster.KVConfig{Heartbeat: c.MembershipHeartbeat, TTL: c.MembershipTTL}}
	probe.EnsureDefaults()
	return probe.KV.Heartbeat, probe.KV.TTL
}

// potConfig is the pot grains' configuration from c.
func (c *Config) potConfig() actors.PotConfig {
	return actors.PotConfig{ResidentMax: c.PotResidentMax, ResidentIdle: c.PotResidentIdle}
}

// logger is the process's logger: Logger if set, else one built from
// LogFormat and LogLevel.
func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel)) // Validate checked it
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// ErrNoTokenSecret: no secret was configured and the data dir has none.
var ErrNoTokenSecret = errors.New("platform: no token secret: set MASTERTRUST_TOKEN_SECRET or run dev once to create " + tokenSecretFile)

// LoadTokenSecret returns the configured secret, else the one in the data
// dir. With create, a missing file is created with a random secret (dev's
// first start); the file is readable by its owner only.
func (c *Config) LoadTokenSecret(create bool) ([]byte, error) {
	if c.TokenSecret != "" {
		if len(c.TokenSecret) < tokenSecretBytes {
			return nil, fmt.Errorf("platform: token secret of %d bytes: want at least %d", len(c.TokenSecret), tokenSecretBytes)
		}
		return []byte(c.TokenSecret), nil
	}
	path := filepath.Join(c.DataDir, tokenSecretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < tokenSecretBytes {
			return nil, fmt.Errorf("platform: %s holds %d bytes: want at least %d", path, len(s), tokenSecretBytes)
		}
		return []byte(s), nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("platform: read token secret: %w", err)
	case !create:
		return nil, ErrNoTokenSecret
	}
	raw := make([]byte, tokenSecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("platform: make token secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("platform: make data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("platform: write token secret: %w", err)
	}
	return []byte(secret), nil
}

// natsCredential is role's NATS credential from the config: NATSSecretsDir's
// files for the role, overridden by NATSNkeyFile, NATSCertFile, NATSKeyFile
// and NATSCAFile. None of them set: no credential (a server without users,
// as in tests).
func (c *Config) natsCredential(role natsauth.Role) natsauth.Client {
	cred := natsauth.Client{Role: role}
	if c.NATSSecretsDir != "" {
		cred = natsauth.ClientFromDir(c.NATSSecretsDir, role)
	}
	if c.NATSNkeyFile != "" {
		cred.SeedFile = c.NATSNkeyFile
	}
	if c.NATSCertFile != "" || c.NATSKeyFile != "" {
		cred.CertFile, cred.KeyFile = c.NATSCertFile, c.NATSKeyFile
	}
	if c.NATSCAFile != "" {
		cred.CAFile = c.NATSCAFile
	}
	return cred
}
