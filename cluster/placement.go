package cluster

// This file is protoactor-go's disthash identity lookup
// (cluster/identitylookup/disthash at the version in go.mod, Apache License
// 2.0, Copyright Asynkron AB) adapted for this package. The algorithm is
// unchanged: an identity belongs to the member that rendezvous hashing picks
// among the members hosting its kind, and each member's placement actor
// spawns the activations it owns and stops those whose owner changed. The
// changes:
//
//   - the placement actor indexes its activations by PID too. protoactor's
//     finds a stopped activation by scanning (and copying) every activation,
//     so each passivation costs O(active grains) on the one actor that also
//     serves every activation: stopping a member with 100k grains took
//     ~16 s of CPU, and steady passivation of a large population starves
//     activation;
//   - a member refuses to activate an identity it does not own in its own
//     topology (protoactor's spawns whatever it is asked): while two
//     members' topologies disagree (a join or a leave seen by one before the
//     other), the stale one would otherwise activate a grain beside its
//     owner's activation, or bring back one it has just stopped;
//   - an activation request waits the node's RequestTimeout, not a fixed
//     5 s that the call's own timeout cannot shorten, and no longer than
//     its owner stays in the topology: a request to a member that went
//     away may never be answered, and the caller should ask the new owner;
//   - clients run no placement actor (they own no activations);
//   - ActivationTerminated is broadcast to the members of the node's own
//     topology snapshot: protoactor's MemberList.BroadcastEvent reads its
//     member set without the lock that topology updates hold (a data race
//     whenever a grain stops while the topology changes);
//   - Setup runs a hook first (see start), Shutdown may be called twice;
//   - no metrics (this package does not enable protoactor's).

import (
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// placementActorName is the placement actor's name on every member; the
// same as protoactor's disthash, so that the two could share a cluster.
const placementActorName = "partition-activator"

// placementLookup implements protoactor's IdentityLookup.
type placementLookup struct {
	// activationTimeout bounds an activation request to the owner.
	activationTimeout time.Duration
	// members returns the current topology (not to be modified).
	members func() []*protocluster.Member
	// watch follows one member's presence in the topology (Node.watchMember).
	watch func(address string) (memberWatch, bool)
	// onSetup, if set, runs first in Setup.
	onSetup func(c *protocluster.Cluster)

	// Set by Setup, read-only after.
	cluster     *protocluster.Cluster
	placement   *actor.PID // nil on a client
	topologySub *eventstream.Subscription

	// rdvMu guards rdv, replaced at every topology change.
	rdvMu sync.RWMutex
	rdv   *protocluster.Rendezvous

	shutdownOnce sync.Once
}

var _ protocluster.IdentityLookup = (*placementLookup)(nil)

func newPlacementLookup(activationTimeout time.Duration, members func() []*protocluster.Member,
	watch func(address string) (memberWatch, bool)) *placementLookup {
	return &placementLookup{activationTimeout: activationTimeout, members: members, watch: watch, rdv: protocluster.NewRendezvous()}
}

// Setup starts the placement actor (members) and follows the topology.
// protoactor calls it right after starting the remote.
func (l *placementLookup) Setup(c *protocluster.Cluster, _ []string, isClient bool) {
	if l.onSetup != nil {
		l.onSetup(c)
	}
	l.cluster = c
	system := c.ActorSystem
	if !isClient {
		props := actor.PropsFromProducer(func() actor.Actor { return newPlacementActor(c, l.broadcastTerminated) })
		pid, err := system.Root.SpawnNamed(props, placementActorName)
		if err != nil {
			// protoactor reports start failures by panicking; start
			// recovers it into an error.
			panic(err)
		}
		l.placement = pid
	}
	l.topologySub = system.EventStream.Subscribe(func(evt any) {
		if topology, ok := evt.(*protocluster.ClusterTopology); ok {
			l.onTopology(topology)
		}
	})
}

func (l *placementLookup) onTopology(topology *protocluster.ClusterTopology) {
	rdv := protocluster.NewRendezvous()
	rdv.UpdateMembers(topology.Members)
	l.rdvMu.Lock()
	l.rdv = rdv
	l.rdvMu.Unlock()
	if l.placement != nil {
		l.cluster.ActorSystem.Root.Send(l.placement, topology)
	}
}

// Get returns the PID of the identity's activation, asking its owner to
// activate it if needed, or nil if no member hosts the kind, or the owner
// did not answer in time or left the topology first.
func (l *placementLookup) Get(ci *protocluster.ClusterIdentity) *actor.PID {
	l.rdvMu.RLock()
	owner := l.rdv.GetByClusterIdentity(ci)
	l.rdvMu.RUnlock()
	if owner == "" {
		return nil
	}
	left, departed := l.watch(owner)
	if departed {
		return nil // the topology changed since the hash was read
	}
	req := &protocluster.ActivationRequest{ClusterIdentity: ci}
	reply, err := awaitFuture(l.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(owner, placementActorName), req, l.activationTimeout), left)
	if err != nil {
		return nil
	}
	resp, ok := reply.(*protocluster.ActivationResponse)
	if !ok || resp.GetFailed() {
		return nil
	}
	return resp.GetPid()
}

