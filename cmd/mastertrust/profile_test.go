package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// MASTERTRUST_CPU_PROFILE makes the process write a CPU profile (a gzipped
// protobuf) to <prefix>.<pid>.pprof when it stops; without it, nothing is
// written; a path that cannot be created is reported and the command runs.
func TestCPUProfileFromEnv(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	stop := startCPUProfile(filepath.Join(dir, "node"), &stderr)
	stop()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node.%d.pprof", os.Getpid())))
	require.NoError(t, err)
	require.Greater(t, len(b), 2)
	assert.Equal(t, []byte{0x1f, 0x8b}, b[:2], "a gzipped profile")
	assert.Empty(t, stderr.String())

	startCPUProfile("", &stderr)()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no profile without the variable")

	startCPUProfile(filepath.Join(dir, "missing", "node"), &stderr)()
	assert.Contains(t, stderr.String(), "MASTERTRUST_CPU_PROFILE")
}
