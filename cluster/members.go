package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/acme/mastertrust/cluster/internal/statspb"
	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// membersStatsTimeout bounds the stats request to each member when the
// caller's context has no earlier deadline: a member that does not answer
// in it is reported with StatsError, not waited for.
const membersStatsTimeout = 2 * time.Second

// MemberInfo describes one member of the cluster as this node sees it.
type MemberInfo struct {
	// ID is the member's ID, new at every start of its process.
	ID string
	// Address is the member's cluster address (host:port).
	Address string
	// Kinds are the grain kinds it hosts, sorted (protoactor's internal
	// pub-sub kind left out).
	Kinds []string
	// ActiveGrains counts the member's live activations by kind, as the
	// member reported them just now (protoactor's per-kind counter, raised
	// on spawn and lowered when the activation stops). Nil if the member did
	// not answer; see StatsError.
	ActiveGrains map[string]int64
	// StatsError says why ActiveGrains is nil ("" when it is not).
	StatsError string
	// Sees are the IDs of the members in the member's own topology, sorted:
	// its view of the cluster (nil if it did not answer).
	Sees []string
	// Gauges are the member's own readings (Config.Gauges; nil if it did
	// not answer or has none).
	Gauges map[string]int64
}

// Members lists the members of this node's topology, sorted by address,
// with their active grains by kind, asking every member in parallel (ctx
// bounds the wait). Clients are not members and are not listed. For GET
// /v1/cluster.
//
// protoactor keeps the counts per node only (and gossips them among members
// in heartbeats, which clients do not receive), so every member runs a small
// stats actor that this asks.
func (n *Node) Members(ctx context.Context) ([]MemberInfo, error) {
	if !n.enter() {
		return nil, ErrStopped
	}
	defer n.calls.Done()
	members := n.topologyMembers()
	// A member that does not answer is reported with StatsError: its
	// wait ends a quarter before ctx does, so that the others' answers are
	// returned, not ctx's error.
	timeout := time.Until(deadline(ctx, membersStatsTimeout))
	timeout -= timeout / 4
	infos := make([]MemberInfo, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		kinds := make([]string, 0, len(m.Kinds))
		for _, k := range m.Kinds {
			if k != protocluster.TopicActorKind {
				kinds = append(kinds, k)
			}
		}
		slices.Sort(kinds)
		infos[i] = MemberInfo{ID: m.Id, Address: m.Address(), Kinds: kinds}
		wg.Go(func() {
			stats, err := n.memberStats(m.Address(), timeout)
			if err != nil {
				infos[i].StatsError = err.Error()
				return
			}
			infos[i].ActiveGrains = maps.Clone(stats.GetActiveGrains())
			if infos[i].ActiveGrains == nil {
				infos[i].ActiveGrains = map[string]int64{}
			}
			infos[i].Sees = slices.Clone(stats.GetMembers())
			infos[i].Gauges = maps.Clone(stats.GetGauges())
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return infos, fmt.Errorf("cluster: members: %w", err)
	}
	return infos, nil
}

// memberStats asks the stats actor of the member at address.
func (n *Node) memberStats(address string, timeout time.Duration) (*statspb.MemberStats, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("cluster: stats of %s: %w", address, context.DeadlineExceeded)
	}
	pid := actor.NewPID(address, statsActorName)
	reply, err := n.system.Root.RequestFuture(pid, &statspb.MemberStatsRequest{}, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: stats of %s: %w", address, err)
	}
	stats, ok := reply.(*statspb.MemberStats)
	if !ok {
		return nil, fmt.Errorf("cluster: stats of %s: unexpected reply %T", address, reply)
	}
	return stats, nil
}

// receiveStats is the stats actor of a member.
func (n *Node) receiveStats(ctx actor.Context) {
	if _, ok := ctx.Message().(*statspb.MemberStatsRequest); !ok {
		return
	}
	counts := make(map[string]int64, len(n.cfg.Kinds))
	for _, k := range n.cfg.Kinds {
		if kind, ok := n.cluster.TryGetClusterKind(k.Name); ok {
			counts[k.Name] = int64(kind.Count())
		}
	}
	members := n.topologyMembers()
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.Id)
	}
	slices.Sort(ids)
	var gauges map[string]int64
	if n.cfg.Gauges != nil {
		gauges = n.cfg.Gauges()
	}
	ctx.Respond(&statspb.MemberStats{ActiveGrains: counts, Members: ids, Gauges: gauges})
}

// ActiveGrains returns how many activations of kind this member hosts now
// (0 for a client or a kind it does not host).
func (n *Node) ActiveGrains(kind string) int64 {
	if n.client {
		return 0
	}
	k, ok := n.cluster.TryGetClusterKind(kind)
	if !ok {
		return 0
	}
	return int64(k.Count())
}
