package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunJournalSmall proves that RunJournal measures every cell on both
// backends and prints its tables, on a workload small enough for CI.
func TestRunJournalSmall(t *testing.T) {
	var out strings.Builder
	cfg := JournalConfig{
		Dir:                 t.TempDir(),
		Writers:             []int{1, 4},
		BatchEvents:         4,
		Duration:            50 * time.Millisecond,
		ReadStreams:         300,
		ReadEvents:          20,
		WALMinSyncIntervals: []time.Duration{0, 100 * time.Microsecond},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := RunJournal(ctx, cfg, &out)
	require.NoError(t, err, "RunJournal; output:\n%s", out.String())
	text := out.String()
	t.Log("\n" + text)
	rows := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && (f[0] == "pebble" || f[0] == "jetstream") {
			rows++
			assert.NotEqual(t, "0", f[3], "a cell measured nothing (column 4): %q", line)
			assert.NotEqual(t, "0", f[5], "a cell measured nothing (column 6): %q", line)
		}
	}
	assert.Equal(t, 2*2*2, rows, "throughput rows")
	for _, want := range []string{"WALMinSyncInterval", "100µs", "Read-back", "bytes on disk/event", "batched/one-by-one", "batched/raw"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	assert.Error(t, (&JournalConfig{Backends: []string{"sqlite"}, Writers: []int{0}}).Validate(), "Validate of an unknown backend and 0 writers")
}
