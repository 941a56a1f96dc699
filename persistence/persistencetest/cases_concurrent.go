package persistencetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/mastertrust/persistence"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testConcurrentWritersOneStream proves that when many writers append to
// one stream at the same expected version, exactly one wins each round and
// the losers' events are nowhere: not in the stream, not in the feed.
func (s *suite) testConcurrentWritersOneStream(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 2))
	const (
		stream  = "pot/hot"
		writers = 16
		rounds  = 12
	)
	var winners [][]byte // data of the winning events, in version order
	v := uint64(0)
	for r := range rounds {
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, writers)
			vers  = make([]uint64, writers)
			reqs  = make([]persistence.AppendRequest, writers)
		)
		for w := range writers {
			n := 1 + w%3
			evs := make([]persistence.NewEvent, n)
			for i := range evs {
				evs[i] = ev("t", fmt.Sprintf("r%d-w%d-e%d", r, w, i))
			}
			reqs[w] = appendReq(stream, 1, v, evs...)
			wg.Go(func() {
				<-start
				vers[w], errs[w] = j.Append(ctx, reqs[w])
			})
		}
		close(start)
		wg.Wait()
		won := -1
		for w, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("round %d: writers %d and %d both appended at version %d", r, won, w, v)
				}
				won = w
			case errors.Is(err, persistence.ErrVersionConflict):
			default:
				t.Fatalf("round %d writer %d: %v, want nil or ErrVersionConflict", r, w, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer won at version %d", r, v)
		}
		if want := v + uint64(len(reqs[won].Events)); vers[won] != want {
			t.Fatalf("round %d: winner's new version %d, want %d", r, vers[won], want)
		}
		for _, e := range reqs[won].Events {
			winners = append(winners, e.Data)
		}
		v = vers[won]
	}
	got := mustRead(t, ctx, j, stream, 1, 0)
	if len(got) != len(winners) {
		t.Fatalf("stream has %d events, winners appended %d", len(got), len(winners))
	}
	for i := range got {
		require.Equal(t, uint64(i+1), got[i].Version, "event %d: version", i)
		require.Equal(t, string(winners[i]), string(got[i].Data), "event %d (%s@%d): data", i, got[i].Stream, got[i].Version)
	}
	feed := readFeedAll(t, ctx, j, 1, 0, 50)
	if len(feed) != len(winners) {
		t.Fatalf("feed has %d events, winners appended %d", len(feed), len(winners))
	}
	for i := range feed {
		require.Equal(t, uint64(i+1), feed[i].Version, "feed event %d: version", i)
		require.Equal(t, string(winners[i]), string(feed[i].Data), "feed event %d (%s@%d): data", i, feed[i].Stream, feed[i].Version)
	}
	if other := readFeedAll(t, ctx, j, 0, 0, 50); len(other) != 0 {
		t.Fatalf("group 0's feed holds %d events", len(other))
	}
}

// ackedAppend is an append a writer saw succeed.
type ackedAppend struct {
	stream    string
	group     uint32
	first     uint64 // first version
	data      [][]byte
	startTick int64 // ticks of a shared counter, before the call and after the ack
	endTick   int64
}

// raceOneStream runs writers that each read the stream's head and append,
// retrying on conflicts, until each has appended perWriter times. Writers
// use the journals in turn (two journals on shared storage race each other).
func raceOneStream(t *testing.T, ctx context.Context, journals []persistence.Journal, stream string, writers, perWriter int) []ackedAppend {
	t.Helper()
	var (
		mu    sync.Mutex
		acked []ackedAppend
		wg    sync.WaitGroup
		fails atomic.Int64
	)
	for w := range writers {
		j := journals[w%len(journals)]
		wg.Go(func() {
			known := uint64(0)
			for done := 0; done < perWriter; {
				// Catch up on the stream, as a reloading pot would.
				evs, err := j.Read(ctx, stream, known+1, 0)
				if err != nil {
					t.Errorf("writer %d: read: %v", w, err)
					return
				}
				known += uint64(len(evs))
				n := 1 + (w+done)%2
				req := appendReq(stream, 0, known)
				for i := range n {
					req.Events = append(req.Events, ev("t", fmt.Sprintf("w%d-a%d-e%d", w, done, i)))
				}
				v, err := j.Append(ctx, req)
				if errors.Is(err, persistence.ErrVersionConflict) {
					fails.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("writer %d: append: %v", w, err)
					return
				}
				a := ackedAppend{stream: stream, first: known + 1}
				for _, e := range req.Events {
					a.data = append(a.data, e.Data)
				}
				mu.Lock()
				acked = append(acked, a)
				mu.Unlock()
				known = v
				done++
			}
		})
	}
	wg.Wait()
	t.Logf("%d writers, %d appends each, %d conflicts", writers, perWriter, fails.Load())
	return acked
}

