package bench

import (
	"context"
	"strings"
	"testing"
	"time"
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
	if err := RunJournal(ctx, cfg, &out); err != nil {
		t.Fatalf("RunJournal: %v\n%s", err, out.String())
	}
	text := out.String()
	t.Log("\n" + text)
	rows := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && (f[0] == "pebble" || f[0] == "jetstream") {
			rows++
			if f[3] == "0" || f[5] == "0" {
				t.Errorf("a cell measured nothing: %q", line)
			}
		}
	}
	if want := 2 * 2 * 2; rows != want {
		t.Errorf("%d throughput rows, want %d", rows, want)
	}
	for _, want := range []string{"WALMinSyncInterval", "100µs", "Read-back", "bytes on disk/event"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if err := (&JournalConfig{Backends: []string{"sqlite"}, Writers: []int{0}}).Validate(); err == nil {
		t.Error("Validate accepted an unknown backend and 0 writers")
	}
}
