package persistencetest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/mastertrust/persistence"
	"github.com/stretchr/testify/require"
)

// The crash test: a child process appends and prints each acknowledged
// version; the parent kills it with SIGKILL at a random moment, reopens the
// journal, and checks that every acknowledged event is there, intact and in
// order, and that no append is there in part. A backend's test package
// wires it up:
//
//	func TestMain(m *testing.M) {
//		if child, ok := persistencetest.CrashChildFromEnv(); ok {
//			os.Exit(runChild(child)) // open the journal on child.Dir, then child.Run
//		}
//		os.Exit(m.Run())
//	}
//
// and its TestCrash calls RunCrashTest. The parent re-executes the test
// binary itself (os.Args[0]) with the child's settings in the environment.
//
// Environment (parent side):
//
//	MASTERTRUST_CRASH_SEEDS=20  seeds to run (default 3)
//	MASTERTRUST_CRASH_SEED=n    run only seed n (to replay a failure)
//	MASTERTRUST_CRASH_BIG=1     a larger workload: more streams, writers
//	                            and appends before each kill
const (
	crashChildEnv     = "MASTERTRUST_CRASH_CHILD"
	crashSeedsEnv     = "MASTERTRUST_CRASH_SEEDS"
	crashSeedEnv      = "MASTERTRUST_CRASH_SEED"
	crashBigEnv       = "MASTERTRUST_CRASH_BIG"
	crashSeedsDefault = 3
	// crashCyclesPerSeed: each seed kills the child, checks, restarts it on
	// the recovered journal (which it must extend), and kills it again.
	crashCyclesPerSeed = 2
	// crashChildTimeout bounds a child that never reaches its kill point.
	crashChildTimeout = 60 * time.Second
)

// CrashWorkload is what a crash child appends: Streams streams spread over
// Groups groups, each owned by one of Writers concurrent writers, in
// appends of 1 to BatchMax events of varied size.
type CrashWorkload struct {
	Groups   uint32
	Streams  int
	Writers  int
	BatchMax int
	Seed     uint64
}

func (w CrashWorkload) streamName(i int) string { return fmt.Sprintf("pot/crash-%04d", i) }
func (w CrashWorkload) group(i int) uint32      { return uint32(i) % w.Groups }

// crashEventData is the deterministic payload of event version of stream,
// in an append of n events starting at first: a header the checker parses
// and a filler derived from the header that it recomputes, of a length
// that varies between events (16 to 400 bytes).
func crashEventData(stream string, version, first uint64, n int) []byte {
	h := fmt.Sprintf("%s|%d|%d|%d|", stream, version, first, n)
	sum := sha256.Sum256([]byte(h))
	size := 16 + int(sum[0])%385
	fill := strings.Repeat(hex.EncodeToString(sum[:]), size/64+1)[:size]
	return []byte(h + fill)
}

// parseCrashEvent returns the append an event claims to belong to and
// whether its payload is intact.
func parseCrashEvent(e persistence.Event) (first uint64, n int, ok bool) {
	parts := strings.SplitN(string(e.Data), "|", 5)
	if len(parts) != 5 || parts[0] != e.Stream {
		return 0, 0, false
	}
	v, err1 := strconv.ParseUint(parts[1], 10, 64)
	first, err2 := strconv.ParseUint(parts[2], 10, 64)
	n, err3 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || err3 != nil || v != e.Version {
		return 0, 0, false
	}
	return first, n, string(crashEventData(e.Stream, v, first, n)) == string(e.Data)
}

// CrashChild is a crash child's assignment, passed in its environment.
type CrashChild struct {
	Dir      string // the storage the parent will reopen
	Workload CrashWorkload
}

// CrashChildFromEnv reports whether this process is a crash child, and its
// assignment.
func CrashChildFromEnv() (CrashChild, bool) {
	v := os.Getenv(crashChildEnv)
	if v == "" {
		return CrashChild{}, false
	}
	var c CrashChild
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: bad %s: %v\n", crashChildEnv, err)
		os.Exit(2)
	}
	return c, true
}

// Run appends the workload to j until ctx ends or an append fails,
// writing "ack <stream> <version>" to out after each acknowledged append.
// It continues streams that a previous child left behind.
func (c CrashChild) Run(ctx context.Context, j persistence.Journal, out io.Writer) error {
	return runWorkload(ctx, j, c.Workload, func(stream string, v uint64) error {
		_, err := fmt.Fprintf(out, "ack %s %d\n", stream, v)
		return err
	})
}