// awaitFuture returns f's result, or errMemberLeft as soon as left says
// the member asked has left the topology. A member that went away between
// the caller's look at the topology and its answer (a kill, or a leave
// whose remote stopped first) never answers: without this the caller
// would wait the whole timeout (the node's RequestTimeout), and a member's
// call, which has no more time than that, would fail instead of asking
// the new owner. The future's goroutine ends with its timeout.
func awaitFuture(f actor.Future, left memberWatch) (any, error) {
	type result struct {
		reply any
		err   error
	}
	done := make(chan result, 1)
	go func() {
		reply, err := f.Result()
		done <- result{reply, err}
	}()
	for {
		select {
		case r := <-done:
			return r.reply, r.err
		case <-left.changed:
			var gone bool
			if left, gone = left.again(); gone {
				return nil, errMemberLeft
			}
		}
	}
}

// RemovePid tells every member that pid no longer serves ci.
func (l *placementLookup) RemovePid(ci *protocluster.ClusterIdentity, pid *actor.PID) {
	l.broadcastTerminated(ci, pid)
}

// broadcastTerminated publishes ActivationTerminated on the event stream of
// every member, this one included (as MemberList.BroadcastEvent does).
func (l *placementLookup) broadcastTerminated(ci *protocluster.ClusterIdentity, pid *actor.PID) {
	msg := &protocluster.ActivationTerminated{Pid: pid, ClusterIdentity: ci}
	root := l.cluster.ActorSystem.Root
	for _, m := range l.members() {
		root.Send(actor.NewPID(m.Address(), "eventstream"), msg)
	}
}

// Shutdown stops following the topology and stops the placement actor,
// which stops every activation and waits for them.
func (l *placementLookup) Shutdown() {
	l.shutdownOnce.Do(func() {
		if l.cluster == nil {
			return // never set up
		}
		system := l.cluster.ActorSystem
		system.EventStream.Unsubscribe(l.topologySub)
		if l.placement != nil {
			if err := system.Root.PoisonFuture(l.placement).Wait(); err != nil {
				l.cluster.Logger().Error("stop placement actor", slog.Any("error", err))
			}
		}
	})
}

// activation is one grain activation owned by this member.
type activation struct {
	identity *protocluster.ClusterIdentity
	pid      *actor.PID
}

// placementActor spawns and tracks this member's activations. It is an
// actor: one message at a time, so its maps need no lock.
type placementActor struct {
	cluster *protocluster.Cluster
	// broadcastTerminated tells every member that an activation stopped.
	broadcastTerminated func(*protocluster.ClusterIdentity, *actor.PID)
	// byKey holds the activations by ClusterIdentity.AsKey(); keyByPID
	// maps each activation's PID.Id back to its key. Invariant: both hold
	// the same activations.
	byKey    map[string]activation
	keyByPID map[string]string
	// owners is the member's latest topology (nil before the first): an
	// activation is spawned only for an identity it owns there.
	owners *protocluster.Rendezvous
}

