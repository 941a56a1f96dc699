//go:build !race

package cluster

import (
	"crypto/tls"
	"io"
)

// raceSyncIO is a no-op without the race detector; see race.go.
func raceSyncIO() {}

// raceProbe is a no-op without the race detector; see race.go.
func raceProbe(string, *tls.Config) (io.Closer, error) { return nil, nil }
