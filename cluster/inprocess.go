package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// InProcess is a membership registry for the nodes of one process: tests
// and the one-process dev mode. Create one per cluster and give it to every
// node's Config.InProcess.
//
// It replaces protoactor's clusterproviders/test, which in this build still
// panics in StartClient (it never sets its cluster, then logs through it)
// and never expires a member that stopped refreshing, so a killed member
// would stay in the topology for ever.
//
// A member refreshes its registration every memberTTL/3; a member not
// refreshed for memberTTL (a killed node) is dropped, the way Consul drops a
// service whose TTL check fails. A node that stops gracefully deregisters at
// once.
type InProcess struct {
	memberTTL time.Duration

	mu sync.Mutex
	// members by member ID; version counts changes to it, so that watchers
	// never apply an older snapshot after a newer one. watchers by node ID.
	// mu guards all three.
	members  map[string]*inProcessMember
	version  uint64
	watchers map[string]*inProcessWatcher
}

type inProcessMember struct {
	member   *protocluster.Member
	lastSeen time.Time
}

// inProcessWatcher pushes topology snapshots to one node's member list.
type inProcessWatcher struct {
	memberList *protocluster.MemberList
	// mu serializes pushes and guards applied, the version last pushed.
	mu      sync.Mutex
	applied uint64
}

// NewInProcess returns an empty registry that drops a member not refreshed
// for memberTTL. Tests use a short memberTTL (e.g. 1 s) so that a killed
// member leaves quickly; dev mode can use anything, nodes there only stop
// gracefully.
func NewInProcess(memberTTL time.Duration) *InProcess {
	if memberTTL <= 0 {
		panic(fmt.Sprintf("cluster: NewInProcess: memberTTL %v must be positive", memberTTL))
	}
	return &InProcess{
		memberTTL: memberTTL,
		members:   map[string]*inProcessMember{},
		watchers:  map[string]*inProcessWatcher{},
	}
}

// snapshotLocked returns the live members sorted by ID and the version.
// r.mu must be held.
func (r *InProcess) snapshotLocked() ([]*protocluster.Member, uint64) {
	out := make([]*protocluster.Member, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, m.member)
	}
	slices.SortFunc(out, func(a, b *protocluster.Member) int { return strings.Compare(a.Id, b.Id) })
	return out, r.version
}

// expireLocked drops members not refreshed for memberTTL. r.mu must be held.
func (r *InProcess) expireLocked(now time.Time) {
	for id, m := range r.members {
		if now.Sub(m.lastSeen) > r.memberTTL {
			delete(r.members, id)
			r.version++
		}
	}
}

// push gives the current topology to every watcher. It is called without
// r.mu held: UpdateClusterTopology publishes events synchronously, and their
// handlers must be free to call back.
func (r *InProcess) push() {
	r.mu.Lock()
	members, version := r.snapshotLocked()
	watchers := make([]*inProcessWatcher, 0, len(r.watchers))
	for _, w := range r.watchers {
		watchers = append(watchers, w)
	}
	r.mu.Unlock()
	for _, w := range watchers {
		w.update(members, version, false)
	}
}

// update applies a snapshot unless a newer one was applied. force applies
// an unchanged snapshot again: protoactor re-filters the topology through
// its block list only when it is given one.
func (w *inProcessWatcher) update(members []*protocluster.Member, version uint64, force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if version < w.applied || (version == w.applied && !force) {
		return
	}
	w.applied = version
	// A member leaving gets blocked in protoactor's block list, which
	// connection goroutines read without its lock; see raceSyncIO.
	raceSyncIO()
	// The member list may keep the slice; give it its own.
	w.memberList.UpdateClusterTopology(slices.Clone(members))
}

// inProcessProvider is one node's protoactor ClusterProvider over an
// InProcess registry.
type inProcessProvider struct {
	registry *InProcess

	mu sync.Mutex
	// id is the node's actor system ID; stop ends the refresh loop and is
	// nil before start and after it ended; done is closed when the loop has
	// returned. mu guards all three.
	id   string
	stop chan struct{}
	done chan struct{}
}

var _ protocluster.ClusterProvider = (*inProcessProvider)(nil)

func newInProcessProvider(r *InProcess) *inProcessProvider {
	return &inProcessProvider{registry: r}
}

// StartMember registers the node and starts refreshing it.
func (p *inProcessProvider) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("cluster: in-process provider: node address: %w", err)
	}
	member := &protocluster.Member{
		Id:    c.ActorSystem.ID,
		Host:  host,
		Port:  int32(port),
		Kinds: c.GetClusterKinds(),
	}
	slices.Sort(member.Kinds)
	r := p.registry
	r.mu.Lock()
	r.members[member.Id] = &inProcessMember{member: member, lastSeen: time.Now()}
	r.version++
	r.mu.Unlock()
	p.watch(c, true)
	return nil
}

// StartClient watches the topology without registering the node.
func (p *inProcessProvider) StartClient(c *protocluster.Cluster) error {
	p.watch(c, false)
	return nil
}

// watch adds the node as a watcher, pushes the topology and starts the loop
// that refreshes (a member) and re-applies the topology every memberTTL/3.
func (p *inProcessProvider) watch(c *protocluster.Cluster, member bool) {
	id := c.ActorSystem.ID
	w := &inProcessWatcher{memberList: c.MemberList}
	r := p.registry
	r.mu.Lock()
	r.watchers[id] = w
	r.mu.Unlock()

	stop, done := make(chan struct{}), make(chan struct{})
	p.mu.Lock()
	p.id, p.stop, p.done = id, stop, done
	p.mu.Unlock()

	r.push()
	go p.refresh(w, member, stop, done)
}

func (p *inProcessProvider) refresh(w *inProcessWatcher, member bool, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	r := p.registry
	ticker := time.NewTicker(r.memberTTL / 3)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			// Not the tick's time: a late tick would refresh this member
			// with a stale time and let the others expire it.
			now := time.Now()
			r.mu.Lock()
			if m, ok := r.members[p.id]; ok && member {
				m.lastSeen = now
			}
			before := r.version
			r.expireLocked(now)
			changed := r.version != before
			members, version := r.snapshotLocked()
			r.mu.Unlock()
			if changed {
				r.push()
			} else {
				w.update(members, version, true)
			}
		}
	}
}

// halt ends the refresh loop and stops watching; deregister also removes the
// registration (graceful) instead of leaving it to expire (a crash).
func (p *inProcessProvider) halt(deregister bool) {
	p.mu.Lock()
	id, stop, done := p.id, p.stop, p.done
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done

	r := p.registry
	r.mu.Lock()
	delete(r.watchers, id)
	_, registered := r.members[id]
	if deregister && registered {
		delete(r.members, id)
		r.version++
	}
	r.mu.Unlock()
	if deregister && registered {
		r.push()
	}
}

// Shutdown deregisters the node: the others see it leave at once.
func (p *inProcessProvider) Shutdown(bool) error {
	p.halt(true)
	return nil
}

// crash stops refreshing without deregistering, as a killed process would:
// the others drop the member after the registry's memberTTL.
func (p *inProcessProvider) crash() {
	p.halt(false)
}
