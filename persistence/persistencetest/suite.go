// Package persistencetest is the acceptance suite every journal backend
// passes: each backend's tests call Run with a way to make and reopen
// storage. It is a normal package (not a _test file) so that any backend,
// in this module or another, can run it.
package persistencetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/acme/mastertrust/persistence"
	"github.com/stretchr/testify/assert"
)

// Features declares what a backend does differently, so that the suite
// asserts the right thing for each backend instead of skipping cases.
type Features struct {
	// Shared means several Journals may be open on one storage at the same
	// time, as the nodes of a cluster share one NATS JetStream journal.
	// The suite then also races writers through two Journals at once. A
	// backend that is not shared (Pebble holds its directory's lock) is
	// opened by one Journal at a time.
	Shared bool
}

// OpenFunc opens a Journal on storage made by Backend.NewStorage. The suite
// closes every Journal it opens; opening again after a Close is a reopen and
// must find everything that was acknowledged. A backend that is not
// Features.Shared returns an error when a Journal is already open.
type OpenFunc func(t *testing.T) (persistence.Journal, error)

// Backend is what the suite needs from a backend.
type Backend struct {
	Features Features
	// NewStorage makes empty storage for a journal of groups groups (a
	// directory, a server, a prefix on a shared server, ...), released by
	// t.Cleanup, and returns how to open a Journal on it.
	NewStorage func(t *testing.T, groups uint32) OpenFunc
}

// SeedEnv names the environment variable that fixes the suite's random
// seed, to replay a failure: the seed of every case that uses randomness is
// logged.
const SeedEnv = "MASTERTRUST_SEED"

// Run runs the acceptance suite against a backend.
func Run(t *testing.T, b Backend) {
	s := &suite{b: b}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"AppendRead", s.testAppendRead},
		{"ReadFromAndLimit", s.testReadFromAndLimit},
		{"VersionConflict", s.testVersionConflict},
		{"GroupIsFixed", s.testGroupIsFixed},
		{"ConcurrentWritersOneStream", s.testConcurrentWritersOneStream},
		{"RacingWritersOneStream", s.testRacingWritersOneStream},
		{"Snapshots", s.testSnapshots},
		{"SnapshotPlusTailEqualsReplay", s.testSnapshotPlusTail},
		{"FeedOrderAndResume", s.testFeedOrderAndResume},
		{"ManyStreamsConcurrently", s.testManyStreamsConcurrently},
		{"FeedTailWhileAppending", s.testFeedTailWhileAppending},
		{"CloseReopen", s.testCloseReopen},
		{"CloseWhileAppending", s.testCloseWhileAppending},
		{"Limits", s.testLimits},
		{"Invalid", s.testInvalid},
		{"ContextCancelled", s.testContextCancelled},
		{"Closed", s.testClosed},
		{"SharedWriters", s.testSharedWriters},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

type suite struct {
	b Backend
}

// storage makes fresh storage.
func (s *suite) storage(t *testing.T, groups uint32) OpenFunc {
	t.Helper()
	return s.b.NewStorage(t, groups)
}

// open opens a Journal and closes it at the end of the test.
func open(t *testing.T, o OpenFunc) persistence.Journal {
	t.Helper()
	j, err := o(t)
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return j
}

// newRand returns a seeded generator and logs its seed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(SeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", SeedEnv, v, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, SeedEnv, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// testTimeout bounds each case that waits for something; generous because
// the machine is small and shared.
const testTimeout = 60 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ev makes a NewEvent.
func ev(typ, data string) persistence.NewEvent {
	return persistence.NewEvent{Type: typ, Data: []byte(data)}
}

func appendReq(stream string, group uint32, expected uint64, events ...persistence.NewEvent) persistence.AppendRequest {
	return persistence.AppendRequest{Stream: stream, Group: group, ExpectedVersion: expected, Events: events}
}

