package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// automanagedProvider is ProviderAutomanaged: every member serves its
// membership record on a small HTTP endpoint, and every node polls the
// endpoints of a fixed list of peers and takes the records that answer as
// the topology.
//
// It replaces protoactor's clusterproviders/automanaged, which does the same
// with two flaws that matter here: it polls with an http.Client of its own,
// over http:// (so its endpoints cannot be served over TLS, and anyone who
// reaches a port could read the records or answer a poll with a record of
// its own), and its own constructor listens on 0.0.0.0 whatever the host.
// With Config.TLS this one serves the endpoint over TLS, requiring a client
// certificate from the cluster's CA, and polls over https, checking the
// peer's certificate: only nodes read records, and only nodes are read.
// The records are the same JSON as protoactor's (automanaged.NodeModel).
type automanagedProvider struct {
	clusterName string
	peers       []string
	refresh     time.Duration
	logger      *slog.Logger
	scheme      string
	client      *http.Client

	// server serves this member's record on lis (plain or TLS); nil for a
	// client, which serves none. port is the endpoint's port.
	server *http.Server
	lis    net.Listener
	port   int

	mu sync.Mutex
	// record is what the endpoint serves, set by StartMember; stop ends
	// the polling loop (nil before start and after Shutdown), done is
	// closed when it has returned; failing holds the last error of each
	// peer that failed its last poll, to log changes only. mu guards all
	// four.
	record  []byte
	stop    chan struct{}
	done    chan struct{}
	failing map[string]string
}

var _ protocluster.ClusterProvider = (*automanagedProvider)(nil)

// memberRecord is a member's record, the JSON of protoactor's
// automanaged.NodeModel.
type memberRecord struct {
	ID             string   `json:"id"`
	Address        string   `json:"address"`
	AutoManagePort int      `json:"auto_manage_port"`
	Port           int      `json:"port"`
	Kinds          []string `json:"kinds"`
	ClusterName    string   `json:"cluster_name"`
}

const (
	// automanagedPath is the membership endpoint's path (protoactor's).
	automanagedPath = "/_health"
	// automanagedPollTimeout bounds one poll of one peer (protoactor's
	// HTTP timeout).
	automanagedPollTimeout = 2 * time.Second
)

// newAutomanagedProvider builds the provider, listening (for a member) on
// cfg.Host:cfg.Automanaged.Port or on the given listener. serverTLS and
// clientTLS are nil without Config.TLS.
//
// It returns the provider, the endpoint's address and its raw listener (to
// close if the start fails before the provider serves it). A client only
// polls its peers; it serves no endpoint.
func newAutomanagedProvider(cfg *Config, logger *slog.Logger, client bool, serverTLS, clientTLS *tls.Config) (*automanagedProvider, string, net.Listener, error) {
	a := cfg.Automanaged
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: automanagedPollTimeout, KeepAlive: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
		TLSClientConfig:     clientTLS,
		// Peers are reached directly, never through a proxy.
		Proxy: nil,
	}
	p := &automanagedProvider{
		clusterName: cfg.ClusterName,
		peers:       slices.Clone(a.Peers),
		refresh:     a.RefreshInterval,
		logger:      logger.With(slog.String("provider", string(ProviderAutomanaged))),
		scheme:      "http",
		client:      &http.Client{Transport: transport, Timeout: automanagedPollTimeout},
		failing:     map[string]string{},
	}
	if clientTLS != nil {
		p.scheme = "https"
	}
	if client {
		return p, "", nil, nil
	}

	lis := a.Listener
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(a.Port)))
		if err != nil {
			return nil, "", nil, fmt.Errorf("cluster: automanaged: listen: %w", err)
		}
	}
	addr, ok := lis.Addr().(*net.TCPAddr)
	if !ok {
		return nil, "", nil, fmt.Errorf("cluster: automanaged: listener address %q is not TCP", lis.Addr())
	}
	p.port = addr.Port
	p.lis = lis
	if serverTLS != nil {
		p.lis = tls.NewListener(lis, serverTLS)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+automanagedPath, p.serveRecord)
	p.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: automanagedPollTimeout,
		ReadTimeout:       automanagedPollTimeout,
		WriteTimeout:      automanagedPollTimeout,
		IdleTimeout:       time.Minute,
		// TLS handshake failures (a peer without a certificate from the
		// cluster's CA) are worth an operator's look.
		ErrorLog: slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn),
	}
	return p, lis.Addr().String(), lis, nil
}

