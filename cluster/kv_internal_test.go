package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failingWatchStore takes puts and deletions but refuses to watch.
type failingWatchStore struct {
	mu  sync.Mutex
	ops []string
}

func (s *failingWatchStore) Put(_ context.Context, key string, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, "put "+key)
	return nil
}

func (s *failingWatchStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, "delete "+key)
	return nil
}

func (s *failingWatchStore) Watch(context.Context) (<-chan MemberStoreEvent, error) {
	return nil, errors.New("permission denied")
}

// A member that registered but cannot watch (it would never see a member)
// fails its start, and its record is deleted rather than left to expire.
func TestKVStartFailsWithoutWatch(t *testing.T) {
	store := &failingWatchStore{}
	cfg := Config{ClusterName: "test", Provider: ProviderKV, KV: KVConfig{Store: store, Heartbeat: 100 * time.Millisecond},
		Kinds: []Kind{{Name: "Pot", New: func(time.Duration) *protocluster.Kind {
			return protocluster.NewKind("Pot", actor.PropsFromFunc(func(actor.Context) {}))
		}}}}
	n, err := Start(cfg)
	if err == nil {
		n.Kill()
	}
	require.ErrorContains(t, err, "watch members: permission denied")
	store.mu.Lock()
	defer store.mu.Unlock()
	require.Len(t, store.ops, 2, "a put, then a delete: %v", store.ops)
	assert.Regexp(t, "^put ", store.ops[0])
	assert.Equal(t, "delete"+store.ops[0][len("put"):], store.ops[1], "the same key")
}

// A watcher drops a record it has not received for the TTL, but only while
// some record is fresh: when none is, it is more likely cut off from the
// store than every member dead, and drops nothing.
func TestKVPruneOnlyWhileSomeRecordIsFresh(t *testing.T) {
	p := &kvProvider{ttl: time.Second, logger: (&Config{}).EnsureDefaults().Logger}
	now := time.Now()
	member := func(id string, age time.Duration) *kvMember {
		return &kvMember{member: &protocluster.Member{Id: id, Host: "127.0.0.1", Port: 1}, seen: now.Add(-age)}
	}
	members := map[string]*kvMember{"fresh": member("fresh", 500*time.Millisecond), "stale": member("stale", 2*time.Second)}
	require.True(t, p.prune(members, now), "a stale record beside a fresh one")
	assert.Contains(t, members, "fresh")
	assert.NotContains(t, members, "stale")

	members = map[string]*kvMember{"a": member("a", 2*time.Second), "b": member("b", 3*time.Second)}
	require.False(t, p.prune(members, now), "every record stale")
	assert.Len(t, members, 2)
}
