package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
)

// MemberStore is the shared key-value store ProviderKV keeps the members'
// records in: in production a NATS JetStream KV bucket whose entries
// expire (package cluster/natskv). It is an interface so that this package
// does not link a NATS client: gateways import it, and must not.
type MemberStore interface {
	// Put stores value under key (a member ID), replacing what was there.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// Watch delivers every entry in the store, then an event with Synced
	// set, then every change, until ctx ends or the watch fails; either
	// way the channel is closed.
	Watch(ctx context.Context) (<-chan MemberStoreEvent, error)
}

// MemberStoreEvent is one entry of a MemberStore's watch.
type MemberStoreEvent struct {
	// Key is the member ID ("" on the Synced event).
	Key string
	// Value is the record; nil when the key was deleted or expired.
	Value []byte
	// Synced marks the end of the entries that were there when the watch
	// started.
	Synced bool
}

// kvProvider is ProviderKV: every member puts its record (the automanaged
// provider's JSON, memberRecord) into a shared MemberStore under its member
// ID, again every heartbeat, and every node (clients too) watches the store
// and gives protoactor the records it holds as the topology. Nodes join by
// starting with the same store, and leave by deleting their record (a
// graceful stop) or by no longer putting it: the store drops it after its
// TTL, and so does every watcher (see prune). A member whose process has
// died is dropped sooner: see probe.
type kvProvider struct {
	store       MemberStore
	clusterName string
	heartbeat   time.Duration
	ttl         time.Duration
	logger      *slog.Logger

	mu sync.Mutex
	// key and record are this member's ("" and nil for a client); cancel
	// stops the loops (nil before start and after Shutdown), done is
	// closed when they have returned. mu guards all four.
	key    string
	record []byte
	cancel context.CancelFunc
	done   chan struct{}

	// lost receives the addresses whose connection protoactor lost (its
	// EndpointTerminatedEvent), for the watch loop; sub is that
	// subscription (nil when none).
	lost chan string
	sub  *eventstream.Subscription
	es   *eventstream.EventStream
}

var _ protocluster.ClusterProvider = (*kvProvider)(nil)

// kvDeleteTimeout bounds the deletion of a member's record on a graceful
// stop: a store that does not answer leaves the record to expire.
const kvDeleteTimeout = 2 * time.Second

func newKVProvider(cfg *Config, logger *slog.Logger) *kvProvider {
	return &kvProvider{
		store:       cfg.KV.Store,
		clusterName: cfg.ClusterName,
		heartbeat:   cfg.KV.Heartbeat,
		ttl:         cfg.KV.TTL,
		logger:      logger.With(slog.String("provider", string(ProviderKV))),
	}
}

// StartMember puts this member's record (failing the start if the store
// refuses it) and starts the heartbeat and the watch.
func (p *kvProvider) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("cluster: kv: node address: %w", err)
	}
	kinds := c.GetClusterKinds()
	slices.Sort(kinds)
	record, err := json.Marshal(memberRecord{ID: c.ActorSystem.ID, Address: host, Port: port,
		Kinds: kinds, ClusterName: p.clusterName})
	if err != nil {
		return fmt.Errorf("cluster: kv: record: %w", err)
	}
	key := c.ActorSystem.ID
	ctx, cancel := context.WithTimeout(context.Background(), p.ttl)
	err = p.store.Put(ctx, key, record)
	cancel()
	if err != nil {
		return fmt.Errorf("cluster: kv: register member %s: %w", key, err)
	}
	p.mu.Lock()
	p.key, p.record = key, record
	p.mu.Unlock()
	// If the watch fails, the start fails, and the node's abortStart
	// deletes the record through Shutdown.
	return p.start(c, true)
}

// StartClient watches the members without registering.
func (p *kvProvider) StartClient(c *protocluster.Cluster) error {
	return p.start(c, false)
}

// start opens the watch, failing the start if the store refuses it (a
// node that cannot watch would never see a member), and starts the loops.
func (p *kvProvider) start(c *protocluster.Cluster, member bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	events, err := p.store.Watch(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("cluster: kv: watch members: %w", err)
	}
	done := make(chan struct{})
	lost := make(chan string, lostAddressesBuffered)
	es := c.ActorSystem.EventStream
	sub := es.Subscribe(func(evt any) {
		var address string
		switch e := evt.(type) {
		case *remote.EndpointTerminatedEvent:
			address = e.Address
		case *peerUnreachableEvent:
			address = e.address
		default:
			return
		}
		select {
		case lost <- address:
		default: // a burst of losses: the TTL still drops the dead
		}
	})
	p.mu.Lock()
	p.cancel, p.done = cancel, done
	p.lost, p.sub, p.es = lost, sub, es
	key, record := p.key, p.record
	p.mu.Unlock()
	var wg sync.WaitGroup
	if member {
		wg.Go(func() { p.beat(ctx, key, record) })
	}
	wg.Go(func() { p.watch(ctx, c.MemberList, events, lost, key) })
	go func() {
		wg.Wait()
		close(done)
	}()
	return nil
}

