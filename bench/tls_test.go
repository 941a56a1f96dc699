package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunPotsTLSSmall proves that the TLS comparison measures every cell on
// both sides and prints the ratios, on a workload small enough for CI.
func TestRunPotsTLSSmall(t *testing.T) {
	var out strings.Builder
	cfg := PotsConfig{Dir: t.TempDir(), Callers: 8, Pots: 100, Duration: 100 * time.Millisecond, Repeats: 1}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	require.NoError(t, RunPotsTLS(ctx, cfg, &out), out.String())
	text := out.String()
	t.Logf("RunPotsTLS took %s:\n%s", time.Since(start).Round(time.Millisecond), text)

	rows := 0
	for _, line := range strings.Split(text, "\n") {
		for _, label := range []string{"pot Contribute over the remote, plaintext", "pot Contribute over the remote, mTLS",
			"HTTP orders, plaintext remote", "HTTPS orders, plaintext remote", "HTTPS orders, mTLS remote"} {
			if strings.HasPrefix(line, label) {
				rows++
				f := strings.Fields(line[42:])
				if assert.Len(t, f, 7, line) {
					assert.NotEqual(t, "0", f[0], "a cell measured nothing: %q", line)
				}
			}
		}
	}
	assert.Equal(t, 5, rows, "throughput rows")
	for _, want := range []string{"cluster: mTLS ÷ plaintext remote", "gateway: HTTPS ÷ HTTP", "all TLS: HTTPS + mTLS"} {
		assert.Contains(t, text, want)
	}
}
