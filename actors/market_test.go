package actors_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// TestCutOffWaitsForDecisionsInFlight proves the cut-off fence: a cut-off
// returns only once every hold taken before it is released, holds taken
// after it neither block it nor see the old open day.
func TestCutOffWaitsForDecisionsInFlight(t *testing.T) {
	m := actors.NewMarketState()
	mon, tue := domain.MustDate("2026-11-23"), domain.MustDate("2026-11-24")
	before, releaseBefore := m.Hold()
	if !before.IsZero() {
		t.Fatalf("open from %s before any cut-off", before)
	}
	done := make(chan error, 1)
	go func() { done <- m.CutOff(context.Background(), tue) }()
	// A hold taken while the cut-off waits already sees the new open day
	// and does not hold the cut-off up.
	var after domain.Date
	var releaseAfter func()
	deadline := time.Now().Add(5 * time.Second)
	for {
		after, releaseAfter = m.Hold()
		if after.Equal(tue) || time.Now().After(deadline) {
			break
		}
		releaseAfter()
		time.Sleep(time.Millisecond)
	}
	defer releaseAfter()
	if !after.Equal(tue) {
		t.Fatalf("a hold during the cut-off sees open from %s, want %s", after, tue)
	}
	select {
	case err := <-done:
		t.Fatalf("cut-off returned (%v) while a decision from before it was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	releaseBefore()
	releaseBefore() // twice is harmless
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cut-off did not return after the last earlier hold was released")
	}
	// It never moves back, and a cut-off with nothing in flight is immediate.
	m.SetOpenFrom(mon)
	if got := m.OpenFrom(); !got.Equal(tue) {
		t.Fatalf("open from went back to %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, r := m.Hold()
	r()
	if err := m.CutOff(ctx, tue); err != nil {
		t.Fatal(err)
	}
}

// panicOnceFeed is a journal whose ReadFeed panics once armed.
type panicOnceFeed struct {
	persistence.Journal
	armed atomic.Bool
}

func (j *panicOnceFeed) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	if j.armed.CompareAndSwap(true, false) {
		panic("test: the feed panics once")
	}
	return j.Journal.ReadFeed(ctx, group, after, limit)
}

// TestMarketFollowerSurvivesAPanic: a panic while following the system
// feed is recovered and counted, and the follower goes on: prices published
// afterwards still reach the market.
func TestMarketFollowerSurvivesAPanic(t *testing.T) {
	inner, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	j := &panicOnceFeed{Journal: inner}
	logger, _ := testkit.Logger(t)
	market := actors.NewMarketState()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := actors.FollowMarket(ctx, j, market, 10*time.Millisecond, logger); err != nil {
		t.Fatal(err)
	}
	before := recovered.Count("market-follower")
	j.armed.Store(true)
	testkit.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := recovered.Count("market-follower") - before; n != 1 {
			return fmt.Errorf("%v panics counted, want 1", n)
		}
		return nil
	})
	typ, data, err := codec.EncodeSystemEvent(&pb.PricesPublished{Date: "2026-11-23", Prices: map[string]string{"GB00BN7Q2L69": "2.000000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Append(ctx, persistence.AppendRequest{Stream: "prices/2026-11-23", Group: actors.SystemGroup(inner),
		Events: []persistence.NewEvent{{Type: typ, Data: data}}}); err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if p, ok := market.Prices()["GB00BN7Q2L69"]; !ok || !p.Price.Equal(domain.MustPrice("2")) {
			return fmt.Errorf("the market has %v", market.Prices())
		}
		return nil
	})
}
