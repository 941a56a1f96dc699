package history

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
)

// potStreamPrefix names a pot's stream: "pot/<member>". Other streams of a
// feed (the system's) only advance its checkpoint.
const potStreamPrefix = "pot/"

const (
	// waitPollMin and waitPollMax bound WaitVersion's pause between
	// catch-ups when the feed does not show the version yet: a journal
	// shows an append on its feed once it is durable, a millisecond or
	// two after it is acknowledged on Pebble, longer on JetStream.
	waitPollMin = time.Millisecond
	waitPollMax = 50 * time.Millisecond
)

// CatchUp applies group's feed from the group's checkpoint to its end, a
// page (feedPageEvents) at a time, each page in one batch with its
// checkpoint. Concurrent calls for one group wait for each other; calls
// for different groups run in parallel.
func (s *Store) CatchUp(ctx context.Context, j persistence.Journal, group uint32) error {
	done, err := s.open()
	if err != nil {
		return err
	}
	defer done()
	mu := s.groupLock(group)
	mu.Lock()
	defer mu.Unlock()
	return s.catchUp(ctx, j, group)
}

// catchUp is CatchUp with the group's lock held.
func (s *Store) catchUp(ctx context.Context, j persistence.Journal, group uint32) error {
	after, err := s.checkpoint(group)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("history: catch up group %d: %w", group, err)
		}
		page, err := j.ReadFeed(ctx, group, after, feedPageEvents)
		if err != nil {
			return fmt.Errorf("history: catch up group %d after position %d: %w", group, after, err)
		}
		if len(page) == 0 {
			return nil
		}
		next, err := s.applyPage(group, after, page)
		if err != nil {
			return err
		}
		if next <= after {
			return fmt.Errorf("history: catch up group %d: a feed page after position %d held nothing past it", group, after)
		}
		after = next
	}
}

// groupLock is group's projection lock.
func (s *Store) groupLock(group uint32) *sync.Mutex {
	s.groupLocksMu.Lock()
	defer s.groupLocksMu.Unlock()
	mu, ok := s.groupLocks[group]
	if !ok {
		mu = &sync.Mutex{}
		s.groupLocks[group] = mu
	}
	return mu
}

// checkpoint is group's last applied feed position (0: none).
func (s *Store) checkpoint(group uint32) (uint64, error) {
	v, found, err := s.get(checkpointKey(group))
	if err != nil {
		return 0, fmt.Errorf("history: checkpoint of group %d: %w", group, err)
	}
	if !found {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("history: checkpoint of group %d: %d bytes", group, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// applyPage projects the events of page past position after, writes the
// members they changed and the page's last position as group's checkpoint
// in one batch, and returns that position. On an error nothing of the page
// is written, and the members it touched leave the replica cache (their
// replicas may be half-changed), so that a retry reads them back.
func (s *Store) applyPage(group uint32, after uint64, page []persistence.FeedEvent) (uint64, error) {
	b := s.db.NewBatch()
	defer b.Close()
	touched := map[string]*codec.ProjectedPot{}
	var order []string // touched members in first-seen order, for the writes
	last := after
	for i := range page {
		fe := &page[i]
		if fe.Position <= last {
			continue // the feed gave this event before
		}
		last = fe.Position
		member, ok := strings.CutPrefix(fe.Stream, potStreamPrefix)
		if !ok {
			continue
		}
		m, ok := touched[member]
		if !ok {
			var err error
			if m, err = s.loadMember(member); err != nil {
				return 0, fmt.Errorf("history: group %d position %d: %w", group, fe.Position, err)
			}
			touched[member] = m
			order = append(order, member)
		}
		if err := s.projectEvent(b, member, m, fe); err != nil {
			return 0, fmt.Errorf("history: group %d position %d: %w", group, fe.Position, err)
		}
	}
	if last == after {
		return after, nil
	}
	for _, member := range order {
		data, err := codec.EncodeProjectedPot(*touched[member])
		if err == nil {
			err = b.Set(memberKey(member), data, nil)
		}
		if err != nil {
			return 0, fmt.Errorf("history: group %d: write %s: %w", group, member, err)
		}
	}
	if err := b.Set(checkpointKey(group), binary.BigEndian.AppendUint64(nil, last), nil); err != nil {
		return 0, fmt.Errorf("history: group %d: checkpoint: %w", group, err)
	}
	// Not synced: the store is a cache of the journal. After a crash the
	// checkpoint is where the state is, since both are in this batch.
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("history: group %d: commit the page up to position %d: %w", group, last, err)
	}
	for _, member := range order {
		s.replicas.put(member, touched[member])
	}
	return last, nil
}

// loadMember is member's projected pot: from the replica cache (which it
// leaves until the page is written), else from the database, else a new
// pot.
func (s *Store) loadMember(member string) (*codec.ProjectedPot, error) {
	if m, ok := s.replicas.take(member); ok {
		return m, nil
	}
	v, found, err := s.get(memberKey(member))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", member, err)
	}
	if !found {
		return &codec.ProjectedPot{Replica: domain.NewPot(member)}, nil
	}
	m, err := codec.DecodeProjectedPot(v, true)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", member, err)
	}
	return &m, nil
}

