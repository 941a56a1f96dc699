package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// Provider names how members find each other (protoactor's "cluster
// provider").
type Provider string

const (
	// ProviderInProcess: the nodes of one process share an InProcess
	// registry (Config.InProcess). For tests and the one-process dev mode.
	ProviderInProcess Provider = "inprocess"
	// ProviderAutomanaged: every node serves a small HTTP health endpoint and
	// polls the endpoints of a fixed list of peers (Config.Automanaged). For
	// several processes on one machine or a small fixed set of hosts.
	ProviderAutomanaged Provider = "automanaged"
	// ProviderKV: every member puts its record into a shared key-value
	// store (Config.KV: a NATS JetStream KV bucket in production) every
	// heartbeat, and every node watches it. Members join by starting and
	// leave by stopping, without restarting the others.
	ProviderKV Provider = "kv"
	// ProviderConsul, ProviderEtcd and ProviderKubernetes are real
	// deployments. This package does not import their clients (they add
	// minutes to a cold build and tens of MB to a binary): the binary that
	// wants one builds protoactor's provider and passes it through
	// Config.NewExternalProvider (platform does, in files behind a build
	// tag per provider).
	ProviderConsul     Provider = "consul"
	ProviderEtcd       Provider = "etcd"
	ProviderKubernetes Provider = "k8s"
)

func (p Provider) external() bool {
	return p == ProviderConsul || p == ProviderEtcd || p == ProviderKubernetes
}

// Kind is a grain kind a member hosts.
type Kind struct {
	// Name is the kind name: the proto service name ("Pot"). It must equal
	// the name New gives the protoactor kind.
	Name string
	// New builds the protoactor kind with the idle timeout after which an
	// activation without messages passivates: one that builds the props
	// itself (actors.NewPotKind and the dealing grains' kinds do, with their
	// own idle timer), or a generated constructor, func(d time.Duration)
	// *protocluster.Kind { return testgrain.NewCounterKind(newCounter, d) }
	// (proto/gen.sh generates those for the cluster's test grain only). It
	// is called once per Start.
	//
	// The generated NewXKind keeps its factory in a package variable: every
	// node of a process runs the factory of the last call, so node-specific
	// dependencies must be found from the grain context in Init
	// (ctx.Cluster()), not captured by the factory.
	New func(idleTimeout time.Duration) *protocluster.Kind
	// IdleTimeout overrides Config.IdleTimeout for this kind. Zero means
	// Config.IdleTimeout.
	IdleTimeout time.Duration
}

// AutomanagedConfig configures ProviderAutomanaged.
type AutomanagedConfig struct {
	// Port is the TCP port of this node's health endpoint, listened on at
	// Config.Host. Required for a member unless Listener is set; a client
	// serves no endpoint.
	Port int
	// Listener, if set, is used instead of listening on Host:Port, and
	// closed when the node stops or fails to start. Tests bind port 0 first
	// to learn the ports that every node's Peers lists.
	Listener net.Listener
	// Peers lists the health endpoints (host:port) of every node that may be
	// a member, this node included. Required; it is fixed for the life of
	// the node, so a new member needs a restart of the others (use consul,
	// etcd or k8s when that matters).
	Peers []string
	// RefreshInterval is how often the peers are polled. A dead peer leaves
	// the topology after at most RefreshInterval plus an HTTP timeout of
	// 2 s. Default: 1 s.
	RefreshInterval time.Duration
}

// KVConfig configures ProviderKV.
type KVConfig struct {
	// Store holds the members' records (cluster/natskv opens a NATS
	// JetStream KV bucket; its TTL should be TTL). Required.
	Store MemberStore
	// Heartbeat is how often a member puts its record again, and how
	// often a node checks for records that expired. Default: 1 s.
	Heartbeat time.Duration
	// TTL is how long a record lasts without a heartbeat: a member that
	// stops putting it (killed, cut off from the store) leaves the others'
	// topology after about this long, for good (protoactor blocks a member
	// that left; it rejoins by restarting). Keep it generous against pauses:
	// a live member whose puts stall for longer is dropped. Default: 3 ×
	// Heartbeat.
	TTL time.Duration
}

