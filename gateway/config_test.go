package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/domain"
)

// TestConfigValidate: Validate reports every violation at once, each with
// its value; defaults make a config with its required fields valid.
func TestConfigValidate(t *testing.T) {
	var c Config
	err := c.Validate()
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("zero config: %v", err)
	}
	for _, want := range []string{"Pots", "Cluster", "Ready", "Catalogue", "TokenSecret of 0 bytes", "Now", "RequestTimeout 0s",
		"ReadyTimeout 0s", "InFlightMax 0", "Registry", "Logger"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("zero config: %q does not mention %s", err, want)
		}
	}

	c = Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.RequestTimeout != 5*time.Second || c.ReadyTimeout != 2*time.Second || c.InFlightMax != defaultInFlightMax ||
		c.SlotWaitMax != defaultSlotWaitMax {
		t.Fatalf("defaults %+v", c)
	}
	c.RequestTimeout, c.InFlightMax, c.TokenSecret = -time.Second, -1, []byte("short")
	err = c.Validate()
	for _, want := range []string{"RequestTimeout -1s", "InFlightMax -1", "TokenSecret of 5 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v does not mention %s", err, want)
		}
	}
	c.RequestTimeout, c.SlotWaitMax = time.Second, time.Second
	err = c.Validate()
	for _, want := range []string{"SlotWaitMax 1s not below RequestTimeout 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v does not mention %s", err, want)
		}
	}
}

// TestNewRefusesSharedRegistry: two gateways cannot register their metrics
// on one registry (their counters would be one).
func TestNewRefusesSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Registry: reg}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("a second gateway on the same registry was accepted")
	}
}
