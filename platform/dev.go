package platform

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
	_ "time/tzdata" // Europe/London on machines without a zoneinfo database

	"github.com/nats-io/nats.go"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// Dev is the whole platform in one process: an embedded NATS server with
// JetStream on disk, the Pebble journal, one node hosting the pots and the
// dealing cycle, the simulated custodian, and the gateway. Restarting it on the same data dir brings every pot back.
type Dev struct {
	// URL is the gateway's base URL (http://host:port, or https:// with
	// Config.TLSCert).
	URL string
	// NATSURL is the embedded NATS server's client URL (tls://host:port,
	// without credentials), for the nats CLI and NATSMonitorURL its
	// monitoring endpoints' base URL ("" without Config.NATSMonitorPort).
	// NATSPortTaken: Config.NATSPort was taken, and NATSURL has a free port
	// instead (Config.NATSPortFallback).
	NATSURL        string
	NATSMonitorURL string
	NATSPortTaken  bool
	// NATSSecretsDir holds the server's users and certificate, the CA and
	// every role's client certificate and nkey seed (internal/natsauth):
	// made on the first start under the data dir, reused after. Clients
	// connect over mutual TLS with a role's certificate and seed (the nats
	// CLI with --tlsca, --tlscert, --tlskey, --nkey, --inbox-prefix).
	NATSSecretsDir string
	// Secret signs tokens (see gateway.SignToken).
	Secret []byte

	// Node is the one node; Custodian the simulated custodian (tests look
	// at both).
	Node      *Node
	Custodian *simulator.Simulator

	log     *slog.Logger
	nats    *natsembed.Server
	nc      *nats.Conn // the node's
	custNC  *nats.Conn // the simulated custodian's
	journal *pebble.Store
	server  *http.Server
	served  chan error
	// restoreMemoryLimit sets back Go's memory limit from before StartDev.
	restoreMemoryLimit func()
}

// devMemberTTL: dev's single member only stops gracefully, so the
// in-process registry's expiry never matters; 10 s is as good as any.
const devMemberTTL = 10 * time.Second

// devWindowAhead: dev simulates the calendar (README's member's first week
// runs the coming days' cycles at once), so its dealing window reaches two
// weeks of dealing days past the later of today and the latest day a cycle
// ran for: enough to run a settlement date ahead, and a typed year 2062
// for 2026 is still refused (its prices would value every pot).
const devWindowAhead = 10

// devNATSHost: dev's NATS server listens on loopback only (and still
// requires TLS and a role's credential).
const devNATSHost = "127.0.0.1"

// NATSSecretsDir is where dev and, by default, `mastertrust secrets init`
// keep NATS's CA, certificates and per-role credentials: beside the
// cluster's and the gateway's (ClusterSecretsDir, GatewaySecretsDir), each
// with its own CA.
func NATSSecretsDir(dataDir string) string { return filepath.Join(dataDir, "secrets", "nats") }