// Config configures a node. The zero value is not valid: set Provider (and
// what it needs) and, for a member, Kinds; EnsureDefaults fills the rest.
type Config struct {
	// ClusterName separates clusters that share a provider. Default:
	// "mastertrust".
	ClusterName string
	// Host is the address the node listens on for cluster traffic and
	// advertises to the other nodes, so it must be reachable by them (not
	// 0.0.0.0). Default: "127.0.0.1".
	Host string
	// Port is the cluster (gRPC) port. 0 picks a free port; Node.Address
	// reports the real one. Default: 0.
	Port int
	// AdvertisedAddress, if set, is the host:port the other nodes use to
	// reach this node instead of Host:Port (NAT, containers).
	AdvertisedAddress string

	// Provider selects the membership provider. Required.
	Provider Provider
	// InProcess is the registry the nodes of this process share. Required
	// for ProviderInProcess.
	InProcess *InProcess
	// Automanaged configures ProviderAutomanaged.
	Automanaged AutomanagedConfig
	// KV configures ProviderKV.
	KV KVConfig
	// NewExternalProvider builds the provider for ProviderConsul,
	// ProviderEtcd and ProviderKubernetes (required for them, ignored
	// otherwise). It is called once per Start.
	NewExternalProvider func() (protocluster.ClusterProvider, error)

	// TLS is mutual TLS between the nodes (the gRPC remote and the
	// automanaged membership endpoints). Every node of a cluster must use
	// the same CA. The zero value is plaintext.
	TLS TLSConfig

	// Services are the member services a member runs (see CallMembers):
	// every member of a cluster must run the same ones. A client runs none.
	Services map[string]MemberService
	// Gauges, if set, are what a member reports about itself beside its
	// activations for Members (GET /v1/cluster): its node's own readings,
	// such as recoveries in progress. Called on the member's stats actor;
	// it must be quick. A client has none.
	Gauges func() map[string]int64

	// Kinds are the grain kinds a member hosts. A member needs at least one;
	// a client (StartClient) must have none.
	Kinds []Kind
	// IdleTimeout is how long an activation may go without a message before
	// it passivates (stops; the next message activates it again, possibly
	// on another member). The generated code switches passivation off for 0,
	// so 0 here means the default. Interacts with memory: every active grain
	// costs heap until it passivates. Default: 10 min.
	IdleTimeout time.Duration

	// RequestTimeout bounds one grain call, retries included, when the
	// caller's context has no earlier deadline. Default: 5 s.
	RequestTimeout time.Duration
	// RequestRetryCount is how many attempts a grain call makes when the
	// target is not found, is a stale cached PID or times out (protoactor's
	// retry count; it counts attempts, not retries). Default: 3.
	RequestRetryCount int
	// RequestRetryBackoff is the wait before the second attempt, growing
	// with the square of the attempt number and never past the call's
	// deadline. It gives a topology change time to settle during failover.
	// Default: 50 ms.
	RequestRetryBackoff time.Duration

	// HeartbeatExpiration: a member whose gossip heartbeat is older is
	// blocked (dropped from the topology for good; a restarted process
	// rejoins with a new ID). Members gossip every GossipInterval. Default:
	// 20 s (protoactor's).
	HeartbeatExpiration time.Duration
	// GossipInterval is the period of gossip rounds (heartbeats, topology
	// consensus). Default: 300 ms (protoactor's).
	GossipInterval time.Duration

	// Logger receives this package's logs and protoactor's. Default:
	// slog.Default().
	Logger *slog.Logger
	// LibraryLogLevel is the lowest level of protoactor's own log lines that
	// reach Logger; protoactor logs a lot at Info. A *slog.LevelVar allows
	// changing it at run time. Some of its lines about expected events (a
	// retried call, a stopping HTTP server) are lowered first (see log.go).
	// Default: slog.LevelWarn.
	LibraryLogLevel slog.Leveler
}

