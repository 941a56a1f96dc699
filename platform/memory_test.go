package platform

import (
	"bytes"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// ApplyMemoryLimit sets a configured limit and logs it, and restore sets
// the one before back; without one it leaves Go's own (GOMEMLIMIT) alone.
func TestApplyMemoryLimit(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	before := debug.SetMemoryLimit(-1)

	restore := ApplyMemoryLimit(1<<30, log)
	require.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1), "the limit while applied")
	require.Contains(t, logs.String(), "limit=1GiB", "the log")
	restore()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit once restored")

	t.Setenv("GOMEMLIMIT", "3GiB")
	logs.Reset()
	ApplyMemoryLimit(0, log)()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit without one configured")
	restore = ApplyMemoryLimit(2<<30, log)
	require.Contains(t, logs.String(), "instead_of_GOMEMLIMIT=3GiB", "the log of a limit set over GOMEMLIMIT")
	restore()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit once restored")
}
