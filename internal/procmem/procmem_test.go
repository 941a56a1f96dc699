package procmem_test

import (
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/procmem"
)

// On Linux the figures are the kernel's: this process is resident, its
// peak at least that, and asking for it by pid says the same within what
// the process allocates in between; a process that is gone is 0.
func TestResidentAndPeak(t *testing.T) {
	if runtime.GOOS != "linux" {
		require.Zero(t, procmem.Resident())
		return
	}
	rss := procmem.Resident()
	require.Positive(t, rss)
	require.GreaterOrEqual(t, procmem.Peak(), rss/2)
	byPid := procmem.ResidentOf(os.Getpid())
	require.InDelta(t, float64(rss), float64(byPid), float64(rss)/2)
	require.Zero(t, procmem.ResidentOf(1<<30), "no such process")
}

// The heap's object bytes are the runtime's, on every system: this test's
// own objects among them.
func TestHeapObjects(t *testing.T) {
	keep := make([]byte, 8<<20)
	require.GreaterOrEqual(t, procmem.HeapObjects(), uint64(len(keep)))
	runtime.KeepAlive(keep)
}
