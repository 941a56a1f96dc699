package history_test

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/history"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
)

// lifeDays: three and a half weeks of dealing days, past the pots'
// seven-day memory of idempotency keys.
const lifeDays = 18

func openStore(t testing.TB, dir string, replicasCached int) *history.Store {
	t.Helper()
	log, _ := testkit.Logger(t)
	s, err := history.Open(dir, history.Options{Logger: log, ReplicasCached: replicasCached, RenderClosedOrder: renderEncoded})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func catchUpAll(t testing.TB, s *history.Store, j persistence.Journal) {
	t.Helper()
	for g := range j.Groups() {
		require.NoError(t, s.CatchUp(context.Background(), j, g))
	}
}

func dump(t testing.TB, s *history.Store) []history.KV {
	t.Helper()
	kvs, err := s.Dump()
	require.NoError(t, err)
	require.NotEmpty(t, kvs)
	return kvs
}

// requireSameBytes fails at the first key or value where got differs from
// want, naming it (the whole dumps are too long to print).
func requireSameBytes(t testing.TB, want, got []history.KV, what string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		require.Equal(t, want[i].Key, got[i].Key, "%s: key %d", what, i)
		require.Equal(t, want[i].Value, got[i].Value, "%s: the value of key %q", what, want[i].Key)
	}
	require.Len(t, got, len(want), "%s: keys", what)
}

// projectedLife is a life whose read model was projected while it was
// lived: Follow running throughout, WaitVersion after each day for a pot
// that just changed, a replica cache of two pots (so that pots leave it and
// are read back), and a final catch-up.
type projectedLife struct {
	*life
	store *history.Store
}

func liveProjected(t *testing.T) projectedLife {
	t.Helper()
	var s *history.Store
	ctx, stop := context.WithCancel(context.Background())
	var following sync.WaitGroup
	l := liveLife(t, lifeDays, func(l *life, day int) {
		if s == nil {
			s = openStore(t, filepath.Join(t.TempDir(), "history"), 2)
			following.Go(func() { s.Follow(ctx, l.j, 3*time.Millisecond) })
		}
		m := []string{balanced, selfDirect, cautious, rolled}[day%4]
		require.NoError(t, s.WaitVersion(context.Background(), l.j, group(m), m, l.pots[m].Version))
	})
	stop()
	following.Wait()
	catchUpAll(t, s, l.j)
	return projectedLife{l, s}
}

// TestOrdersAreTheirFinalState proves every order the pots ever placed is
// in the read model as it ended: equal (stateDiff: reflect, numbers and
// instants by value) to its state at the end of a fold of the pot's whole
// stream, read back from the journal, that keeps the
// pointer of every order as placed (so it holds even for a pot that
// forgets terminal orders); its trades' executions are the contract notes.
// Orders lists them newest first, filtered by keep.
func TestOrdersAreTheirFinalState(t *testing.T) {
	pl := liveProjected(t)
	total, cancelled, executed, rendered := 0, 0, 0, 0
	for _, m := range pl.members() {
		_, events := pl.streamEvents(m)
		p := domain.NewPot(m)
		var placed []*domain.Order
		for _, e := range events {
			p.Apply(e)
			if op, ok := e.(domain.OrderPlaced); ok {
				placed = append(placed, p.Orders[op.OrderID])
			}
		}
		for _, want := range placed {
			got, found, err := pl.store.Order(m, want.ID)
			require.NoError(t, err)
			require.True(t, found, "order %s", want.ID)
			require.Empty(t, stateDiff(want, got), "order %s", want.ID)
			total++
			if want.Cancelled {
				cancelled++
			}
			if want.Trades[0].Execution != nil {
				executed++
			}
		}
		page, more, err := pl.store.Orders(m, 0, 50, nil)
		require.NoError(t, err)
		require.False(t, more, "%s: more orders", m)
		slices.Reverse(placed)
		require.Empty(t, stateDiff(placed, listedOrders(t, page)), "%s: Orders, newest first", m)
		for _, l := range page {
			if l.View != nil {
				rendered++
			}
		}

		wantCancelled := slices.DeleteFunc(slices.Clone(placed), func(o *domain.Order) bool { return !o.Cancelled })
		page, _, err = pl.store.Orders(m, 0, 50, func(l codec.ListedOrder) bool { return listedOrder(t, l).Cancelled })
		require.NoError(t, err)
		require.Empty(t, stateDiff(wantCancelled, listedOrders(t, page)), "%s: cancelled orders", m)

		_, found, err := pl.store.Order(m, m+"-999999")
		require.NoError(t, err)
		require.False(t, found, "an order never placed")
		_, found, err = pl.store.Order(m, "M999999-1")
		require.NoError(t, err)
		require.False(t, found, "another member's order id")
		if len(placed) > 0 {
			_, found, err = pl.store.Order(m, fmt.Sprintf("%s-0%d", m, seqOf(t, m, placed[0].ID)))
			require.NoError(t, err)
			require.False(t, found, "an order's number spelt with a leading zero")
		}
	}
	t.Logf("%d orders, %d cancelled, %d executed, %d listed as rendered", total, cancelled, executed, rendered)
	require.NotZero(t, cancelled, "a cancelled order")
	require.Greater(t, executed, 10, "executed orders")
	require.NotZero(t, rendered, "a closed order listed as its rendered view")
	require.Less(t, rendered, total, "open orders listed decoded")
	roll, _, err := pl.store.Orders(rolled, 0, 50, func(l codec.ListedOrder) bool {
		o := listedOrder(t, l)
		return !o.DealingDate.Equal(o.OriginalDealingDate)
	})
	require.NoError(t, err)
	require.NotEmpty(t, roll, "a rolled order")
}

