package actors_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
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

// failingReads is a journal whose reads of a pot's stream, and of the
// feeds (which the history read model projects), fail once armed.
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

func (j *failingReads) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	if j.armed.Load() {
		return nil, errReadFails
	}
	return j.Journal.ReadFeed(ctx, group, after, limit)
}

func memJournal(t *testing.T) persistence.Journal {
	t.Helper()
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 8})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	return j
}

// failedStatementRead opens a pot, makes its journal's reads fail and asks
// for its statement, which the pot must answer unavailable (the history
// cannot read the events it has not projected yet).
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

// TestUnexpectedPotErrorIsLogged: an error the pot cannot answer as a
// refusal (here its journal's read failing) is answered unavailable, and
// its cause is logged once, with the member, for an operator to see why.
func TestUnexpectedPotErrorIsLogged(t *testing.T) {
	j := &failingReads{Journal: memJournal(t)}
	w := newWorld(t, worldOptions{journal: j})
	logs := newRecords()
	w.deps.Logger = slog.New(logs)
	failedStatementRead(t, w, j)
	var found []slog.Record
	for _, r := range logs.all() {
		if strings.Contains(attr(r, "err"), errReadFails.Error()) {
			found = append(found, r)
		}
	}
	require.Len(t, found, 1, "records logging the journal's error: %v", logs.all())
	assert.GreaterOrEqual(t, found[0].Level, slog.LevelWarn)
	assert.Equal(t, "M-read", attr(found[0], "member"))
}

// records is a slog handler keeping every record, with the attributes of
// its logger.
type records struct {
	store *recordStore
	attrs []slog.Attr
}

type recordStore struct {
	mu   sync.Mutex
	list []slog.Record
}

func newRecords() *records { return &records{store: &recordStore{}} }

func (h *records) Enabled(context.Context, slog.Level) bool { return true }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	h.store.list = append(h.store.list, r)
	return nil
}

func (h *records) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &records{store: h.store, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *records) WithGroup(string) slog.Handler { return h }

func (h *records) all() []slog.Record {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	return append([]slog.Record(nil), h.store.list...)
}

// attr is the value of r's attribute key, as text.
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}
