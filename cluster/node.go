package cluster

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/emptypb"
)

// statsActorName is the name of the actor every member runs to answer
// MemberStatsRequest (see Members).
const statsActorName = "mastertrust-stats"

// endpointConnectAttempts is how many times protoactor's endpoint writer
// tries to connect to a peer before giving up. Its default, 5, blocks the
// writer (and every message queued for that peer, and the node's stop) for
// 5 × 2 s when the peer is dead, and leaks a gRPC client connection per
// failed attempt but the last, each redialling the dead address for ever.
// With 1 the writer gives up after one attempt and a 2 s pause, answers the
// queued requests with dead letters (so callers retry through the lookup),
// closes its one connection, and the next message to the peer tries again.
const endpointConnectAttempts = 1

// Node is one cluster node: a member that hosts grains (Start) or a client
// that only calls them (StartClient). Its methods are safe for concurrent
// use.
type Node struct {
	cfg      Config
	client   bool
	logger   *slog.Logger
	system   *actor.ActorSystem
	cluster  *protocluster.Cluster
	provider protocluster.ClusterProvider
	// inProcess is provider when it is the in-process one (Kill crashes
	// it instead of shutting it down).
	inProcess *inProcessProvider
	// healthAddress is the automanaged health endpoint, "" for other
	// providers; healthListener is its listener, closed by abortStart
	// (once served, the provider's Shutdown closes it).
	healthAddress  string
	healthListener net.Listener
	// clientTLS is the configuration this node dials its peers with, nil
	// without Config.TLS.
	clientTLS *tls.Config
	address   string
	subs      []*eventstream.Subscription
	// slots are the reply slots of Request; callIDs numbers its calls.
	slots   replySlots
	callIDs atomic.Uint64

	// stopOnce makes Stop and Kill run once; stopDone is closed when the
	// one that ran has finished.
	stopOnce sync.Once
	stopDone chan struct{}
	// stopMu guards stopping, set by Stop and Kill. calls counts Calls and
	// Members requests in flight; Add only through enter (under stopMu,
	// while not stopping), so that markStopping's Wait sees them all. An
	// RWMutex because every call takes it.
	stopMu   sync.RWMutex
	stopping bool
	calls    sync.WaitGroup
	// serviceCalls counts the member service requests being answered
	// (see stopServices).
	serviceCalls sync.WaitGroup

	mu sync.Mutex
	// members is the latest topology this node has seen, sorted by
	// address, and addresses their addresses in the same order (a call
	// checks its member among them without building each address);
	// changed is closed and replaced whenever it changes; raceProbe is
	// the race workaround's connection (nil in normal builds). mu guards
	// them all.
	members   []*protocluster.Member
	addresses []string
	changed   chan struct{}
	raceProbe io.Closer
}

// Start starts a member: an actor system, its remote on cfg.Host:cfg.Port,
// and a cluster member hosting cfg.Kinds, placed by rendezvous hashing (our
// copy of protoactor's disthash identity lookup, see placement.go).
// It returns once the member has registered with the provider; protoactor
// then waits one more second for the topology to spread, so Start takes at
// least that long. Use WaitForMembers before relying on placement.
func Start(cfg Config) (*Node, error) {
	return start(cfg, false)
}

// StartClient starts a client-only node: it joins the cluster to call
// grains and hosts none (gateways). Other nodes do not see it as a member.
func StartClient(cfg Config) (*Node, error) {
	return start(cfg, true)
}

