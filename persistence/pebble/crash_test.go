package pebble_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/persistence/persistencetest"
)

// TestMain turns the test binary into a crash child when the crash test
// runs it (see persistencetest.RunCrashTest).
func TestMain(m *testing.M) {
	if child, ok := persistencetest.CrashChildFromEnv(); ok {
		os.Exit(runCrashChild(child))
	}
	os.Exit(m.Run())
}

// runCrashChild appends to a journal on a real disk until it is killed.
func runCrashChild(child persistencetest.CrashChild) int {
	s, err := pebble.Open(child.Dir, pebble.Options{Groups: child.Workload.Groups})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := child.Run(ctx, s, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	return 0
}

// TestCrash kills a child process appending to a journal on disk with
// SIGKILL at random moments, and checks that every acknowledged append
// survives whole. Larger runs: MASTERTRUST_CRASH_SEEDS=20,
// MASTERTRUST_CRASH_BIG=1.
func TestCrash(t *testing.T) {
	persistencetest.RunCrashTest(t, persistencetest.CrashBackend{
		Open: func(t *testing.T, dir string, groups uint32) (persistence.Journal, func()) {
			s, err := pebble.Open(dir, pebble.Options{Groups: groups, Logger: testLogger(t)})
			require.NoError(t, err)
			return s, func() {
				assert.NoError(t, s.Close(), "close")
			}
		},
	})
}

// TestPowerLoss simulates a power loss (only synced data survives, via
// Pebble's crashable in-memory file system) while appends are in flight,
// and checks that every append acknowledged before it survives whole. A
// SIGKILL keeps the operating system's page cache, so only this test would
// catch an acknowledgement before the WAL sync.
func TestPowerLoss(t *testing.T) {
	for range 3 {
		fs := vfs.NewCrashableMem()
		s, err := pebble.Open("j", pebble.Options{FS: fs, Groups: 4, Logger: testLogger(t)})
		require.NoError(t, err)
		persistencetest.RunPowerLoss(t, s, 4, func() persistence.Journal {
			crashed := fs.CrashClone(vfs.CrashCloneCfg{})
			c, err := pebble.Open("j", pebble.Options{FS: crashed, Logger: testLogger(t)})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			return c
		})
		require.NoError(t, s.Close())
	}
}
