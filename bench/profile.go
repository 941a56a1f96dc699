package bench

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Reading runtime/pprof's profiles here, so that a run can say where the
// CPU and the heap went without a trip through `go tool pprof` (the module
// does not depend on github.com/google/pprof, so this decodes the few
// fields of profile.proto it needs with protowire).

// profile is a decoded pprof profile: its samples with their stacks as
// function names, leaf first (inlined frames included).
type profile struct {
	sampleTypes []string // e.g. "samples", "cpu"; "inuse_space"
	samples     []profileSample
}

type profileSample struct {
	stack  []string
	values []int64 // one per sample type
}

// Field numbers of profile.proto (github.com/google/pprof/proto/profile.proto).
const (
	profSampleType  = 1
	profSample      = 2
	profLocation    = 4
	profFunction    = 5
	profStringTable = 6

	valueTypeType = 1

	sampleLocationID = 1
	sampleValue      = 2

	locationID   = 1
	locationLine = 4

	lineFunctionID = 1

	functionID   = 1
	functionName = 2
)

// parseProfile decodes a profile as runtime/pprof writes it (gzipped
// profile.proto).
func parseProfile(data []byte) (*profile, error) {
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	type rawSample struct {
		locs   []uint64
		values []int64
	}
	var (
		strs        []string
		typeIdx     []int64
		raws        []rawSample
		locFuncs    = map[uint64][]uint64{} // location id → function ids, leaf first
		funcNameIdx = map[uint64]int64{}
	)
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch num {
		case profSampleType:
			return eachField(b, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				if num == valueTypeType {
					typeIdx = append(typeIdx, int64(v))
				}
				return nil
			})
		case profSample:
			var s rawSample
			err := eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
				switch num {
				case sampleLocationID:
					return appendVarints(&s.locs, typ, v, b, func(x uint64) uint64 { return x })
				case sampleValue:
					return appendVarints(&s.values, typ, v, b, func(x uint64) int64 { return int64(x) })
				}
				return nil
			})
			raws = append(raws, s)
			return err
		case profLocation:
			var id uint64
			var funcs []uint64
			err := eachField(b, func(num protowire.Number, _ protowire.Type, v uint64, b []byte) error {
				switch num {
				case locationID:
					id = v
				case locationLine:
					return eachField(b, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
						if num == lineFunctionID {
							funcs = append(funcs, v)
						}
						return nil
					})
				}
				return nil
			})
			locFuncs[id] = funcs
			return err
		case profFunction:
			var id uint64
			var name int64
			err := eachField(b, func(num protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				switch num {
				case functionID:
					id = v
				case functionName:
					name = int64(v)
				}
				return nil
			})
			funcNameIdx[id] = name
			return err
		case profStringTable:
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: decode profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || i >= int64(len(strs)) {
			return "?"
		}
		return strs[i]
	}
	p := &profile{}
	for _, i := range typeIdx {
		p.sampleTypes = append(p.sampleTypes, str(i))
	}
	for _, r := range raws {
		s := profileSample{values: r.values}
		for _, l := range r.locs {
			for _, f := range locFuncs[l] {
				s.stack = append(s.stack, str(funcNameIdx[f]))
			}
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

// eachField calls f with each field of a protobuf message: its varint
// value, or its bytes for length-delimited fields.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var sub []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			sub, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, sub); err != nil {
			return err
		}
	}
	return nil
}

// appendVarints appends a repeated varint field's value: one varint, or a
// packed run of them.
func appendVarints[T any](dst *[]T, typ protowire.Type, v uint64, b []byte, conv func(uint64) T) error {
	if typ == protowire.VarintType {
		*dst = append(*dst, conv(v))
		return nil
	}
	for len(b) > 0 {
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		*dst = append(*dst, conv(x))
		b = b[n:]
	}
	return nil
}

// valueIndex is the index of the named sample type.
func (p *profile) valueIndex(name string) (int, error) {
	i := slices.Index(p.sampleTypes, name)
	if i < 0 {
		return 0, fmt.Errorf("bench: profile has no %q values (it has %v)", name, p.sampleTypes)
	}
	return i, nil
}

// area is a part of the program, recognised by a function on the stack: a
// sample belongs to it if any frame's name starts with one of prefixes.
type area struct {
	name     string
	prefixes []string
}

