package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/persistence/persistencetest"
)

const crashPrefix = "crash"

// TestMain turns the test binary into a crash child when the crash test
// runs it (see persistencetest.RunCrashTest).
func TestMain(m *testing.M) {
	if child, ok := persistencetest.CrashChildFromEnv(); ok {
		os.Exit(runCrashChild(child))
	}
	os.Exit(m.Run())
}

// runCrashChild runs an embedded server on the parent's directory, in this
// process so that the parent's SIGKILL kills the server too, and appends
// through it until killed.
func runCrashChild(child persistencetest.CrashChild) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	srv, err := natsembed.Start(natsembed.Options{Dir: child.Dir})
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := jetstream.Open(octx, nc, jetstream.Options{Prefix: crashPrefix, Groups: child.Workload.Groups, BatchAppendsMin: 1})
	if err != nil {
		return fail(err)
	}
	if err := child.Run(ctx, s, os.Stdout); err != nil {
		return fail(err)
	}
	return 0
}

// TestCrash kills a child process that runs the server and appends through
// it with SIGKILL at random moments, restarts a server on its directory,
// and checks that every acknowledged append survives whole. Larger runs:
// MASTERTRUST_CRASH_SEEDS=20, MASTERTRUST_CRASH_BIG=1.
func TestCrash(t *testing.T) {
	persistencetest.RunCrashTest(t, persistencetest.CrashBackend{
		Open: func(t *testing.T, dir string, groups uint32) (persistence.Journal, func()) {
			srv, err := natsembed.Start(natsembed.Options{Dir: dir, Logger: testLogger(t)})
			require.NoError(t, err)
			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				srv.Shutdown()
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := jetstream.Open(ctx, nc, jetstream.Options{Prefix: crashPrefix, Groups: groups, BatchAppendsMin: 1})
			if err != nil {
				nc.Close()
				srv.Shutdown()
				t.Fatal(err)
			}
			return s, func() {
				assert.NoError(t, s.Close(), "close")
				nc.Close()
				srv.Shutdown()
			}
		},
	})
}