func start(cfg Config, client bool) (n *Node, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(client); err != nil {
		return nil, err
	}
	role := "member"
	if client {
		role = "client"
	}

	// See startMu. It is released by the identity lookup's Setup, which
	// protoactor calls right after starting the remote (the one point inside
	// StartMember and StartClient between "remote started" and "provider
	// started"), or on return if the start fails first.
	var unlockOnce sync.Once
	unlock := func() { unlockOnce.Do(startMu.Unlock) }
	startMu.Lock()
	defer unlock()

	kinds := make([]*protocluster.Kind, 0, len(cfg.Kinds))
	for _, k := range cfg.Kinds {
		idleTimeout := cfg.IdleTimeout
		if k.IdleTimeout > 0 {
			idleTimeout = k.IdleTimeout
		}
		pk := k.New(idleTimeout)
		if pk == nil || pk.Kind != k.Name {
			got := "nil"
			if pk != nil {
				got = fmt.Sprintf("%q", pk.Kind)
			}
			return nil, fmt.Errorf("cluster: kind %q: New returned kind %s", k.Name, got)
		}
		kinds = append(kinds, pk)
	}

	n = &Node{
		cfg:      cfg,
		client:   client,
		logger:   cfg.Logger.With(slog.String("component", "cluster")),
		changed:  make(chan struct{}),
		stopDone: make(chan struct{}),
	}
	libraryHandler := newLibraryHandler(cfg.Logger.Handler(), cfg.LibraryLogLevel, n.peerUnreachable)
	n.system = actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(system *actor.ActorSystem) *slog.Logger {
			return slog.New(libraryHandler).With(slog.String("lib", "protoactor"), slog.String("node", system.ID))
		}),
	))
	n.logger = n.logger.With(slog.String("node", n.system.ID))

	serverTLS, clientTLS, err := cfg.TLS.load()
	if err != nil {
		return nil, fmt.Errorf("cluster: start %s: %w", role, err)
	}
	n.clientTLS = clientTLS

	switch cfg.Provider {
	case ProviderInProcess:
		n.inProcess = newInProcessProvider(cfg.InProcess)
		n.provider = n.inProcess
	case ProviderAutomanaged:
		var p *automanagedProvider
		p, n.healthAddress, n.healthListener, err = newAutomanagedProvider(&cfg, n.logger, client, serverTLS, clientTLS)
		if err == nil {
			n.provider = p
		}
	case ProviderKV:
		n.provider = newKVProvider(&cfg, n.logger)
	default: // external, checked by Validate
		n.provider, err = cfg.NewExternalProvider()
		if err == nil && n.provider == nil {
			err = errors.New("NewExternalProvider returned nil")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: start %s: provider %s: %w", role, cfg.Provider, err)
	}

	remoteOptions := []remote.ConfigOption{}
	if cfg.AdvertisedAddress != "" {
		remoteOptions = append(remoteOptions, remote.WithAdvertisedHost(cfg.AdvertisedAddress))
	}
	if serverTLS != nil {
		remoteOptions = append(remoteOptions, remoteTLSOptions(serverTLS, clientTLS)...)
	}
	remoteConfig := remote.Configure(cfg.Host, cfg.Port, remoteOptions...)
	remoteConfig.MaxRetryCount = endpointConnectAttempts
	lookup := newPlacementLookup(cfg.RequestTimeout, n.topologyMembers, n.watchMember)
	clusterConfig := protocluster.Configure(cfg.ClusterName, n.provider, lookup,
		remoteConfig,
		protocluster.WithKinds(kinds...),
		protocluster.WithRequestTimeout(cfg.RequestTimeout),
		protocluster.WithHeartbeatExpiration(cfg.HeartbeatExpiration),
	)
	clusterConfig.GossipInterval = cfg.GossipInterval
	n.cluster = protocluster.New(n.system, clusterConfig)

	// Subscribe before starting so that no topology is missed.
	n.subs = append(n.subs,
		n.system.EventStream.Subscribe(n.onEvent),
	)

	raceSyncIO()
	var probeErr, spawnErr error
	lookup.onSetup = func(c *protocluster.Cluster) {
		probe, err := raceProbe(c.ActorSystem.Address(), n.clientTLS)
		n.mu.Lock()
		n.raceProbe = probe
		n.mu.Unlock()
		probeErr = err
		unlock()
		if !client && err == nil {
			// The remote is up and the provider registers the member
			// next (protoactor then sleeps a second before StartMember
			// returns): the others call it from then on, so its own
			// actors must be there already.
			spawnErr = n.spawnMemberActors()
		}
	}

	if err := protect(func() error {
		if client {
			n.cluster.StartClient()
		} else {
			n.cluster.StartMember()
		}
		return nil
	}); err != nil {
		n.abortStart()
		return nil, fmt.Errorf("cluster: start %s on %s:%d: %w", role, cfg.Host, cfg.Port, err)
	}
	if err := cmp.Or(probeErr, spawnErr); err != nil {
		n.abortStart()
		return nil, err
	}
	n.address = n.system.Address()
	n.logger.Info("cluster node started", slog.String("role", role), slog.String("address", n.address),
		slog.String("provider", string(cfg.Provider)), slog.String("kinds", strings.Join(n.kindNames(), ",")))
	return n, nil
}

