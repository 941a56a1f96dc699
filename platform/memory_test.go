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

	percentBefore := debug.SetGCPercent(-1)
	debug.SetGCPercent(percentBefore)
	gcPercent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	restore := ApplyMemoryLimit(1<<30, log)
	require.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1), "the limit while applied")
	require.Equal(t, GCPercentWithMemoryLimit, gcPercent(), "GOGC while a limit is applied")
	require.Contains(t, logs.String(), "limit=1GiB", "the log")
	restore()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit once restored")
	require.Equal(t, percentBefore, gcPercent(), "GOGC once restored")

	t.Setenv("GOGC", "150")
	ApplyMemoryLimit(1<<30, log)()
	require.Equal(t, percentBefore, gcPercent(), "GOGC from the environment is left alone")

	t.Setenv("GOMEMLIMIT", "3GiB")
	logs.Reset()
	ApplyMemoryLimit(0, log)()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit without one configured")
	restore = ApplyMemoryLimit(2<<30, log)
	require.Contains(t, logs.String(), "instead_of_GOMEMLIMIT=3GiB", "the log of a limit set over GOMEMLIMIT")
	restore()
	require.Equal(t, before, debug.SetMemoryLimit(-1), "the limit once restored")
}