// runWorkload runs the writers; onAck is called (serialised) after each
// acknowledged append.
func runWorkload(ctx context.Context, j persistence.Journal, w CrashWorkload, onAck func(stream string, v uint64) error) error {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	setErr := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
		}
		errMu.Unlock()
	}
	for wr := range w.Writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(w.Seed, uint64(wr)))
			var mine []int
			heads := map[int]uint64{}
			for i := wr; i < w.Streams; i += w.Writers {
				mine = append(mine, i)
				evs, err := j.Read(ctx, w.streamName(i), 1, 0)
				if err != nil {
					setErr(err)
					return
				}
				heads[i] = uint64(len(evs))
			}
			for ctx.Err() == nil && len(mine) > 0 {
				i := mine[rng.IntN(len(mine))]
				n := 1 + rng.IntN(w.BatchMax)
				stream := w.streamName(i)
				req := persistence.AppendRequest{Stream: stream, Group: w.group(i), ExpectedVersion: heads[i]}
				for k := range n {
					req.Events = append(req.Events, persistence.NewEvent{Type: "crash.Test", Data: crashEventData(stream, heads[i]+uint64(k)+1, heads[i]+1, n)})
				}
				v, err := j.Append(ctx, req)
				if err != nil {
					if ctx.Err() == nil {
						setErr(err)
					}
					return
				}
				heads[i] = v
				mu.Lock()
				err = onAck(stream, v)
				mu.Unlock()
				if err != nil {
					setErr(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// CrashBackend is what RunCrashTest needs from a backend.
type CrashBackend struct {
	// Open opens a journal on dir in the test process, after a child was
	// killed (servers it starts are stopped by t.Cleanup or by the returned
	// close function).
	Open func(t *testing.T, dir string, groups uint32) (j persistence.Journal, close func())
}

// crashSeeds returns the seeds to run and the workload size.
func crashSeeds(t *testing.T) ([]uint64, bool) {
	big := os.Getenv(crashBigEnv) != ""
	if v := os.Getenv(crashSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, v, err)
		}
		return []uint64{s}, big
	}
	n := crashSeedsDefault
	if v := os.Getenv(crashSeedsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", crashSeedsEnv, v)
		}
	}
	base := uint64(time.Now().UnixNano())
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = base + uint64(i)
	}
	return seeds, big
}

// RunCrashTest runs the crash test for several seeds (see the environment
// variables above).
func RunCrashTest(t *testing.T, b CrashBackend) {
	seeds, big := crashSeeds(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d: replay with %s=%d", seed, crashSeedEnv, seed)
			rng := rand.New(rand.NewPCG(seed, 0xc4a54))
			w := CrashWorkload{Groups: 4, Streams: 64, Writers: 16, BatchMax: 8, Seed: seed}
			acksMin, acksSpread := 100, 900
			if big {
				w = CrashWorkload{Groups: 16, Streams: 2000, Writers: 128, BatchMax: 16, Seed: seed}
				acksMin, acksSpread = 2000, 20000
			}
			dir := t.TempDir()
			acked := map[string]uint64{}
			for cycle := range crashCyclesPerSeed {
				w.Seed = seed + uint64(cycle)<<32
				killAfter := acksMin + rng.IntN(acksSpread)
				extraDelay := time.Duration(rng.IntN(2000)) * time.Microsecond
				n := runAndKill(t, CrashChild{Dir: dir, Workload: w}, killAfter, extraDelay, acked)
				t.Logf("cycle %d: killed after %d acks (+%s)", cycle, n, extraDelay)
				j, closeJ := b.Open(t, dir, w.Groups)
				CheckAfterCrash(t, j, w, acked)
				closeJ()
			}
		})
	}
}

// runAndKill starts a crash child, waits until it has acknowledged
// killAfter appends and extraDelay more, kills it with SIGKILL, and merges
// the versions it acknowledged into acked. It returns the acks seen.
func runAndKill(t *testing.T, child CrashChild, killAfter int, extraDelay time.Duration, acked map[string]uint64) int {
	t.Helper()
	spec, err := json.Marshal(child)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(spec))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	n := 0
	killed := false
	killDone := make(chan error, 1)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue // the test binary's own output
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", lines.Text())
		}
		if v <= acked[f[1]] {
			t.Fatalf("child acknowledged %s@%d after %d", f[1], v, acked[f[1]])
		}
		acked[f[1]] = v
		n++
		if n == killAfter && !killed {
			// The random moment: a random number of acks, then a random
			// fraction of a few appends' time.
			killed = true
			go func() {
				time.Sleep(extraDelay)
				killDone <- cmd.Process.Signal(syscall.SIGKILL)
			}()
		}
		// Keep reading: acks printed before the kill still count.
	}
	waitErr := cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d acks, before its kill point %d: %v\nstderr:\n%s", n, killAfter, waitErr, stderr.String())
	}
	killErr := <-killDone
	var exitErr *exec.ExitError
	if !errors.As(waitErr, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v (kill: %v), want SIGKILL\nstderr:\n%s", waitErr, killErr, stderr.String())
	}
	return n
}