// spawnMemberActors spawns what a member answers its peers with: the stats
// actor (Members) and the member services (CallMembers).
func (n *Node) spawnMemberActors() error {
	if _, err := n.system.Root.SpawnNamed(actor.PropsFromFunc(n.receiveStats), statsActorName); err != nil {
		return fmt.Errorf("cluster: start member: spawn stats actor: %w", err)
	}
	if err := n.spawnServices(); err != nil {
		return fmt.Errorf("cluster: start member: %w", err)
	}
	return nil
}

// protect runs f, turning a panic into an error: protoactor reports start
// failures (a port in use, a provider error) by panicking, and panics in
// some shutdown paths.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("protoactor panicked: %w", e)
			} else {
				err = fmt.Errorf("protoactor panicked: %v", r)
			}
		}
	}()
	return f()
}

// abortStart releases what a failed start may have started, best effort:
// some of it was never started, so failures are only logged at Debug.
func (n *Node) abortStart() {
	n.system.Shutdown()
	abort := func(name string, f func() error) {
		if err := protect(f); err != nil {
			n.logger.Debug("abort start: "+name, slog.Any("error", err))
		}
	}
	// Graceful: a provider that registered the member before the start
	// failed (kv) deregisters it instead of leaving it to expire.
	abort("provider shutdown", func() error { return n.provider.Shutdown(true) })
	if n.cluster.Remote != nil {
		abort("remote shutdown", func() error { n.cluster.Remote.Shutdown(false); return nil })
	}
	if n.healthListener != nil {
		abort("close health listener", n.healthListener.Close)
	}
	n.finishStop()
}

// onEvent handles the actor system's events.
func (n *Node) onEvent(evt any) {
	switch e := evt.(type) {
	case *protocluster.ClusterTopology:
		// Published right after protoactor blocked the members that left
		// (whatever the provider); see raceSyncIO.
		raceSyncIO()
		members := slices.Clone(e.Members)
		slices.SortFunc(members, func(a, b *protocluster.Member) int { return strings.Compare(a.Address(), b.Address()) })
		addresses := make([]string, len(members))
		for i, m := range members {
			addresses[i] = m.Address()
		}
		n.mu.Lock()
		n.members, n.addresses = members, addresses
		close(n.changed)
		n.changed = make(chan struct{})
		n.mu.Unlock()
	case *protocluster.ActivationTerminated:
		// protoactor broadcasts this to every member when an activation
		// stops (passivation, move) but nothing in this build listens to
		// it, so callers kept a dead PID in their cache until a call hit a
		// dead letter. Drop it now. Clients get no broadcast (they are not
		// members) and still go through the dead letter and the retry.
		if ci := e.GetClusterIdentity(); ci != nil && e.GetPid() != nil {
			n.cluster.PidCache.RemoveByValue(ci.GetIdentity(), ci.GetKind(), e.GetPid())
		}
	}
}

// topologyMembers returns the latest topology this node has seen. The
// slice is replaced, never modified, so it may be read without the lock.
func (n *Node) topologyMembers() []*protocluster.Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members
}

// Address is the host:port other nodes reach this node at.
func (n *Node) Address() string { return n.address }

// ID is the node's member ID (protoactor's actor system ID), new at every
// start.
func (n *Node) ID() string { return n.system.ID }

// IsClient reports whether the node is client-only.
func (n *Node) IsClient() bool { return n.client }

// HealthAddress is the automanaged provider's health endpoint (host:port),
// or "" for other providers and clients.
func (n *Node) HealthAddress() string { return n.healthAddress }

// Cluster is the protoactor cluster, for the generated grain clients:
// pb.GetCycleGrainClient(node.Cluster(), id). Call them through Call to get
// this node's timeout, retries and typed errors (or use Request, the lean
// call of the pots' hot path).
func (n *Node) Cluster() *protocluster.Cluster { return n.cluster }

