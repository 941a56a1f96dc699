package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
)

// What the workloads of this package share: a closed-loop load driver and
// the raw Pebble ceiling that the journal and the pots are compared with.

// loadShape is one measured load: workers goroutines, each calling an op
// and waiting for it before the next (a closed loop, as pots and HTTP
// clients wait for their answers), for warmup unmeasured and then for
// duration measured.
type loadShape struct {
	workers          int
	warmup, duration time.Duration
}

// rate is what drive measured.
type rate struct {
	// appends are ops per second (appends, calls, requests), events the
	// events they carried per second.
	appends, events float64
	// meanLatency, p50 and p99 are of one op, as its worker saw it.
	meanLatency, p50, p99 time.Duration
	// cores is the process's CPU time over the measured part divided by
	// its wall time: 2.0 is both cores of a 2-core machine busy. Zero where
	// the platform has no getrusage.
	cores float64
	// cpuPerOp is the process's CPU time per op.
	cpuPerOp time.Duration
}

// drive runs shape.workers goroutines calling op (worker w passes w) until
// shape.warmup plus shape.duration have passed (and at least one op has
// ended in the measured part) or op fails, and returns the rates over the
// measured part. An op in flight when the time is up is waited for but not
// counted.
func drive(ctx context.Context, shape loadShape, op func(ctx context.Context, w int) (events int, err error)) (rate, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		appends, events atomic.Int64
		measuring       atomic.Bool
		wg              sync.WaitGroup
		errOnce         sync.Once
		firstErr        error
		// latencies[w] is worker w's; only w appends to it.
		latencies = make([][]time.Duration, shape.workers)
		// counted is closed when the first op of the measured part ends.
		counted = make(chan struct{})
	)
	for w := range shape.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				n, err := op(ctx, w)
				if err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if measuring.Load() {
					if appends.Add(1) == 1 {
						close(counted)
					}
					events.Add(int64(n))
					latencies[w] = append(latencies[w], time.Since(start))
				}
			}
		})
	}
	wait := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	wait(shape.warmup)
	cpu0 := processCPU()
	measuring.Store(true)
	start := time.Now()
	wait(shape.duration)
	// A window shorter than one op (a stalled sync on a loaded machine)
	// would measure nothing: it lasts until an op has ended, and the rate
	// counts the longer time.
	select {
	case <-counted:
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	cancel()
	wg.Wait()
	if firstErr != nil {
		return rate{}, firstErr
	}
	a := appends.Load()
	res := rate{appends: float64(a) / elapsed.Seconds(), events: float64(events.Load()) / elapsed.Seconds(),
		cores: cpu.Seconds() / elapsed.Seconds()}
	if a > 0 {
		all := slices.Concat(latencies...)
		slices.Sort(all)
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		res.meanLatency = sum / time.Duration(len(all))
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
		res.cpuPerOp = cpu / time.Duration(a)
	}
	return res, nil
}

// rawPebbleAppends measures the raw ceiling of synced appends: each op
// commits one Pebble batch of payloads under new keys with pebble.Sync, in
// a new store in dir (which the caller removes) with the journal's Pebble
// settings and nothing else: no version check, no index, no feed.
// walInterval is Pebble's WALMinSyncInterval (0: none).
func rawPebbleAppends(ctx context.Context, dir string, shape loadShape, payloads [][]byte, walInterval time.Duration) (rate, error) {
	cache := cpebble.NewCache(64 << 20)
	defer cache.Unref()
	opts := &cpebble.Options{Cache: cache, MemTableSize: 64 << 20, FormatMajorVersion: cpebble.FormatNewest, Logger: quietLogger{}}
	if walInterval > 0 {
		opts.WALMinSyncInterval = func() time.Duration { return walInterval }
	}
	db, err := cpebble.Open(dir, opts)
	if err != nil {
		return rate{}, err
	}
	defer db.Close()
	seqs := make([]uint64, shape.workers) // seqs[w] is worker w's
	return drive(ctx, shape, func(ctx context.Context, w int) (int, error) {
		b := db.NewBatch()
		defer b.Close()
		for _, p := range payloads {
			seqs[w]++
			key := fmt.Appendf(nil, "r%05d/%016x", w, seqs[w])
			if err := b.Set(key, p, nil); err != nil {
				return 0, err
			}
		}
		return len(payloads), b.Commit(cpebble.Sync)
	})
}

// quietLogger keeps raw Pebble's log lines ("Found 0 WALs") out of the
// tables.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// workDirs returns the directory a workload keeps its stores in: dir, or a
// new temporary one (named after pattern, see os.MkdirTemp) that remove
// deletes; remove does nothing for a dir given. It also makes the other
// directories asked for (a profile directory), skipping empty names.
func workDirs(dir, pattern string, others ...string) (root string, remove func(), err error) {
	for _, d := range others {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	if dir != "" {
		return dir, func() {}, nil
	}
	if root, err = os.MkdirTemp("", pattern); err != nil {
		return "", nil, err
	}
	return root, func() { os.RemoveAll(root) }, nil
}

// callIndexes calls f for 0 … n-1 from callers goroutines, each taking the
// next index, until every index is done or a call fails. It counts the
// calls that succeeded in done (if not nil; read it for progress) and
// returns the first error, or ctx's if it ended first.
func callIndexes(ctx context.Context, callers, n int, done *atomic.Int64, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if done != nil {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