// CheckAfterCrash checks a journal recovered after a crash: every stream
// of the workload holds at least the acknowledged versions, its events are
// intact, contiguous and made of whole appends (an append that was in
// flight is there entirely or not at all), each group's feed holds exactly
// the streams' events in order, and the journal takes new appends at the
// right versions.
func CheckAfterCrash(t *testing.T, j persistence.Journal, w CrashWorkload, acked map[string]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	perGroup := make([]map[eventKey]bool, w.Groups)
	for g := range perGroup {
		perGroup[g] = map[eventKey]bool{}
	}
	total := 0
	for i := range w.Streams {
		stream := w.streamName(i)
		evs, err := j.Read(ctx, stream, 1, 0)
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		if uint64(len(evs)) < acked[stream] {
			t.Fatalf("%s: %d events after the crash, %d were acknowledged", stream, len(evs), acked[stream])
		}
		for k := 0; k < len(evs); {
			e := evs[k]
			first, n, ok := parseCrashEvent(e)
			what := fmt.Sprintf("%s: event %d, the start of an append", stream, k)
			require.True(t, ok, "%s: payload not intact: %.60q", what, e.Data)
			require.Equal(t, uint64(k+1), e.Version, "%s: version", what)
			require.Equal(t, e.Version, first, "%s: first version of the append its payload names", what)
			require.Equal(t, w.group(i), e.Group, "%s: group", what)
			if k+n > len(evs) {
				t.Fatalf("%s: append at %d of %d events has only %d: a partial append", stream, first, n, len(evs)-k)
			}
			for m := range n {
				f2, n2, ok := parseCrashEvent(evs[k+m])
				what := fmt.Sprintf("%s: event %d, in the append at %d of %d events", stream, k+m, first, n)
				require.True(t, ok, "%s: payload not intact: %.60q", what, evs[k+m].Data)
				require.Equal(t, first, f2, "%s: first version of the append its payload names", what)
				require.Equal(t, n, n2, "%s: size of the append its payload names", what)
				perGroup[w.group(i)][eventKey{stream, evs[k+m].Version}] = true
			}
			k += n
		}
		total += len(evs)
	}
	for g := range w.Groups {
		feed := readFeedAll(t, ctx, j, g, 0, 500)
		last := map[string]uint64{}
		for _, e := range feed {
			k := eventKey{e.Stream, e.Version}
			if !perGroup[g][k] {
				t.Fatalf("group %d feed: %s is not in its stream (or is in the feed twice)", g, k)
			}
			delete(perGroup[g], k)
			if e.Version != last[e.Stream]+1 {
				t.Fatalf("group %d feed: %s after version %d", g, k, last[e.Stream])
			}
			last[e.Stream] = e.Version
		}
		if len(perGroup[g]) != 0 {
			t.Fatalf("group %d feed misses %d events of its streams", g, len(perGroup[g]))
		}
	}
	// The journal goes on: the next append to a stream takes the next
	// version, and re-appending at the old one conflicts.
	for _, i := range []int{0, w.Streams - 1} {
		stream := w.streamName(i)
		evs, err := j.Read(ctx, stream, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		v := uint64(len(evs))
		data := crashEventData(stream, v+1, v+1, 1)
		if _, err := j.Append(ctx, persistence.AppendRequest{Stream: stream, Group: w.group(i), ExpectedVersion: v,
			Events: []persistence.NewEvent{{Type: "crash.Test", Data: data}}}); err != nil {
			t.Fatalf("append to %s@%d after the crash: %v", stream, v, err)
		}
		acked[stream] = v + 1
		if v > 0 {
			_, err := j.Append(ctx, persistence.AppendRequest{Stream: stream, Group: w.group(i), ExpectedVersion: v - 1,
				Events: []persistence.NewEvent{{Type: "crash.Test", Data: data}}})
			if !errors.Is(err, persistence.ErrVersionConflict) {
				t.Fatalf("append to %s at an old version after the crash: %v, want a conflict", stream, err)
			}
		}
	}
	t.Logf("after the crash: %d events in %d streams, all acknowledged ones there", total, w.Streams)
}

// RunPowerLoss runs the workload in this process against a journal and,
// at a random moment, calls crash, which must return a journal on a copy of
// the storage holding only what was synced (Pebble's vfs.CrashClone). Every
// append acknowledged before crash was called must be in the copy.
func RunPowerLoss(t *testing.T, j persistence.Journal, groups uint32, crash func() persistence.Journal) {
	rng := newRand(t)
	w := CrashWorkload{Groups: groups, Streams: 64, Writers: 16, BatchMax: 8, Seed: rng.Uint64()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu    sync.Mutex
		acked = map[string]uint64{}
		n     int
		done  = make(chan error, 1)
	)
	go func() {
		done <- runWorkload(ctx, j, w, func(stream string, v uint64) error {
			mu.Lock()
			acked[stream] = v
			n++
			mu.Unlock()
			return nil
		})
	}()
	killAfter := 100 + rng.IntN(900)
	checkFor(t, testTimeout, func() error {
		mu.Lock()
		defer mu.Unlock()
		if n < killAfter {
			return fmt.Errorf("%d acks of %d", n, killAfter)
		}
		return nil
	})
	mu.Lock()
	before := make(map[string]uint64, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	acks := n
	mu.Unlock()
	crashed := crash() // appends go on meanwhile
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("workload: %v", err)
	}
	t.Logf("power loss after %d acks", acks)
	CheckAfterCrash(t, crashed, w, before)
}
