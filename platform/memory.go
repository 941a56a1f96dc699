package platform

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/procmem"
)

// byteUnits are the units ParseByteSize accepts (in any case) and
// FormatByteSize writes, largest first: FormatByteSize takes the first
// that divides a size.
var byteUnits = []struct {
	name  string
	bytes int64
}{
	{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
	{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3},
	{"B", 1},
}

// ParseByteSize reads a size in bytes: a number, optionally with a
// fraction, and a unit: B (or none), KiB, MiB, GiB, TiB (powers of 1024)
// or KB, MB, GB, TB (powers of 1000), in any case. "8GiB", "6GB",
// "1.5GiB" and "8589934592" are sizes; fractions of a byte are dropped.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	digits := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if digits < 0 {
		digits = len(s)
	}
	number, unit := s[:digits], strings.TrimSpace(s[digits:])
	if number == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes, or one with a unit (8GiB, 6GB, 512MiB)", s)
	}
	scale := int64(0)
	if unit == "" {
		scale = 1
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			scale = u.bytes
		}
	}
	if scale == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, unit)
	}
	if !strings.Contains(number, ".") {
		n, err := strconv.ParseInt(number, 10, 64)
		if err != nil || n > math.MaxInt64/scale {
			return 0, fmt.Errorf("size %q: not a number of bytes up to %d", s, int64(math.MaxInt64))
		}
		return n * scale, nil
	}
	f, err := strconv.ParseFloat(number, 64)
	if err != nil || f*float64(scale) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: not a number of bytes up to %d", s, int64(math.MaxInt64))
	}
	return int64(f * float64(scale)), nil
}

// FormatByteSize writes n as ParseByteSize reads it, in the largest unit
// that divides it ("8GiB", "6GB", "1000001B").
func FormatByteSize(n int64) string {
	for _, u := range byteUnits {
		if n != 0 && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// withMemoryGauges adds the process's Go heap and resident set to a node's
// gauges, for GET /v1/cluster (and load run's charts of each node).
func withMemoryGauges(gauges func() map[string]int64) func() map[string]int64 {
	return func() map[string]int64 {
		g := gauges()
		g[actors.GaugeHeapBytes] = int64(procmem.HeapObjects())
		g[actors.GaugeResidentBytes] = int64(procmem.Resident())
		return g
	}
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit to limit bytes,
// if positive, and logs the limit in effect. restore sets the one before
// back (dev and a node's process when they stop, a benchmark after its
// run). With limit 0 it changes nothing: Go's own setting (GOMEMLIMIT, or
// none) stays.
func ApplyMemoryLimit(limit int64, log *slog.Logger) (restore func()) {
	env, fromEnv := os.LookupEnv("GOMEMLIMIT")
	if limit <= 0 {
		if current := debug.SetMemoryLimit(-1); fromEnv && current != math.MaxInt64 {
			log.Info("memory limit", "limit", FormatByteSize(current), "from", "GOMEMLIMIT")
		}
		return func() {}
	}
	prev := debug.SetMemoryLimit(limit)
	attrs := []any{"limit", FormatByteSize(limit), "bytes", limit}
	if fromEnv {
		attrs = append(attrs, "instead_of_GOMEMLIMIT", env)
	}
	// With a limit, the collector need not keep the heap within twice the
	// live one (GOGC=100) as well: that spent ~20-36% of a dealing day's CPU
	// collecting a heap with room to spare (docs/performance.md). The limit
	// bounds the heap; GOGC set in the environment still wins.
	prevPercent := -2
	if _, set := os.LookupEnv("GOGC"); !set {
		prevPercent = debug.SetGCPercent(GCPercentWithMemoryLimit)
		attrs = append(attrs, "gc_percent", GCPercentWithMemoryLimit)
	}
	log.Info("memory limit", attrs...)
	return func() {
		debug.SetMemoryLimit(prev)
		if prevPercent != -2 {
			debug.SetGCPercent(prevPercent)
		}
	}
}

// GCPercentWithMemoryLimit is the collector's GOGC when a memory limit is set
// (and GOGC is not): the heap may grow to five times the live one before a
// collection, or to the limit, whichever comes first.
const GCPercentWithMemoryLimit = 400
