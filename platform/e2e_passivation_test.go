package platform_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// TestE2EPotPassivationKeepsReplies proves that pots passivating when idle
// leave no decision behind: requests that arrive just as a pot's idle
// timeout fires are answered (if need be after retries with the same key, as
// docs/api.md tells clients to retry), and a cut-off afterwards waits for none
// of them (a decision whose reply is never sent would hold every later
// cut-off, and so every dealing cycle, forever).
func TestE2EPotPassivationKeepsReplies(t *testing.T) {
	logger, level := testkit.Logger(t)
	cal, err := platform.NewCalendar()
	require.NoError(t, err)
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 5})
	require.NoError(t, err)
	t.Cleanup(func() { j.Close() })
	market := actors.NewMarketState()
	clock := cal.DealingDayFor(time.Now()).At(9, 0, cal.Location())
	cc := cluster.Config{ClusterName: "passivation", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 2 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		cc.GossipInterval, cc.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	// A pot passivates 20 ms after its last message: requests sent about
	// that far apart meet its idle timeout again and again.
	const idle = 20 * time.Millisecond
	node, err := platform.StartNode(platform.NodeConfig{Cluster: cc, Journal: j, HistoryDir: t.TempDir(), Catalogue: domain.DefaultCatalogue(),
		Calendar: cal, Market: market, Now: func() time.Time { return clock }, PotIdleTimeout: idle, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(node.Kill)

	const pots, rounds = 40, 60
	var timeouts, lost atomic.Int64
	var firstTimeout, firstLost atomic.Value
	var wg sync.WaitGroup
	for i := range pots {
		member := fmt.Sprintf("P%03d", i)
		wg.Go(func() {
			// call retries what went unanswered, with the same key, for
			// up to 15 s.
			call := func(key string, req *pb.PotRequest) error {
				req.IdempotencyKey = key
				deadline := time.Now().Add(15 * time.Second)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					resp, err := node.Pots.Handle(ctx, member, req)
					cancel()
					switch {
					case err == nil && resp.GetProblem().GetCode() != problem.Unavailable:
						return nil
					case time.Now().After(deadline):
						return fmt.Errorf("no answer: %v", err)
					case err != nil:
						timeouts.Add(1)
						firstTimeout.CompareAndSwap(nil, fmt.Sprintf("%s %s: %v", member, key, err))
					}
				}
			}
			if !assert.NoError(t, call("open", &pb.PotRequest{Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{}}}), "open %s", member) {
				return
			}
			for r := range rounds {
				// Around the idle timeout, a little before or after it.
				time.Sleep(idle - 2*time.Millisecond + time.Duration(r%5)*time.Millisecond)
				err := call(fmt.Sprint("pay-", r), &pb.PotRequest{Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: "1.00"}}})
				if err != nil {
					lost.Add(1)
					firstLost.CompareAndSwap(nil, fmt.Sprintf("%s request %d: %v", member, r, err))
				}
			}
		})
	}
	wg.Wait()
	if n := lost.Load(); n > 0 {
		t.Errorf("%d of %d contributions got no answer, retried for 15 s; first: %v", n, pots*rounds, firstLost.Load())
	}
	if n := timeouts.Load(); n > 0 {
		t.Logf("%d calls timed out and were retried; first: %v", n, firstTimeout.Load())
	}
	// Idle, every pot passivates.
	var active float64
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		if active = gauge(t, node, "mastertrust_pot_active"); active == 0 {
			break
		}
	}
	if active != 0 {
		t.Errorf("%v of %d pots still active after 2 s idle (idle timeout %s)", active, pots, idle)
	}
	// Every decision has been answered (or timed out long ago): a cut-off
	// must not wait for any of them.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := market.CutOff(ctx, cal.NextDealingDay(cal.DealingDayFor(clock))); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cut-off still waits for a pot decision (a leaked hold): %v", err)
		} else {
			t.Error(err)
		}
	}
}

// gauge reads a gauge of a node's registry.
func gauge(t *testing.T, node *platform.Node, name string) float64 {
	t.Helper()
	families, err := node.Registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