// beat puts the record every heartbeat until ctx ends. A put that fails
// is logged when the outcome changes, not at every beat.
func (p *kvProvider) beat(ctx context.Context, key string, record []byte) {
	ticker := time.NewTicker(p.heartbeat)
	defer ticker.Stop()
	failing := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		// A put may wait up to the TTL: by then the record has expired
		// anyway, and the next beat puts it again.
		putCtx, cancel := context.WithTimeout(ctx, p.ttl)
		err := p.store.Put(putCtx, key, record)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && failing != "":
			p.logger.Info("member record put again", slog.String("member", key))
			failing = ""
		case err != nil && err.Error() != failing:
			p.logger.Warn("member record put failed: the others drop this member if it fails for longer than the TTL",
				slog.String("member", key), slog.Duration("ttl", p.ttl), slog.Any("error", err))
			failing = err.Error()
		}
	}
}

// kvMember is a record as a watcher holds it.
type kvMember struct {
	member *protocluster.Member
	// seen is when this watcher last received the record, on its own
	// clock: the store's timestamps come from another machine's.
	seen time.Time
}

// lostAddressesBuffered bounds the lost connections waiting for the watch
// loop; more are dropped (their members still expire after the TTL).
const lostAddressesBuffered = 64

// watch follows the store's events and publishes the topology to ml
// whenever the set of members changes, until ctx ends. A watch that ends
// is opened again at the next heartbeat; the members it knew stay until
// they expire. It also takes the addresses whose connection was lost and
// drops the members that turn out dead (probe); a member (self is its own
// key; "" for a client, which may only read the store) also deletes their
// records, so that every watcher drops them.
func (p *kvProvider) watch(ctx context.Context, ml *protocluster.MemberList, events <-chan MemberStoreEvent,
	lost <-chan string, self string) {
	members := map[string]*kvMember{}
	dead := make(chan string, lostAddressesBuffered)
	var published []string
	ticker := time.NewTicker(p.heartbeat)
	defer ticker.Stop()
	synced := false
	watchFailing := ""
	open := func() {
		ch, err := p.store.Watch(ctx)
		switch {
		case err == nil:
			events = ch
			if watchFailing != "" {
				p.logger.Info("member watch started again")
				watchFailing = ""
			}
		case ctx.Err() == nil && err.Error() != watchFailing:
			p.logger.Warn("member watch failed; retrying every heartbeat", slog.Any("error", err))
			watchFailing = err.Error()
		}
	}
	for {
		select {
		case <-ctx.Done():
			// Drain: the store's watch may still deliver until it sees
			// ctx end and closes the channel.
			if events != nil {
				for range events {
				}
			}
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				if ctx.Err() == nil {
					p.logger.Warn("member watch ended; retrying at the next heartbeat")
					watchFailing = "ended"
				}
				continue
			}
			changed := p.apply(members, ev, time.Now())
			if ev.Synced && !synced {
				synced, changed = true, true
			}
			if synced && changed {
				published = p.publish(ml, members, published)
			}
		case address := <-lost:
			for id, m := range members {
				if m.member.Address() == address && id != self {
					go p.probe(ctx, id, address, dead)
				}
			}
		case id := <-dead:
			if m, ok := members[id]; ok {
				p.logger.Info("member dropped: its address refuses connections", slog.String("member", id),
					slog.String("address", m.member.Address()))
				delete(members, id)
				if synced {
					published = p.publish(ml, members, published)
				}
				if self != "" {
					go p.deleteDead(ctx, id)
				}
			}
		case <-ticker.C:
			if events == nil {
				open()
			}
			if p.prune(members, time.Now()) && synced {
				published = p.publish(ml, members, published)
			}
		}
	}
}

// apply applies one event to members and reports whether the set of
// members (IDs, addresses or kinds) changed. A record of another cluster,
// or one that does not decode, is ignored.
func (p *kvProvider) apply(members map[string]*kvMember, ev MemberStoreEvent, now time.Time) bool {
	if ev.Synced {
		return false
	}
	old, had := members[ev.Key]
	if ev.Value == nil {
		delete(members, ev.Key)
		return had
	}
	var r memberRecord
	if err := json.Unmarshal(ev.Value, &r); err != nil {
		p.logger.Debug("member record ignored: does not decode", slog.String("key", ev.Key), slog.Any("error", err))
		return false
	}
	if r.ClusterName != p.clusterName || r.ID != ev.Key {
		return false
	}
	m := &protocluster.Member{Id: r.ID, Host: r.Address, Port: int32(r.Port), Kinds: r.Kinds}
	members[ev.Key] = &kvMember{member: m, seen: now}
	return !had || old.member.Host != m.Host || old.member.Port != m.Port || !slices.Equal(old.member.Kinds, m.Kinds)
}

