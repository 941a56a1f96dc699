package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// EnsureDefaults fills every zero field with its documented default and
// keeps what was set.
func TestConfigEnsureDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	if c.ClusterName != "mastertrust" || c.Host != "127.0.0.1" || c.Port != 0 ||
		c.IdleTimeout != 10*time.Minute || c.RequestTimeout != 5*time.Second ||
		c.RequestRetryCount != 3 || c.RequestRetryBackoff != 50*time.Millisecond ||
		c.HeartbeatExpiration != 20*time.Second || c.GossipInterval != 300*time.Millisecond ||
		c.Logger == nil || c.LibraryLogLevel.Level() != slog.LevelWarn {
		t.Fatalf("defaults: got %+v", c)
	}

	c = Config{Provider: ProviderAutomanaged, IdleTimeout: time.Second, LibraryLogLevel: slog.LevelInfo}
	c.EnsureDefaults()
	if c.IdleTimeout != time.Second || c.Automanaged.RefreshInterval != time.Second || c.LibraryLogLevel.Level() != slog.LevelInfo {
		t.Fatalf("set fields or automanaged default: got idle %v refresh %v level %v",
			c.IdleTimeout, c.Automanaged.RefreshInterval, c.LibraryLogLevel)
	}
}

// Validate reports every violation at once, each naming the field and value.
func TestConfigValidateReportsEverything(t *testing.T) {
	c := Config{
		Host:     "0.0.0.0",
		Port:     70000,
		Provider: ProviderConsul,
		Kinds: []Kind{
			{Name: "", New: nil},
			{Name: protocluster.TopicActorKind, New: func(time.Duration) *protocluster.Kind { return nil }},
			{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }, IdleTimeout: -time.Second},
			{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }},
		},
		RequestRetryCount: -1,
		GossipInterval:    time.Second,
	}
	c.EnsureDefaults()
	c.RequestTimeout = -time.Second
	c.HeartbeatExpiration = time.Second
	err := c.Validate(false)
	if err == nil {
		t.Fatal("no error for an invalid config")
	}
	for _, want := range []string{
		`Host "0.0.0.0"`,
		"Port 70000",
		`Provider "consul" needs NewExternalProvider`,
		"Kinds[0].Name is empty",
		"Kinds[0] (\"\").New is nil",
		`Kinds[1].Name "prototopic" is reserved`,
		`Kinds[2] ("Pot").IdleTimeout -1s is negative`,
		`Kinds[3].Name "Pot" is repeated`,
		"RequestTimeout -1s",
		"RequestRetryCount -1",
		"HeartbeatExpiration 1s must be longer than GossipInterval 1s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	client := Config{Provider: ProviderInProcess, Kinds: []Kind{{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }}}}
	client.EnsureDefaults()
	err = client.Validate(true)
	for _, want := range []string{`Provider "inprocess" needs InProcess`, "a client hosts no grains, but Kinds has 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("client config: error %v lacks %q", err, want)
		}
	}

	member := Config{Provider: ProviderAutomanaged}
	member.EnsureDefaults()
	err = member.Validate(false)
	for _, want := range []string{"needs Automanaged.Port", "needs Automanaged.Peers", "a member needs at least one Kind"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("member config: error %v lacks %q", err, want)
		}
	}
	if err := (&Config{Provider: "zookeeper"}).EnsureDefaults().Validate(true); err == nil || !strings.Contains(err.Error(), `Provider "zookeeper" is unknown`) {
		t.Errorf("unknown provider: got %v", err)
	}
	advertised := Config{Provider: ProviderInProcess, InProcess: NewInProcess(time.Second), AdvertisedAddress: "no-port"}
	if err := advertised.EnsureDefaults().Validate(true); err == nil || !strings.Contains(err.Error(), `AdvertisedAddress "no-port" is not host:port`) {
		t.Errorf("advertised address without port: got %v", err)
	}
}

// A valid config passes.
func TestConfigValidateAcceptsValid(t *testing.T) {
	c := Config{
		Provider:  ProviderInProcess,
		InProcess: NewInProcess(time.Second),
		Kinds:     []Kind{{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }}},
	}
	if err := c.EnsureDefaults().Validate(false); err != nil {
		t.Fatalf("valid member config: %v", err)
	}
	c.Kinds = nil
	if err := c.EnsureDefaults().Validate(true); err != nil {
		t.Fatalf("valid client config: %v", err)
	}
}

// Start refuses a kind whose constructor names another kind, and a config
// that fails Validate, before starting anything.
func TestStartRejectsBadKind(t *testing.T) {
	c := Config{
		Provider:  ProviderInProcess,
		InProcess: NewInProcess(time.Second),
		Logger:    slog.New(slog.DiscardHandler),
		Kinds: []Kind{{Name: "Pot", New: func(d time.Duration) *protocluster.Kind {
			return protocluster.NewKind("Counter", actor.PropsFromFunc(func(actor.Context) {}))
		}}},
	}
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), `kind "Pot": New returned kind "Counter"`) {
		t.Fatalf("mismatched kind name: got %v", err)
	}
	c.Kinds = nil
	if _, err := Start(c); err == nil || !strings.Contains(err.Error(), "a member needs at least one Kind") {
		t.Fatalf("member without kinds: got %v", err)
	}
}

// protoactor's lines pass at or above the library level; known benign ones
// are lowered first.
func TestLibraryHandler(t *testing.T) {
	var buf bytes.Buffer
	next := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	logger := slog.New(newLibraryHandler(next, slog.LevelWarn))
	ctx := context.Background()

	logger.Info("Updated ClusterTopology")
	logger.Error("cluster.RequestFuture failed")
	logger.Error("EndpointWriter lost connection")
	logger.Warn("sendGossipForMember failed")
	logger.Error("something new and bad")
	out := buf.String()
	for _, absent := range []string{"Updated ClusterTopology", "cluster.RequestFuture failed", "EndpointWriter lost connection"} {
		if strings.Contains(out, absent) {
			t.Errorf("%q passed a Warn threshold:\n%s", absent, out)
		}
	}
	for _, present := range []string{"level=WARN msg=\"sendGossipForMember failed\"", "level=ERROR msg=\"something new and bad\""} {
		if !strings.Contains(out, present) {
			t.Errorf("%q missing:\n%s", present, out)
		}
	}

	buf.Reset()
	debug := slog.New(newLibraryHandler(next, slog.LevelDebug))
	debug.Error("cluster.RequestFuture failed")
	if !strings.Contains(buf.String(), "level=DEBUG msg=\"cluster.RequestFuture failed\"") {
		t.Errorf("lowered line at a Debug threshold: got %q", buf.String())
	}
	if newLibraryHandler(next, slog.LevelWarn).Enabled(ctx, slog.LevelInfo) {
		t.Error("Info enabled at a Warn threshold")
	}
}