func (p *automanagedProvider) serveRecord(w http.ResponseWriter, _ *http.Request) {
	p.mu.Lock()
	record := p.record
	p.mu.Unlock()
	if record == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(record)
}

// StartMember serves this member's record and starts polling.
func (p *automanagedProvider) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("cluster: automanaged: node address: %w", err)
	}
	kinds := c.GetClusterKinds()
	slices.Sort(kinds)
	record, err := json.Marshal(memberRecord{ID: c.ActorSystem.ID, Address: host, Port: port,
		AutoManagePort: p.port, Kinds: kinds, ClusterName: p.clusterName})
	if err != nil {
		return fmt.Errorf("cluster: automanaged: record: %w", err)
	}
	p.mu.Lock()
	p.record = record
	p.mu.Unlock()
	go func() {
		if err := p.server.Serve(p.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.logger.Error("membership endpoint stopped", slog.Any("error", err))
		}
	}()
	p.startPolling(c.MemberList)
	return nil
}

// StartClient polls the members without serving a record.
func (p *automanagedProvider) StartClient(c *protocluster.Cluster) error {
	p.startPolling(c.MemberList)
	return nil
}

func (p *automanagedProvider) startPolling(ml *protocluster.MemberList) {
	stop, done := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.stop, p.done = stop, done
	p.mu.Unlock()
	go p.poll(ml, stop, done)
}

// poll polls the peers at once and then every refresh interval, until stop
// is closed.
func (p *automanagedProvider) poll(ml *protocluster.MemberList, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ticker := time.NewTicker(p.refresh)
	defer ticker.Stop()
	for {
		if members := p.pollOnce(ctx); members != nil {
			// A member that left gets blocked in protoactor's block
			// list, which connection goroutines read without its lock;
			// see raceSyncIO.
			raceSyncIO()
			ml.UpdateClusterTopology(members)
		}
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
	}
}

// pollOnce reads every peer's record and returns the members of this
// cluster among them, or nil if no peer answered (the topology is then
// left as it is: this node may be the one cut off).
func (p *automanagedProvider) pollOnce(ctx context.Context) []*protocluster.Member {
	records := make([]*memberRecord, len(p.peers))
	errs := make([]error, len(p.peers))
	var wg sync.WaitGroup
	for i, peer := range p.peers {
		wg.Go(func() { records[i], errs[i] = p.fetch(ctx, peer) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	var members []*protocluster.Member
	answered := false
	for i, peer := range p.peers {
		p.noteResult(peer, errs[i])
		r := records[i]
		if r == nil {
			continue
		}
		answered = true
		if r.ClusterName != p.clusterName {
			continue
		}
		members = append(members, &protocluster.Member{Id: r.ID, Host: r.Address, Port: int32(r.Port), Kinds: r.Kinds})
	}
	if !answered {
		return nil
	}
	if members == nil {
		members = []*protocluster.Member{}
	}
	return members
}

func (p *automanagedProvider) fetch(ctx context.Context, peer string) (*memberRecord, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.scheme+"://"+peer+automanagedPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	var r memberRecord
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&r); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &r, nil
}

// noteResult logs a peer's poll when its outcome changes: a peer that
// stops answering (down, or refusing this node's certificate, or
// presenting one the cluster's CA did not issue) at Warn once, not every
// refresh interval.
func (p *automanagedProvider) noteResult(peer string, err error) {
	p.mu.Lock()
	last, wasFailing := p.failing[peer]
	if err == nil {
		delete(p.failing, peer)
	} else {
		p.failing[peer] = err.Error()
	}
	p.mu.Unlock()
	switch {
	case err == nil && wasFailing:
		p.logger.Info("membership endpoint answers again", slog.String("peer", peer))
	case err != nil && (!wasFailing || last != err.Error()):
		p.logger.Warn("membership endpoint does not answer", slog.String("peer", peer), slog.Any("error", err))
	}
}

// Shutdown stops polling and serving: the others drop this member at their
// next poll.
func (p *automanagedProvider) Shutdown(bool) error {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	p.client.CloseIdleConnections()
	if p.server != nil {
		return p.server.Close()
	}
	return nil
}
