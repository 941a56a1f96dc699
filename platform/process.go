package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/natskv"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/persistence/pebble"
)

// Processes of a multi-node deployment: members (StartMember) that host the
// pots and share a JetStream journal, and gateways (StartGateway) that join
// the cluster as clients and serve the API. Membership is a NATS JetStream
// KV bucket (Config.Membership kv: members register, everyone watches),
// automanaged over a fixed list of membership endpoints (Peers), or one of
// protoactor's etcd, consul and k8s providers in a binary built with its
// tag.

// Process is a running member or gateway process.
type Process struct {
	// URL is the HTTP base URL (the API for a gateway; health and metrics
	// for a member), or "" when it serves none.
	URL string

	log *slog.Logger
	nc  *nats.Conn
	// membersNC is a gateway's NATS connection, for the kv membership
	// only: unlike a node's, it is not part of readiness (a gateway keeps
	// serving with the members it knows while NATS is away).
	membersNC *nats.Conn
	journal   persistence.Journal
	node      *Node
	client    *cluster.Node
	server    *http.Server
	served    chan error
	// journalState caches the journal's last check (readiness probes
	// come often; a check is a request per JetStream stream).
	journalState journalCheck
	// restoreMemoryLimit sets back Go's memory limit from before
	// StartMember (nil: unchanged).
	restoreMemoryLimit func()
}

// processReadyTimeout bounds a readiness check.
const processReadyTimeout = 2 * time.Second

// journalCheckTimeout bounds the journal's part of a readiness check, and
// journalCheckFresh is how long its answer is reused.
const (
	journalCheckTimeout = time.Second
	journalCheckFresh   = time.Second
)

// checker is a journal that can tell whether it can write now (the
// JetStream journal; Pebble's is local and has nothing to ask).
type checker interface {
	Check(ctx context.Context) error
}

// journalCheck is the last answer of a journal's Check.
type journalCheck struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// check returns j's answer, asking again if the last is older than
// journalCheckFresh. Concurrent probes wait for one answer.
func (c *journalCheck) check(ctx context.Context, j checker) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < journalCheckFresh {
		return c.err
	}
	ctx, cancel := context.WithTimeout(ctx, journalCheckTimeout)
	defer cancel()
	c.err, c.at = j.Check(ctx), time.Now()
	return c.err
}

