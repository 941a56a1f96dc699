package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
)

// A stream can write with a leader that reaches a majority of its
// replicas: a replica known offline, or silent for peerSilenceMax, does
// not count, and a leader alone of three is no majority though it still
// calls itself leader.
func TestQuorum(t *testing.T) {
	peer := func(offline bool, active time.Duration) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: "p", Offline: offline, Active: active}
	}
	assert.NoError(t, quorum(nil), "a single server's stream")
	assert.NoError(t, quorum(&jetstream.ClusterInfo{Leader: "n0"}), "one replica")
	assert.ErrorContains(t, quorum(&jetstream.ClusterInfo{}), "no leader")
	assert.NoError(t, quorum(&jetstream.ClusterInfo{Leader: "n0",
		Replicas: []*jetstream.PeerInfo{peer(false, time.Second), peer(false, 0)}}), "all three")
	assert.NoError(t, quorum(&jetstream.ClusterInfo{Leader: "n0",
		Replicas: []*jetstream.PeerInfo{peer(true, time.Second), peer(false, time.Second)}}), "two of three")
	assert.ErrorContains(t, quorum(&jetstream.ClusterInfo{Leader: "n0",
		Replicas: []*jetstream.PeerInfo{peer(true, time.Second), peer(false, time.Minute)}}), "reaches 1 of 3 replicas")
}
