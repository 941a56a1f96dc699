//go:build !unix

package bench

import "time"

// processCPU is not measured on this platform: the tables show 0 cores.
func processCPU() time.Duration { return 0 }

func machineCPU() (busy, total time.Duration, ok bool) { return 0, 0, false }
