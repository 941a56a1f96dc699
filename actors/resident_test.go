package actors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/proto/pb"
)

// TestPotsOverTheResidentCapPassivateEarly proves a node over its resident
// cap lets its quiet pots go long before their idle timeout, down to the
// cap, and that they come back as they were.
func TestPotsOverTheResidentCapPassivateEarly(t *testing.T) {
	const residentMax, pots = 10, 50
	w, metrics := newMeteredWorld(t, worldOptions{idle: time.Hour,
		potConfig: actors.PotConfig{ResidentMax: residentMax, ResidentIdle: 50 * time.Millisecond}})
	before := make(map[string]*pb.PotView, pots)
	versions := make(map[string]uint64, pots)
	for i := range pots {
		m := fmt.Sprintf("R%03d", i)
		w.must(m, openPot("open", "balanced"))
		w.must(m, contribute("c", fmt.Sprintf("%d.00", 100+i)))
		before[m] = w.must(m, getPot()).GetPot()
		versions[m] = before[m].Version
	}
	activations := counterValue(t, metrics.Activations)
	require.Eventually(t, func() bool { return gaugeValue(t, metrics.ActivePots) <= residentMax }, 5*time.Second, 10*time.Millisecond,
		"active pots down to the cap of %d", residentMax)

	// The pots that passivated saved a snapshot at their version first.
	snapshotted := 0
	for m, v := range versions {
		snap, found, err := w.journal.LoadSnapshot(context.Background(), actors.PotStream(m))
		require.NoError(t, err)
		if found {
			require.Equal(t, v, snap.Version, "%s's snapshot", m)
			snapshotted++
		}
	}
	require.GreaterOrEqual(t, snapshotted, pots-residentMax, "pots with a snapshot")

	for m, want := range before {
		got := w.must(m, getPot()).GetPot()
		require.True(t, proto.Equal(want, got), "%s after passivation:\n%v\nwant\n%v", m, got, want)
	}
	require.GreaterOrEqual(t, counterValue(t, metrics.Activations), activations+pots-residentMax, "re-activations")
}

// TestPotsUnderTheResidentCapStayForTheirIdleTimeout proves the cap changes
// nothing while the node is under it: quiet pots stay for their whole idle
// timeout, then passivate.
func TestPotsUnderTheResidentCapStayForTheirIdleTimeout(t *testing.T) {
	const idle, residentIdle, pots = 2 * time.Second, 50 * time.Millisecond, 5
	w, metrics := newMeteredWorld(t, worldOptions{idle: idle,
		potConfig: actors.PotConfig{ResidentMax: 100, ResidentIdle: residentIdle}})
	start := time.Now() // no pot's idle timeout ends before start+idle
	for i := range pots {
		w.must(fmt.Sprintf("U%03d", i), openPot("open", "balanced"))
	}
	// Many of the cap's periods, and less than the idle timeout.
	window := idle - time.Since(start) - 200*time.Millisecond
	require.Greater(t, window, 10*residentIdle, "time left to watch the pots after opening them")
	require.Never(t, func() bool { return gaugeValue(t, metrics.ActivePots) < pots }, window, 20*time.Millisecond,
		"a pot passivated before its idle timeout")
	waitPassivated(t, metrics)
}

// TestPotSavesASnapshotWhenItPassivates proves a pot that appended since its
// last snapshot saves one before it stops, which its next activation
// recovers from (replaying nothing), and that a pot that appended nothing
// saves none.
func TestPotSavesASnapshotWhenItPassivates(t *testing.T) {
	w, metrics := newMeteredWorld(t, worldOptions{idle: 200 * time.Millisecond})
	const m = "S000001"
	stream := actors.PotStream(m)
	w.must(m, openPot("open", "cautious"))
	w.must(m, contribute("c-1", "10.00"))
	version := w.must(m, contribute("c-2", "20.00")).Version
	// A few events: far from a snapshot by SnapshotEvery (100 by default).
	_, found, err := w.journal.LoadSnapshot(context.Background(), stream)
	require.NoError(t, err)
	require.False(t, found, "a snapshot before passivation")

	waitPassivated(t, metrics)
	// Saved before the activation stopped: no wait.
	snap, found, err := w.journal.LoadSnapshot(context.Background(), stream)
	require.NoError(t, err)
	require.True(t, found, "a snapshot after passivation")
	require.Equal(t, version, snap.Version, "snapshot version")
	p, used, err := actors.RecoverPot(context.Background(), w.journal, m, nopLogger())
	require.NoError(t, err)
	require.Equal(t, version, actors.SnapshotVersion(used), "RecoverPot's snapshot")
	require.Equal(t, version, p.Version, "recovered version")

	// Re-activated to read: nothing appended, no snapshot saved.
	snapshots := histogramCount(t, metrics.SnapshotBytes)
	require.Equal(t, version, w.must(m, getPot()).GetPot().Version, "version after re-activation")
	waitPassivated(t, metrics)
	require.Equal(t, snapshots, histogramCount(t, metrics.SnapshotBytes), "snapshots saved by a pot that appended nothing")
	require.Equal(t, float64(2), counterValue(t, metrics.Activations), "activations")
}
