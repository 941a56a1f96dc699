package persistencetest

import (
	"fmt"
	"testing"

	"github.com/acme/mastertrust/persistence"
	"github.com/stretchr/testify/require"
)

// testFeedOrderAndResume proves that a group's feed holds its streams'
// events in commit order with strictly increasing positions, that paging
// with any limit and resuming after any position gives the same sequence,
// and that groups do not see each other's events.
func (s *suite) testFeedOrderAndResume(t *testing.T) {
	ctx := testContext(t)
	rng := newRand(t)
	const groups = 3
	j := open(t, s.storage(t, groups))
	var want [groups][]persistence.Event
	heads := map[string]uint64{}
	for range 60 {
		stream := fmt.Sprintf("pot/F%d", rng.IntN(9))
		group := uint32(len(stream)+int(stream[len(stream)-1])) % groups
		n := 1 + rng.IntN(3)
		req := appendReq(stream, group, heads[stream])
		for i := range n {
			v := heads[stream] + uint64(i) + 1
			e := persistence.Event{Stream: stream, Version: v, Group: group, Type: fmt.Sprintf("t%d", i), Data: []byte(fmt.Sprintf("%s-%d", stream, v))}
			req.Events = append(req.Events, persistence.NewEvent{Type: e.Type, Data: e.Data})
			want[group] = append(want[group], e)
		}
		heads[stream] = mustAppend(t, ctx, j, req)
	}
	for g := range uint32(groups) {
		full := readFeedAll(t, ctx, j, g, 0, 1000)
		if len(full) != len(want[g]) {
			t.Fatalf("group %d feed: %d events, want %d", g, len(full), len(want[g]))
		}
		for i := range full {
			if !sameEvent(full[i].Event, want[g][i]) {
				t.Fatalf("group %d feed[%d] = %+v, want %+v (appends were sequential: commit order)", g, i, full[i].Event, want[g][i])
			}
			if i > 0 && full[i].Position <= full[i-1].Position {
				t.Fatalf("group %d feed: position %d after %d", g, full[i].Position, full[i-1].Position)
			}
		}
		for _, limit := range []int{1, 2, 7} {
			paged := readFeedAll(t, ctx, j, g, 0, limit)
			if len(paged) != len(full) {
				t.Fatalf("group %d paged by %d: %d events, want %d", g, limit, len(paged), len(full))
			}
			for i := range paged {
				what := fmt.Sprintf("group %d paged by %d: [%d]", g, limit, i)
				require.Equal(t, full[i].Position, paged[i].Position, "%s: position", what)
				requireSameEvent(t, full[i].Event, paged[i].Event, what)
			}
		}
		// Resume from every checkpoint a consumer could hold.
		for i := range full {
			rest := readFeedAll(t, ctx, j, g, full[i].Position, 4)
			if len(rest) != len(full)-i-1 {
				t.Fatalf("group %d resumed after position %d: %d events, want %d", g, full[i].Position, len(rest), len(full)-i-1)
			}
			if len(rest) > 0 && rest[0].Position != full[i+1].Position {
				t.Fatalf("group %d resumed after position %d: first %d, want %d", g, full[i].Position, rest[0].Position, full[i+1].Position)
			}
		}
		if len(full) > 0 {
			// Between two positions (they need not be contiguous), resume
			// at the next one.
			last := full[len(full)-1].Position
			if got := readFeedAll(t, ctx, j, g, last+1000, 4); len(got) != 0 {
				t.Fatalf("group %d after the end: %d events", g, len(got))
			}
		}
	}
}