func newPlacementActor(c *protocluster.Cluster, broadcastTerminated func(*protocluster.ClusterIdentity, *actor.PID)) *placementActor {
	return &placementActor{cluster: c, broadcastTerminated: broadcastTerminated, byKey: map[string]activation{}, keyByPID: map[string]string{}}
}

func (p *placementActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *protocluster.ActivationRequest:
		p.onActivationRequest(ctx, msg)
	case *actor.Terminated:
		p.onTerminated(msg)
	case *protocluster.ClusterTopology:
		p.onTopology(ctx, msg)
	case *actor.Stopping:
		p.onStopping(ctx)
	case *actor.Started, *actor.Stopped:
	default:
		ctx.Logger().Error("placement actor: unexpected message", slog.Any("message", msg), slog.Any("sender", ctx.Sender()))
	}
}

func (p *placementActor) onActivationRequest(ctx actor.Context, msg *protocluster.ActivationRequest) {
	ci := msg.GetClusterIdentity()
	key := ci.AsKey()
	if p.owners != nil && p.owners.GetByClusterIdentity(ci) != p.cluster.ActorSystem.Address() {
		// Not ours in this member's topology: the requester's is ahead or
		// behind. Spawning would make a second activation beside the
		// owner's (or keep one that onTopology is stopping); the requester
		// retries once the topologies agree.
		ctx.Respond(&protocluster.ActivationResponse{Failed: true})
		return
	}
	if a, ok := p.byKey[key]; ok {
		ctx.Respond(&protocluster.ActivationResponse{Pid: a.pid})
		return
	}
	kind, ok := p.cluster.TryGetClusterKind(ci.GetKind())
	if !ok {
		ctx.Logger().Error("placement actor: activation of a kind this member does not host", slog.String("kind", ci.GetKind()))
		ctx.Respond(&protocluster.ActivationResponse{Failed: true})
		return
	}
	pid, err := ctx.SpawnNamed(protocluster.WithClusterIdentity(kind.Props, ci), ci.GetIdentity()+p.cluster.ActorSystem.ProcessRegistry.NextID())
	if err != nil {
		ctx.Logger().Error("placement actor: spawn", slog.String("identity", key), slog.Any("error", err))
		ctx.Respond(&protocluster.ActivationResponse{Failed: true})
		return
	}
	kind.Inc()
	p.byKey[key] = activation{identity: ci, pid: pid}
	p.keyByPID[pid.GetId()] = key
	ctx.Respond(&protocluster.ActivationResponse{Pid: pid})
}

// onTerminated forgets a stopped activation (passivated, moved, or stopped
// with the member) and tells every member, so that they drop it from their
// PID caches.
func (p *placementActor) onTerminated(msg *actor.Terminated) {
	who := msg.GetWho()
	key, ok := p.keyByPID[who.GetId()]
	if !ok {
		return // not an activation of ours
	}
	a := p.byKey[key]
	delete(p.keyByPID, who.GetId())
	delete(p.byKey, key)
	if kind, ok := p.cluster.TryGetClusterKind(a.identity.GetKind()); ok {
		kind.Dec()
	}
	p.broadcastTerminated(a.identity, who)
}

// onTopology stops the activations this member no longer owns; their next
// call activates them at the new owner.
func (p *placementActor) onTopology(ctx actor.Context, topology *protocluster.ClusterTopology) {
	rdv := protocluster.NewRendezvous()
	rdv.UpdateMembers(topology.Members)
	p.owners = rdv
	self := p.cluster.ActorSystem.Address()
	for _, a := range p.byKey {
		if rdv.GetByClusterIdentity(a.identity) != self {
			ctx.Poison(a.pid)
		}
	}
}

// onStopping stops every activation and waits for them (each finishes the
// messages already in its mailbox first).
func (p *placementActor) onStopping(ctx actor.Context) {
	futures := make([]actor.Future, 0, len(p.byKey))
	for _, a := range p.byKey {
		futures = append(futures, ctx.PoisonFuture(a.pid))
	}
	for _, f := range futures {
		if err := f.Wait(); err != nil {
			ctx.Logger().Error("placement actor: stop activation", slog.Any("error", err))
		}
	}
}