// Probing a member whose connection was lost: deadProbes dials, deadProbeGap
// apart, each within deadProbeTimeout, must all be refused.
const (
	deadProbes       = 2
	deadProbeGap     = 100 * time.Millisecond
	deadProbeTimeout = time.Second
)

// probe sends id to dead if nothing listens at address any more: a
// member's process that died (kill -9, a crash) leaves its record in the
// store until the TTL, and every call to its pots waits that long. A
// connection refused (twice) is the operating system's word that no
// process listens there: a member that is alive but slow or cut off
// times out instead, and is left to the TTL; a new process on the same
// address has another member ID. Dropping a member is for good
// (protoactor blocks it), so only a refusal counts.
func (p *kvProvider) probe(ctx context.Context, id, address string, dead chan<- string) {
	var d net.Dialer
	for i := range deadProbes {
		if i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(deadProbeGap):
			}
		}
		dialCtx, cancel := context.WithTimeout(ctx, deadProbeTimeout)
		conn, err := d.DialContext(dialCtx, "tcp", address)
		cancel()
		if err == nil {
			_ = conn.Close()
			return
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
	}
	select {
	case dead <- id:
	case <-ctx.Done():
	}
}

// deleteDead deletes a dead member's record, so that the watchers that
// never lost a connection to it (gateways may not have had one) drop it
// too. A failure leaves the record to expire.
func (p *kvProvider) deleteDead(ctx context.Context, id string) {
	deleteCtx, cancel := context.WithTimeout(ctx, kvDeleteTimeout)
	defer cancel()
	if err := p.store.Delete(deleteCtx, id); err != nil && ctx.Err() == nil {
		p.logger.Warn("dead member's record not deleted: it expires after the TTL", slog.String("member", id), slog.Any("error", err))
	}
}

// prune drops the members whose record this watcher has not received for
// longer than the TTL, and reports whether it dropped any.
//
// The store drops an expired record itself, and a NATS server that places
// markers for expired entries (2.11 and later) tells the watchers; older
// servers do not, and this covers them. It prunes only while some record
// is fresh (a member sees its own every heartbeat): when none is, this
// node is more likely cut off from the store than every member dead, and
// dropping them all would block them for good (protoactor's block list is
// permanent).
func (p *kvProvider) prune(members map[string]*kvMember, now time.Time) bool {
	fresh := false
	for _, m := range members {
		if now.Sub(m.seen) <= p.ttl {
			fresh = true
			break
		}
	}
	if !fresh {
		return false
	}
	pruned := false
	for id, m := range members {
		if now.Sub(m.seen) > p.ttl {
			p.logger.Info("member record expired", slog.String("member", id), slog.String("address", m.member.Address()))
			delete(members, id)
			pruned = true
		}
	}
	return pruned
}

// publish gives protoactor the members, sorted by ID, logs who joined and
// who left since before (the IDs last published), and returns the IDs.
func (p *kvProvider) publish(ml *protocluster.MemberList, members map[string]*kvMember, before []string) []string {
	list := make([]*protocluster.Member, 0, len(members))
	ids := make([]string, 0, len(members))
	for _, m := range members {
		list = append(list, m.member)
	}
	slices.SortFunc(list, func(a, b *protocluster.Member) int { return strings.Compare(a.Id, b.Id) })
	var joined, left []string
	for _, m := range list {
		ids = append(ids, m.Id)
		if !slices.Contains(before, m.Id) {
			joined = append(joined, m.Address()+" ("+m.Id+")")
		}
	}
	for _, id := range before {
		if _, ok := members[id]; !ok {
			left = append(left, id)
		}
	}
	// A member that left gets blocked in protoactor's block list, which
	// connection goroutines read without its lock; see raceSyncIO.
	raceSyncIO()
	ml.UpdateClusterTopology(list)
	if len(joined) > 0 || len(left) > 0 {
		p.logger.Info("cluster members changed", slog.Int("members", len(list)),
			slog.Any("joined", joined), slog.Any("left", left))
	}
	return ids
}

// Shutdown stops the heartbeat and the watch. graceful (a Stop) also
// deletes this member's record, so that the others see it leave at once;
// otherwise (Kill, as a crash) the record stays until it expires.
func (p *kvProvider) Shutdown(graceful bool) error {
	p.mu.Lock()
	cancel, done, key := p.cancel, p.done, p.key
	sub, es := p.sub, p.es
	p.cancel, p.sub = nil, nil
	p.mu.Unlock()
	if sub != nil {
		es.Unsubscribe(sub)
	}
	if cancel != nil {
		cancel()
		// The heartbeat has stopped before the deletion: a put in flight
		// would otherwise bring the record back.
		<-done
	}
	if !graceful || key == "" {
		return nil
	}
	ctx, cancelDelete := context.WithTimeout(context.Background(), kvDeleteTimeout)
	defer cancelDelete()
	if err := p.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("cluster: kv: deregister member %s (it leaves after the TTL instead): %w", key, err)
	}
	return nil
}