// mustAppend appends and fails the test on error or on a wrong new version.
func mustAppend(t testing.TB, ctx context.Context, j persistence.Journal, req persistence.AppendRequest) uint64 {
	t.Helper()
	v, err := j.Append(ctx, req)
	if err != nil {
		t.Fatalf("append %s@%d (%d events): %v", req.Stream, req.ExpectedVersion, len(req.Events), err)
	}
	if want := req.ExpectedVersion + uint64(len(req.Events)); v != want {
		t.Fatalf("append %s@%d (%d events): new version %d, want %d", req.Stream, req.ExpectedVersion, len(req.Events), v, want)
	}
	return v
}

func mustRead(t testing.TB, ctx context.Context, j persistence.Journal, stream string, from uint64, limit int) []persistence.Event {
	t.Helper()
	evs, err := j.Read(ctx, stream, from, limit)
	if err != nil {
		t.Fatalf("read %s from %d limit %d: %v", stream, from, limit, err)
	}
	return evs
}

// readFeedAll reads a group's whole feed after a position, limit events at a
// time, checking that positions strictly increase.
func readFeedAll(t testing.TB, ctx context.Context, j persistence.Journal, group uint32, after uint64, limit int) []persistence.FeedEvent {
	t.Helper()
	var all []persistence.FeedEvent
	for {
		page, err := j.ReadFeed(ctx, group, after, limit)
		if err != nil {
			t.Fatalf("read feed group %d after %d limit %d: %v", group, after, limit, err)
		}
		if len(page) > limit {
			t.Fatalf("read feed group %d limit %d: %d events", group, limit, len(page))
		}
		if len(page) == 0 {
			return all
		}
		for _, e := range page {
			if e.Position <= after {
				t.Fatalf("read feed group %d: position %d after %d", group, e.Position, after)
			}
			if e.Group != group {
				t.Fatalf("read feed group %d: event %s@%d of group %d", group, e.Stream, e.Version, e.Group)
			}
			after = e.Position
		}
		all = append(all, page...)
	}
}

// wantErr checks that err wraps target and is a *persistence.Error with op.
func wantErr(t testing.TB, err, target error, op string) *persistence.Error {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", op, err, target)
	}
	var pe *persistence.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v (%T) is not a *persistence.Error", op, err, err)
	}
	if pe.Op != op {
		t.Fatalf("error %v: op %q, want %q", err, pe.Op, op)
	}
	return pe
}

// eventKey identifies an event across a stream and the feeds.
type eventKey struct {
	stream  string
	version uint64
}

func (k eventKey) String() string { return fmt.Sprintf("%s@%d", k.stream, k.version) }

// sameEvent compares what a reader can see of two events, ignoring Time.
func sameEvent(a, b persistence.Event) bool {
	return a.Stream == b.Stream && a.Version == b.Version && a.Group == b.Group &&
		a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// assertSameEvent asserts, one field at a time, that got is want as a
// reader sees it (Time aside, as in sameEvent); what names the event in the
// messages. It reports whether every field matched. It only marks the test
// failed, so a goroutine other than the test's may call it; the test's own
// goroutine stops on a mismatch with requireSameEvent.
func assertSameEvent(t testing.TB, want, got persistence.Event, what string) bool {
	t.Helper()
	ok := assert.Equal(t, want.Stream, got.Stream, "%s: stream", what)
	ok = assert.Equal(t, want.Version, got.Version, "%s: version", what) && ok
	ok = assert.Equal(t, want.Group, got.Group, "%s: group", what) && ok
	ok = assert.Equal(t, want.Type, got.Type, "%s: type", what) && ok
	return assert.Equal(t, string(want.Data), string(got.Data), "%s: data", what) && ok
}

// requireSameEvent is assertSameEvent that stops the test on a mismatch,
// after reporting every field that differs.
func requireSameEvent(t testing.TB, want, got persistence.Event, what string) {
	t.Helper()
	if !assertSameEvent(t, want, got, what) {
		t.FailNow()
	}
}

// checkFor polls cond until it returns nil or timeout passes, and fails
// with cond's last error.
func checkFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