// Config returns the node's configuration, defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// kindNames returns the kinds the node hosts, sorted.
func (n *Node) kindNames() []string {
	names := make([]string, 0, len(n.cfg.Kinds))
	for _, k := range n.cfg.Kinds {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return names
}

// memberWatch tells a waiting call when the member it called leaves: changed
// is closed at the next change of the topology, and gone then says whether
// the member is out of it (again watches the change after).
type memberWatch struct {
	changed <-chan struct{}
	n       *Node
	address string
}

// watchMember looks address up in this node's topology once, for a call
// about to be sent there. departed reports another node's address that is
// not in the topology: a member that has left (or a client's, which hosts
// no grain), where nothing should be sent. Otherwise the watch tells the
// waiting call when that member leaves; it never fires for this node, nor
// for an address that was not a member when the watch began.
func (n *Node) watchMember(address string) (w memberWatch, departed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	w = memberWatch{n: n, address: address}
	self := address == n.address
	member := slices.Contains(n.addresses, address)
	if !self && member {
		w.changed = n.changed
	}
	return w, !self && !member
}

// again is called when w.changed fires: it reports whether the member has
// left, and otherwise returns the watch of the next change. Both under one
// lock, so that a leave between the two is not missed.
func (w memberWatch) again() (next memberWatch, gone bool) {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if !slices.Contains(w.n.addresses, w.address) {
		return w, true
	}
	w.changed = w.n.changed
	return w, false
}

// peerUnreachable publishes that the endpoint writer failed to connect to
// address (libraryHandler hears it from protoactor's log), for the
// membership provider to probe it. protoactor's own EndpointTerminatedEvent
// comes 2 s later, and it is the only one a member gets about a peer killed
// while their connection was idle or already closed: the kv provider would
// otherwise drop that peer only then, or when its record expires.
// It runs on the endpoint writer's goroutine, which starts after
// n.system is set.
func (n *Node) peerUnreachable(address string) {
	n.system.EventStream.Publish(&peerUnreachableEvent{address: address})
}

// peerUnreachableEvent: see Node.peerUnreachable.
type peerUnreachableEvent struct{ address string }

// MemberAddresses is the members' addresses in this node's topology,
// sorted, without asking them anything (Members asks each for its report).
func (n *Node) MemberAddresses() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.addresses)
}

// WaitForMembers waits until this node's topology has at least count members
// (clients are not members) or ctx ends. Placement follows the topology, so
// after it the node routes calls to all of them.
func (n *Node) WaitForMembers(ctx context.Context, count int) error {
	for {
		n.mu.Lock()
		have, changed := len(n.members), n.changed
		n.mu.Unlock()
		if have >= count {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("cluster: node %s waiting for %d members, have %d: %w", n.address, count, have, ctx.Err())
		}
	}
}

// Stop leaves the cluster gracefully: the node stops taking calls and waits
// for its own in-flight ones, deregisters (the others route elsewhere at
// once), stops its grains (each finishes what is in its mailbox and runs
// Terminate), gives their last replies leaveDrain to go out, then stops
// gossip and the remote. If ctx ends first Stop returns its error and the
// shutdown finishes in the background. For SIGTERM.
func (n *Node) Stop(ctx context.Context) error {
	n.stopOnce.Do(func() {
		go func() {
			defer n.finishStop()
			n.markStopping()
			n.stopGracefully()
		}()
	})
	select {
	case <-n.stopDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: stop node %s: %w", n.address, ctx.Err())
	}
}

// leaveDrain is how long a leaving member keeps its remote up after its
// grains stopped, so that their last replies leave the endpoint queues
// (stopping an endpoint drops what is queued). protoactor's own Shutdown
// waits 2 s here "for ownership transfer", which the disthash lookup does
// not do.
const leaveDrain = 300 * time.Millisecond

// markStopping makes Call and Members refuse new work and waits for the
// ones in flight, which end by their own deadline at the latest. Waiting
// also orders their use of the remote before its shutdown.
func (n *Node) markStopping() {
	n.stopMu.Lock()
	n.stopping = true
	n.stopMu.Unlock()
	n.calls.Wait()
}

// enter registers a call or members request, or reports false if the node
// is stopping. The caller must call n.calls.Done when it ends.
func (n *Node) enter() bool {
	n.stopMu.RLock()
	defer n.stopMu.RUnlock()
	if n.stopping {
		return false
	}
	n.calls.Add(1)
	return true
}

