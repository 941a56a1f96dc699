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
	pots := c.potConfig()
	require.Equal(t, c.PotResidentMax, pots.ResidentMax, "pots' ResidentMax")
	require.Equal(t, c.PotResidentIdle, pots.ResidentIdle, "pots' ResidentIdle")
}
