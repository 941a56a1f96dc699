package actors_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// errReadFails is the journal failure of failingReads.
var errReadFails = errors.New("test: the journal's read fails")

// failingReads is a journal whose reads of a pot's stream fail once armed.
type failingReads struct {
	persistence.Journal
	armed atomic.Bool
}

func (j *failingReads) Read(ctx context.Context, stream string, from uint64, limit int) ([]persistence.Event, error) {
	if j.armed.Load() && stream == actors.PotStream("M-read") {
		return nil, errReadFails
	}
	return j.Journal.Read(ctx, stream, from, limit)
}

func memJournal(t *testing.T) persistence.Journal {
	t.Helper()
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 8})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	return j
}

// failedStatementRead opens a pot, makes its journal's reads fail and asks
// for its statement, which the pot must answer unavailable (it cannot read
// its events).
func failedStatementRead(t *testing.T, w *world, j *failingReads) {
	t.Helper()
	w.must("M-read", openPot("k-open", "balanced"))
	w.must("M-read", contribute("k-c1", "100.00"))
	j.armed.Store(true)
	resp, err := w.call("M-read", &pb.PotRequest{Command: &pb.PotRequest_GetStatement{GetStatement: &pb.GetStatement{}}})
	require.NoError(t, err)
	require.NotNil(t, resp.GetProblem(), "a statement the pot could not read: %v", resp)
	assert.Equal(t, problem.Unavailable, resp.GetProblem().GetCode())
	assert.NotContains(t, resp.GetProblem().GetDetail(), errReadFails.Error(), "the journal's error reached the caller")
}

// TestFailedStatementReadCountsAsFailed: a statement the pot could not read
// from its journal is counted as a failed request, not an ok one (it was
// counted ok: a query's outcome was never looked at).
func TestFailedStatementReadCountsAsFailed(t *testing.T) {
	j := &failingReads{Journal: memJournal(t)}
	w, metrics := newMeteredWorld(t, worldOptions{journal: j})
	failedStatementRead(t, w, j)
	assert.Equal(t, 1.0, counterValue(t, metrics.Requests.WithLabelValues("get_statement", "failed")))
	assert.Zero(t, counterValue(t, metrics.Requests.WithLabelValues("get_statement", "ok")))
	// A query the pot refuses is a refusal.
	p := w.mustProblem("M-read", &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: "no-such-order"}}})
	assert.Equal(t, problem.OrderNotFound, p.Code)
	assert.Equal(t, 1.0, counterValue(t, metrics.Requests.WithLabelValues("get_order", "refused")))
	assert.Zero(t, counterValue(t, metrics.Requests.WithLabelValues("get_order", "ok")))
}