// statementPages reads member's statement with filter [from, to) in pages
// of limit, checking each page's size and cursor.
func statementPages(t *testing.T, s *history.Store, member string, from, to time.Time, limit int) []domain.StatementEntry {
	t.Helper()
	var all []domain.StatementEntry
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10_000, "%s: the cursor never ends", member)
		page, next, err := s.Statement(member, from, to, cursor, limit)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), limit)
		all = append(all, page...)
		if next == "" {
			return all
		}
		require.Len(t, page, limit, "%s: a short page with a next cursor", member)
		cursor = next
	}
}

// TestStatementIsTheDomains proves the read model's statement is
// domain.Statement over the pot's stream read back from the journal: every
// entry equal, in order, with its running balance, read in pages of 1, 2
// and 50, whole and between two instants (from inclusive, to exclusive).
func TestStatementIsTheDomains(t *testing.T) {
	pl := liveProjected(t)
	kinds := map[string]int{}
	for _, m := range pl.members() {
		_, events := pl.streamEvents(m)
		want := domain.Statement(m, events, pl.cat)
		for i, e := range want {
			kinds[e.Kind]++
			if i > 0 {
				require.False(t, e.At.Before(want[i-1].At), "%s: the life's entries are in time order, as the store lists them", m)
			}
		}
		for _, limit := range []int{1, 2, 50} {
			require.Empty(t, stateDiff(want, statementPages(t, pl.store, m, time.Time{}, time.Time{}, limit)), "%s: limit %d", m, limit)
		}
		if len(want) < 4 {
			continue
		}
		from, to := want[1].At, want[len(want)-2].At
		between := func(lo, hi time.Time) []domain.StatementEntry {
			var out []domain.StatementEntry
			for _, e := range want {
				if (lo.IsZero() || !e.At.Before(lo)) && (hi.IsZero() || e.At.Before(hi)) {
					out = append(out, e)
				}
			}
			return out
		}
		for _, f := range []struct{ from, to time.Time }{{from, to}, {from, time.Time{}}, {time.Time{}, to}, {to, from},
			{from.Add(time.Nanosecond), to.Add(time.Nanosecond)}} {
			w := between(f.from, f.to)
			if !f.from.Before(f.to) && !f.to.IsZero() {
				w = nil
			}
			for _, limit := range []int{1, 2, 50} {
				require.Empty(t, stateDiff(w, statementPages(t, pl.store, m, f.from, f.to, limit)),
					"%s: [%s, %s) limit %d", m, f.from, f.to, limit)
			}
		}
	}
	t.Logf("statement entries by kind: %v", kinds)
	for _, k := range []string{"contribution", "buy", "sell", "withdrawal"} {
		require.NotZero(t, kinds[k], "no %s entries: kinds %v", k, kinds)
	}

	_, _, err := pl.store.Statement(balanced, time.Time{}, time.Time{}, "not a cursor", 10)
	require.ErrorIs(t, err, history.ErrInvalid)
	_, _, err = pl.store.Statement(balanced, time.Time{}, time.Time{}, "", 0)
	require.ErrorIs(t, err, history.ErrInvalid)
	_, _, err = pl.store.Orders(balanced, 0, 1001, nil)
	require.ErrorIs(t, err, history.ErrInvalid)
}

