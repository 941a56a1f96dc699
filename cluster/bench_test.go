package cluster_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/cluster/internal/testgrain"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// benchCallers is the number of concurrent callers, as in the measured
// ceilings of docs/architecture.md (64 callers, 2 members in one process).
const benchCallers = 64

// benchSteadyGrains is how many grains the steady-state benchmarks spread
// their calls over (all activated before the timer starts).
const benchSteadyGrains = 1024

// runCallers runs b.N calls of op on benchCallers goroutines and reports
// calls/s.
func runCallers(b *testing.B, op func(i int64) error) {
	b.Helper()
	var next atomic.Int64
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism(max(1, benchCallers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(next.Add(1) - 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkGrainCalls measures Counter.Add request/response calls on two
// members in one process with 64 concurrent callers: to grains already
// active (steady) and to a new grain each call (activate), from a member
// (half the grains are local to it) and from a client (all remote), through
// Call and, for comparison, the generated client alone.
func BenchmarkGrainCalls(b *testing.B) {
	tc := startCluster(b, clusterOptions{members: 2, clients: 1})
	ctx := context.Background()
	steadyIDs := identities("steady", benchSteadyGrains)
	for _, id := range steadyIDs {
		_, err := add(ctx, tc.members[0], id, 1)
		require.NoError(b, err)
	}
	callers := map[string]*cluster.Node{"member": tc.members[0], "client": tc.clients[0]}

	for _, from := range []string{"member", "client"} {
		node := callers[from]
		b.Run("steady/call/from="+from, func(b *testing.B) {
			runCallers(b, func(i int64) error {
				_, err := add(ctx, node, steadyIDs[i%benchSteadyGrains], 1)
				return err
			})
		})
	}
	b.Run("steady/generated/from=member", func(b *testing.B) {
		node := tc.members[0]
		runCallers(b, func(i int64) error {
			_, err := testgrain.GetCounterGrainClient(node.Cluster(), steadyIDs[i%benchSteadyGrains]).
				Add(&testgrain.AddRequest{Delta: 1}, node.CallOptions(ctx)...)
			return err
		})
	})
	// runs numbers the runs of a sub-benchmark (b.N probing and -count
	// repeat them on this cluster), so that every run activates new grains.
	runs := 0
	for _, from := range []string{"member", "client"} {
		node := callers[from]
		b.Run("activate/call/from="+from, func(b *testing.B) {
			runs++
			prefix := fmt.Sprintf("activate-%s-%d", from, runs)
			runCallers(b, func(i int64) error {
				_, err := add(ctx, node, fmt.Sprintf("%s-%d", prefix, i), 1)
				return err
			})
		})
	}
}

// BenchmarkActiveGrainHeap measures the heap held per active grain (tiny
// state): b.N grains activated over two members, heap after GC before and
// after, divided by b.N. It counts everything an activation costs in this
// process: the actor, its mailbox, the placement entry, and the caller's
// PID cache entry.
func BenchmarkActiveGrainHeap(b *testing.B) {
	tc := startCluster(b, clusterOptions{members: 2})
	node := tc.members[0]
	ctx := context.Background()
	// Warm up the connections and caches that every grain shares.
	for _, id := range identities("warm", 100) {
		_, err := add(ctx, node, id, 1)
		require.NoError(b, err)
	}
	before := heapAfterGC()
	prefix := "heap"
	runCallers(b, func(i int64) error {
		_, err := cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*testgrain.CounterState, error) {
			return testgrain.GetCounterGrainClient(node.Cluster(), fmt.Sprintf("%s-%d", prefix, i)).Get(&testgrain.GetRequest{}, opts...)
		})
		return err
	})
	after := heapAfterGC()
	active := tc.members[0].ActiveGrains(testgrain.KindName) + tc.members[1].ActiveGrains(testgrain.KindName)
	require.Equal(b, int64(b.N+100), active, "active grains")
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "B/grain")
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
