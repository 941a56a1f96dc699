package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/domain"
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
