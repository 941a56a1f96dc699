package actors_test

import (
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
	for i := range pots {
		m := fmt.Sprintf("R%03d", i)
		w.must(m, openPot("open", "balanced"))
		w.must(m, contribute("c", fmt.Sprintf("%d.00", 100+i)))
		before[m] = w.must(m, getPot()).GetPot()
	}
	activations := counterValue(t, metrics.Activations)
	require.Equal(t, float64(pots), activations, "activations")
	require.Eventually(t, func() bool { return gaugeValue(t, metrics.ActivePots) <= residentMax }, 5*time.Second, 10*time.Millisecond,
		"active pots down to the cap of %d", residentMax)

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
	const idle, pots = 1500 * time.Millisecond, 5
	w, metrics := newMeteredWorld(t, worldOptions{idle: idle,
		potConfig: actors.PotConfig{ResidentMax: 100, ResidentIdle: 50 * time.Millisecond}})
	for i := range pots {
		w.must(fmt.Sprintf("U%03d", i), openPot("open", "balanced"))
	}
	// Twenty of the cap's periods, and less than the idle timeout.
	require.Never(t, func() bool { return gaugeValue(t, metrics.ActivePots) < pots }, idle-500*time.Millisecond, 20*time.Millisecond,
		"a pot passivated before its idle timeout")
	waitPassivated(t, metrics)
}