// StartMember starts a member process: the journal (Pebble under DataDir,
// or the shared JetStream journal at NATSURL), a cluster member hosting
// pots, and, if HTTPAddr is set, /healthz, /readyz and /metrics.
func StartMember(cfg Config) (p *Process, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p = &Process{log: cfg.logger(), served: make(chan error, 1)}
	started := p // a failed start returns nil, and stops what it started
	defer func() {
		if err != nil {
			started.Stop(context.Background())
		}
	}()
	p.restoreMemoryLimit = ApplyMemoryLimit(cfg.MemoryLimitBytes, p.log)
	cat, err := LoadCatalogue(cfg.CataloguePath)
	if err != nil {
		return nil, err
	}
	cal, err := NewCalendar()
	if err != nil {
		return nil, err
	}
	registry := newRegistry()
	if p.journal, err = p.openJournal(cfg, newNATSWatch(p.log.With("component", "nats"), registry)); err != nil {
		return nil, err
	}
	// The custodian (and so the dealing cycle) and notifications need NATS;
	// a node without it still serves its pots.
	var client *custodian.Client
	var notifier actors.Notifier
	if p.nc != nil {
		nctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := NewNotifier(nctx, p.nc, cfg.Replicas, actors.PotGroups(p.journal))
		cancel()
		if err != nil {
			return nil, err
		}
		notifier = n
		if client, err = custodian.NewClient(p.nc, custodian.ClientConfig{Catalogue: cat, Replicas: cfg.Replicas,
			Logger: p.log.With("component", "custodian-client")}); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = client.EnsureStreams(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("platform: custodian streams: %w", err)
		}
	}
	cc, err := clusterConfig(cfg, p.nc, p.log)
	if err != nil {
		return nil, err
	}
	p.node, err = StartNode(NodeConfig{Cluster: cc, Journal: p.journal, HistoryDir: HistoryDir(cfg.DataDir), Catalogue: cat, Calendar: cal,
		PotIdleTimeout: cfg.PotIdleTimeout, Pots: cfg.potConfig(), Custodian: client, Notifier: notifier, Now: cfg.Now, Registry: registry, Logger: p.log,
		Dealing: actors.DealingConfig{WindowAheadDealingDays: cfg.DealingWindowAhead}})
	if err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "" {
		mux := http.NewServeMux()
		gateway.HandleHealth(mux, p.ready, processReadyTimeout, p.log)
		mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
		if err := p.serve(cfg.HTTPAddr, mux, "", ""); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// StartGateway starts a gateway process: a cluster client (it hosts no pots)
// and the HTTP API on HTTPAddr.
func StartGateway(cfg Config) (p *Process, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	p = &Process{log: cfg.logger(), served: make(chan error, 1)}
	started := p // a failed start returns nil, and stops what it started
	defer func() {
		if err != nil {
			started.Stop(context.Background())
		}
	}()
	secret, err := cfg.LoadTokenSecret(false)
	if err != nil {
		return nil, err
	}
	cat, err := LoadCatalogue(cfg.CataloguePath)
	if err != nil {
		return nil, err
	}
	registry := newRegistry()
	if cfg.Membership == MembershipKV {
		if cfg.NATSURL == "" {
			return nil, errNoMembersNATS
		}
		if p.membersNC, err = connectNATS(cfg.NATSURL, cfg.natsCredential(natsauth.RoleGateway), "mastertrust-gateway",
			newNATSWatch(p.log.With("component", "nats"), registry), nats.MaxReconnects(-1)); err != nil {
			return nil, err
		}
	}
	cc, err := clusterConfig(cfg, p.membersNC, p.log)
	if err != nil {
		return nil, err
	}
	cc.Logger = p.log
	if p.client, err = cluster.StartClient(cc); err != nil {
		return nil, fmt.Errorf("platform: start gateway: %w", err)
	}
	gw, err := gateway.New(gateway.Config{Pots: actors.PotClient{Node: p.client}, Cluster: p.client,
		Operations: actors.Operator{Node: p.client}, Catalogue: cat, TokenSecret: secret,
		RequestTimeout: cfg.RequestTimeout, InFlightMax: cfg.InFlightMax, SlotWaitMax: cfg.SlotWaitMax,
		Registry: registry, Logger: p.log, Ready: p.ready})
	if err != nil {
		return nil, err
	}
	if err := p.serve(cfg.HTTPAddr, gw.Handler(), cfg.TLSCert, cfg.TLSKey); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Process) openJournal(cfg Config, watch *natsWatch) (persistence.Journal, error) {
	if cfg.NATSURL != "" {
		nc, err := connectNATS(cfg.NATSURL, cfg.natsCredential(natsauth.RoleNode), "mastertrust-node", watch, nats.MaxReconnects(-1))
		if err != nil {
			return nil, err
		}
		p.nc = nc
	}
	if cfg.Journal == "pebble" {
		j, err := pebble.Open(filepath.Join(cfg.DataDir, "journal"), pebble.Options{Groups: cfg.Groups, WALMinSyncInterval: cfg.JournalMinSyncInterval, CacheBytes: cfg.JournalCacheBytes, Logger: p.log.With("component", "journal")})
		if err != nil {
			return nil, fmt.Errorf("platform: open journal: %w", err)
		}
		return j, nil
	}
	if p.nc == nil {
		return nil, errors.New("platform: the jetstream journal needs a NATS URL")
	}
	nc := p.nc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := jetstream.Open(ctx, nc, jetstream.Options{Groups: cfg.Groups, Replicas: cfg.Replicas, BatchAppendsMax: cfg.JournalBatchMax, Logger: p.log.With("component", "journal")})
	if err != nil {
		return nil, fmt.Errorf("platform: open jetstream journal: %w", err)
	}
	return j, nil
}

// ready reports whether the process can serve: it is in a cluster with at
// least one member, its NATS connection (if any) is up, and its journal
// can write (every JetStream stream has a leader).
func (p *Process) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, processReadyTimeout)
	defer cancel()
	n := p.client
	if p.node != nil {
		n = p.node.Cluster
	}
	if n == nil {
		return errors.New("no cluster node")
	}
	members, err := n.Members(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(members) == 0 {
		return errors.New("cluster: no member hosts pots")
	}
	if p.nc != nil && !p.nc.IsConnected() {
		return errors.New("nats: not connected")
	}
	if j, ok := p.journal.(checker); ok {
		if err := p.journalState.check(ctx, j); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

// serve serves h on addr: HTTPS with certFile and keyFile when given.
func (p *Process) serve(addr string, h http.Handler, certFile, keyFile string) error {
	url, srv, serve, err := listenHTTP(addr, h, certFile, keyFile)
	if err != nil {
		return err
	}
	p.URL, p.server = url, srv
	go func() { p.served <- serve() }()
	return nil
}

// Done delivers the HTTP server's error if it stops serving.
func (p *Process) Done() <-chan error { return p.served }

// Stop stops serving, leaves the cluster gracefully (a member's pots
// activate elsewhere on their next request), and closes the journal. It
// stops only what was started: a failed start calls it on a process whose
// later parts are missing, and a nil Process is nothing to stop.
func (p *Process) Stop(ctx context.Context) error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.server != nil {
		errs = append(errs, p.server.Shutdown(ctx))
	}
	if p.node != nil {
		errs = append(errs, p.node.Stop(ctx))
	}
	if p.client != nil {
		errs = append(errs, p.client.Stop(ctx))
	}
	if p.journal != nil {
		errs = append(errs, p.journal.Close())
	}
	// After the cluster node: a member's graceful stop deletes its record
	// through it.
	if p.nc != nil {
		p.nc.Close()
	}
	if p.membersNC != nil {
		p.membersNC.Close()
	}
	if p.restoreMemoryLimit != nil {
		p.restoreMemoryLimit()
	}
	return errors.Join(errs...)
}

// errNoMembersNATS: the kv membership without a NATS URL.
var errNoMembersNATS = errors.New("platform: membership kv needs NATS (--nats-url); --membership automanaged with --peers runs without")

// membersOpenTimeout bounds opening (or creating) the members' bucket.
const membersOpenTimeout = 30 * time.Second

// clusterConfig is the cluster part of a process's config: its membership
// (kv over nc, automanaged over Peers, or an external provider built into
// this binary) and mutual TLS with the cluster's CA.
func clusterConfig(cfg Config, nc *nats.Conn, log *slog.Logger) (cluster.Config, error) {
	tls, err := cfg.clusterTLS()
	if err != nil {
		return cluster.Config{}, err
	}
	cc := cluster.Config{Host: cfg.ClusterHost, Port: cfg.ClusterPort, RequestTimeout: cfg.RequestTimeout, TLS: tls,
		GossipInterval: cfg.GossipInterval}
	switch cfg.Membership {
	case MembershipAutomanaged:
		if len(cfg.Peers) == 0 {
			return cluster.Config{}, errors.New("platform: membership automanaged needs every member's membership endpoint (--peers)")
		}
		cc.Provider = cluster.ProviderAutomanaged
		cc.Automanaged = cluster.AutomanagedConfig{Port: cfg.AutomanagedPort, Peers: cfg.Peers}
	case MembershipEtcd, MembershipConsul, MembershipK8s:
		if err := externalClusterConfig(&cc, cfg); err != nil {
			return cluster.Config{}, err
		}
	default: // kv; Validate checked the name
		if nc == nil {
			return cluster.Config{}, errNoMembersNATS
		}
		heartbeat, ttl := cfg.membershipTimes()
		ctx, cancel := context.WithTimeout(context.Background(), membersOpenTimeout)
		defer cancel()
		store, err := natskv.Open(ctx, nc, natskv.Options{TTL: ttl, Replicas: cfg.Replicas, Logger: log.With("component", "members")})
		if err != nil {
			return cluster.Config{}, fmt.Errorf("platform: membership: %w", err)
		}
		cc.Provider = cluster.ProviderKV
		cc.KV = cluster.KVConfig{Store: store, Heartbeat: heartbeat, TTL: ttl}
	}
	return cc, nil
}

// newRegistry is a process's metrics registry, with Go and process metrics.
func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// HTTP server limits: headers within 10 s (slow-loris), a whole request
// within 30 s (bodies are at most 64 KiB), a response within the grain
// timeout plus a margin, idle keep-alive connections closed after 2 min.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 60 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
		WriteTimeout: httpWriteTimeout, IdleTimeout: httpIdleTimeout}
}