// checkStreamIsExactly checks that a stream holds exactly the acknowledged
// appends, each at its versions, and nothing else (in Read and in the feed).
func checkStreamIsExactly(t *testing.T, ctx context.Context, j persistence.Journal, stream string, group uint32, acked []ackedAppend) {
	t.Helper()
	want := map[uint64][]byte{}
	for _, a := range acked {
		for i, d := range a.data {
			v := a.first + uint64(i)
			if _, dup := want[v]; dup {
				t.Fatalf("two acknowledged appends wrote %s@%d", stream, v)
			}
			want[v] = d
		}
	}
	got := mustRead(t, ctx, j, stream, 1, 0)
	if len(got) != len(want) {
		t.Fatalf("%s has %d events, acknowledged appends wrote %d", stream, len(got), len(want))
	}
	for i, e := range got {
		require.Equal(t, uint64(i+1), e.Version, "%s event %d: version", stream, i)
		require.Equal(t, string(want[e.Version]), string(e.Data), "%s event %d: data", stream, i)
	}
	var inFeed []persistence.FeedEvent
	for _, e := range readFeedAll(t, ctx, j, group, 0, 100) {
		if e.Stream == stream {
			inFeed = append(inFeed, e)
		}
	}
	if len(inFeed) != len(got) {
		t.Fatalf("feed holds %d events of %s, the stream %d", len(inFeed), stream, len(got))
	}
	for i := range inFeed {
		if !sameEvent(inFeed[i].Event, got[i]) {
			t.Fatalf("feed event %d of %s = %+v, stream has %+v", i, stream, inFeed[i].Event, got[i])
		}
	}
}

// testRacingWritersOneStream proves that writers that reload and retry on
// conflicts (two activations of one pot) end with one history holding
// exactly the appends that were acknowledged.
func (s *suite) testRacingWritersOneStream(t *testing.T) {
	ctx := testContext(t)
	j := open(t, s.storage(t, 1))
	acked := raceOneStream(t, ctx, []persistence.Journal{j}, "pot/raced", 8, 6)
	checkStreamIsExactly(t, ctx, j, "pot/raced", 0, acked)
}

// testSharedWriters proves, for a backend that several nodes share, that
// writers going through two Journals on one storage still get one history,
// and that each Journal reads what the other wrote. For a backend that is
// not shared it proves that a second Journal is refused while one is open,
// so that two nodes cannot fork a history by opening one directory.
func (s *suite) testSharedWriters(t *testing.T) {
	ctx := testContext(t)
	o := s.storage(t, 1)
	j1 := open(t, o)
	if !s.b.Features.Shared {
		if j2, err := o(t); err == nil {
			j2.Close()
			t.Fatal("a second journal opened on storage that is not shared")
		}
		mustAppend(t, ctx, j1, appendReq("pot/one", 0, 0, ev("t", "1")))
		return
	}
	j2 := open(t, o)
	acked := raceOneStream(t, ctx, []persistence.Journal{j1, j2}, "pot/shared", 8, 5)
	checkStreamIsExactly(t, ctx, j1, "pot/shared", 0, acked)
	checkStreamIsExactly(t, ctx, j2, "pot/shared", 0, acked)
	v := mustAppend(t, ctx, j1, appendReq("pot/seen", 0, 0, ev("t", "by j1")))
	got := mustRead(t, ctx, j2, "pot/seen", 1, 0)
	require.Len(t, got, int(v), "j2 reads of what j1 wrote: events")
	require.Equal(t, "by j1", string(got[0].Data), "j2 reads of what j1 wrote: data")
	if _, err := j2.Append(ctx, appendReq("pot/seen", 0, 0, ev("t", "by j2"))); !errors.Is(err, persistence.ErrVersionConflict) {
		t.Fatalf("j2 created a stream j1 had created: %v", err)
	}
}

