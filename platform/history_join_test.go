package platform_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
)

// heldFeed is a journal whose pot groups' feed reads wait until release is
// closed (the system group's, which the market follows, do not).
type heldFeed struct {
	persistence.Journal
	release chan struct{}
	once    sync.Once
	reading chan struct{} // closed at the first feed read
}

func (h *heldFeed) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	if group == actors.SystemGroup(h.Journal) {
		return h.Journal.ReadFeed(ctx, group, after, limit)
	}
	h.once.Do(func() { close(h.reading) })
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Journal.ReadFeed(ctx, group, after, limit)
}

// A node joins the cluster only once its history read model has caught up
// with the journal: pots that ask the history about old idempotency keys
// would otherwise stall, right after the join, every call to the pots the
// node took over (docs/decisions.md, "A node catches its history up before
// it joins").
func TestNodeJoinsOnlyWithItsHistoryCaughtUp(t *testing.T) {
	logger, level := testkit.Logger(t)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 5})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	held := &heldFeed{Journal: j, release: make(chan struct{}), reading: make(chan struct{})}
	cc := cluster.Config{ClusterName: "history-join", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 2 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		cc.GossipInterval, cc.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	started := make(chan error, 1)
	var node *platform.Node
	go func() {
		var err error
		node, err = platform.StartNode(platform.NodeConfig{Cluster: cc, Journal: held, HistoryDir: t.TempDir(),
			Catalogue: domain.DefaultCatalogue(), Calendar: cal, Market: actors.NewMarketState(), Now: time.Now, Logger: logger})
		started <- err
	}()
	<-held.reading
	// protoactor takes about a second to start a member: three are
	// plenty for a node that did not wait for its history.
	select {
	case err := <-started:
		if err == nil {
			node.Kill()
		}
		t.Fatalf("the node started (err %v) while its history could not read the journal", err)
	case <-time.After(3 * time.Second):
	}
	close(held.release)
	require.NoError(t, <-started)
	t.Cleanup(node.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.NoError(t, node.Cluster.WaitForMembers(ctx, 1), "the node has joined")
}