// TestRebuildIsByteForByteTheLiveStore proves a read model rebuilt from
// zero holds exactly the bytes of the one projected live, every key and
// value (checkpoints and the layout version included, nothing excluded):
// rebuilt in a new directory without a replica cache, and rebuilt in place.
func TestRebuildIsByteForByteTheLiveStore(t *testing.T) {
	pl := liveProjected(t)
	live := dump(t, pl.store)
	kinds := map[byte]int{}
	for _, kv := range live {
		kinds[kv.Key[0]]++
	}
	t.Logf("%d keys: %d orders, %d statement entries, %d request keys, %d members, %d checkpoints", len(live),
		kinds['o'], kinds['s'], kinds['r'], kinds['m'], kinds['c'])
	require.Equal(t, lifeGroups, kinds['c'], "a checkpoint per group")

	log, _ := testkit.Logger(t)
	dir := filepath.Join(t.TempDir(), "rebuilt")
	require.NoError(t, history.Rebuild(context.Background(), dir, pl.j, history.Options{Logger: log, ReplicasCached: -1,
		RenderClosedOrder: renderEncoded}))
	rebuilt := openStore(t, dir, 0)
	requireSameBytes(t, live, dump(t, rebuilt), "rebuilt in a new directory")

	require.NoError(t, pl.store.Rebuild(context.Background(), pl.j))
	requireSameBytes(t, live, dump(t, pl.store), "rebuilt in place")
}

// redelivering is a journal whose feed delivers events again: each page
// starts back events before the position asked for, and holds every event
// twice.
type redelivering struct {
	persistence.Journal
	back int
}

func (r redelivering) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	all, err := r.Journal.ReadFeed(ctx, group, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	first, _ := slices.BinarySearchFunc(all, after, func(e persistence.FeedEvent, p uint64) int { return cmp.Compare(e.Position, p) })
	if first < len(all) && all[first].Position == after {
		first++
	}
	if first == len(all) {
		return nil, nil // the end of the feed, as the journal says it
	}
	var page []persistence.FeedEvent
	for _, e := range all[max(0, first-r.back):min(len(all), first+limit/2)] {
		page = append(page, e, e)
	}
	return page, nil
}

// gapping is a journal whose feed never delivers one event.
type gapping struct {
	persistence.Journal
	stream  string
	version uint64
}

func (g gapping) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	page, err := g.Journal.ReadFeed(ctx, group, after, limit)
	return slices.DeleteFunc(page, func(e persistence.FeedEvent) bool { return e.Stream == g.stream && e.Version == g.version }), err
}

// TestFeedDeliveredTwiceChangesNothing proves projection is exactly once:
// a feed whose pages start before the checkpoint and hold every event twice
// projects the same bytes, and so does catching up again from older
// checkpoints (the start of the feed, the middle of a group) over state
// already projected. A feed that skips an event of a pot is an error that
// writes nothing of its page, and leaves nothing behind once the feed is
// whole.
func TestFeedDeliveredTwiceChangesNothing(t *testing.T) {
	pl := liveProjected(t)
	live := dump(t, pl.store)

	twice := openStore(t, filepath.Join(t.TempDir(), "twice"), 1)
	catchUpAll(t, twice, redelivering{pl.j, 7})
	requireSameBytes(t, live, dump(t, twice), "a feed delivered twice")

	for g := range pl.j.Groups() {
		checkpoint, err := pl.store.Checkpoint(g)
		require.NoError(t, err)
		for _, back := range []uint64{0, checkpoint / 2, checkpoint - 1} {
			require.NoError(t, pl.store.SetCheckpoint(g, back))
			require.NoError(t, pl.store.CatchUp(context.Background(), pl.j, g))
			requireSameBytes(t, live, dump(t, pl.store), fmt.Sprintf("group %d caught up again from position %d", g, back))
		}
	}

	gap := openStore(t, filepath.Join(t.TempDir(), "gap"), 0)
	g := group(balanced)
	err := gap.CatchUp(context.Background(), gapping{pl.j, stream(balanced), 7}, g)
	require.ErrorContains(t, err, "skipped versions")
	version, _, err := gap.Projected(balanced)
	require.NoError(t, err)
	require.Zero(t, version, "projected from the page that failed")
	checkpoint, err := gap.Checkpoint(g)
	require.NoError(t, err)
	require.Zero(t, checkpoint, "the checkpoint of the page that failed")
	catchUpAll(t, gap, pl.j)
	requireSameBytes(t, live, dump(t, gap), "caught up after the gap closed")
}