// Defaults, see Config.
const (
	defaultClusterName         = "mastertrust"
	defaultHost                = "127.0.0.1"
	defaultIdleTimeout         = 10 * time.Minute
	defaultRequestTimeout      = 5 * time.Second
	defaultRequestRetryCount   = 3
	defaultRequestRetryBackoff = 50 * time.Millisecond
	defaultHeartbeatExpiration = 20 * time.Second
	defaultGossipInterval      = 300 * time.Millisecond
	defaultAutomanagedRefresh  = time.Second
	defaultKVHeartbeat         = time.Second
	// defaultKVTTLBeats is the default TTL in heartbeats.
	defaultKVTTLBeats      = 3
	defaultLibraryLogLevel = slog.LevelWarn
)

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *Config) EnsureDefaults() *Config {
	if c.ClusterName == "" {
		c.ClusterName = defaultClusterName
	}
	if c.Host == "" {
		c.Host = defaultHost
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.RequestRetryCount == 0 {
		c.RequestRetryCount = defaultRequestRetryCount
	}
	if c.RequestRetryBackoff == 0 {
		c.RequestRetryBackoff = defaultRequestRetryBackoff
	}
	if c.HeartbeatExpiration == 0 {
		// Past a few rounds whatever the rounds' period.
		c.HeartbeatExpiration = max(defaultHeartbeatExpiration, 2*c.GossipInterval)
	}
	if c.GossipInterval == 0 {
		c.GossipInterval = defaultGossipInterval
	}
	if c.Provider == ProviderAutomanaged && c.Automanaged.RefreshInterval == 0 {
		c.Automanaged.RefreshInterval = defaultAutomanagedRefresh
	}
	if c.Provider == ProviderKV {
		if c.KV.Heartbeat == 0 {
			c.KV.Heartbeat = defaultKVHeartbeat
		}
		if c.KV.TTL == 0 {
			c.KV.TTL = defaultKVTTLBeats * c.KV.Heartbeat
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LibraryLogLevel == nil {
		c.LibraryLogLevel = defaultLibraryLogLevel
	}
	return c
}

// Validate reports every invalid field of c (after EnsureDefaults) for a
// member (client false) or a client-only node (client true), joined into one
// error.
func (c *Config) Validate(client bool) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster: config: "+format, args...))
	}

	if c.ClusterName == "" {
		bad("ClusterName is empty")
	}
	if ip := net.ParseIP(c.Host); c.Host == "" || (ip != nil && ip.IsUnspecified() && c.AdvertisedAddress == "") {
		bad("Host %q must be an address the other nodes can reach (or set AdvertisedAddress)", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("Port %d is out of range 0..65535", c.Port)
	}
	if c.AdvertisedAddress != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddress); err != nil {
			bad("AdvertisedAddress %q is not host:port: %v", c.AdvertisedAddress, err)
		}
	}

	switch {
	case c.Provider == "":
		bad("Provider is not set (inprocess, automanaged, kv, consul, etcd or k8s)")
	case c.Provider == ProviderInProcess:
		if c.InProcess == nil {
			bad("Provider %q needs InProcess", c.Provider)
		}
	case c.Provider == ProviderAutomanaged:
		a := c.Automanaged
		if !client && a.Listener == nil && (a.Port <= 0 || a.Port > 65535) {
			bad("Provider %q needs Automanaged.Port in 1..65535 or Automanaged.Listener, got port %d", c.Provider, a.Port)
		}
		if len(a.Peers) == 0 {
			bad("Provider %q needs Automanaged.Peers (every node's health endpoint, this one included)", c.Provider)
		}
		for _, p := range a.Peers {
			if _, _, err := net.SplitHostPort(p); err != nil {
				bad("Automanaged.Peers entry %q is not host:port: %v", p, err)
			}
		}
		if a.RefreshInterval <= 0 {
			bad("Automanaged.RefreshInterval %v must be positive", a.RefreshInterval)
		}
	case c.Provider == ProviderKV:
		if c.KV.Store == nil {
			bad("Provider %q needs KV.Store (cluster/natskv opens one)", c.Provider)
		}
		if c.KV.Heartbeat <= 0 {
			bad("KV.Heartbeat %v must be positive", c.KV.Heartbeat)
		}
		if c.KV.TTL <= c.KV.Heartbeat {
			bad("KV.TTL %v must be longer than KV.Heartbeat %v (a record must outlive a heartbeat)", c.KV.TTL, c.KV.Heartbeat)
		}
	case c.Provider.external():
		if c.NewExternalProvider == nil {
			bad("Provider %q needs NewExternalProvider (built outside this package so that it does not import the %s client)", c.Provider, c.Provider)
		}
	default:
		bad("Provider %q is unknown (inprocess, automanaged, kv, consul, etcd or k8s)", c.Provider)
	}

	errs = append(errs, c.TLS.validate()...)

	if client && len(c.Services) > 0 {
		bad("a client runs no member services, but Services has %d", len(c.Services))
	}
	if client && len(c.Kinds) > 0 {
		bad("a client hosts no grains, but Kinds has %d", len(c.Kinds))
	}
	if !client && len(c.Kinds) == 0 {
		bad("a member needs at least one Kind")
	}
	var names []string
	for i, k := range c.Kinds {
		switch {
		case k.Name == "":
			bad("Kinds[%d].Name is empty", i)
		case k.Name == protocluster.TopicActorKind:
			bad("Kinds[%d].Name %q is reserved by protoactor's pub-sub", i, k.Name)
		case slices.Contains(names, k.Name):
			bad("Kinds[%d].Name %q is repeated", i, k.Name)
		}
		names = append(names, k.Name)
		if k.New == nil {
			bad("Kinds[%d] (%q).New is nil", i, k.Name)
		}
		if k.IdleTimeout < 0 {
			bad("Kinds[%d] (%q).IdleTimeout %v is negative", i, k.Name, k.IdleTimeout)
		}
	}

	if c.IdleTimeout <= 0 {
		bad("IdleTimeout %v must be positive (0 would switch passivation off)", c.IdleTimeout)
	}
	if c.RequestTimeout <= 0 {
		bad("RequestTimeout %v must be positive", c.RequestTimeout)
	}
	if c.RequestRetryCount < 1 {
		bad("RequestRetryCount %d must be at least 1", c.RequestRetryCount)
	}
	if c.RequestRetryBackoff < 0 {
		bad("RequestRetryBackoff %v is negative", c.RequestRetryBackoff)
	}
	if c.GossipInterval <= 0 {
		bad("GossipInterval %v must be positive", c.GossipInterval)
	}
	if c.HeartbeatExpiration <= c.GossipInterval {
		bad("HeartbeatExpiration %v must be longer than GossipInterval %v", c.HeartbeatExpiration, c.GossipInterval)
	}
	if c.Logger == nil {
		bad("Logger is nil")
	}
	if c.LibraryLogLevel == nil {
		bad("LibraryLogLevel is nil")
	}
	return errors.Join(errs...)
}
