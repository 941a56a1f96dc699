package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// TestConfigValidate: Validate reports every violation at once, each with
// its value; defaults make a config with its required fields valid.
func TestConfigValidate(t *testing.T) {
	var c Config
	err := c.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig, "zero config")
	for _, want := range []string{"Pots", "Cluster", "Ready", "Catalogue", "TokenSecret of 0 bytes", "Now", "RequestTimeout 0s",
		"ReadyTimeout 0s", "InFlightMax 0", "Registry", "Logger"} {
		assert.ErrorContains(t, err, want, "zero config")
	}

	c = Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret}
	c.EnsureDefaults()
	require.NoError(t, c.Validate(), "defaults")
	require.Equal(t, 5*time.Second, c.RequestTimeout, "default RequestTimeout")
	require.Equal(t, 2*time.Second, c.ReadyTimeout, "default ReadyTimeout")
	require.Equal(t, defaultInFlightMax, c.InFlightMax, "default InFlightMax")
	require.Equal(t, defaultSlotWaitMax, c.SlotWaitMax, "default SlotWaitMax")
	c.RequestTimeout, c.InFlightMax, c.TokenSecret = -time.Second, -1, []byte("short")
	err = c.Validate()
	for _, want := range []string{"RequestTimeout -1s", "InFlightMax -1", "TokenSecret of 5 bytes"} {
		assert.ErrorContains(t, err, want, "bad config")
	}
	c.RequestTimeout, c.SlotWaitMax = time.Second, time.Second
	err = c.Validate()
	for _, want := range []string{"SlotWaitMax 1s not below RequestTimeout 1s"} {
		assert.ErrorContains(t, err, want, "bad config")
	}
}

// TestNewRefusesSharedRegistry: two gateways cannot register their metrics
// on one registry (their counters would be one).
func TestNewRefusesSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Registry: reg}
	_, err := New(cfg)
	require.NoError(t, err)
	_, err = New(cfg)
	require.Error(t, err, "a second gateway on the same registry")
}
