package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Pots sends a request to a member's pot grain and returns its answer.
// actors.PotClient implements it. A refusal by the pot is a Problem in the
// response, not an error; an error means the pot could not be reached or did
// not answer in time (cluster.ErrTimeout, cluster.ErrUnavailable,
// cluster.ErrStopped), and the gateway answers 503.
type Pots interface {
	Handle(ctx context.Context, memberID string, req *pb.PotRequest) (*pb.PotResponse, error)
}

// Cluster describes the cluster for GET /v1/cluster. *cluster.Node
// implements it.
type Cluster interface {
	Members(ctx context.Context) ([]cluster.MemberInfo, error)
}

// Config configures a gateway. Required: Pots, Cluster, Ready, Catalogue
// and TokenSecret; EnsureDefaults fills the rest.
//
// Operations (the dealing cycle's operator endpoints) is optional: without
// it those endpoints answer 503.
type Config struct {
	// Operations runs prices, cycles and reconciliations.
	Operations Operations
	// Pots calls the members' pot grains. Required.
	Pots Pots
	// Cluster lists the cluster's members for GET /v1/cluster. Required.
	Cluster Cluster
	// Ready reports whether the process can serve (its cluster node joined,
	// its journal open, NATS connected): nil for ready. GET /readyz calls it
	// with a context bounded by ReadyTimeout and answers 503 while it
	// returns an error (logged, never shown: /readyz needs no token).
	// Required.
	Ready func(ctx context.Context) error
	// Catalogue is the platform's assets and risk profiles: the one the
	// pots use. The gateway serves it (GET /v1/assets, /v1/risk-profiles)
	// and uses each asset's unit places to validate orders. Required.
	Catalogue *domain.Catalogue
	// TokenSecret is the HMAC-SHA256 key bearer tokens are signed with
	// (SignToken), at least TokenSecretBytesMin bytes. Every gateway of a
	// platform and the `mastertrust token` command must share it. Required.
	TokenSecret []byte
	// Now is the clock tokens are checked against. Default: time.Now.
	Now func() time.Time
	// RequestTimeout bounds each call to a pot grain (the cluster node's own
	// RequestTimeout applies too; the earlier wins). Past it the gateway
	// answers 503 with Retry-After; the command may still be applied, and a
	// retry with the same Idempotency-Key finds out. It also bounds
	// GET /v1/cluster. Default: 5 s.
	RequestTimeout time.Duration
	// ReadyTimeout bounds one call of Ready. Default: 2 s.
	ReadyTimeout time.Duration
	// InFlightMax bounds the members' and the catalogue's requests served
	// at once (health and metrics are not counted; operators' requests
	// have slots of their own, operatorsInFlightMax). A request past it
	// waits up to
	// SlotWaitMax for one of them to end, then is answered 503 (problem
	// unavailable, Retry-After) having done nothing. Default:
	// defaultInFlightMax (see there for the arithmetic).
	InFlightMax int
	// SlotWaitMax bounds how long a request past InFlightMax waits for a
	// slot before its 503: long enough to ride out a burst, short against
	// the 503 a client should get at once when the gateway is overloaded.
	// Negative: no wait. Default: defaultSlotWaitMax.
	SlotWaitMax time.Duration
	// Registry receives the gateway's metrics and is what GET /metrics
	// serves: pass the process's registry so that one scrape sees the
	// node's metrics too. Default: a new registry.
	Registry *prometheus.Registry
	// Logger receives request logs (Debug) and errors (Error). Default:
	// slog.Default().
	Logger *slog.Logger
}

// Defaults and bounds of Config.
const (
	defaultRequestTimeout = 5 * time.Second
	defaultReadyTimeout   = 2 * time.Second
	// defaultInFlightMax: a request in flight is one the platform works
	// on; past what it can do at once, more in flight only means each
	// waits longer (Little's law: in flight = rate × latency). Measured on
	// the project's 2 cores (bench overload, docs/performance.md,
	// "Overload"), one node's closed-loop rate of HTTP orders rises up to
	// 16 in flight (4: ~4,000/s, 8: ~5,000–7,000/s, 16: ~6,000–7,600/s)
	// and no further (32: ~5,700–8,000/s, 64: ~5,800/s); 32 is twice that,
	// for the journal's slower syncs, and 4 ms of work at 8,000/s. 4,096
	// (the old default) let seconds of work queue inside at 3× the
	// sustainable rate, and the node's CPU went to requests whose clients
	// were about to give up.
	defaultInFlightMax = 32
	// defaultSlotWaitMax: a 503 should reach its client well within 50 ms.
	// At 5,000 orders/s a slot frees every 0.2 ms, so 10 ms lets a burst of
	// ~50 requests past the limit in (a stalled sync, a GC); under
	// sustained overload a refused request costs 10 ms more, not seconds.
	defaultSlotWaitMax = 10 * time.Millisecond
	// requestTimeoutMax bounds RequestTimeout: a client (and a load
	// balancer) gives up long before a minute, and a longer call only holds
	// a goroutine for nobody.
	requestTimeoutMax = time.Minute
)

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *Config) EnsureDefaults() *Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = defaultReadyTimeout
	}
	if c.InFlightMax == 0 {
		c.InFlightMax = defaultInFlightMax
	}
	if c.SlotWaitMax == 0 {
		c.SlotWaitMax = defaultSlotWaitMax
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every invalid field, each with its value, joined in one
// error wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if c.Pots == nil {
		add("Pots is required")
	}
	if c.Cluster == nil {
		add("Cluster is required")
	}
	if c.Ready == nil {
		add("Ready is required")
	}
	if c.Catalogue == nil {
		add("Catalogue is required")
	}
	if len(c.TokenSecret) < TokenSecretBytesMin {
		add("TokenSecret of %d bytes is shorter than %d", len(c.TokenSecret), TokenSecretBytesMin)
	}
	if c.Now == nil {
		add("Now is nil")
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > requestTimeoutMax {
		add("RequestTimeout %s not in (0, %s]", c.RequestTimeout, requestTimeoutMax)
	}
	if c.ReadyTimeout <= 0 || c.ReadyTimeout > requestTimeoutMax {
		add("ReadyTimeout %s not in (0, %s]", c.ReadyTimeout, requestTimeoutMax)
	}
	if c.InFlightMax < 1 {
		add("InFlightMax %d is less than 1", c.InFlightMax)
	}
	if c.RequestTimeout > 0 && c.SlotWaitMax >= c.RequestTimeout {
		add("SlotWaitMax %s not below RequestTimeout %s", c.SlotWaitMax, c.RequestTimeout)
	}
	if c.Registry == nil {
		add("Registry is nil")
	}
	if c.Logger == nil {
		add("Logger is nil")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
}

// ErrInvalidConfig is wrapped by Validate's and New's errors about the
// configuration.
var ErrInvalidConfig = errors.New("gateway: invalid config")
