//go:build linux

// Package procmem reads this process's memory as the kernel counts it:
// resident and peak resident set size; and the Go heap as the runtime
// counts it (HeapObjects).
package procmem

import (
	"os"
	"strconv"
	"strings"
)

// ResetPeak resets the process's peak resident set size (VmHWM) to its
// current one (Linux's clear_refs); ok is false if the kernel refused.
func ResetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// Peak is the process's peak resident set size in bytes since the start or
// the last ResetPeak, 0 if unknown.
func Peak() uint64 { return status("VmHWM:") }

// Resident is the process's resident set size in bytes, 0 if unknown.
func Resident() uint64 { return status("VmRSS:") }

// ResidentOf is process pid's resident set size in bytes, 0 if unknown
// (or the process is gone).
func ResidentOf(pid int) uint64 { return statusOf("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:") }

// status is a size field of /proc/self/status in bytes, 0 if unknown.
func status(field string) uint64 { return statusOf("/proc/self/status", field) }

func statusOf(path, field string) uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