// ErrNATSNoSecrets: the nats command was given neither a secrets directory
// nor NATSNoAuth.
var ErrNATSNoSecrets = errors.New("platform: the NATS server needs its users and certificate: give --nats-secrets (make the directory with `mastertrust secrets init`), or --no-auth for a throwaway server anyone may use")

// StartNATS starts a NATS server with JetStream under DataDir/nats on
// host:port (and its monitoring endpoints on NATSMonitorPort, if set),
// fsyncing before every acknowledgement: the shared journal's server, alone
// or, with NATSRoutesName, one of a cluster of NATS servers (production
// runs three). Its users, their permissions, its TLS certificate and its
// routes' mutual TLS come from NATSSecretsDir; only with NATSNoAuth does
// it run without (ErrNATSNoSecrets).
func StartNATS(cfg Config, host string, port int) (*natsembed.Server, error) {
	log := cfg.logger()
	opts := natsembed.Options{Dir: filepath.Join(cfg.DataDir, "nats"), Host: host, Port: port,
		MonitorPort: cfg.NATSMonitorPort, Logger: log.With("component", "nats")}
	switch {
	case cfg.NATSRoutesName == "" && (cfg.NATSRoutesPort != 0 || len(cfg.NATSRoutes) > 0):
		return nil, errors.New("platform: start nats: routes need the cluster's name (--routes-name)")
	case cfg.NATSRoutesPort < -1 || cfg.NATSRoutesPort > 65535:
		return nil, fmt.Errorf("platform: start nats: routes port %d: want -1…65535 (0: %d, -1: a free one)", cfg.NATSRoutesPort, DefaultNATSRoutesPort)
	}
	opts.Name = cfg.NATSServerName
	if cfg.NATSRoutesName != "" {
		opts.Cluster = &natsembed.ClusterOptions{Name: cfg.NATSRoutesName, Port: cfg.NATSRoutesPort, Routes: cfg.NATSRoutes}
		if cfg.NATSRoutesPort == 0 {
			opts.Cluster.Port = DefaultNATSRoutesPort
		}
		if opts.Name == "" {
			h, err := os.Hostname()
			if err != nil {
				return nil, fmt.Errorf("platform: start nats: the server's name (--nats-name): %w", err)
			}
			opts.Name = h
		}
	}
	switch {
	case cfg.NATSSecretsDir != "":
		auth, err := natsauth.LoadServer(cfg.NATSSecretsDir)
		if err != nil {
			return nil, fmt.Errorf("platform: start nats: %w", err)
		}
		opts.Users, opts.TLS = auth.Users, auth.TLS
		if opts.Cluster != nil {
			opts.Cluster.TLS, opts.Cluster.PeerSubject = auth.RouteTLS, auth.RouteSubject
		}
	case !cfg.NATSNoAuth:
		return nil, ErrNATSNoSecrets
	default:
		log.Warn("nats runs without users or TLS: anyone who reaches it may do anything")
		if opts.Cluster != nil {
			log.Warn("nats routes run without TLS: anyone who reaches the routes port joins the cluster")
		}
	}
	srv, err := natsembed.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("platform: start nats: %w", err)
	}
	return srv, nil
}

// StartCustodian runs the simulated custodian against the NATS server at
// NATSURL, with its ledger under DataDir/custodian and CustodianFaults.
func StartCustodian(cfg Config) (*simulator.Simulator, func(), error) {
	cfg.EnsureDefaults()
	if cfg.NATSURL == "" {
		return nil, nil, errors.New("platform: the custodian needs a NATS URL")
	}
	log := cfg.logger()
	cat, err := LoadCatalogue(cfg.CataloguePath)
	if err != nil {
		return nil, nil, err
	}
	cal, err := NewCalendar()
	if err != nil {
		return nil, nil, err
	}
	nc, err := connectNATS(cfg.NATSURL, cfg.natsCredential(natsauth.RoleCustodian), "mastertrust-custodian",
		newNATSWatch(log.With("component", "nats"), nil), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, err
	}
	sim, err := simulator.Start(context.Background(), nc, simulator.Config{Dir: filepath.Join(cfg.DataDir, "custodian"),
		Catalogue: cat, Calendar: cal, Replicas: cfg.Replicas, Faults: cfg.CustodianFaults, Logger: log})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("platform: start the simulated custodian: %w", err)
	}
	return sim, func() { sim.Stop(); nc.Close() }, nil
}
