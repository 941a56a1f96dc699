package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// EnsureDefaults fills every zero field with its documented default and
// keeps what was set.
func TestConfigEnsureDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	require.Equal(t, "mastertrust", c.ClusterName, "default ClusterName")
	require.Equal(t, "127.0.0.1", c.Host, "default Host")
	require.Zero(t, c.Port, "default Port")
	require.Equal(t, 10*time.Minute, c.IdleTimeout, "default IdleTimeout")
	require.Equal(t, 5*time.Second, c.RequestTimeout, "default RequestTimeout")
	require.Equal(t, 3, c.RequestRetryCount, "default RequestRetryCount")
	require.Equal(t, 50*time.Millisecond, c.RequestRetryBackoff, "default RequestRetryBackoff")
	require.Equal(t, 20*time.Second, c.HeartbeatExpiration, "default HeartbeatExpiration")
	require.Equal(t, 300*time.Millisecond, c.GossipInterval, "default GossipInterval")
	require.NotNil(t, c.Logger, "default Logger")
	require.NotNil(t, c.LibraryLogLevel, "default LibraryLogLevel")
	require.Equal(t, slog.LevelWarn, c.LibraryLogLevel.Level(), "default LibraryLogLevel")

	c = Config{Provider: ProviderAutomanaged, IdleTimeout: time.Second, LibraryLogLevel: slog.LevelInfo}
	c.EnsureDefaults()
	require.Equal(t, time.Second, c.IdleTimeout, "IdleTimeout set")
	require.Equal(t, time.Second, c.Automanaged.RefreshInterval, "default Automanaged.RefreshInterval")
	require.Equal(t, slog.LevelInfo, c.LibraryLogLevel.Level(), "LibraryLogLevel set")

	c = Config{Provider: ProviderKV}
	c.EnsureDefaults()
	require.Equal(t, time.Second, c.KV.Heartbeat, "default KV.Heartbeat")
	require.Equal(t, 3*time.Second, c.KV.TTL, "default KV.TTL: 3 heartbeats")
	c = Config{Provider: ProviderKV, KV: KVConfig{Heartbeat: 2 * time.Second}}
	c.EnsureDefaults()
	require.Equal(t, 6*time.Second, c.KV.TTL, "default KV.TTL follows KV.Heartbeat")
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
	require.Error(t, err, "an invalid config")
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
		assert.ErrorContains(t, err, want, "invalid config")
	}

	client := Config{Provider: ProviderInProcess, Kinds: []Kind{{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }}}}
	client.EnsureDefaults()
	err = client.Validate(true)
	for _, want := range []string{`Provider "inprocess" needs InProcess`, "a client hosts no grains, but Kinds has 1"} {
		assert.ErrorContains(t, err, want, "client config")
	}

	member := Config{Provider: ProviderAutomanaged}
	member.EnsureDefaults()
	err = member.Validate(false)
	for _, want := range []string{"needs Automanaged.Port", "needs Automanaged.Peers", "a member needs at least one Kind"} {
		assert.ErrorContains(t, err, want, "member config")
	}
	kv := Config{Provider: ProviderKV, KV: KVConfig{Heartbeat: 2 * time.Second, TTL: time.Second}}
	kv.EnsureDefaults()
	err = kv.Validate(true)
	for _, want := range []string{`Provider "kv" needs KV.Store`, "KV.TTL 1s must be longer than KV.Heartbeat 2s"} {
		assert.ErrorContains(t, err, want, "kv config")
	}
	assert.ErrorContains(t, (&Config{Provider: "zookeeper"}).EnsureDefaults().Validate(true), `Provider "zookeeper" is unknown`, "unknown provider")
	advertised := Config{Provider: ProviderInProcess, InProcess: NewInProcess(time.Second), AdvertisedAddress: "no-port"}
	assert.ErrorContains(t, advertised.EnsureDefaults().Validate(true), `AdvertisedAddress "no-port" is not host:port`,
		"advertised address without port")
}

// A valid config passes.
func TestConfigValidateAcceptsValid(t *testing.T) {
	c := Config{
		Provider:  ProviderInProcess,
		InProcess: NewInProcess(time.Second),
		Kinds:     []Kind{{Name: "Pot", New: func(time.Duration) *protocluster.Kind { return nil }}},
	}
	require.NoError(t, c.EnsureDefaults().Validate(false), "valid member config")
	c.Kinds = nil
	require.NoError(t, c.EnsureDefaults().Validate(true), "valid client config")
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
	_, err := Start(c)
	require.ErrorContains(t, err, `kind "Pot": New returned kind "Counter"`, "mismatched kind name")
	c.Kinds = nil
	_, err = Start(c)
	require.ErrorContains(t, err, "a member needs at least one Kind", "member without kinds")
}

// protoactor's lines pass at or above the library level; known benign ones
// are lowered first.
func TestLibraryHandler(t *testing.T) {
	var buf bytes.Buffer
	next := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	logger := slog.New(newLibraryHandler(next, slog.LevelWarn, nil))
	ctx := context.Background()

	logger.Info("Updated ClusterTopology")
	logger.Error("cluster.RequestFuture failed")
	logger.Error("EndpointWriter lost connection")
	logger.Warn("sendGossipForMember failed")
	logger.Error("something new and bad")
	out := buf.String()
	for _, absent := range []string{"Updated ClusterTopology", "cluster.RequestFuture failed", "EndpointWriter lost connection"} {
		assert.NotContains(t, out, absent, "what passed a Warn threshold")
	}
	for _, present := range []string{"level=WARN msg=\"sendGossipForMember failed\"", "level=ERROR msg=\"something new and bad\""} {
		assert.Contains(t, out, present, "what passed a Warn threshold")
	}

	buf.Reset()
	debug := slog.New(newLibraryHandler(next, slog.LevelDebug, nil))
	debug.Error("cluster.RequestFuture failed")
	assert.Contains(t, buf.String(), "level=DEBUG msg=\"cluster.RequestFuture failed\"", "a lowered line at a Debug threshold")
	assert.False(t, newLibraryHandler(next, slog.LevelWarn, nil).Enabled(ctx, slog.LevelInfo), "Info enabled at a Warn threshold")
}

// The endpoint writer's failure to connect reaches unreachable with the
// peer's address, with the library's lines silenced too (a level above
// Error), and the line itself is still filtered by level.
func TestLibraryHandlerHearsAFailedConnection(t *testing.T) {
	var buf bytes.Buffer
	next := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	var heard []string
	logger := slog.New(newLibraryHandler(next, slog.LevelError+4, func(address string) { heard = append(heard, address) })).
		With(slog.String("lib", "protoactor"))
	logger.Error(endpointConnectFailed, slog.String("address", "127.0.0.1:41543"), slog.Any("error", "connection refused"), slog.Int("retry", 0))
	logger.Error("EndpointWriter failed to create receive stream", slog.String("address", "127.0.0.1:9"))
	assert.Equal(t, []string{"127.0.0.1:41543"}, heard, "addresses heard")
	assert.Empty(t, buf.String(), "lines above the library level")
}