// TestRequestProjectedAndWaitVersion proves Request finds every idempotency
// key any pot ever recorded, with its latest record, long after the pot
// itself forgot it; Projected is each pot's stream version and the commit
// time of its last event; and WaitVersion catches up by itself to a version
// just appended, and gives up with the context on one never appended.
func TestRequestProjectedAndWaitVersion(t *testing.T) {
	pl := liveProjected(t)
	keys, forgotten := 0, 0
	for _, m := range pl.members() {
		raw, events := pl.streamEvents(m)
		latest := map[string]domain.RequestRecord{}
		for _, e := range events {
			if rr, ok := e.(domain.RequestRecorded); ok {
				latest[rr.Record.Key] = rr.Record
			}
		}
		for key, want := range latest {
			got, found, err := pl.store.Request(m, key)
			require.NoError(t, err)
			require.True(t, found, "%s: key %s", m, key)
			require.Empty(t, stateDiff(want, got), "%s: key %s", m, key)
			keys++
			if _, remembered := pl.pots[m].Request(key); !remembered {
				forgotten++
			}
		}
		_, found, err := pl.store.Request(m, "never-used")
		require.NoError(t, err)
		require.False(t, found)

		version, at, err := pl.store.Projected(m)
		require.NoError(t, err)
		require.Equal(t, pl.pots[m].Version, version, m)
		require.Equal(t, raw[len(raw)-1].Time, at, m)
	}
	t.Logf("%d keys, %d of them forgotten by their pots", keys, forgotten)
	require.NotZero(t, forgotten, "the life is long enough for pots to forget keys")
	version, at, err := pl.store.Projected("M999999")
	require.NoError(t, err)
	require.Zero(t, version)
	require.True(t, at.IsZero())

	// Read your writes: appended, not projected, then waited for.
	before, _, err := pl.store.Projected(cautious)
	require.NoError(t, err)
	pl.do(cautious, domain.Contribute{Key: "after-the-life", Amount: domain.MustMoney("12.00")})
	want := pl.pots[cautious].Version
	require.Greater(t, want, before)
	projected, _, err := pl.store.Projected(cautious)
	require.NoError(t, err)
	require.Equal(t, before, projected, "projected before anyone caught up")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, pl.store.WaitVersion(ctx, pl.j, group(cautious), cautious, want))
	projected, _, err = pl.store.Projected(cautious)
	require.NoError(t, err)
	require.Equal(t, want, projected)
	rec, found, err := pl.store.Request(cautious, "after-the-life")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, domain.RequestContribute, rec.Kind)

	short, cancelShort := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancelShort()
	err = pl.store.WaitVersion(short, pl.j, group(cautious), cautious, want+1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestOrdersPagesAPotOfThousands proves Orders pages through a pot of a
// few thousand orders newest first, each order once, none missed, whatever
// the page size, and from any order number down.
func TestOrdersPagesAPotOfThousands(t *testing.T) {
	const orders = 3000
	l := newLife(t, domain.MustDate("2026-11-23"))
	const m = "M000200"
	l.do(m, domain.OpenPot{Key: "open"}, domain.Contribute{Key: "pay", Amount: domain.MustMoney("100000.00")})
	cmds := make([]domain.Command, orders)
	for i := range cmds {
		cmds[i] = domain.PlaceOrder{Key: domain.Key(fmt.Sprintf("buy-%d", i)), Order: domain.OrderRequest{Type: domain.OrderBuy,
			Asset: "GB00BD8R3K42", Amount: domain.MustMoney("1.00")}}
	}
	l.do(m, cmds...)
	s := openStore(t, filepath.Join(t.TempDir(), "history"), 0)
	catchUpAll(t, s, l.j)
	require.Len(t, l.pots[m].OrderIDs, orders)
	want := slices.Clone(l.pots[m].OrderIDs)
	slices.Reverse(want)

	pageThrough := func(limit int, before uint64) []string {
		var ids []string
		for pages := 0; ; pages++ {
			require.LessOrEqual(t, pages, orders/limit+1, "more pages than orders")
			page, more, err := s.Orders(m, before, limit, nil)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), limit)
			for _, o := range page {
				ids = append(ids, o.ID)
			}
			if !more {
				return ids
			}
			require.Len(t, page, limit, "a short page with more to follow")
			last := page[len(page)-1].ID
			before = seqOf(t, m, last)
		}
	}
	for _, limit := range []int{50, 7, 1000} {
		require.Equal(t, want, pageThrough(limit, 0), "limit %d", limit)
	}
	middle := seqOf(t, m, want[orders/2])
	require.Equal(t, want[orders/2+1:], pageThrough(50, middle), "below the middle order")
	// keep sees every order and takes some: the pages hold only those.
	even, _, err := s.Orders(m, 0, 20, func(l codec.ListedOrder) bool { return seqOf(t, m, l.ID)%4 == 0 })
	require.NoError(t, err)
	require.Len(t, even, 20)
	for _, o := range even {
		require.Zero(t, seqOf(t, m, o.ID)%4, o.ID)
	}
}

