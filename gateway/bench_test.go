package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/proto/pb"
)

// BenchmarkHTTPOrders measures buy orders per second through the whole
// stack: HTTP (keep-alive, JSON), token check, validation, a grain call to
// the member's pot, the pot's decision, a synced Pebble append on a real
// disk (t.TempDir), and the 202 back; many clients at once, each on its
// own pot. It reports orders/s and the p50 and p99 latency a client sees.
// The clients run in this process too, on the same two cores.
//
//	go test ./gateway -run XXX -bench HTTPOrders -benchtime 20000x
func BenchmarkHTTPOrders(b *testing.B) {
	for _, via := range []string{"client", "member"} {
		for _, clients := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("via=%s/clients=%d", via, clients), func(b *testing.B) {
				benchmarkHTTPOrders(b, via == "member", clients)
			})
		}
	}
}

// BenchmarkPotOrders is BenchmarkHTTPOrders's baseline, run the same way
// but without HTTP: the clients call the pots straight from the client
// node (actors.PotClient), so the difference is the gateway and HTTP.
func BenchmarkPotOrders(b *testing.B) {
	for _, clients := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			e, members := benchEnv(b, false, clients)
			pots := actors.PotClient{Node: e.client}
			runClients(b, clients, func(i int, n int64) error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				resp, err := pots.Handle(ctx, members[i], &pb.PotRequest{IdempotencyKey: "bench-" + strconv.FormatInt(n, 10),
					Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{Type: pb.OrderType_ORDER_TYPE_BUY, Asset: ukEquity, Amount: "1.00"}}})
				if err == nil && resp.GetOrder() == nil {
					err = fmt.Errorf("order answered %v", resp)
				}
				return err
			})
		})
	}
}

func benchmarkHTTPOrders(b *testing.B, viaMember bool, clients int) {
	e, members := benchEnv(b, viaMember, clients)
	transport := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}
	b.Cleanup(transport.CloseIdleConnections)
	hc := &http.Client{Transport: transport}
	body := `{"type":"buy","asset":"` + ukEquity + `","amount":"1.00"}`
	auth := "Bearer " + e.operator
	runClients(b, clients, func(i int, n int64) error {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/pots/"+members[i]+"/orders", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(n, 10))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("order answered %d", resp.StatusCode)
		}
		return nil
	})
}

// benchEnv starts a platform with its journal on disk and one funded pot
// per client.
func benchEnv(b *testing.B, viaMember bool, clients int) (*env, []string) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	e := newEnv(b, envOptions{fs: vfs.Default, dir: b.TempDir(), viaMember: viaMember, logger: quiet})
	c := e.on(b)
	members := make([]string, clients)
	for i := range members {
		members[i] = fmt.Sprintf("B%06d", i)
		c.must(http.StatusCreated, nil, "POST", "/v1/pots", c.operator, `{"memberId":"`+members[i]+`"}`)
		c.must(http.StatusAccepted, nil, "POST", "/v1/pots/"+members[i]+"/contributions", c.operator, `{"amount":"1000000000.00"}`,
			key("fund")...)
	}
	return e, members
}

// runClients runs b.N calls of order over clients goroutines (client i
// passes i; n numbers the calls from 1) and reports orders/s and the p50
// and p99 latency of one call.
func runClients(b *testing.B, clients int, order func(i int, n int64) error) {
	var next atomic.Int64
	latencies := make([][]time.Duration, clients)
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				t0 := time.Now()
				if err := order(i, n); err != nil {
					failed.Store(err.Error())
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if msg := failed.Load(); msg != nil {
		b.Fatal(msg)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