// portFree reports whether host:port can be listened on now. (Another
// process may take it before the caller listens; then the caller fails
// with the port taken, as without the check.)
func portFree(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// StartDev starts the platform in this process and returns once the gateway
// accepts requests.
func StartDev(cfg Config) (d *Dev, err error) {
	cfg.EnsureDefaults()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d = &Dev{log: cfg.logger(), served: make(chan error, 1)}
	started := d // a failed start returns nil, and stops what it started
	defer func() {
		if err != nil {
			started.Stop(context.Background())
		}
	}()
	d.restoreMemoryLimit = ApplyMemoryLimit(cfg.MemoryLimitBytes, d.log)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("platform: data dir: %w", err)
	}
	if d.Secret, err = cfg.LoadTokenSecret(true); err != nil {
		return nil, err
	}
	cat, err := LoadCatalogue(cfg.CataloguePath)
	if err != nil {
		return nil, err
	}
	cal, err := NewCalendar()
	if err != nil {
		return nil, err
	}
	natsPort := cfg.NATSPort
	if cfg.NATSPortFallback && natsPort != 0 && !portFree(devNATSHost, natsPort) {
		d.log.Info("nats port taken; listening on a free one", "port", natsPort)
		natsPort, d.NATSPortTaken = 0, true
	}
	// A throwaway CA, the server's certificate and a credential per role,
	// made on the first start and reused after: every client of dev's
	// server connects as its role, over TLS.
	d.NATSSecretsDir = NATSSecretsDir(cfg.DataDir)
	written, err := natsauth.Ensure(d.NATSSecretsDir, nil)
	if err != nil {
		return nil, fmt.Errorf("platform: nats secrets: %w", err)
	}
	if len(written) > 0 {
		d.log.Info("nats credentials written", "dir", d.NATSSecretsDir, "files", len(written))
	}
	auth, err := natsauth.LoadServer(d.NATSSecretsDir)
	if err != nil {
		return nil, fmt.Errorf("platform: nats secrets: %w", err)
	}
	d.nats, err = natsembed.Start(natsembed.Options{Dir: filepath.Join(cfg.DataDir, "nats"), Host: devNATSHost, Port: natsPort,
		MonitorPort: cfg.NATSMonitorPort, Logger: d.log.With("component", "nats"), Users: auth.Users, TLS: auth.TLS})
	if err != nil {
		return nil, fmt.Errorf("platform: start nats: %w", err)
	}
	d.NATSURL, d.NATSMonitorURL = d.nats.ClientURL(), d.nats.MonitorURL()
	d.journal, err = pebble.Open(filepath.Join(cfg.DataDir, "journal"), pebble.Options{Groups: cfg.Groups, WALMinSyncInterval: cfg.JournalMinSyncInterval, CacheBytes: cfg.JournalCacheBytes, Logger: d.log.With("component", "journal")})
	if err != nil {
		return nil, fmt.Errorf("platform: open journal: %w", err)
	}
	var journal persistence.Journal = d.journal
	if cfg.WrapJournal != nil {
		journal = cfg.WrapJournal(journal)
	}
	if d.nc, err = connectNATS(d.NATSURL, natsauth.ClientFromDir(d.NATSSecretsDir, natsauth.RoleNode), "mastertrust-dev", nil); err != nil {
		return nil, err
	}
	if d.custNC, err = connectNATS(d.NATSURL, natsauth.ClientFromDir(d.NATSSecretsDir, natsauth.RoleCustodian), "mastertrust-dev-custodian", nil); err != nil {
		return nil, err
	}
	client, err := custodian.NewClient(d.nc, custodian.ClientConfig{Catalogue: cat, Logger: d.log.With("component", "custodian-client")})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := client.EnsureStreams(ctx); err != nil {
		return nil, fmt.Errorf("platform: custodian streams: %w", err)
	}
	d.Custodian, err = simulator.Start(ctx, d.custNC, simulator.Config{Dir: filepath.Join(cfg.DataDir, "custodian"),
		Catalogue: cat, Calendar: cal, Faults: cfg.CustodianFaults, Logger: d.log.With("component", "custodian")})
	if err != nil {
		return nil, fmt.Errorf("platform: start the simulated custodian: %w", err)
	}
	notifier, err := NewNotifier(ctx, d.nc, 1, actors.PotGroups(journal))
	if err != nil {
		return nil, err
	}
	clusterTLS, err := devClusterTLS(cfg)
	if err != nil {
		return nil, err
	}
	registry := newRegistry()
	d.Node, err = StartNode(NodeConfig{
		Cluster: cluster.Config{ClusterName: "mastertrust-dev", Host: cfg.ClusterHost, Port: cfg.ClusterPort,
			Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(devMemberTTL), RequestTimeout: cfg.RequestTimeout,
			TLS: clusterTLS},
		Journal: journal, HistoryDir: HistoryDir(cfg.DataDir), Catalogue: cat, Calendar: cal, PotIdleTimeout: cfg.PotIdleTimeout, Pots: cfg.potConfig(),
		Custodian: client, Notifier: notifier,
		Dealing: actors.DealingConfig{WindowAheadDealingDays: cmp.Or(cfg.DealingWindowAhead, devWindowAhead), SimulatedCalendar: true},
		Now:     cfg.Now, Registry: registry, Logger: d.log,
	})
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Config{
		Pots: d.Node.Pots, Cluster: d.Node.Cluster, Operations: actors.Operator{Node: d.Node.Cluster},
		Catalogue: cat, TokenSecret: d.Secret, RequestTimeout: cfg.RequestTimeout, InFlightMax: cfg.InFlightMax,
		SlotWaitMax: cfg.SlotWaitMax, Registry: registry, Logger: d.log,
		Ready: func(ctx context.Context) error {
			if !d.nc.IsConnected() || !d.nats.NATS().JetStreamEnabled() {
				return errors.New("nats: not connected or jetstream not running")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	url, srv, serve, err := listenHTTP(cfg.HTTPAddr, gw.Handler(), cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	d.URL, d.server = url, srv
	go func() { d.served <- serve() }()
	return d, nil
}

// Token signs a token for a member (or, with an empty member id, an
// operator), valid for ttl.
func (d *Dev) Token(member string, ttl time.Duration) (string, error) {
	c := gateway.Claims{Role: gateway.RoleOperator, IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(ttl).Unix()}
	if member != "" {
		c.Role, c.Subject = gateway.RoleMember, member
	}
	return gateway.SignToken(d.Secret, c)
}

// Done is closed with the HTTP server's error when it stops serving.
func (d *Dev) Done() <-chan error { return d.served }

// Stop stops accepting requests, lets those in flight finish (within ctx),
// stops the node, and closes the journal and NATS.
func (d *Dev) Stop(ctx context.Context) error {
	var errs []error
	if d.server != nil {
		errs = append(errs, d.server.Shutdown(ctx))
	}
	if d.Node != nil {
		errs = append(errs, d.Node.Stop(ctx))
	}
	if d.Custodian != nil {
		errs = append(errs, d.Custodian.Stop())
	}
	if d.custNC != nil {
		d.custNC.Close()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	if d.journal != nil {
		errs = append(errs, d.journal.Close())
	}
	if d.nats != nil {
		d.nats.Shutdown()
	}
	if d.restoreMemoryLimit != nil {
		d.restoreMemoryLimit()
	}
	return errors.Join(errs...)
}

// LoadCatalogue loads an operator's catalogue file, or the default one.
func LoadCatalogue(path string) (*domain.Catalogue, error) {
	if path == "" {
		return domain.DefaultCatalogue(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("platform: read catalogue: %w", err)
	}
	return domain.LoadCatalogue(b)
}

// NewCalendar is the dealing calendar with the default cut-off, valuation
// point and holidays, in Europe/London.
func NewCalendar() (*domain.Calendar, error) {
	loc, err := time.LoadLocation(domain.DefaultLocationName)
	if err != nil {
		return nil, fmt.Errorf("platform: load %s: %w", domain.DefaultLocationName, err)
	}
	return domain.NewCalendar(domain.CalendarConfig{Location: loc})
}
