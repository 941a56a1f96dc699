package platform

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"journal sync spacing 300us", func(c *Config) { c.JournalMinSyncInterval = 300 * time.Microsecond }, ""},
		{"journal sync spacing at the bound", func(c *Config) { c.JournalMinSyncInterval = 10 * time.Millisecond }, ""},
		{"journal sync spacing past the bound", func(c *Config) { c.JournalMinSyncInterval = 11 * time.Millisecond }, "journal min sync interval 11ms"},
		{"negative journal sync spacing", func(c *Config) { c.JournalMinSyncInterval = -time.Millisecond }, "journal min sync interval -1ms"},
		{"unknown journal", func(c *Config) { c.Journal = "sqlite" }, `journal "sqlite"`},
		{"journal appends one by one", func(c *Config) { c.JournalBatchMax = 1 }, ""},
		{"journal batch at the server's limit", func(c *Config) { c.JournalBatchMax = 1000 }, ""},
		{"journal batch past the server's limit", func(c *Config) { c.JournalBatchMax = 1001 }, "journal batch max 1001"},
		{"automanaged membership", func(c *Config) { c.Membership = MembershipAutomanaged }, ""},
		{"unknown membership", func(c *Config) { c.Membership = "zookeeper" }, `membership "zookeeper": want kv, automanaged, consul, etcd or k8s`},
		{"membership heartbeat 200ms", func(c *Config) { c.MembershipHeartbeat = 200 * time.Millisecond }, ""},
		{"membership TTL within a heartbeat", func(c *Config) { c.MembershipHeartbeat, c.MembershipTTL = 2*time.Second, 2*time.Second },
			"membership heartbeat 2s and TTL 2s"},
		{"negative membership heartbeat", func(c *Config) { c.MembershipHeartbeat = -time.Second }, "membership heartbeat -1s"},
		{"short pot idle timeout", func(c *Config) { c.PotIdleTimeout = time.Millisecond }, "pot idle timeout"},
		{"cluster TLS", func(c *Config) { c.ClusterCA, c.ClusterCert, c.ClusterKey = "ca.crt", "n.crt", "n.key" }, ""},
		{"cluster TLS without a key", func(c *Config) { c.ClusterCA, c.ClusterCert = "ca.crt", "n.crt" }, "cluster TLS"},
		{"cluster TLS and plaintext", func(c *Config) {
			c.ClusterCA, c.ClusterCert, c.ClusterKey, c.ClusterPlaintext = "ca.crt", "n.crt", "n.key", true
		}, "plaintext asked for"},
		{"gateway certificate without a key", func(c *Config) { c.TLSCert = "gw.crt" }, "gateway TLS"},
		{"no pot resident bound", func(c *Config) { c.PotResidentMax = -1 }, ""},
		{"short pot resident idle", func(c *Config) { c.PotResidentIdle = 10 * time.Millisecond }, "pot resident idle 10ms"},
		{"negative pot resident idle", func(c *Config) { c.PotResidentIdle = -time.Second }, "pot resident idle -1s"},
		{"pot resident idle past the idle timeout", func(c *Config) { c.PotResidentIdle = time.Hour }, ""},
		{"memory limit 8GiB", func(c *Config) { c.MemoryLimitBytes = 8 << 30 }, ""},
		{"memory limit at its minimum", func(c *Config) { c.MemoryLimitBytes = MemoryLimitBytesMin }, ""},
		{"memory limit below its minimum", func(c *Config) { c.MemoryLimitBytes = 1 << 20 }, "memory limit 1048576 bytes: want 0 (Go's own) or at least 64MiB"},
		{"negative memory limit", func(c *Config) { c.MemoryLimitBytes = -1 }, "memory limit -1"},
		{"journal cache 1GiB", func(c *Config) { c.JournalCacheBytes = 1 << 30 }, ""},
		{"negative journal cache", func(c *Config) { c.JournalCacheBytes = -1 }, "journal cache -1 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.EnsureDefaults()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err, "Validate()")
			} else {
				require.ErrorContains(t, err, tc.want, "Validate()")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	require.Equal(t, DefaultPotResidentMax, c.PotResidentMax, "PotResidentMax")
	require.Equal(t, DefaultPotResidentIdle, c.PotResidentIdle, "PotResidentIdle")
	require.Zero(t, c.MemoryLimitBytes, "MemoryLimitBytes: Go's own")
	require.Equal(t, MembershipKV, c.Membership, "Membership")
	heartbeat, ttl := c.membershipTimes()
	require.Equal(t, time.Second, heartbeat, "membership heartbeat")
	require.Equal(t, 3*time.Second, ttl, "membership TTL")
	pots := c.potConfig()
	require.Equal(t, c.PotResidentMax, pots.ResidentMax, "pots' ResidentMax")
	require.Equal(t, c.PotResidentIdle, pots.ResidentIdle, "pots' ResidentIdle")
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string // "" for valid
	}{
		{"8589934592", 8 << 30, ""},
		{"8GiB", 8 << 30, ""},
		{"8gib", 8 << 30, ""},
		{" 8 GiB ", 8 << 30, ""},
		{"6GB", 6_000_000_000, ""},
		{"512MiB", 512 << 20, ""},
		{"64MB", 64_000_000, ""},
		{"1.5GiB", 3 << 29, ""},
		{"100KiB", 100 << 10, ""},
		{"2TiB", 2 << 40, ""},
		{"123B", 123, ""},
		{"0", 0, ""},
		{"", 0, "want a number"},
		{"GiB", 0, "want a number"},
		{"-1GiB", 0, "want a number"},
		{"8Gb/s", 0, "unknown unit"},
		{"8G", 0, "unknown unit"},
		{"1.2.3MiB", 0, "not a number"},
		{"9223372036854775808", 0, "not a number"},
		{"9000000TiB", 0, "not a number"},
	} {
		got, err := ParseByteSize(tc.in)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, "ParseByteSize(%q)", tc.in)
			continue
		}
		require.NoError(t, err, "ParseByteSize(%q)", tc.in)
		require.Equal(t, tc.want, got, "ParseByteSize(%q)", tc.in)
		if got != 0 {
			back, err := ParseByteSize(FormatByteSize(got))
			require.NoError(t, err, "ParseByteSize(FormatByteSize(%d))", got)
			require.Equal(t, got, back, "ParseByteSize(FormatByteSize(%d)) = ParseByteSize(%q)", got, FormatByteSize(got))
		}
	}
	require.Equal(t, "8GiB", FormatByteSize(8<<30))
	require.Equal(t, "6GB", FormatByteSize(6_000_000_000))
	require.Equal(t, "1000001B", FormatByteSize(1_000_001))
}