// stopGracefully is Stop's work. It does what protoactor's
// Cluster.Shutdown(true) does, reordered and without its fixed 2 s sleep:
// that one marks the system stopped first, stops the remote's endpoints
// while peers are still sending (data races in this build), and panics on a
// client (it logs through the gossiper's throttle, which only StartMember
// creates).
func (n *Node) stopGracefully() {
	if !n.client {
		n.stopServices()
		// Peers that still gossip with us block us as having left.
		n.cluster.Gossip.SetState(protocluster.GracefullyLeftKey, &emptypb.Empty{})
	}
	n.step("provider shutdown", func() error { return n.provider.Shutdown(true) })
	if !n.client {
		// Once out of the others' topology: while listed, a member answers
		// their Members (GET /v1/cluster).
		n.system.Root.Stop(actor.NewPID(n.address, statsActorName))
	}
	// Stops the placement actor, which poisons every grain and waits.
	n.step("identity lookup shutdown", noError(n.cluster.IdentityLookup.Shutdown))
	if !n.client {
		time.Sleep(leaveDrain)
	}
	n.stopRemote()
	n.logger.Info("cluster node left", slog.String("address", n.address))
}

// Kill stops the node the way a crash would, as far as the others can tell:
// no deregistration, its connections cut. The others notice through the
// provider (the in-process registry's member TTL, the automanaged health
// endpoint going away) or the gossip heartbeat expiry. For tests of
// failover; in production a process just dies. Unlike a crash, the node's
// grains stop first (for the race detector: their use of the remote must
// end before it stops), so they run Terminate and the others drop their
// cached PIDs.
func (n *Node) Kill() {
	n.stopOnce.Do(func() {
		n.markStopping()
		defer n.finishStop()
		n.kill()
	})
	<-n.stopDone
}

func (n *Node) kill() {
	if n.inProcess != nil {
		n.inProcess.crash()
	} else {
		// Other providers notice a dead node by its endpoint going away
		// or its record expiring (kv), which is what their Shutdown(false)
		// does; deregistering providers (consul, etcd) would also
		// deregister, so a kill there is only approximate.
		n.step("provider shutdown", func() error { return n.provider.Shutdown(false) })
	}
	n.step("identity lookup shutdown", noError(n.cluster.IdentityLookup.Shutdown))
	n.stopRemote()
	n.logger.Info("cluster node killed", slog.String("address", n.address))
}

// stopRemote stops gossip and the remote without protoactor's
// Remote.Shutdown(true). That one stops the endpoint manager by writing
// fields (stopped, connections) that every send and every connection
// goroutine reads without synchronization; a peer connection that breaks at
// that moment reads them concurrently (the race detector sees it, and a late
// event would dereference the nil connections). Here nothing is written:
// the gRPC server is stopped, then the actors behind the endpoints.
func (n *Node) stopRemote() {
	// Marks the system stopped: the gossip loop ends at its next tick.
	n.system.Shutdown()
	if !n.client {
		// Stop the gossip actor (and wait) so that it sends nothing more.
		n.step("gossip shutdown", noError(n.cluster.Gossip.Shutdown))
	}
	// Stop (not GracefulStop, which would wait for the peers' streams to
	// us to end) closes incoming streams and waits for their handlers.
	n.step("remote server stop", func() error { n.cluster.Remote.Shutdown(false); return nil })
	// Stopping the endpoint supervisor stops its children, the endpoint
	// writers and watchers, which close the outgoing connections; later
	// sends find no supervisor and become dead letters. The names are
	// protoactor's (remote/endpoint_manager.go); stopping a name that does
	// not exist returns at once.
	for _, name := range []string{"EndpointSupervisor", "activator"} {
		pid := n.system.NewLocalPID(name)
		n.step("stop remote "+name, n.system.Root.StopFuture(pid).Wait)
	}
}

// step runs one shutdown step, logging (not propagating) a failure or a
// panic: a shutdown goes on as far as it can.
func (n *Node) step(name string, f func() error) {
	if err := protect(f); err != nil {
		n.logger.Warn("cluster node stop: "+name, slog.Any("error", err))
	}
}

// noError adapts a step that reports no error.
func noError(f func()) func() error {
	return func() error { f(); return nil }
}

// finishStop releases what the node holds after protoactor stopped.
func (n *Node) finishStop() {
	for _, s := range n.subs {
		n.system.EventStream.Unsubscribe(s)
	}
	n.mu.Lock()
	probe := n.raceProbe
	n.raceProbe = nil
	n.mu.Unlock()
	if probe != nil {
		if err := probe.Close(); err != nil {
			n.logger.Debug("close race probe", slog.Any("error", err))
		}
	}
	close(n.stopDone)
}

// deadline returns the earlier of ctx's deadline and now+timeout.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if ctxDeadline, ok := ctx.Deadline(); ok && ctxDeadline.Before(d) {
		return ctxDeadline
	}
	return d
}
