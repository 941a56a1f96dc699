package actors_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// Benchmarks of the pot grain: small and quick, beside the code. The whole
// workload (raw Pebble ceiling, HTTP, heap per pot, profiles) is
// bench.RunPots; docs/performance.md has its figures.
//
//	go test ./actors -run '^$' -bench Pot -benchtime 20000x

// benchCallers are the concurrent callers (as in docs/architecture.md's measured ceilings).
const benchCallers = 64

// benchPots are the pots the calls spread over: many more than the callers,
// so that each call finds its pot idle (no batching of one pot's requests).
const benchPots = 1024

// contributionEvents is what a Contribute to a self-directed pot appends:
// CashContributed and RequestRecorded.
const contributionEvents = 2

// BenchmarkPotContribute measures durable commands: Contribute calls from
// 64 callers to 1,024 open pots through their grains, each appended to a
// Pebble journal on disk (synced) before its reply. It reports commands/s
// and events/s.
func BenchmarkPotContribute(b *testing.B) {
	w, members := benchWorld(b)
	pots := actors.PotClient{Node: w.members[0]}
	var next atomic.Int64
	runBenchCallers(b, func() error {
		n := next.Add(1)
		resp, err := pots.Handle(context.Background(), members[n%benchPots], &pb.PotRequest{
			IdempotencyKey: "c-" + strconv.FormatInt(n, 10),
			Command:        &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "1.00"}}})
		if err == nil && resp.GetMovement() == nil {
			err = fmt.Errorf("contribution answered %v", resp)
		}
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
	b.ReportMetric(float64(b.N*contributionEvents)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPotQuery is BenchmarkPotContribute's baseline: GetPot calls to
// the same pots, the same grain path with no journal write.
func BenchmarkPotQuery(b *testing.B) {
	w, members := benchWorld(b)
	pots := actors.PotClient{Node: w.members[0]}
	var next atomic.Int64
	runBenchCallers(b, func() error {
		resp, err := pots.Handle(context.Background(), members[next.Add(1)%benchPots],
			&pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}})
		if err == nil && resp.GetPot() == nil {
			err = fmt.Errorf("GetPot answered %v", resp)
		}
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// benchWorld starts a member with its journal on disk and opens benchPots
// self-directed pots, calling them from the member itself (one process, as
// `mastertrust dev` runs): the calls measure the grain path, not gRPC.
func benchWorld(b *testing.B) (*world, []string) {
	b.Helper()
	j, err := pebble.Open(b.TempDir(), pebble.Options{Groups: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	w := newWorld(b, worldOptions{journal: j})
	pots := actors.PotClient{Node: w.members[0]}
	members := make([]string, benchPots)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range members {
		members[i] = fmt.Sprintf("B%06d", i)
		resp, err := pots.Handle(ctx, members[i], openPot("open", ""))
		if err != nil || resp.GetPot() == nil {
			b.Fatalf("open %s: %v %v", members[i], resp, err)
		}
	}
	return w, members
}

// runBenchCallers runs b.N calls of call on benchCallers goroutines.
func runBenchCallers(b *testing.B, call func() error) {
	b.Helper()
	b.SetParallelism(max(1, benchCallers/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
}
