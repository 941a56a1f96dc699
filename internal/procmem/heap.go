package procmem

import "runtime/metrics"

// HeapObjects is the Go heap's object bytes now: live objects and those
// not yet swept (runtime/metrics; reading it stops nothing), 0 if the
// runtime does not say.
func HeapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
