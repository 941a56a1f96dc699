//go:build !linux

// Package procmem reads this process's memory as the kernel counts it:
// resident and peak resident set size, unknown (0) here; and the Go heap as
// the runtime counts it (HeapObjects).
package procmem

// ResetPeak is not available here: the peak is reported as unknown.
func ResetPeak() bool { return false }

// Peak is unknown here.
func Peak() uint64 { return 0 }

// Resident is unknown here.
func Resident() uint64 { return 0 }

// ResidentOf is unknown here.
func ResidentOf(int) uint64 { return 0 }