// testManyStreamsConcurrently proves that with 200 writers on their own
// streams, every group's feed holds exactly every appended event once, each
// stream in version order, and an append acknowledged before another began
// has the smaller position (commit order).
func (s *suite) testManyStreamsConcurrently(t *testing.T) {
	ctx := testContext(t)
	const (
		groups     = 4
		writers    = 200
		appendsPer = 4
	)
	j := open(t, s.storage(t, groups))
	var (
		ticks atomic.Int64
		mu    sync.Mutex
		acked []ackedAppend
		wg    sync.WaitGroup
	)
	for w := range writers {
		stream := fmt.Sprintf("pot/M%04d", w)
		group := uint32(w % groups)
		wg.Go(func() {
			v := uint64(0)
			for a := range appendsPer {
				n := 1 + (w+a)%3
				req := appendReq(stream, group, v)
				for i := range n {
					req.Events = append(req.Events, ev("t", fmt.Sprintf("%s-%d", stream, v+uint64(i)+1)))
				}
				start := ticks.Add(1)
				nv, err := j.Append(ctx, req)
				end := ticks.Add(1)
				if err != nil {
					t.Errorf("%s: append at %d: %v", stream, v, err)
					return
				}
				aa := ackedAppend{stream: stream, group: group, first: v + 1, startTick: start, endTick: end}
				for _, e := range req.Events {
					aa.data = append(aa.data, e.Data)
				}
				mu.Lock()
				acked = append(acked, aa)
				mu.Unlock()
				v = nv
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	checkFeedsHoldExactly(t, ctx, j, groups, acked)
}

// checkFeedsHoldExactly checks that each group's feed holds exactly the
// acknowledged appends' events, once, each stream in version order, and
// that appends that did not overlap in time are in feed order.
func checkFeedsHoldExactly(t *testing.T, ctx context.Context, j persistence.Journal, groups uint32, acked []ackedAppend) {
	t.Helper()
	for g := range groups {
		want := map[eventKey][]byte{}
		var appends []ackedAppend
		for _, a := range acked {
			if a.group != g {
				continue
			}
			appends = append(appends, a)
			for i, d := range a.data {
				want[eventKey{a.stream, a.first + uint64(i)}] = d
			}
		}
		feed := readFeedAll(t, ctx, j, g, 0, 97)
		pos := map[eventKey]uint64{}
		lastVersion := map[string]uint64{}
		for _, e := range feed {
			k := eventKey{e.Stream, e.Version}
			d, ok := want[k]
			if !ok {
				t.Fatalf("group %d feed: %s was not appended (or twice)", g, k)
			}
			if !bytes.Equal(d, e.Data) {
				t.Fatalf("group %d feed: %s data %q, want %q", g, k, e.Data, d)
			}
			if e.Version != lastVersion[e.Stream]+1 {
				t.Fatalf("group %d feed: %s after version %d", g, k, lastVersion[e.Stream])
			}
			lastVersion[e.Stream] = e.Version
			pos[k] = e.Position
			delete(want, k)
		}
		if len(want) != 0 {
			missing := make([]string, 0, len(want))
			for k := range want {
				missing = append(missing, k.String())
			}
			slices.Sort(missing)
			t.Fatalf("group %d feed misses %d acknowledged events: %v", g, len(missing), missing[:min(10, len(missing))])
		}
		// Real-time order: if a was acknowledged before b started, a's
		// events come first in the feed.
		slices.SortFunc(appends, func(a, b ackedAppend) int { return int(a.endTick - b.endTick) })
		for i, a := range appends {
			pa := pos[eventKey{a.stream, a.first}]
			for _, b := range appends[i+1:] {
				if a.endTick < b.startTick && pos[eventKey{b.stream, b.first}] < pa {
					t.Fatalf("group %d: %s@%d was acknowledged before %s@%d began, yet comes after it in the feed",
						g, a.stream, a.first, b.stream, b.first)
				}
			}
		}
	}
}

// testFeedTailWhileAppending proves the feed's visibility guarantee: a
// consumer that tails the feed while writers append, checkpointing the last
// position it read and restarting from the checkpoint now and then, ends
// with every acknowledged event exactly once. A feed that showed position P
// before a smaller position became visible would make it skip that event.
func (s *suite) testFeedTailWhileAppending(t *testing.T) {
	ctx := testContext(t)
	rng := newRand(t)
	const (
		groups     = 2
		writers    = 24
		appendsPer = 40
	)
	j := open(t, s.storage(t, groups))
	var (
		writing sync.WaitGroup
		mu      sync.Mutex
		acked   []ackedAppend
		stop    atomic.Bool
	)
	for w := range writers {
		writing.Go(func() {
			streams := [3]string{fmt.Sprintf("pot/T%02d-a", w), fmt.Sprintf("pot/T%02d-b", w), fmt.Sprintf("pot/T%02d-c", w)}
			var vers [3]uint64
			for a := range appendsPer {
				i := a % 3
				group := uint32((w + i) % groups)
				n := 1 + (w*7+a)%3
				req := appendReq(streams[i], group, vers[i])
				for e := range n {
					req.Events = append(req.Events, ev("t", fmt.Sprintf("%s-%d", streams[i], vers[i]+uint64(e)+1)))
				}
				v, err := j.Append(ctx, req)
				if err != nil {
					t.Errorf("%s: %v", streams[i], err)
					return
				}
				aa := ackedAppend{stream: streams[i], group: group, first: vers[i] + 1}
				for _, e := range req.Events {
					aa.data = append(aa.data, e.Data)
				}
				mu.Lock()
				acked = append(acked, aa)
				mu.Unlock()
				vers[i] = v
			}
		})
	}

	type consumer struct {
		checkpoint uint64
		seen       map[eventKey]int
		restarts   int // crashes between reading and committing
		reads      int
	}
	consumers := make([]*consumer, groups)
	var consuming sync.WaitGroup
	for g := range uint32(groups) {
		c := &consumer{seen: map[eventKey]int{}}
		consumers[g] = c
		limit := 1 + rng.IntN(16)
		crng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		consuming.Go(func() {
			// The consumer's durable state is its checkpoint and what it has
			// applied, committed together. Now and then it "crashes" after
			// reading a page and before committing it, and reads again from
			// its checkpoint, which must give the same events again.
			wait := 100 * time.Microsecond
			var lost []persistence.FeedEvent
			for {
				finished := stop.Load() // read before the feed: a read after the last ack sees it
				page, err := j.ReadFeed(ctx, g, c.checkpoint, limit)
				if err != nil {
					t.Errorf("group %d: read feed after %d: %v", g, c.checkpoint, err)
					return
				}
				c.reads++
				if lost != nil {
					if len(page) < len(lost) {
						t.Errorf("group %d: re-read after %d gave %d events, %d before the crash", g, c.checkpoint, len(page), len(lost))
						return
					}
					// Off the test's goroutine: assert, not require.
					for i := range lost {
						what := fmt.Sprintf("group %d: re-read after %d [%d]", g, c.checkpoint, i)
						samePos := assert.Equal(t, lost[i].Position, page[i].Position, "%s: position", what)
						if !assertSameEvent(t, lost[i].Event, page[i].Event, what) || !samePos {
							return
						}
					}
					lost = nil
				}
				if len(page) > 0 && crng.IntN(8) == 0 {
					c.restarts++
					lost = page
					continue
				}
				for _, e := range page {
					if e.Position <= c.checkpoint {
						t.Errorf("group %d: position %d at or before checkpoint %d", g, e.Position, c.checkpoint)
						return
					}
					c.seen[eventKey{e.Stream, e.Version}]++
					c.checkpoint = e.Position
				}
				if len(page) == 0 {
					if finished {
						return
					}
					time.Sleep(wait) // polling an empty feed
					continue
				}
			}
		})
	}
	writing.Wait()
	stop.Store(true)
	consuming.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for g, c := range consumers {
		want := map[eventKey]bool{}
		for _, a := range acked {
			if a.group == uint32(g) {
				for i := range a.data {
					want[eventKey{a.stream, a.first + uint64(i)}] = true
				}
			}
		}
		for k, n := range c.seen {
			if !want[k] {
				t.Errorf("group %d: consumer saw %s, which no acknowledged append wrote", g, k)
			}
			if n != 1 {
				t.Errorf("group %d: consumer saw %s %d times", g, k, n)
			}
		}
		missed := 0
		for k := range want {
			if c.seen[k] == 0 {
				missed++
				if missed <= 5 {
					t.Errorf("group %d: consumer never saw %s", g, k)
				}
			}
		}
		if missed > 0 {
			t.Errorf("group %d: consumer missed %d of %d events", g, missed, len(want))
		}
		t.Logf("group %d: %d events, %d reads, %d restarts", g, len(want), c.reads, c.restarts)
	}
}

// testCloseReopen proves that everything acknowledged survives a close and
// reopen, that versions and feed positions continue after it, and that the
// number of groups is kept.
func (s *suite) testCloseReopen(t *testing.T) {
	ctx := testContext(t)
	const groups = 3
	o := s.storage(t, groups)
	j := open(t, o)
	for i := range 12 {
		stream := fmt.Sprintf("pot/P%d", i%4)
		v := uint64(i / 4)
		mustAppend(t, ctx, j, appendReq(stream, uint32(i%4%groups), v, ev("t", fmt.Sprintf("%s-%d", stream, v+1))))
	}
	if err := j.SaveSnapshot(ctx, persistence.Snapshot{Stream: "pot/P0", Version: 2, Data: []byte("snap")}); err != nil {
		t.Fatal(err)
	}
	var before [groups][]persistence.FeedEvent
	for g := range uint32(groups) {
		before[g] = readFeedAll(t, ctx, j, g, 0, 5)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	j = open(t, o)
	if j.Groups() != groups {
		t.Fatalf("reopened with %d groups, want %d", j.Groups(), groups)
	}
	for i := range 4 {
		stream := fmt.Sprintf("pot/P%d", i)
		got := mustRead(t, ctx, j, stream, 1, 0)
		if len(got) != 3 {
			t.Fatalf("after reopen %s has %d events, want 3", stream, len(got))
		}
		for k, e := range got {
			require.Equal(t, fmt.Sprintf("%s-%d", stream, k+1), string(e.Data), "after reopen %s[%d]: data", stream, k)
			require.Equal(t, uint64(k+1), e.Version, "after reopen %s[%d]: version", stream, k)
		}
		if _, err := j.Append(ctx, appendReq(stream, uint32(i%groups), 0, ev("t", "again"))); !errors.Is(err, persistence.ErrVersionConflict) {
			t.Fatalf("after reopen, re-creating %s: %v, want ErrVersionConflict", stream, err)
		}
		mustAppend(t, ctx, j, appendReq(stream, uint32(i%groups), 3, ev("t", fmt.Sprintf("%s-4", stream))))
	}
	snap, found, err := j.LoadSnapshot(ctx, "pot/P0")
	require.NoError(t, err, "after reopen: load pot/P0's snapshot")
	require.True(t, found, "after reopen: pot/P0's snapshot found")
	require.Equal(t, uint64(2), snap.Version, "after reopen: pot/P0's snapshot version")
	require.Equal(t, "snap", string(snap.Data), "after reopen: pot/P0's snapshot data")
	for g := range uint32(groups) {
		after := readFeedAll(t, ctx, j, g, 0, 5)
		if len(after) < len(before[g]) {
			t.Fatalf("group %d feed: %d events after reopen, %d before", g, len(after), len(before[g]))
		}
		for i := range before[g] {
			what := fmt.Sprintf("group %d feed[%d] across reopen", g, i)
			require.Equal(t, before[g][i].Position, after[i].Position, "%s: position", what)
			requireSameEvent(t, before[g][i].Event, after[i].Event, what)
		}
		for _, e := range after[len(before[g]):] {
			if e.Version != 4 {
				t.Fatalf("group %d feed: new event %s@%d, want version 4", g, e.Stream, e.Version)
			}
		}
		// A consumer resuming from its checkpoint sees only the new events.
		if len(before[g]) > 0 {
			resumed := readFeedAll(t, ctx, j, g, before[g][len(before[g])-1].Position, 5)
			if len(resumed) != len(after)-len(before[g]) {
				t.Fatalf("group %d: resuming after the old last position gives %d events, want %d", g, len(resumed), len(after)-len(before[g]))
			}
		}
	}
}

// testCloseWhileAppending proves that Close with appends in flight lets
// each one either complete (and survive a reopen) or fail with ErrClosed
// (and leave nothing).
func (s *suite) testCloseWhileAppending(t *testing.T) {
	ctx := testContext(t)
	const writers = 16
	o := s.storage(t, 2)
	j := open(t, o)
	var (
		wg     sync.WaitGroup
		acks   atomic.Int64
		heads  [writers]uint64
		closed [writers]bool
	)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("pot/CW%02d", w)
			for {
				v, err := j.Append(ctx, appendReq(stream, uint32(w%2), heads[w], ev("t", fmt.Sprintf("%s-%d", stream, heads[w]+1))))
				if errors.Is(err, persistence.ErrClosed) {
					closed[w] = true
					return
				}
				if err != nil {
					t.Errorf("%s: %v, want nil or ErrClosed", stream, err)
					return
				}
				heads[w] = v
				acks.Add(1)
			}
		})
	}
	checkFor(t, testTimeout, func() error {
		if n := acks.Load(); n < 3*writers {
			return fmt.Errorf("%d appends acknowledged", n)
		}
		return nil
	})
	if err := j.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	j = open(t, o)
	for w := range writers {
		stream := fmt.Sprintf("pot/CW%02d", w)
		if !closed[w] {
			t.Errorf("%s: writer stopped without ErrClosed", stream)
		}
		got := mustRead(t, ctx, j, stream, 1, 0)
		if uint64(len(got)) != heads[w] {
			t.Errorf("%s: %d events after reopen, %d acknowledged", stream, len(got), heads[w])
		}
		for i, e := range got {
			if want := fmt.Sprintf("%s-%d", stream, i+1); string(e.Data) != want {
				t.Errorf("%s[%d] = %q, want %q", stream, i, e.Data, want)
			}
		}
	}
}