func (a area) matches(stack []string) bool {
	for _, f := range stack {
		for _, p := range a.prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// share is a named part of a total.
type share struct {
	name  string
	value int64
}

// profileShares sums the values (of sample type valueName) of p, minus
// those of base (nil: none): by area (cumulative: a sample counts in every
// area on its stack), and by the function, and its package, of the first
// frame that skip does not pass over (flat: these shares add up to the
// total). skip, if not nil, passes over frames to charge a sample to their
// caller (the runtime's allocator in a heap profile). Shares are sorted
// largest first, except the areas, which keep their order.
func profileShares(p, base *profile, valueName string, areas []area, skip func(frame string) bool) (total int64, byArea, byPackage, byFunction []share, err error) {
	byArea = make([]share, len(areas))
	for i, a := range areas {
		byArea[i].name = a.name
	}
	pkgSums, funcSums := map[string]int64{}, map[string]int64{}
	add := func(q *profile, sign int64) error {
		vi, err := q.valueIndex(valueName)
		if err != nil {
			return err
		}
		for _, s := range q.samples {
			if vi >= len(s.values) {
				continue
			}
			v := sign * s.values[vi]
			total += v
			for i, a := range areas {
				if a.matches(s.stack) {
					byArea[i].value += v
				}
			}
			fn := attributedFrame(s.stack, skip)
			funcSums[fn] += v
			pkgSums[framePackage(fn)] += v
		}
		return nil
	}
	if err := add(p, 1); err != nil {
		return 0, nil, nil, nil, err
	}
	if base != nil {
		if err := add(base, -1); err != nil {
			return 0, nil, nil, nil, err
		}
	}
	return total, byArea, sortedShares(pkgSums), sortedShares(funcSums), nil
}

// sortedShares lists sums largest first.
func sortedShares(sums map[string]int64) []share {
	out := make([]share, 0, len(sums))
	for name, v := range sums {
		out = append(out, share{name, v})
	}
	slices.SortFunc(out, func(a, b share) int {
		if c := cmp.Compare(b.value, a.value); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// attributedFrame is the first frame of stack that skip does not pass over
// (the leaf if skip is nil or passes over every frame).
func attributedFrame(stack []string, skip func(string) bool) string {
	if len(stack) == 0 {
		return "?"
	}
	if skip != nil {
		for _, f := range stack {
			if !skip(f) {
				return f
			}
		}
	}
	return stack[0]
}

// framePackage is the package path of a function name as pprof writes it
// ("github.com/a/b.(*T).M" → "github.com/a/b", "runtime.mallocgc" →
// "runtime").
func framePackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

// writeShares prints a profile summary: the areas, and the top packages
// and functions, each with its share of total; unit formats a value.
func writeShares(out io.Writer, total int64, byArea, byPackage, byFunction []share, top int, unit func(int64) string) {
	if total <= 0 {
		fmt.Fprintf(out, "  (no samples)\n")
		return
	}
	pct := func(v int64) float64 { return 100 * float64(v) / float64(total) }
	fmt.Fprintf(out, "  by area (a sample counts in every area on its stack, so areas overlap):\n")
	for _, s := range byArea {
		fmt.Fprintf(out, "    %5.1f%%  %12s  %s\n", pct(s.value), unit(s.value), s.name)
	}
	fmt.Fprintf(out, "  by package (flat, of the function itself; these add up to 100%%), top %d:\n", top)
	for _, s := range byPackage[:min(top, len(byPackage))] {
		fmt.Fprintf(out, "    %5.1f%%  %12s  %s\n", pct(s.value), unit(s.value), s.name)
	}
	fmt.Fprintf(out, "  by function (flat), top %d:\n", top)
	for _, s := range byFunction[:min(top, len(byFunction))] {
		fmt.Fprintf(out, "    %5.1f%%  %12s  %s\n", pct(s.value), unit(s.value), s.name)
	}
}

// heapSnapshot returns the live heap after a full GC and, with a
// profileDir, writes the heap profile (as of that GC) to profileDir/name
// and returns it decoded.
func heapSnapshot(profileDir, name string) (uint64, *profile, error) {
	// The heap profile is as of the last GC but one or two: three bring it
	// up to date.
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if profileDir == "" {
		return ms.HeapAlloc, nil, nil
	}
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		return 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(profileDir, name), buf.Bytes(), 0o644); err != nil {
		return 0, nil, err
	}
	p, err := parseProfile(buf.Bytes())
	return ms.HeapAlloc, p, err
}

// startCPUProfile starts a CPU profile into the file at path; stop stops it
// and closes the file. Another profile already running (go test
// -cpuprofile) is logged and the run measured without: started is false
// and stop does nothing.
func startCPUProfile(path string, log *slog.Logger) (stop func(), started bool, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, false, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Warn("bench: no CPU profile", "profile", path, "err", err)
		f.Close()
		return func() {}, false, nil
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Warn("bench: close CPU profile", "profile", path, "err", err)
		}
	}, true, nil
}
