package actors_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// panicOnceMarket is a market that panics at the first question a pot asks
// it once armed.
type panicOnceMarket struct {
	*actors.MarketState
	armed atomic.Bool
}

func (m *panicOnceMarket) Prices() map[domain.ISIN]domain.PricePoint {
	if m.armed.CompareAndSwap(true, false) {
		panic("test: the market panics once")
	}
	return m.MarketState.Prices()
}

// TestPotPanicRecoversFromTheJournal: a pot that panics on a request
// answers that request "unavailable", with nothing of it applied; the
// panic is counted; the next request is served by a fresh activation that
// recovered the pot from the journal, and the failed command, retried with
// its key, is applied once.
func TestPotPanicRecoversFromTheJournal(t *testing.T) {
	market := &panicOnceMarket{MarketState: actors.NewMarketState()}
	w, metrics := newMeteredWorld(t, worldOptions{market: market})
	const m = "M000006"
	w.must(m, openPot("open", ""))
	w.must(m, contribute("c1", "100.00"))
	if got := counterValue(t, metrics.Activations); got != 1 {
		t.Fatalf("%v activations before the panic, want 1", got)
	}
	before := recovered.Count("grain/" + actors.PotKind)

	market.armed.Store(true)
	resp, err := w.call(m, contribute("c2", "50.00"))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetProblem(); p == nil || p.Code != problem.Unavailable {
		t.Fatalf("the request that panicked was answered %v, want unavailable", resp)
	}
	if got := recovered.Count("grain/"+actors.PotKind) - before; got != 1 {
		t.Fatalf("counted %v pot panics, want 1", got)
	}

	pot := w.must(m, getPot()).GetPot()
	if got := counterValue(t, metrics.Activations); got != 2 {
		t.Fatalf("%v activations after the panic, want 2 (a fresh one)", got)
	}
	if pot.GetCash().GetAvailable() != "100.00" || pot.GetVersion() != w.journalPot(m).Version {
		t.Fatalf("after the panic the pot holds %v at version %d, want 100.00 at the journal's version %d",
			pot.GetCash(), pot.GetVersion(), w.journalPot(m).Version)
	}
	again := w.must(m, contribute("c2", "50.00"))
	if again.GetReplayed() {
		t.Fatal("the command that panicked was applied: its retry is a replay")
	}
	if got := w.must(m, getPot()).GetPot().GetCash().GetAvailable(); got != "150.00" {
		t.Fatalf("after the retry the pot holds %s, want 150.00", got)
	}
}

// readCounting counts the reads of each stream, and once armed panics
// after an append has been made durable.
type readCounting struct {
	persistence.Journal
	mu    sync.Mutex
	reads map[string]int
	armed atomic.Bool
}

func (j *readCounting) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	v, err := j.Journal.Append(ctx, req)
	if err == nil && j.armed.CompareAndSwap(true, false) {
		panic("test: the grain panics after its append")
	}
	return v, err
}

func (j *readCounting) Read(ctx context.Context, stream string, from uint64, limit int) ([]persistence.Event, error) {
	j.mu.Lock()
	j.reads[stream]++
	j.mu.Unlock()
	return j.Journal.Read(ctx, stream, from, limit)
}

func (j *readCounting) count(stream string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.reads[stream]
}

// TestSystemGrainPanicRecoversFromTheJournal: a system grain (the prices
// grain) that panics on a request (here after it made the prices durable)
// answers that request an error; the panic is counted; the next request is
// served by a fresh activation, which loaded the prices from the journal.
func TestSystemGrainPanicRecoversFromTheJournal(t *testing.T) {
	logger, level := testkit.Logger(t)
	inner, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	j := &readCounting{Journal: inner, reads: map[string]int{}}
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	cat := domain.DefaultCatalogue()
	deps := &actors.DealingDeps{Journal: j, Catalogue: cat, Calendar: cal, Market: actors.NewMarketState(), Logger: logger}
	cfg := cluster.Config{ClusterName: "actors-grain-panic", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level, Kinds: deps.Kinds()}
	if testkit.Race {
		cfg.GossipInterval, cfg.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	node, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	deps.SetNode(node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.WaitForMembers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	op := actors.Operator{Node: node, CallTimeout: 10 * time.Second}
	day := domain.MustDate("2026-11-23")
	prices := map[domain.ISIN]domain.Price{}
	for _, a := range cat.Assets() {
		p, err := domain.ParsePrice("1.5", a.PriceDecimals)
		if err != nil {
			t.Fatal(err)
		}
		prices[a.ISIN] = p
	}
	stream := "prices/" + day.String()
	before := recovered.Count("grain/" + actors.PricesKind)

	publication := actors.PricesPublication{Date: day, Prices: prices}
	j.armed.Store(true)
	if _, err := op.PublishPrices(ctx, publication); err == nil {
		t.Fatal("the request that panicked was answered without an error")
	}
	if got := recovered.Count("grain/"+actors.PricesKind) - before; got != 1 {
		t.Fatalf("counted %v prices grain panics, want 1", got)
	}
	if n := j.count(stream); n != 1 {
		t.Fatalf("%s read %d times before the panic, want 1 (the activation)", stream, n)
	}
	if events, err := inner.Read(ctx, stream, 1, 0); err != nil || len(events) != 1 {
		t.Fatalf("the journal holds %d events of %s (err %v), want the prices published before the panic", len(events), stream, err)
	}

	got, err := op.Prices(ctx, day)
	if err != nil {
		t.Fatalf("the request after the panic: %v", err)
	}
	if n := j.count(stream); n != 2 {
		t.Fatalf("%s read %d times, want 2: a fresh activation loads it", stream, n)
	}
	if got.GetPrices().GetDate() != day.String() || len(got.GetPrices().GetPrices()) != len(prices) {
		t.Fatalf("the fresh activation answered %v", got)
	}
	// The publication that panicked after its append is durable: the same
	// again appends nothing.
	if _, err := op.PublishPrices(ctx, publication); err != nil {
		t.Fatal(err)
	}
	if events, err := inner.Read(ctx, stream, 1, 0); err != nil || len(events) != 1 {
		t.Fatalf("the journal holds %d events of %s (err %v), want 1", len(events), stream, err)
	}
}