// projectEvent projects one event of member's stream onto m and b: the
// statement entry and the orders it touches are taken from the pot as it
// was before the event, the order written after the event from the pointer
// taken before (a pot may remove a terminal order from its maps in the
// Apply that ends it).
func (s *Store) projectEvent(b *pebble.Batch, member string, m *codec.ProjectedPot, fe *persistence.FeedEvent) (err error) {
	if fe.Version <= m.Version {
		return nil // projected already: a page read again after a restart, or a rebuild's overlap
	}
	if fe.Version != m.Version+1 {
		return fmt.Errorf("%s: event at version %d, projected to %d: the feed skipped versions", fe.Stream, fe.Version, m.Version)
	}
	e, err := codec.DecodePotEvent(fe.Type, fe.Data)
	if err != nil {
		return fmt.Errorf("%s version %d: %w", fe.Stream, fe.Version, err)
	}
	// Apply panics on an event its pot cannot take (a broken invariant, an
	// unknown order): here that is an error to log and retry, not a reason
	// to stop the node.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s version %d (%s): %v", fe.Stream, fe.Version, fe.Type, r)
		}
	}()
	p := m.Replica
	var order *domain.Order
	switch e := e.(type) {
	case domain.OrderCancelled:
		order = p.Orders[e.OrderID]
	case domain.OrderRolled:
		order = p.Orders[e.OrderID]
	case domain.TradeExecuted:
		order = tradeOrder(p, e.TradeID)
	case domain.TradeSettled:
		order = tradeOrder(p, e.TradeID)
	}
	entry, crossed := domain.StatementEntryFor(p, e, s.cat, m.Balance)
	p.Apply(e)
	if placed, ok := e.(domain.OrderPlaced); ok {
		order = p.Orders[placed.OrderID]
	}
	// The replica keeps only open work, whether or not Apply already
	// forgets what ended: what is closed is in this store's records, and
	// a replica decoded per page must stay small.
	p.DropClosed()

	if order != nil {
		seq, ok := domain.IDNumber(member, order.ID)
		if !ok {
			return fmt.Errorf("%s version %d: order id %q is not %s-<n>", fe.Stream, fe.Version, order.ID, member)
		}
		if err := b.Set(orderKey(member, seq), s.orderRecord(order), nil); err != nil {
			return err
		}
	}
	if crossed {
		if err := b.Set(statementKey(member, entry.At, fe.Version), codec.EncodeStatementEntry(entry), nil); err != nil {
			return err
		}
		m.Balance = entry.BalanceAfter
	}
	if rr, ok := e.(domain.RequestRecorded); ok {
		if err := b.Set(requestKey(member, rr.Record.Key), codec.EncodeRequestRecord(rr.Record), nil); err != nil {
			return err
		}
	}
	m.Version, m.At = fe.Version, fe.Time
	return nil
}

// orderRecord is an order's record: rendered, if the order is closed (its
// status no longer depends on the cut-off, and no later event changes it)
// and the store renders.
func (s *Store) orderRecord(o *domain.Order) []byte {
	if s.render == nil || !o.Closed() {
		return codec.EncodeOrder(o)
	}
	status := domain.OrderStatusAt(o, domain.ClosedOrderCutOff)
	return codec.EncodeRenderedOrder(o, status, s.render(nil, o))
}

// tradeOrder is the order of trade tradeID (nil if the pot has no such
// trade: Apply then refuses the event).
func tradeOrder(p *domain.Pot, tradeID string) *domain.Order {
	if t, ok := p.Trades[tradeID]; ok {
		return p.Orders[t.OrderID]
	}
	return nil
}