// renderEncoded renders a closed order as its encoding, so that a test can
// read a rendered view back as the order it was rendered from.
func renderEncoded(b []byte, o *domain.Order) []byte { return append(b, codec.EncodeOrder(o)...) }

// listedOrder is a listed order: decoded, or read back from the view that
// renderEncoded rendered, which must be of a closed order, with its status
// and id beside it.
func listedOrder(t testing.TB, l codec.ListedOrder) *domain.Order {
	t.Helper()
	if l.View == nil {
		require.NotNil(t, l.Order, "order %s neither decoded nor rendered", l.ID)
		require.Equal(t, l.ID, l.Order.ID)
		return l.Order
	}
	require.Nil(t, l.Order, "order %s decoded and rendered", l.ID)
	o, err := codec.DecodeOrder(l.View)
	require.NoError(t, err, "the view of order %s", l.ID)
	require.True(t, o.Closed(), "order %s rendered while open", l.ID)
	require.Equal(t, l.ID, o.ID)
	require.Equal(t, domain.OrderStatusAt(o, func(domain.Date) bool { panic("a closed order's status asks the cut-off") }), l.Status)
	return o
}

func listedOrders(t testing.TB, page []codec.ListedOrder) []*domain.Order {
	t.Helper()
	orders := make([]*domain.Order, len(page))
	for i, l := range page {
		orders[i] = listedOrder(t, l)
	}
	return orders
}

// seqOf is the number n of an order id "<member>-<n>".
func seqOf(t testing.TB, member, id string) uint64 {
	t.Helper()
	var n uint64
	_, err := fmt.Sscanf(id, member+"-%d", &n)
	require.NoError(t, err, id)
	return n
}

// TestSharesTheJournalsBlockCache opens the read model on its Pebble
// journal's block cache, as a node does, and closes the journal first: the
// store, holding its own reference, still reads all it projected.
func TestSharesTheJournalsBlockCache(t *testing.T) {
	l := liveLife(t, 12, func(*life, int) {})
	log, _ := testkit.Logger(t)
	s, err := history.Open(filepath.Join(t.TempDir(), "history"), history.Options{Logger: log, Cache: l.j.BlockCache(), RenderClosedOrder: renderEncoded})
	require.NoError(t, err)
	catchUpAll(t, s, l.j)
	want := dump(t, s)
	require.NoError(t, l.j.Close())
	requireSameBytes(t, want, dump(t, s), "read after the journal closed")
	require.NoError(t, s.Close())
}
