//go:build unix

package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0 // reported as 0 cores; nothing else depends on it
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the CPU time all processes have spent busy and the CPU
// time elapsed (both summed over the CPUs), from /proc/stat; ok is false
// where there is none.
func machineCPU() (busy, total time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal …, in clock ticks
	// (USER_HZ, 100 on Linux).
	const tick = 10 * time.Millisecond
	for i, f := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += time.Duration(v) * tick
		if i != 3 && i != 4 { // idle, iowait
			busy += time.Duration(v) * tick
		}
	}
	return busy, total, true
}
