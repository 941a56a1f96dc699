package actors

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
)

func TestWorkersRunEveryFunctionWithoutWaitingForAWorker(t *testing.T) {
	w := newWorkers(4, slog.Default())
	defer w.stop()
	// Each function blocks until the last one runs: with a pool that made
	// functions wait for a free worker, this would never finish.
	const n = 64
	var ran atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	for range n {
		w.Go(func() {
			defer wg.Done()
			if ran.Add(1) == n {
				close(release)
			}
			<-release
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d functions ran", ran.Load(), n)
	}
}

func TestWorkersReuseParkedWorkersAndKeepAtMostIdleMax(t *testing.T) {
	const idleMax = 3
	w := newWorkers(idleMax, slog.Default())
	before := runtime.NumGoroutine()
	// A burst of 20 blocked functions starts 20 goroutines; once they end,
	// at most idleMax stay parked.
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		w.Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+idleMax })
	waitFor(t, func() bool { return w.idle.Load() == idleMax })

	// Sequential functions now run on the parked workers: no new goroutine.
	parked := runtime.NumGoroutine()
	for range 100 {
		done := make(chan struct{})
		w.Go(func() { close(done) })
		<-done
	}
	if got := runtime.NumGoroutine(); got > parked {
		t.Errorf("goroutines went from %d to %d running functions one at a time on parked workers", parked, got)
	}

	// Once stopped, the parked workers exit and functions still run.
	w.stop()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
	done := make(chan struct{})
	w.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a function given after stop did not run")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after 10s (goroutines: %d)", runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWorkersSurviveAPanic: a function that panics is recovered and
// counted, and its worker goes on to run the next one.
func TestWorkersSurviveAPanic(t *testing.T) {
	w := newWorkers(1, slog.New(slog.DiscardHandler))
	defer w.stop()
	before := recovered.Count("pot-worker")
	panicked := make(chan struct{})
	w.Go(func() {
		close(panicked)
		panic("test: a snapshot save panics")
	})
	<-panicked
	ran := make(chan struct{})
	w.Go(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the function after a panic did not run")
	}
	testkit.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := recovered.Count("pot-worker") - before; n != 1 {
			return fmt.Errorf("%v panics counted, want 1", n)
		}
		return nil
	})
}
