//go:build !linux

package bench

// resetPeakRSS is not available here: peak RSS is reported as unknown.
func resetPeakRSS() bool { return false }

// peakRSS is unknown here.
func peakRSS() uint64 { return 0 }
