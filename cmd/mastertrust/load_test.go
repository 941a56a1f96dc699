package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/custodian/simulator"
)

// load gen writes the same workload twice from the same flags, and load
// run replays it on a dev it starts, exits 0 and writes its report: the
// summary's fields that scripts read, report.md and the charts.
func TestLoadGenAndRun(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.load"), filepath.Join(dir, "b.load")
	for _, out := range []string{a, b} {
		stdout, stderr, code := runCLI(t, "load", "gen", "--members", "80", "--days", "2", "--warm-up-days", "2", "--seed", "3", "--buy-rate", "0.2", "--out", out)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "80 members, 2 dealing days after 2 warm-up days, seed 3")
	}
	first, err := os.ReadFile(a)
	require.NoError(t, err)
	second, err := os.ReadFile(b)
	require.NoError(t, err)
	require.Equal(t, string(first), string(second))

	report := filepath.Join(dir, "report")
	// The custodian drops and repeats reports: the platform recovers, and
	// the checks hold.
	profiles := t.TempDir()
	stdout, stderr, code := runCLI(t, "load", "run", "--workload", a, "--start", "dev", "--report", report, "--quiet",
		"--custodian-drop", "0.05", "--custodian-duplicate", "0.1", "--custodian-seed", "5", "--profile-dir", profiles)
	require.Equal(t, 0, code, "stdout %s\nstderr %s", stdout, stderr)
	require.Contains(t, stdout, "lost 0, doubled 0, mismatched 0, breaks 0, 5xx 0")
	data, err := os.ReadFile(filepath.Join(report, "summary.json"))
	require.NoError(t, err)
	var summary map[string]any
	require.NoError(t, json.Unmarshal(data, &summary))
	for _, field := range []string{"acknowledged", "lost", "doubled", "mismatched", "breaks", "errors5xx", "days", "durationSeconds"} {
		require.Contains(t, summary, field)
	}
	require.EqualValues(t, 2, summary["days"])
	require.EqualValues(t, 2, summary["warmUpDays"])
	require.Greater(t, summary["acknowledged"], 80.0, "the pots and more")
	for _, f := range []string{"report.md", "requests.png", "latency.png", "errors.png", "cycle-steps.png", "memory.png", "active-pots.png"} {
		info, err := os.Stat(filepath.Join(report, f))
		require.NoError(t, err, f)
		require.NotZero(t, info.Size(), f)
	}

	for _, f := range []string{"day-w-1.cpu.pprof", "day-w0.cpu.pprof", "day-1.cpu.pprof", "day-2.cpu.pprof", "day-s1.cpu.pprof"} {
		info, err := os.Stat(filepath.Join(profiles, f))
		require.NoError(t, err, "a CPU profile of each day")
		require.NotZero(t, info.Size(), f)
	}

	_, stderr, code = runCLI(t, "load", "run", "--report", report)
	require.Equal(t, 2, code, "neither a gateway nor --start")
	require.Contains(t, stderr, "one of --gateway URL,... or --start dev")
}

// A command that ran and found something wrong exits 1 (load run's failed
// checks), one that could not run 2, help 0.
func TestExitStatus(t *testing.T) {
	var out strings.Builder
	require.Equal(t, 1, exitCode(fmt.Errorf("run: %w", exitStatus{code: 1, err: errors.New("checks failed")}), &out))
	require.Contains(t, out.String(), "checks failed")
	require.Equal(t, 2, exitCode(errors.New("no such flag"), &out))
	require.Equal(t, 0, exitCode(flag.ErrHelp, &out))
	require.Equal(t, 0, exitCode(nil, &out))
}

// load run --start cluster --chaos kill-node starts NATS, the custodian,
// two nodes and a gateway as processes, kills a node each day while the
// day's requests run and restarts it, and still finds every acknowledged
// request once, every pot as the model says and no break.
func TestLoadRunOnAClusterWithChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster's processes for half a minute")
	}
	report := filepath.Join(t.TempDir(), "report")
	out, code := runBinary(t, nil, "load", "run", "--members", "150", "--days", "2", "--warm-up-days", "1", "--seed", "4", "--buy-rate", "0.2",
		"--start", "cluster", "--nodes", "2", "--chaos", "kill-node,kill-gateway", "--custodian-drop", "0.05", "--custodian-duplicate", "0.05",
		"--report", report, "--quiet")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "lost 0, doubled 0, mismatched 0, breaks 0, 5xx 0")
	require.Contains(t, out, "chaos: kill -9")
	require.Contains(t, out, `msg="chaos: restarted" node=node1`)
	require.Contains(t, out, `msg="chaos: restarted" process=gateway`)
	data, err := os.ReadFile(filepath.Join(report, "summary.json"))
	require.NoError(t, err)
	var summary struct {
		Samples []struct {
			ProcessRSSBytes map[string]uint64 `json:"processRSSBytes"`
			MemberHeapBytes map[string]uint64 `json:"memberHeapBytes"`
		} `json:"samples"`
	}
	require.NoError(t, json.Unmarshal(data, &summary))
	require.NotEmpty(t, summary.Samples)
	last := summary.Samples[len(summary.Samples)-1]
	require.Contains(t, last.ProcessRSSBytes, "node1", "each process's memory sampled")
	require.Len(t, last.MemberHeapBytes, 2, "each node's heap sampled")
	for id, heap := range last.MemberHeapBytes {
		assert.Positive(t, heap, id)
	}
}

// load run passes its custodian faults to the custodian it starts as
// flags, which read back as the same faults.
func TestCustodianFaultArgs(t *testing.T) {
	parse := func(args ...string) (simulator.Faults, error) {
		f := newFlags("test", io.Discard)
		var faults simulator.Faults
		custodianFlags(f, &faults)
		return faults, f.parse(args)
	}
	none, err := parse(custodianFaultArgs(simulator.Faults{})...)
	require.NoError(t, err)
	assert.Equal(t, simulator.Faults{}, none)
	assert.Empty(t, custodianFaultArgs(simulator.Faults{}))

	want := simulator.Faults{Seed: 9, DropProbability: 0.05, DuplicateProbability: 0.125, DelayMax: 1500 * time.Millisecond,
		ReorderWindow: 8, OutageDuration: 3 * time.Second, OutageOrders: 2}
	got, err := parse(custodianFaultArgs(want)...)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestParseChaos(t *testing.T) {
	for _, tc := range []struct {
		spec, start string
		want        []string
		err         string
	}{
		{"", "", nil, ""},
		{"", "cluster", nil, ""},
		{"kill-node", "cluster", []string{"kill-node"}, ""},
		{"kill-gateway, kill-node,kill-gateway", "cluster", []string{"kill-gateway", "kill-node"}, ""},
		{"kill-node", "dev", nil, "kills the processes of --start cluster"},
		{"kill-node,drop", "cluster", nil, `"drop" is neither kill-node nor kill-gateway`},
	} {
		got, err := parseChaos(tc.spec, tc.start)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.spec)
			continue
		}
		require.NoError(t, err, tc.spec)
		assert.Equal(t, tc.want, got, tc.spec)
	}
}