// CatchUpAll catches up every group of j once and reports whether every
// group caught up. A group that fails is logged and left for Follow; ctx
// ending or the store closing stops it.
func (s *Store) CatchUpAll(ctx context.Context, j persistence.Journal) bool {
	ok := true
	for g := range j.Groups() {
		if err := s.CatchUp(ctx, j, g); err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return false
			}
			s.log.Warn("history: catching up failed; trying again", "group", g, "err", err)
			ok = false
		}
	}
	return ok
}

// Follow catches up every group of j, then again every interval, until ctx
// ends. An error is logged and the group tried again at the next round.
func (s *Store) Follow(ctx context.Context, j persistence.Journal, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.CatchUpAll(ctx, j)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WaitVersion returns once member's stream is projected to at least
// version: read-your-writes for a caller that knows the pot's version. It
// catches group up itself rather than wait for Follow, again after a short
// pause while the feed does not show the version yet, and gives up when
// ctx ends.
func (s *Store) WaitVersion(ctx context.Context, j persistence.Journal, group uint32, member string, version uint64) error {
	pause := waitPollMin
	for {
		projected, _, err := s.Projected(member)
		if err != nil {
			return err
		}
		if projected >= version {
			return nil
		}
		if err := s.CatchUp(ctx, j, group); err != nil {
			return fmt.Errorf("history: wait for %s at version %d: %w", member, version, err)
		}
		if projected, _, err = s.Projected(member); err != nil || projected >= version {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("history: wait for %s at version %d, projected %d: %w", member, version, projected, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, waitPollMax)
	}
}

// Rebuild drops everything the store holds (state, checkpoints and cached
// replicas) and projects every group of j from the start of its feed. The
// projections of j's groups wait for it. If it fails or ctx ends, what it
// projected so far stands with its checkpoints: CatchUp carries on.
func (s *Store) Rebuild(ctx context.Context, j persistence.Journal) error {
	done, err := s.open()
	if err != nil {
		return err
	}
	defer done()
	for g := range j.Groups() {
		mu := s.groupLock(g)
		mu.Lock()
		defer mu.Unlock()
	}
	s.replicas.clear()
	// Every key but the layout's: kinds are letters, the layout 'v' the
	// last of them, so [0x00, 'v') and ('v', 0xff] hold the rest.
	if err := errors.Join(
		s.db.DeleteRange([]byte{0}, keyLayout, pebble.NoSync),
		s.db.DeleteRange(prefixEnd(keyLayout), []byte{0xff}, pebble.NoSync),
	); err != nil {
		return fmt.Errorf("history: rebuild: drop: %w", err)
	}
	start := time.Now()
	for g := range j.Groups() {
		if err := s.catchUp(ctx, j, g); err != nil {
			return fmt.Errorf("history: rebuild: %w", err)
		}
	}
	s.log.Info("history rebuilt", "groups", j.Groups(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Rebuild opens the read model in dir (creating it if need be), rebuilds
// it from j (Store.Rebuild) and closes it.
func Rebuild(ctx context.Context, dir string, j persistence.Journal, opts Options) error {
	s, err := Open(dir, opts)
	if err != nil {
		return err
	}
	return errors.Join(s.Rebuild(ctx, j), s.Close())
}

// replicaCache keeps the most recently projected members' pots decoded, at
// most max of them, so that consecutive pages touching one pot do not
// decode it again. A member is taken out while a page projects it and put
// back once the page is written.
type replicaCache struct {
	mu    sync.Mutex
	max   int
	lru   *list.List // of *cachedReplica, most recent first
	index map[string]*list.Element
}

type cachedReplica struct {
	member string
	m      *codec.ProjectedPot
}

func newReplicaCache(max int) *replicaCache {
	return &replicaCache{max: max, lru: list.New(), index: map[string]*list.Element{}}
}

func (c *replicaCache) take(member string) (*codec.ProjectedPot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[member]
	if !ok {
		return nil, false
	}
	c.lru.Remove(el)
	delete(c.index, member)
	return el.Value.(*cachedReplica).m, true
}

func (c *replicaCache) put(member string, m *codec.ProjectedPot) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[member]; ok {
		el.Value.(*cachedReplica).m = m
		c.lru.MoveToFront(el)
		return
	}
	c.index[member] = c.lru.PushFront(&cachedReplica{member: member, m: m})
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.index, oldest.Value.(*cachedReplica).member)
	}
}

func (c *replicaCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.index)
}
